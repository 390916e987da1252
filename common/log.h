/* Logging: "berth[PID]: LEVEL: message" on stderr, or through a sink the
 * SPANK plugin installs (Slurm's log).  Levels follow -v / -vv.  Never pass a
 * secret (password, token, Authorization header) to these functions. */
#ifndef BERTH_LOG_H
#define BERTH_LOG_H

#include <stdarg.h>
#include "common/macros.h"

enum berth_log_level {
	BERTH_LOG_ERROR = 0,
	BERTH_LOG_WARN = 1,
	BERTH_LOG_INFO = 2,  /* progress lines; shown by default on the CLI */
	BERTH_LOG_DEBUG = 3, /* -v */
	BERTH_LOG_TRACE = 4, /* -vv */
};

typedef void (*berth_log_sink)(enum berth_log_level level, const char *msg, void *data);

void berth_log_set_level(enum berth_log_level level);
enum berth_log_level berth_log_get_level(void);
/* NULL restores stderr. */
void berth_log_set_sink(berth_log_sink sink, void *data);

void berth_log(enum berth_log_level level, const char *fmt, ...) _printf_(2, 3);
void berth_vlog(enum berth_log_level level, const char *fmt, va_list ap);

#define log_error(...) berth_log(BERTH_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) berth_log(BERTH_LOG_WARN, __VA_ARGS__)
#define log_info(...) berth_log(BERTH_LOG_INFO, __VA_ARGS__)
#define log_debug(...) berth_log(BERTH_LOG_DEBUG, __VA_ARGS__)
#define log_trace(...) berth_log(BERTH_LOG_TRACE, __VA_ARGS__)

/* Parse "error|warn|info|debug|trace" or "0".."4". */
int berth_log_parse_level(const char *s, enum berth_log_level *out);

#endif
