/* Building the container's mount tree inside the keeper's namespaces. */
#ifndef BERTH_ROOTFS_H
#define BERTH_ROOTFS_H

#include <stdbool.h>
#include <sys/types.h>
#include "launcher/launcher.h"

struct rootfs_plan {
	const struct launcher_opts *opts;
	const char *state_dir; /* keepers/<key>: lower/, root/, rw/ mountpoints */
	const char *upper_dir; /* named container: upper/ and work/ on disk; or NULL */
	uid_t uid;             /* the caller inside the namespace */
	gid_t gid;
	const char *home;      /* caller's home (bound when mount_home) */
	const char *user_name;
	const char *group_name;
	const char *shell;
	/* The image's /etc/passwd and /etc/group as the caller read them from
	 * the .sqsh (NULL: unknown, read them in the container); they spare a
	 * fresh container ten round trips to its FUSE server. */
	const char *image_passwd;
	const char *image_group;
};

/* In the keeper, after userns_enter(): mount the image, the overlay and
 * every bind, write the /etc files, then pivot_root into the result.
 * On return the caller's root is the container's. */
int rootfs_build(const struct rootfs_plan *p);

/* Write the caller into /etc/passwd and /etc/group and copy /etc/hosts,
 * /etc/resolv.conf, /etc/localtime from the host (etcfiles.c).  files_dir
 * is a private tmpfs directory used in read-only mode. */
int etcfiles_install(const struct rootfs_plan *p, int root_fd, bool writable, bool users_done,
		     const char *files_dir);

/* Write passwd and group (the image's, read inside lower_fd, with the
 * caller added) into upper_etc_fd, the empty etc/ of a fresh upper layer. */
int etcfiles_seed_users(const struct rootfs_plan *p, int lower_fd, int upper_etc_fd);

/* Before the overlay is mounted on a fresh (tmpfs) upper layer: put the
 * /etc/passwd and /etc/group berth writes, and the mountpoint directories
 * the image lacks (home, /proc, /sys, /dev, /tmp), straight into the upper
 * directory (upperseed.c).  The overlay then shows them with no copy-up
 * of /etc or /home and no whiteouts.  *users_done: passwd and group are
 * in place. */
int upper_seed(const struct rootfs_plan *p, const char *lower, const char *upper,
	       bool *users_done);

/* Read-only container: add the mountpoints berth needs that the image
 * lacks (/proc, /sys, /dev, /tmp, home, /etc files) by covering their
 * directory with a read-only mirror on a tmpfs under work (underlay.c).
 * *root_fd is reopened at root afterwards. */
int underlay_apply(const struct rootfs_plan *p, const char *root, const char *work, int *root_fd);

/* Remove the mount at dst (-v umount:DST); never the root or /proc (unmount.c). */
int rootfs_umount(int root_fd, const char *dst);

/* Bind what a host path holds onto a path in the root, resolved safely. */
int rootfs_bind(int root_fd, const char *src, const char *dst, unsigned flags, bool writable);

#endif
