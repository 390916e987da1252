/* Errors in library code.
 *
 * Library functions (common/, imgconv/, launcher/, plugin/) never exit: they
 * return 0 on success or a negative code: -errno, or one of the BERTH_E*
 * values below.  The function that detects a failure describes it once with
 * berth_fail(), which stores a one-line message for this thread naming the
 * operation, the object and the cause:
 *
 *     return berth_fail(-errno, "open '%s'", path);
 *     -> "open '/x': No such file or directory"
 *
 * Callers that only pass the code up do not touch the message.  main() and
 * the SPANK plugin print berth_errmsg() once. */
#ifndef BERTH_ERROR_H
#define BERTH_ERROR_H

#include "common/macros.h"

enum {
	BERTH_EBASE = 4096,
	BERTH_EINVAL_INPUT = -(BERTH_EBASE + 1), /* bad user input (reference, spec, file) */
	BERTH_ECONFIG = -(BERTH_EBASE + 2),      /* bad configuration file or value */
	BERTH_EREGISTRY = -(BERTH_EBASE + 3),    /* registry said no */
	BERTH_EAUTH = -(BERTH_EBASE + 4),        /* authentication needed or refused */
	BERTH_EDIGEST = -(BERTH_EBASE + 5),      /* content does not match its digest */
	BERTH_EFORMAT = -(BERTH_EBASE + 6),      /* malformed manifest, tar, squashfs ... */
	BERTH_EUNSUPPORTED = -(BERTH_EBASE + 7), /* valid but not supported */
	BERTH_ENOTFOUND = -(BERTH_EBASE + 8),    /* image, tag, container not found */
	BERTH_EHOST = -(BERTH_EBASE + 9),        /* host lacks a feature (userns, fuse) */
	BERTH_ECHILD_FAILED = -(BERTH_EBASE + 10),
};

/* Text for a code: strerror() for -errno, a fixed phrase for BERTH_E*. */
const char *berth_strerror(int code);

/* Record "<fmt ...>: <berth_strerror(code)>" as this thread's message and
 * return code.  Saves and restores errno. */
int berth_fail(int code, const char *fmt, ...) _printf_(2, 3);

/* Record "<fmt ...>" verbatim (no cause appended) and return code. */
int berth_failx(int code, const char *fmt, ...) _printf_(2, 3);

/* Prefix the current message with "<fmt ...>: " (adds context on the way up). */
int berth_fail_context(int code, const char *fmt, ...) _printf_(2, 3);

/* The last recorded message, or berth_strerror(code) when none was set. */
const char *berth_errmsg(int code);

/* Forget the recorded message. */
void berth_error_clear(void);

#endif
