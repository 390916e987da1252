#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "common/error.h"
#include "launcher/userns.h"

static int write_proc(pid_t pid, const char *file, const char *text)
{
	char path[64];
	_cleanup_close_ int fd = -1;
	size_t len = strlen(text);

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	else
		snprintf(path, sizeof(path), "/proc/self/%s", file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return berth_fail(-errno, "open '%s'", path);
	if (write(fd, text, len) != (ssize_t)len)
		return berth_fail(-errno, "write '%s' to '%s'", text, path);
	return 0;
}

int userns_write_maps(pid_t pid, uid_t inside_uid, uid_t outside_uid, gid_t inside_gid,
		      gid_t outside_gid)
{
	char map[64];
	int r;

	r = write_proc(pid, "setgroups", "deny");
	/* ENOENT: kernels before 3.19 have no setgroups file. */
	if (r < 0 && r != -ENOENT)
		return r;
	snprintf(map, sizeof(map), "%u %u 1", (unsigned)inside_uid, (unsigned)outside_uid);
	r = write_proc(pid, "uid_map", map);
	if (r < 0)
		return r;
	snprintf(map, sizeof(map), "%u %u 1", (unsigned)inside_gid, (unsigned)outside_gid);
	return write_proc(pid, "gid_map", map);
}

int userns_enter(bool remap_root, int extra_flags)
{
	uid_t uid = geteuid();
	gid_t gid = getegid();

	if (unshare(CLONE_NEWUSER | extra_flags) < 0) {
		/* ENOSPC: user.max_user_namespaces is 0 (or used up) here or in
		 * an enclosing namespace; EPERM: a distribution switch
		 * (kernel.unprivileged_userns_clone, an AppArmor or seccomp policy). */
		if (errno == ENOSPC)
			return berth_failx(BERTH_EHOST,
					   "create user namespace: disabled or at its limit "
					   "(sysctl user.max_user_namespaces; see 'berth doctor')");
		if (errno == EPERM)
			return berth_failx(BERTH_EHOST,
					   "create user namespace: not permitted for unprivileged "
					   "users on this host (see 'berth doctor')");
		return berth_fail(-errno, "create user namespace (see 'berth doctor')");
	}
	return userns_write_maps(0, remap_root ? 0 : uid, uid, remap_root ? 0 : gid, gid);
}
