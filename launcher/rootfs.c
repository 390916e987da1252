#include "config.h"
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/mount.h>
#include <net/if.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/exec.h"
#include "launcher/gpu.h"
#include "launcher/mpi.h"
#include "launcher/rootfs.h"
#include "launcher/safepath.h"
#include "launcher/sqfuse.h"
#include "launcher/userns.h"

#ifndef MOUNT_ATTR_NOSYMFOLLOW
#define MOUNT_ATTR_NOSYMFOLLOW 0x00200000
#endif

static int fdpath(char *buf, size_t size, int fd)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
	return 0;
}

/* Flags the kernel locked on a mount that came from a more privileged
 * namespace: a remount must repeat them or fail with EPERM. */
static unsigned long locked_flags(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;

	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

/* ro/nosuid/nodev/noexec on the mount now at fd.  Recursive binds use
 * mount_setattr(2) so submounts become read-only too. */
static int apply_flags(int fd, const char *dst, unsigned flags)
{
	unsigned long want = 0;
	char p[64];

	if (flags & LAUNCHER_MNT_RO)
		want |= MS_RDONLY;
	if (flags & LAUNCHER_MNT_NOSUID)
		want |= MS_NOSUID;
	if (flags & LAUNCHER_MNT_NODEV)
		want |= MS_NODEV;
	if (flags & LAUNCHER_MNT_NOEXEC)
		want |= MS_NOEXEC;
	if (!want)
		return 0;
	if (flags & LAUNCHER_MNT_RBIND) {
		struct mount_attr attr = {0};

		attr.attr_set = (want & MS_RDONLY ? MOUNT_ATTR_RDONLY : 0) |
				(want & MS_NOSUID ? MOUNT_ATTR_NOSUID : 0) |
				(want & MS_NODEV ? MOUNT_ATTR_NODEV : 0) |
				(want & MS_NOEXEC ? MOUNT_ATTR_NOEXEC : 0);
		if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr,
			    sizeof(attr)) == 0)
			return 0;
		if (errno != ENOSYS)
			return berth_fail(-errno, "make mount at '%s' read-only", dst);
	}
	fdpath(p, sizeof(p), fd);
	if (mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | want | locked_flags(p), NULL) < 0)
		return berth_fail(-errno, "remount '%s' with its flags", dst);
	return 0;
}

static int set_propagation(int fd, unsigned flags)
{
	char p[64];

	if (!(flags & LAUNCHER_MNT_SLAVE))
		return 0;
	fdpath(p, sizeof(p), fd);
	return mount(NULL, p, NULL, MS_SLAVE | (flags & LAUNCHER_MNT_RBIND ? MS_REC : 0), NULL) < 0
		       ? -errno
		       : 0;
}

/* The target for a mount: resolved in the root, created in the writable
 * layer when missing, never reached through a symlink out of the root. */
static int open_target(int root_fd, const char *dst, bool dir, bool writable)
{
	int fd = writable ? safe_mkpath(root_fd, dst, !dir) : safe_open(root_fd, dst, O_PATH);

	if (fd == -ENOENT && !writable)
		return berth_failx(BERTH_EINVAL_INPUT,
				   "mount target '%s' does not exist in the read-only image "
				   "(use --writable, or mount on an existing path)",
				   dst);
	if (fd < 0)
		return berth_fail(fd, "mount target '%s'", dst);
	return fd;
}

int rootfs_bind(int root_fd, const char *src, const char *dst, unsigned flags, bool writable)
{
	_cleanup_close_ int sfd = open(src, O_PATH | O_CLOEXEC), tfd = -1, nfd = -1;
	struct stat ss, ts;
	char sp[64], tp[64];

	if (sfd < 0)
		return berth_fail(-errno, "mount source '%s'", src);
	if (fstat(sfd, &ss) < 0)
		return berth_fail(-errno, "stat '%s'", src);
	tfd = open_target(root_fd, dst, S_ISDIR(ss.st_mode), writable);
	if (tfd < 0)
		return tfd;
	if (fstat(tfd, &ts) < 0)
		return berth_fail(-errno, "stat '%s' in the container", dst);
	if (S_ISDIR(ss.st_mode) != S_ISDIR(ts.st_mode))
		return berth_failx(BERTH_EINVAL_INPUT, "mount '%s' on '%s': %s", src, dst,
				   S_ISDIR(ss.st_mode) ? "target is not a directory"
						       : "target is a directory");
	fdpath(sp, sizeof(sp), sfd);
	fdpath(tp, sizeof(tp), tfd);
	if (mount(sp, tp, NULL, MS_BIND | (flags & LAUNCHER_MNT_RBIND ? MS_REC : 0), NULL) < 0)
		return berth_fail(-errno, "bind '%s' on '%s'", src, dst);
	/* Re-resolve: the walk now ends on the new mount's root. */
	nfd = safe_open(root_fd, dst, O_PATH);
	if (nfd < 0)
		return berth_fail(nfd, "reopen mount '%s'", dst);
	/* What is there now must be what we bound: anything else means the
	 * path changed under us between resolving and mounting. */
	if (fstat(nfd, &ts) < 0)
		return berth_fail(-errno, "stat mount '%s'", dst);
	if (ts.st_dev != ss.st_dev || ts.st_ino != ss.st_ino)
		return berth_failx(BERTH_EINVAL_INPUT,
				   "mount '%s' on '%s': the target changed while mounting", src, dst);
	if (apply_flags(nfd, dst, flags) < 0)
		return BERTH_EINVAL_INPUT;
	return set_propagation(nfd, flags);
}

