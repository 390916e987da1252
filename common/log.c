#include "config.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "common/log.h"
#include "common/error.h"

static enum berth_log_level current_level = BERTH_LOG_INFO;
static berth_log_sink current_sink;
static void *current_sink_data;

static const char *const level_names[] = {"error", "warning", "info", "debug", "trace"};

void berth_log_set_level(enum berth_log_level level) { current_level = level; }
enum berth_log_level berth_log_get_level(void) { return current_level; }

void berth_log_set_sink(berth_log_sink sink, void *data)
{
	current_sink = sink;
	current_sink_data = data;
}

void berth_vlog(enum berth_log_level level, const char *fmt, va_list ap)
{
	char msg[2048];
	int saved = errno;

	if (level > current_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (current_sink)
		current_sink(level, msg, current_sink_data);
	else
		fprintf(stderr, "berth[%d]: %s: %s\n", (int)getpid(), level_names[level], msg);
	errno = saved;
}

void berth_log(enum berth_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	berth_vlog(level, fmt, ap);
	va_end(ap);
}

int berth_log_parse_level(const char *s, enum berth_log_level *out)
{
	static const char *const alias[] = {"error", "warn", "info", "debug", "trace"};

	for (size_t i = 0; i < ARRAY_SIZE(alias); i++) {
		if (strcmp(s, alias[i]) == 0 || strcmp(s, level_names[i]) == 0 ||
		    (s[0] == (char)('0' + i) && s[1] == '\0')) {
			*out = (enum berth_log_level)i;
			return 0;
		}
	}
	return BERTH_EINVAL_INPUT;
}
