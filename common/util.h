/* String, path and file helpers.  All return 0 or -errno unless noted;
 * allocation failures return -ENOMEM (or NULL for the allocating ones). */
#ifndef BERTH_UTIL_H
#define BERTH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/macros.h"

/* Allocating printf; NULL on failure. */
char *xasprintf(const char *fmt, ...) _printf_(1, 2);
char *path_join(const char *a, const char *b);

/* mkdir -p with mode for every created component. */
int mkdir_p(const char *path, mode_t mode);

/* Read a whole file (NUL-terminated; *len excludes the NUL).  Fails with
 * -EFBIG above max bytes (0: 64 MiB). */
int read_file(const char *path, size_t max, char **buf, size_t *len);

/* Write through "<path>.tmp.<pid>" + fsync + rename, so readers see the
 * old content or the new one, never a part. */
int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode);

/* The same replace without the fsync, for runtime state that means nothing
 * after a reboot (a keeper's info file): an fsync there cost ~0.5 ms of
 * every cold start. */
int write_file_runtime(const char *path, const void *buf, size_t len, mode_t mode);
/* stdin, stdout and stderr on /dev/null (a helper process must not hold
 * the caller's terminal or output pipe open).  0 or -errno. */
int stdio_devnull(void);

/* rm -rf that never crosses into another filesystem (a mount point is left,
 * and the call fails with -EBUSY) and never follows symlinks. */
int rm_rf(const char *path);

/* "yes/no/true/false/on/off/1/0" */
int parse_bool(const char *s, bool *out);
/* Decimal unsigned within [0, max]. */
int parse_u64(const char *s, uint64_t max, uint64_t *out);

/* NULL-terminated string vectors. */
char **strv_split(const char *s, char sep); /* empty items dropped; NULL on ENOMEM */
size_t strv_length(char *const *v);
int strv_push(char ***v, const char *s);    /* copies s */
bool strv_contains(char *const *v, const char *s);
char *strv_join(char *const *v, const char *sep);
void strv_free(char **v);
static inline void strv_freep(char ***v) { strv_free(*v); }
#define _cleanup_strv_ _cleanup_(strv_freep)

bool str_startswith(const char *s, const char *prefix);
bool str_endswith(const char *s, const char *suffix);

/* Human sizes: "1.5 MiB". buf at least 16 bytes. */
const char *format_bytes(uint64_t n, char *buf, size_t size);

/* fork() with a pipe from child to parent.  In the parent: returns the
 * child's pid, *fd is the read end.  In the child: returns 0, *fd is the
 * write end.  On failure -errno (recorded), nothing to close. */
pid_t fork_pipe(int *fd);

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

#endif
