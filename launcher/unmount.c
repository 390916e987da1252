/* "-v umount:DST": remove a mount berth (or an earlier -v) put at DST, e.g.
 * the private /tmp, so the image's own directory shows. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/rootfs.h"
#include "launcher/safepath.h"

static bool same_inode(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

/* -1 when the kernel cannot tell (statx's STATX_ATTR_MOUNT_ROOT: 5.8+). */
static int is_mount_root(int fd)
{
	struct statx sx;

	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, 0, &sx) < 0 ||
	    !(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
		return -1;
	return (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
}

int rootfs_umount(int root_fd, const char *dst)
{
	_cleanup_close_ int fd = safe_open(root_fd, dst, O_PATH), proc = -1;
	char p[64];

	if (fd == -ENOENT)
		return berth_failx(BERTH_EINVAL_INPUT, "umount '%s': no such path in the container",
				   dst);
	if (fd < 0)
		return berth_fail(fd, "umount '%s'", dst);
	/* Without its root or /proc the container cannot be entered: berth
	 * reads the image config and the uid map through /proc/self. */
	if (same_inode(fd, root_fd))
		return berth_failx(BERTH_EINVAL_INPUT,
				   "umount '%s': the container's root cannot be removed", dst);
	proc = safe_open(root_fd, "/proc", O_PATH);
	if (proc >= 0 && same_inode(fd, proc))
		return berth_failx(BERTH_EINVAL_INPUT, "umount '%s': berth needs /proc", dst);
	if (is_mount_root(fd) == 0)
		return berth_failx(BERTH_EINVAL_INPUT, "umount '%s': not a mount point", dst);
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	if (umount2(p, MNT_DETACH) == 0)
		return 0;
	/* A mount that came from the host with a bind of its parent (/dev/shm
	 * under /dev) is locked to it in a user namespace (mount_namespaces(7)). */
	if (errno == EINVAL)
		return berth_failx(BERTH_EINVAL_INPUT,
				   "umount '%s': a host mount below a bound directory cannot "
				   "be removed in a user namespace",
				   dst);
	return berth_fail(-errno, "umount '%s'", dst);
}
