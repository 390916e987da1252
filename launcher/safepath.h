/* Paths inside a container root, resolved without ever leaving it.
 *
 * A path from an image or a user ("/etc/x", mount targets) is resolved
 * against root_fd as if root_fd were "/": ".." stops at the root and
 * symlinks, absolute or relative, are followed inside the root only
 * (openat2(2) RESOLVE_IN_ROOT, or the same walk done one component at a
 * time where openat2 is missing).  Magic links (/proc/self/fd/..) are
 * refused.  The fds returned are O_CLOEXEC. */
#ifndef BERTH_SAFEPATH_H
#define BERTH_SAFEPATH_H

#include <stdbool.h>
#include <sys/types.h>

/* open(path, flags) inside root_fd; -errno on failure.  O_NOFOLLOW in
 * flags applies to the last component only, as for open(2). */
int safe_open(int root_fd, const char *path, int flags);

/* The fallback walk alone (tests compare it with openat2). */
int safe_open_walk(int root_fd, const char *path, int flags);

/* Force the fallback (tests; kernels without openat2 take it anyway). */
void safe_force_walk(bool on);

/* Resolve path inside root_fd, creating what is missing (directories with
 * mode 0755; the last component as an empty file when last_is_file).
 * Returns an O_PATH fd of the result. */
int safe_mkpath(int root_fd, const char *path, bool last_is_file);

#endif
