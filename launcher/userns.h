/* Entering a user namespace as an unprivileged user. */
#ifndef BERTH_USERNS_H
#define BERTH_USERNS_H

#include <stdbool.h>
#include <sys/types.h>

/* unshare(CLONE_NEWUSER | extra_flags) in the calling process and map the
 * caller's uid and gid alone: to themselves, or to 0 with remap_root.
 * setgroups is denied first, as user_namespaces(7) requires for an
 * unprivileged gid_map.  Must be called single-threaded. */
int userns_enter(bool remap_root, int extra_flags);

/* Write "inside outside 1" to /proc/PID/{uid,gid}_map for a child that
 * unshared its user namespace (pid 0: self). */
int userns_write_maps(pid_t pid, uid_t inside_uid, uid_t outside_uid, gid_t inside_gid,
		      gid_t outside_gid);

#endif
