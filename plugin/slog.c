/* berth's log lines inside Slurm: errors and warnings through slurm_error
 * (they reach srun's stderr), progress through slurm_info/verbose/debug
 * (Slurm's log; srun -v and --slurmd-debug show them).  In the per-node
 * child, which must not call into Slurm (it forked from a threaded
 * slurmstepd), lines go to a file descriptor the parent replays. */
#include "config.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "common/log.h"
#include "plugin/plugin.h"

static void to_slurm(enum berth_log_level level, const char *msg, void *data)
{
	(void)data;
	switch (level) {
	case BERTH_LOG_ERROR:
	case BERTH_LOG_WARN:
		slurm_error(PLUGIN_PREFIX "%s", msg);
		break;
	case BERTH_LOG_INFO:
		slurm_verbose(PLUGIN_PREFIX "%s", msg);
		break;
	default:
		slurm_debug(PLUGIN_PREFIX "%s", msg);
		break;
	}
}

void slog_install(int level)
{
	berth_log_set_level((enum berth_log_level)level);
	berth_log_set_sink(to_slurm, NULL);
}

static void to_fd(enum berth_log_level level, const char *msg, void *data)
{
	static const char *const names[] = {"error", "warn", "info", "debug", "trace"};
	int fd = *(int *)data;
	char line[2048];
	int n = snprintf(line, sizeof(line), "%s: %s\n",
			 (unsigned)level < 5 ? names[level] : "log", msg);

	if (n > 0)
		(void)!write(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void slog_to_fd(int fd, int level)
{
	static int sink_fd;

	sink_fd = fd;
	berth_log_set_level((enum berth_log_level)level);
	berth_log_set_sink(to_fd, &sink_fd);
}

/* "level: message" -> the level's index in names[], message after it. */
static int split_level(char *line, const char **msg)
{
	static const char *const names[] = {"error", "warn", "info", "debug", "trace"};

	for (int i = 0; i < 5; i++) {
		size_t n = strlen(names[i]);

		if (strncmp(line, names[i], n) == 0 && line[n] == ':' && line[n + 1] == ' ') {
			*msg = line + n + 2;
			return i;
		}
	}
	*msg = line;
	return BERTH_LOG_INFO;
}

void slog_replay(char *text, bool failed)
{
	for (char *line = text, *end; line && *line; line = end) {
		const char *msg;
		int level;

		end = strchr(line, '\n');
		if (end)
			*end++ = '\0';
		level = split_level(line, &msg);
		if (level <= BERTH_LOG_WARN || (failed && level == BERTH_LOG_INFO))
			slurm_error(PLUGIN_PREFIX "%s", msg);
		else if (level == BERTH_LOG_INFO)
			slurm_verbose(PLUGIN_PREFIX "%s", msg);
		else
			slurm_debug(PLUGIN_PREFIX "%s", msg);
		if (!end)
			break;
	}
}
