#include "config.h"
/* squashfuse's headers pull in their own config.h, which defines the same
 * PACKAGE_* macros as ours. */
#undef PACKAGE
#undef PACKAGE_BUGREPORT
#undef PACKAGE_NAME
#undef PACKAGE_STRING
#undef PACKAGE_TARNAME
#undef PACKAGE_URL
#undef PACKAGE_VERSION
#undef VERSION
/* ll.h declares "void teardown_idle_timeout();" */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <ll.h>
#pragma GCC diagnostic pop
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/sqfuse.h"

/* Exported by libsquashfuse_ll but declared in its uninstalled stat.h. */
sqfs_err sqfs_stat(sqfs *fs, sqfs_inode *inode, struct stat *st);

/* libsquashfuse 0.1.x keeps unlocked caches in the sqfs struct, so the
 * library itself is not thread-safe: the worker threads of
 * fuse_session_loop_mt take this lock around each call into it.  The
 * kernel still queues requests from many processes at once, and reading
 * /dev/fuse and copying replies happen outside the lock. */
static pthread_mutex_t sq_lock = PTHREAD_MUTEX_INITIALIZER;
static uid_t owner_uid;
static gid_t owner_gid;

#define LOCKED(call)                          \
	do {                                  \
		pthread_mutex_lock(&sq_lock); \
		call;                         \
		pthread_mutex_unlock(&sq_lock); \
	} while (0)

static void owner(struct stat *st)
{
	st->st_uid = owner_uid;
	st->st_gid = owner_gid;
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	sqfs_ll_i lli;
	struct stat st;

	(void)fi;
	pthread_mutex_lock(&sq_lock);
	if (sqfs_ll_iget(req, &lli, ino) == SQFS_OK) {
		if (sqfs_stat(&lli.ll->fs, &lli.inode, &st) != SQFS_OK) {
			fuse_reply_err(req, ENOENT);
		} else {
			st.st_ino = ino;
			owner(&st);
			fuse_reply_attr(req, &st, DBL_MAX);
		}
	}
	pthread_mutex_unlock(&sq_lock);
}

static void lookup_locked(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = {.attr_timeout = DBL_MAX, .entry_timeout = DBL_MAX};
	sqfs_name namebuf;
	sqfs_dir_entry entry;
	sqfs_inode inode;
	sqfs_ll_i lli;
	bool found;

	if (sqfs_ll_iget(req, &lli, parent) != SQFS_OK)
		return;
	if (!S_ISDIR(lli.inode.base.mode)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	sqfs_dentry_init(&entry, namebuf);
	if (sqfs_dir_lookup(&lli.ll->fs, &lli.inode, name, strlen(name), &entry, &found)) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (!found) {
		/* ino 0: a negative entry the kernel caches (the image never changes) */
		fuse_reply_entry(req, &e);
		return;
	}
	if (sqfs_inode_get(&lli.ll->fs, &inode, sqfs_dentry_inode(&entry)) ||
	    sqfs_stat(&lli.ll->fs, &inode, &e.attr)) {
		fuse_reply_err(req, EIO);
		return;
	}
	e.ino = lli.ll->ino_register(lli.ll, &entry);
	e.attr.st_ino = e.ino;
	owner(&e.attr);
	fuse_reply_entry(req, &e);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	LOCKED(lookup_locked(req, parent, name));
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	LOCKED(sqfs_ll_op_opendir(req, ino, fi));
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	LOCKED(sqfs_ll_op_releasedir(req, ino, fi));
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	LOCKED(sqfs_ll_op_readdir(req, ino, size, off, fi));
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	LOCKED(sqfs_ll_op_open(req, ino, fi));
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	LOCKED(sqfs_ll_op_release(req, ino, fi));
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	LOCKED(sqfs_ll_op_read(req, ino, size, off, fi));
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	LOCKED(sqfs_ll_op_readlink(req, ino));
}

/* An image without an xattr table answers ENOSYS once: the kernel then
 * stops asking for the whole mount (fc->no_getxattr).  Overlayfs checks
 * its own xattrs on every lower directory it meets; on a cold start that
 * was a dozen round trips to this process (bench/RESULTS.md). */
static bool no_xattrs;

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (no_xattrs) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	LOCKED(sqfs_ll_op_listxattr(req, ino, size));
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	if (no_xattrs) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	LOCKED(sqfs_ll_op_getxattr(req, ino, name, size));
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	LOCKED(sqfs_ll_op_forget(req, ino, (unsigned long)nlookup));
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	LOCKED(stfs_ll_op_statfs(req, ino));
}

static const struct fuse_lowlevel_ops ops = {
	.lookup = op_lookup,
	.forget = op_forget,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
};