static int mount_tmpfs(int root_fd, const char *dst, const char *opts, unsigned flags,
		       bool writable)
{
	_cleanup_close_ int tfd = open_target(root_fd, dst, true, writable);
	char tp[64];

	if (tfd < 0)
		return tfd;
	fdpath(tp, sizeof(tp), tfd);
	if (mount("tmpfs", tp, "tmpfs", MS_NOSUID | MS_NODEV | (flags & LAUNCHER_MNT_RO ? MS_RDONLY : 0),
		  opts) < 0)
		return berth_fail(-errno, "mount tmpfs on '%s'", dst);
	return 0;
}

static int user_mount(int root_fd, const struct launcher_mount *m, bool writable)
{
	switch (m->kind) {
	case LAUNCHER_MOUNT_BIND:
		return rootfs_bind(root_fd, m->source, m->target, m->flags, writable);
	case LAUNCHER_MOUNT_TMPFS:
		return mount_tmpfs(root_fd, m->target, "mode=1777", m->flags, writable);
	case LAUNCHER_MOUNT_UMOUNT:
		return rootfs_umount(root_fd, m->target);
	}
	return -EINVAL;
}

/* In a read-only image a missing /tmp or home is skipped, not fatal. */
static bool present(int root_fd, const char *path, bool writable)
{
	int fd;

	if (writable)
		return true;
	fd = safe_open(root_fd, path, O_PATH);
	if (fd < 0) {
		log_debug("read-only image has no '%s': not mounted", path);
		return false;
	}
	close(fd);
	return true;
}

static int standard_mounts(const struct rootfs_plan *p, int root_fd, bool writable)
{
	static const char *const rbinds[] = {"/proc", "/sys", "/dev"};
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(rbinds); i++) {
		r = rootfs_bind(root_fd, rbinds[i], rbinds[i], LAUNCHER_MNT_RBIND, writable);
		if (r < 0)
			return r;
	}
	if (present(root_fd, "/tmp", writable) &&
	    (r = mount_tmpfs(root_fd, "/tmp", "mode=1777", 0, writable)) < 0)
		return r;
	if (p->opts->mount_home && p->home && p->home[0] == '/' && !streq(p->home, "/") &&
	    present(root_fd, p->home, writable)) {
		r = rootfs_bind(root_fd, p->home, p->home, LAUNCHER_MNT_RBIND, writable);
		if (r < 0)
			return berth_fail_context(r, "home directory (see --no-mount-home)");
	}
	for (size_t i = 0; p->opts->mounts && i < p->opts->mounts->n; i++) {
		r = user_mount(root_fd, &p->opts->mounts->v[i], writable);
		if (r < 0)
			return r;
	}
	return 0;
}

/* fuse-overlayfs serves a mount made here by fd, from a mount namespace of
 * its own: like the squashfs server, it then ends with the container. */
