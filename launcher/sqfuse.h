/* The squashfs FUSE server: squashfuse's low-level library in a child
 * process that berth owns (no squashfuse binary needed). */
#ifndef BERTH_SQFUSE_H
#define BERTH_SQFUSE_H

#include <stdbool.h>
#include <sys/types.h>

struct sqfuse {
	pid_t pid; /* the server (the middle process when detached) */
	int ctl;   /* socket to the server: its "ok" or error; the /dev/fuse fd */
	bool detached;
	bool heard; /* its first message was read (SQFUSE_WAIT) */
	const char *image;
};

enum sqfuse_flags {
	/* Double fork: the server is nobody's child (the caller becomes the
	 * payload) and in a session of its own. */
	SQFUSE_DETACH = 1 << 0,
	/* Wait until the server has opened the image (its errors come here
	 * rather than as ENOTCONN later, see sqfuse_check()). */
	SQFUSE_WAIT = 1 << 1,
};

/* Fork the server; it opens the image while the caller goes on.  Call it
 * before entering the container's namespaces: the server then is in none
 * of them and never holds the mount alive; it ends when the last mount of
 * its filesystem goes away.  Files are shown as owned by uid:gid (the
 * caller inside the namespace), as enroot shows unpacked images; the
 * image's numeric owners mean nothing in a one-uid namespace. */
int sqfuse_start(const char *image, uid_t uid, gid_t gid, unsigned flags, struct sqfuse *s);

/* Open /dev/fuse (in the caller's user namespace: it must be opened in the
 * one that mounts), mount the filesystem on target (read-only) and hand
 * the fd to the server; a detached server also gets this mount namespace
 * to hold until the caller exits (its exit then does not unmount it all). */
int sqfuse_mount(struct sqfuse *s, const char *target, uid_t uid, gid_t gid);

/* r, or the server's own message when it has stopped (r < 0 only). */
int sqfuse_check(struct sqfuse *s, int r);

/* Close the caller's end (and reap the middle process of a detached
 * start). */
void sqfuse_close(struct sqfuse *s);

/* Mount any FUSE server by fd ("fuse.<subtype>"), read-only or not. */
int fuse_mount_fd(int fuse_fd, const char *source, const char *subtype, const char *target,
		  unsigned long flags, uid_t uid, gid_t gid);

/* Close every fd >= 3 except those listed (children must not hold the
 * caller's files: a slurmstepd has many). */
void close_fds_except(const int *keep, size_t n);

#endif
