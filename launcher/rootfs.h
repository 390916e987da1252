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
	/* Read from the .sqsh before the mount (facts.h): the image's passwd
	 * and group, what the mountpoints are in it; NULL: look in the mount. */
	const struct launcher_facts *facts;
	/* Built by the process that then becomes the payload (no keeper):
	 * state_dir is an empty directory to mount a tmpfs on (in the new
	 * mount namespace) and make lower/, root/, rw/ in, and helper
	 * processes (fuse-overlayfs) are made nobody's children.  Else the
	 * keeper's state dir has them. */
	bool in_caller;
};

struct sqfuse;

/* In the keeper, or in a `berth run` that needs no keeper, with the FUSE
 * server started (sqfuse_start()): enter the container's namespaces, mount
 * the image, the overlay and every bind, write the /etc files, then
 * pivot_root into the result.  On return the caller's root is the
 * container's. */
int rootfs_create(const struct rootfs_plan *p, struct sqfuse *sq);

/* Write the caller into /etc/passwd and /etc/group and copy /etc/hosts,
 * /etc/resolv.conf, /etc/localtime from the host (etcfiles.c).  files_dir
 * is a private tmpfs directory used in read-only mode. */
int etcfiles_install(const struct rootfs_plan *p, int root_fd, bool writable, unsigned seeded,
		     const char *files_dir);

/* The host files copied into every container, and which of them (and
 * passwd/group) a fresh layer was seeded with already (upper_seed()). */
extern const char *const etcfiles_host[];
#define ETCFILES_HOST_N 3
#define ETCFILES_SEEDED_USERS 1u
#define ETCFILES_SEEDED_HOST(i) (2u << (i))

/* Write a new file name (O_EXCL, no link followed) in dir_fd. */
int etcfiles_write_new(int dir_fd, const char *name, const char *content, size_t len);

/* Write passwd and group (the image's, read inside lower_fd, with the
 * caller added) into upper_etc_fd, the empty etc/ of a fresh upper layer. */
int etcfiles_seed_users(const struct rootfs_plan *p, int lower_fd, int upper_etc_fd);

/* Before the overlay is mounted on a fresh (tmpfs) upper layer: put the
 * /etc/passwd and /etc/group berth writes, and the mountpoint directories
 * the image lacks (home, /proc, /sys, /dev, /tmp), straight into the upper
 * directory (upperseed.c).  The overlay then shows them with no copy-up
 * of /etc or /home and no whiteouts.  *seeded: which /etc files are in
 * place (ETCFILES_SEEDED_*). */
int upper_seed(const struct rootfs_plan *p, const char *lower, const char *upper,
	       unsigned *seeded);

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