static int fuse_overlay(const char *lower, const char *upper, const char *work,
			const char *root, uid_t uid, gid_t gid, bool detach)
{
	_cleanup_free_ char *o = NULL;
	char fdarg[32], msg;
	int fd, sp[2], r;
	pid_t pid;

	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return berth_fail(-errno, "open '/dev/fuse' (see 'berth doctor')");
	o = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s,squash_to_uid=%u,squash_to_gid=%u",
		      lower, upper, work, (unsigned)uid, (unsigned)gid);
	if (!o || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		close(fd);
		return -ENOMEM;
	}
	pid = fork();
	if (pid == 0) {
		int keep[] = {fd, sp[1]};

		/* Nobody's child when the caller becomes the payload, and
		 * none of its output (a pipe would stay open). */
		if (detach && (setsid(), fork() != 0))
			_exit(0);
		close(sp[0]);
		if (detach)
			(void)stdio_devnull();
		close_fds_except(keep, ARRAY_SIZE(keep));
		/* Its own copy of the mount namespace, made before our mount:
		 * a copy holding the mount it serves would keep it forever. */
		if (unshare(CLONE_NEWNS) < 0 || write(sp[1], "u", 1) != 1 ||
		    read(sp[1], &msg, 1) != 1)
			_exit(1);
		fcntl(fd, F_SETFD, 0);
		snprintf(fdarg, sizeof(fdarg), "/dev/fd/%d", fd);
		execlp("fuse-overlayfs", "fuse-overlayfs", "-f", "-o", o, fdarg, (char *)NULL);
		_exit(127);
	}
	close(sp[1]);
	if (pid < 0) {
		close(fd);
		close(sp[0]);
		return berth_fail(-errno, "fork");
	}
	r = read(sp[0], &msg, 1) == 1 ? 0 : -ECHILD;
	if (detach)
		waitpid(pid, NULL, 0);
	if (r == 0)
		r = fuse_mount_fd(fd, "fuse-overlayfs", "fuse-overlayfs", root, 0, uid, gid);
	if (r == 0 && write(sp[0], "g", 1) != 1)
		r = -EPIPE;
	close(sp[0]);
	close(fd);
	return r;
}

static int overlay(const struct rootfs_plan *p, const char *lower, const char *upper,
		   const char *work, const char *root)
{
	enum launcher_overlay mode = p->opts->overlay;
	_cleanup_free_ char *o = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s,userxattr", lower,
					   upper, work);
	int r, saved;

	if (!o)
		return -ENOMEM;
	if (mode != LAUNCHER_OVERLAY_FUSE) {
		if (mount("overlay", root, "overlay", 0, o) == 0)
			return 0;
		saved = errno;
		log_debug("kernel overlayfs refused: %s", strerror(saved));
		if (mode == LAUNCHER_OVERLAY_KERNEL)
			return berth_fail(-saved, "kernel overlayfs in a user namespace "
						  "(overlay = kernel; try overlay = fuse or --readonly)");
	}
	r = fuse_overlay(lower, upper, work, root, p->uid, p->gid, p->in_caller);
	if (r < 0)
		return berth_failx(BERTH_EHOST,
				   "no writable overlay: kernel overlayfs refused and fuse-overlayfs "
				   "failed (install fuse-overlayfs, or run with --readonly; see "
				   "'berth doctor')");
	return 0;
}