void close_fds_except(const int *keep, size_t n)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);
		bool kept = fd < 3 || fd == dirfd(d);

		for (size_t i = 0; i < n && !kept; i++)
			kept = keep[i] == fd;
		if (!kept && de->d_name[0] != '.')
			close(fd);
	}
	closedir(d);
}

static void send_line(int fd, const char *msg)
{
	ssize_t r = write(fd, msg, strlen(msg));

	(void)r;
}

/* The server process; never returns. */
_Noreturn static void serve(const char *image, int fuse_fd, int ctl)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config lc = {.clone_fd = 0, .max_idle_threads = 4};
	struct fuse_session *se;
	char mountpoint[32], go;
	int keep[] = {fuse_fd, ctl};
	sqfs_ll *ll;

	prctl(PR_SET_NAME, "berth-squashfuse");
	signal(SIGPIPE, SIG_IGN);
	close_fds_except(keep, ARRAY_SIZE(keep));
	if (unshare(CLONE_NEWNS) < 0) {
		send_line(ctl, "leave the mount namespace: unshare failed");
		_exit(1);
	}
	ll = sqfs_ll_open(image, 0);
	if (!ll) {
		send_line(ctl, "cannot read the squashfs image");
		_exit(1);
	}
	no_xattrs = ll->fs.sb.xattr_id_table_start == UINT64_MAX || ll->fs.xattr_info.xattr_ids == 0;
	fuse_opt_add_arg(&args, "berth-squashfuse");
	se = fuse_session_new(&args, &ops, sizeof(ops), ll);
	if (!se) {
		send_line(ctl, "fuse_session_new failed");
		_exit(1);
	}
	send_line(ctl, "ok");
	/* Wait for the mount; EOF means the keeper gave up. */
	if (read(ctl, &go, 1) != 1)
		_exit(0);
	close(ctl);
	/* libfuse >= 3.3: "/dev/fd/N" means "already mounted, serve fd N". */
	snprintf(mountpoint, sizeof(mountpoint), "/dev/fd/%d", fuse_fd);
	if (fuse_session_mount(se, mountpoint) != 0)
		_exit(1);
	fuse_session_loop_mt(se, &lc);
	_exit(0);
}

int sqfuse_start(const char *image, uid_t uid, gid_t gid, struct sqfuse *s)
{
	int sp[2], fd;
	char msg[256];
	ssize_t n;

	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return berth_fail(-errno, "open '/dev/fuse' (see 'berth doctor')");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		close(fd);
		return berth_fail(-errno, "socketpair");
	}
	owner_uid = uid;
	owner_gid = gid;
	s->pid = fork();
	if (s->pid < 0) {
		close(fd);
		close(sp[0]);
		close(sp[1]);
		return berth_fail(-errno, "fork");
	}
	if (s->pid == 0) {
		close(sp[0]);
		serve(image, fd, sp[1]);
	}
	close(sp[1]);
	s->fuse_fd = fd;
	s->ctl = sp[0];
	n = read(s->ctl, msg, sizeof(msg) - 1);
	msg[n > 0 ? n : 0] = '\0';
	if (n == 2 && streq(msg, "ok"))
		return 0;
	close(s->fuse_fd);
	close(s->ctl);
	return berth_failx(BERTH_EFORMAT, "image '%s': %s", image,
			   n > 0 ? msg : "the FUSE server died");
}

int fuse_mount_fd(int fuse_fd, const char *source, const char *subtype, const char *target,
		  unsigned long flags, uid_t uid, gid_t gid)
{
	_cleanup_free_ char *type = xasprintf("fuse.%s", subtype);
	_cleanup_free_ char *opts = xasprintf("fd=%d,rootmode=40000,user_id=%u,group_id=%u,"
					      "default_permissions",
					      fuse_fd, (unsigned)uid, (unsigned)gid);

	if (!type || !opts)
		return -ENOMEM;
	if (mount(source, target, type, flags | MS_NOSUID | MS_NODEV, opts) < 0)
		return berth_fail(-errno, "mount FUSE filesystem on '%s' (see 'berth doctor')",
				  target);
	return 0;
}

int sqfuse_mount(struct sqfuse *s, const char *target, uid_t uid, gid_t gid)
{
	int r = fuse_mount_fd(s->fuse_fd, "berth", "squashfuse", target, MS_RDONLY, uid, gid);

	if (r == 0 && write(s->ctl, "g", 1) != 1)
		r = berth_fail(-errno, "start the FUSE server");
	close(s->fuse_fd);
	close(s->ctl);
	s->fuse_fd = s->ctl = -1;
	return r;
}
