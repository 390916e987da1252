#include "config.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "common/error.h"

static __thread char errbuf[1024];

static const char *const project_errors[] = {
	[1] = "invalid input",
	[2] = "invalid configuration",
	[3] = "registry error",
	[4] = "authentication required or refused",
	[5] = "digest mismatch",
	[6] = "malformed data",
	[7] = "not supported",
	[8] = "not found",
	[9] = "not supported by this host",
	[10] = "child process failed",
};

const char *berth_strerror(int code)
{
	int n = -code - BERTH_EBASE;

	if (code >= 0)
		return "success";
	if (n > 0 && (size_t)n < ARRAY_SIZE(project_errors) && project_errors[n])
		return project_errors[n];
	return strerror(-code);
}

static void vrecord(int code, int with_cause, const char *fmt, va_list ap)
{
	int saved = errno;
	int n = vsnprintf(errbuf, sizeof(errbuf), fmt, ap);

	if (with_cause && n >= 0 && (size_t)n < sizeof(errbuf))
		snprintf(errbuf + n, sizeof(errbuf) - n, ": %s", berth_strerror(code));
	errno = saved;
}

int berth_fail(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vrecord(code, 1, fmt, ap);
	va_end(ap);
	return code;
}

int berth_failx(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vrecord(code, 0, fmt, ap);
	va_end(ap);
	return code;
}

int berth_fail_context(int code, const char *fmt, ...)
{
	char prev[sizeof(errbuf)], ctx[sizeof(errbuf)];
	va_list ap;
	int saved = errno;
	size_t n;

	snprintf(prev, sizeof(prev), "%s", errbuf[0] ? errbuf : berth_strerror(code));
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	/* "ctx: prev", cut at the buffer's end */
	n = strlen(ctx);
	memcpy(errbuf, ctx, n);
	if (n + 2 < sizeof(errbuf)) {
		size_t m = strlen(prev);

		memcpy(errbuf + n, ": ", 2);
		n += 2;
		if (m > sizeof(errbuf) - 1 - n)
			m = sizeof(errbuf) - 1 - n;
		memcpy(errbuf + n, prev, m);
		n += m;
	}
	errbuf[n] = '\0';
	errno = saved;
	return code;
}

const char *berth_errmsg(int code)
{
	return errbuf[0] ? errbuf : berth_strerror(code);
}

void berth_error_clear(void)
{
	errbuf[0] = '\0';
}