static int enter_root(int root_fd)
{
	if (fchdir(root_fd) < 0)
		return berth_fail(-errno, "chdir to the container root");
	/* pivot_root(".", ".") stacks the old root on the new one; detaching
	 * it leaves only the container visible (pivot_root(2), NOTES). */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return berth_fail(-errno, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		return berth_fail(-errno, "detach the host root");
	if (chdir("/") < 0)
		return berth_fail(-errno, "chdir /");
	return 0;
}

/* Reading the payload's executable ahead on the freshly mounted image,
 * on a thread of its own: its lookups and reads go to the FUSE server
 * while this thread builds the rest of the container.  Nobody waits for
 * it: reads still queued when the payload is exec'd (which ends the
 * thread) are what its page faults would have asked for anyway. */
struct warm {
	int dir_fd;
	char **paths;
};

static void *warm_main(void *arg)
{
	struct warm *w = arg;

	launcher_exec_prefetch_at(w->dir_fd, w->paths);
	close(w->dir_fd);
	strv_free(w->paths);
	free(w);
	return NULL;
}

static void warm_start(const char *dir, char *const *paths)
{
	struct warm *w;
	pthread_attr_t attr;
	pthread_t t;
	bool started = false;

	if (!paths || !paths[0] || !(w = calloc(1, sizeof(*w))))
		return;
	w->dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	for (size_t i = 0; paths[i]; i++)
		if (strv_push(&w->paths, paths[i]) < 0)
			break;
	if (w->dir_fd >= 0 && w->paths && pthread_attr_init(&attr) == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		started = pthread_create(&t, &attr, warm_main, w) == 0;
		pthread_attr_destroy(&attr);
	}
	if (started)
		return;
	if (w->dir_fd >= 0)
		close(w->dir_fd);
	strv_free(w->paths);
	free(w);
}

static int mount_layers(const struct rootfs_plan *p, struct sqfuse *sq, const char *root,
			unsigned *seeded)
{
	_cleanup_free_ char *lower = path_join(p->state_dir, "lower"),
			    *rw = path_join(p->state_dir, "rw"), *upper = NULL, *work = NULL;
	bool writable = p->opts->writable;
	int r;

	if (!lower || !rw)
		return -ENOMEM;
	r = sqfuse_mount(sq, writable ? lower : root, p->uid, p->gid);
	if (r == 0)
		warm_start(writable ? lower : root, p->opts->warm);
	if (r < 0 || !writable)
		return r;
	upper = path_join(p->upper_dir ? p->upper_dir : rw, "upper");
	work = path_join(p->upper_dir ? p->upper_dir : rw, "work");
	if (!upper || !work)
		return -ENOMEM;
	if ((mkdir(upper, 0755) < 0 && errno != EEXIST) || (mkdir(work, 0700) < 0 && errno != EEXIST))
		return berth_fail(-errno, "create '%s'", upper);
	r = upper_seed(p, lower, upper, seeded);
	if (r < 0)
		return r;
	return overlay(p, lower, upper, work, root);
}

/* The state directory of a container built by its caller is a tmpfs of
 * the new mount namespace: nothing to create or remove on the host. */
static int state_tmpfs(const struct rootfs_plan *p)
{
	static const char *const sub[] = {"lower", "root", "rw"};
	_cleanup_close_ int fd = -1;

	if (mount("tmpfs", p->state_dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0)
		return berth_fail(-errno, "mount tmpfs on '%s'", p->state_dir);
	fd = open(p->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return berth_fail(-errno, "open '%s'", p->state_dir);
	for (size_t i = 0; i < ARRAY_SIZE(sub); i++)
		if (mkdirat(fd, sub[i], 0700) < 0)
			return berth_fail(-errno, "create '%s/%s'", p->state_dir, sub[i]);
	return 0;
}

static int rootfs_build(const struct rootfs_plan *p, struct sqfuse *sq)
{
	_cleanup_free_ char *root = path_join(p->state_dir, "root"),
			    *rw = path_join(p->state_dir, "rw"), *files = NULL;
	_cleanup_close_ int root_fd = -1;
	unsigned seeded = 0;
	int r;

	if (!root || !rw)
		return -ENOMEM;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return berth_fail(-errno, "make mounts private");
	if (p->in_caller) {
		if ((r = state_tmpfs(p)) < 0)
			return r;
	} else if (mount("tmpfs", rw, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0) {
		/* A private tmpfs for the upper layer and generated files. */
		return berth_fail(-errno, "mount tmpfs on '%s'", rw);
	}
	files = path_join(rw, "files");
	if (!files || mkdir(files, 0700) < 0)
		return berth_fail(-errno, "create '%s'", files ? files : rw);
	r = mount_layers(p, sq, root, &seeded);
	if (r < 0)
		return r;
	root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		return berth_fail(-errno, "open '%s'", root);
	if (!p->opts->writable && (r = underlay_apply(p, root, rw, &root_fd)) < 0)
		return r;
	r = standard_mounts(p, root_fd, p->opts->writable);
	if (r < 0)
		return r;
	r = gpu_apply(p->opts->gpu, root_fd, p->opts->writable);
	if (r < 0)
		return r;
	r = mpi_apply(p->opts->mpi, root_fd, p->opts->writable);
	if (r < 0)
		return r;
	r = etcfiles_install(p, root_fd, p->opts->writable, seeded, files);
	if (r < 0)
		return r;
	return enter_root(root_fd);
}

/* A new network namespace has only "lo", and it is down: bring it up so
 * that 127.0.0.1 works (netdevice(7), SIOCSIFFLAGS; we hold CAP_NET_ADMIN
 * in the user namespace that owns the new network namespace). */
static int loopback_up(void)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {0};

	if (fd < 0)
		return berth_fail(-errno, "socket for the loopback device");
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return berth_fail(-errno, "read the flags of 'lo'");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		return berth_fail(-errno, "bring up 'lo' in the container's network namespace");
	return 0;
}

static int enter_namespaces(const struct launcher_opts *o)
{
	int r = userns_enter(o->remap_root, CLONE_NEWNS | (o->hostname ? CLONE_NEWUTS : 0) |
						    (o->unshare_net ? CLONE_NEWNET : 0) |
						    (o->unshare_ipc ? CLONE_NEWIPC : 0));

	if (r < 0)
		return r;
	if (o->unshare_net && (r = loopback_up()) < 0)
		return r;
	if (o->hostname && sethostname(o->hostname, strlen(o->hostname)) < 0)
		return berth_fail(-errno, "set hostname '%s'", o->hostname);
	return 0;
}

int rootfs_create(const struct rootfs_plan *p, struct sqfuse *sq)
{
	int r = enter_namespaces(p->opts);

	if (r == 0)
		r = rootfs_build(p, sq);
	/* ENOTCONN and the like: say why the server stopped, if it did. */
	return sqfuse_check(sq, r);
}
