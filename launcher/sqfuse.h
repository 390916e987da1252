/* The squashfs FUSE server: squashfuse's low-level library in a child
 * process that berth owns (no squashfuse binary needed). */
#ifndef BERTH_SQFUSE_H
#define BERTH_SQFUSE_H

#include <sys/types.h>

struct sqfuse {
	pid_t pid;   /* the server */
	int fuse_fd; /* /dev/fuse, for the mount options */
	int ctl;     /* socket to the server: "go" after the mount */
};

/* Open /dev/fuse (it must be opened in the user namespace that mounts),
 * fork the server and wait until it has opened the image.  The server
 * leaves the caller's mount namespace at once: it then never holds the
 * mount alive and ends when the last mount of its filesystem goes away
 * (reads on /dev/fuse fail with ENODEV).  Files are shown as owned by
 * uid:gid (the caller inside the namespace), as enroot shows unpacked
 * images; the image's numeric owners mean nothing in a one-uid namespace. */
int sqfuse_start(const char *image, uid_t uid, gid_t gid, struct sqfuse *s);

/* Mount the filesystem on target (read-only) and let the server run.
 * Closes the fds in s. */
int sqfuse_mount(struct sqfuse *s, const char *target, uid_t uid, gid_t gid);

/* Mount any FUSE server by fd ("fuse.<subtype>"), read-only or not. */
int fuse_mount_fd(int fuse_fd, const char *source, const char *subtype, const char *target,
		  unsigned long flags, uid_t uid, gid_t gid);

/* Close every fd >= 3 except those listed (children must not hold the
 * caller's files: a slurmstepd has many). */
void close_fds_except(const int *keep, size_t n);

#endif
