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
#include <poll.h>
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/sqfuse.h"

/* Exported by libsquashfuse_ll but declared in its uninstalled stat.h. */
sqfs_err sqfs_stat(sqfs *fs, sqfs_inode *inode, struct stat *st);

/* libsquashfuse 0.1.x keeps unlocked caches in the sqfs struct, so the
 * library itself is not thread-safe: the server's worker threads take an
 * instance's lock around each call into it (readers[0] for everything but
 * file data, see op_read()).  The kernel
 * still queues requests from many processes at once, and reading
 * /dev/fuse and copying replies happen outside the locks. */
#define MAX_READERS 5 /* readers[0] and four for file data */

struct reader {
	pthread_mutex_t lock;
	sqfs_ll *ll;
};

static struct reader readers[MAX_READERS];
/* Instances to open at most: one per CPU for data (a 2-CPU node gained
 * nothing from more but their setup on every cold start), plus readers[0]. */
static unsigned max_readers = MAX_READERS;
static unsigned nreaders; /* instances opened; readers[0] is the main one */
static pthread_mutex_t readers_grow = PTHREAD_MUTEX_INITIALIZER;
static char image_path[32]; /* /proc/self/fd/N of the image */
static uid_t owner_uid;
static gid_t owner_gid;
/* The caller's CPUs, which the server takes back once it runs
 * (start_elsewhere()); have_cpus: they could be read. */
static cpu_set_t caller_cpus;
static bool have_cpus;

#define LOCKED(call)                                   \
	do {                                           \
		pthread_mutex_lock(&readers[0].lock);   \
		call;                                  \
		pthread_mutex_unlock(&readers[0].lock); \
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
	pthread_mutex_lock(&readers[0].lock);
	if (sqfs_ll_iget(req, &lli, ino) == SQFS_OK) {
		if (sqfs_stat(&lli.ll->fs, &lli.inode, &st) != SQFS_OK) {
			fuse_reply_err(req, ENOENT);
		} else {
			st.st_ino = ino;
			owner(&st);
			fuse_reply_attr(req, &st, DBL_MAX);
		}
	}
	pthread_mutex_unlock(&readers[0].lock);
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

/* Files need no state of their own (reads find the inode by number): the
 * first OPEN answered ENOSYS, the kernel opens files without asking from
 * then on (FUSE_CAP_NO_OPEN_SUPPORT, keeping their cache).  One round trip
 * less per open(2): each exec, each of a Python program's imports, and no
 * open queued behind the reads of an executable read ahead. */
static bool no_open;

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (no_open) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	LOCKED(sqfs_ll_op_open(req, ino, fi));
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	LOCKED(sqfs_ll_op_release(req, ino, fi));
}

/* File data, the bulk of the traffic, is read through more than one
 * library instance, each under its own lock: readers of different files
 * (ranks starting at once, the kernel's readahead of one file) are served
 * in parallel instead of one after the other.  The instances open the
 * same image; squashfuse numbers inodes by their position in it, so an
 * open file's inode (op_open, instance 0) reads the same through any. */

static unsigned readers_for_cpus(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (cpus < 1)
		cpus = 1;
	return 1 + (unsigned)(cpus < MAX_READERS - 1 ? cpus : MAX_READERS - 1);
}

/* A free data instance, else a new one (up to max_readers), else wait for
 * one.  Never readers[0]: lookups and the like (a container still being
 * built, a process starting) must not wait for bulk reads.  Returned
 * locked. */
static struct reader *reader_take(void)
{
	unsigned n = __atomic_load_n(&nreaders, __ATOMIC_ACQUIRE);
	struct reader *r;

	for (unsigned i = 1; i < n; i++)
		if (pthread_mutex_trylock(&readers[i].lock) == 0)
			return &readers[i];
	pthread_mutex_lock(&readers_grow);
	n = nreaders;
	if (n < max_readers && (readers[n].ll = sqfs_ll_open(image_path, 0))) {
		r = &readers[n];
		pthread_mutex_lock(&r->lock);
		__atomic_store_n(&nreaders, n + 1, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&readers_grow);
		return r;
	}
	pthread_mutex_unlock(&readers_grow);
	/* Out of instances (or memory): share one, or the main one. */
	r = &readers[n > 1 ? 1 + (unsigned)pthread_self() % (n - 1) : 0];
	pthread_mutex_lock(&r->lock);
	return r;
}

/* A worker's read buffer, kept: a fresh 128 KiB per request was a fresh
 * mapping or heap growth, 32 page faults, zeroing and unmapping again. */
static __thread char *read_buf;
static __thread size_t read_cap;

static char *buffer(size_t size)
{
	if (size > read_cap) {
		char *b = realloc(read_buf, size);

		if (!b)
			return NULL;
		read_buf = b;
		read_cap = size;
	}
	return read_buf;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	sqfs_inode *opened = (sqfs_inode *)(intptr_t)fi->fh, inode;
	sqfs_off_t got = (sqfs_off_t)size;
	struct reader *r;
	char *buf = buffer(size);
	sqfs_err err = SQFS_OK;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r = reader_take();
	if (!opened)
		err = sqfs_ll_inode(r->ll, &inode, ino);
	if (err == SQFS_OK)
		err = sqfs_read_range(&r->ll->fs, opened ? opened : &inode, off, &got, buf);
	pthread_mutex_unlock(&r->lock);
	if (err)
		fuse_reply_err(req, EIO);
	else
		fuse_reply_buf(req, got > 0 ? buf : NULL, got > 0 ? (size_t)got : 0);
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

/* The image never changes: let the kernel keep symlink targets like it
 * keeps entries and attributes (exec of /bin/sh -> busybox read the link
 * once per path walk otherwise). */
static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	no_open = conn->capable & FUSE_CAP_NO_OPEN_SUPPORT;
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
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

/* The worker threads are made while the image is opened, before the
 * caller has mounted (/dev/fuse cannot be read before): a request then
 * never waits for a thread to be created.  libfuse's own loop starts
 * them on demand (one per queued request, ten on a 2-CPU node during a
 * burst of reads); more than the instances that can serve at once
 * (max_readers) would only wait for a lock. */

static pthread_mutex_t ready_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;
static bool ready; /* mounted: serve (a caller that gives up ends the process) */

static void set_ready(void)
{
	pthread_mutex_lock(&ready_lock);
	ready = true;
	pthread_cond_broadcast(&ready_cond);
	pthread_mutex_unlock(&ready_lock);
}

/* Serve until the mount is gone (reads fail with ENODEV). */
static void serve_requests(struct fuse_session *se)
{
	struct fuse_buf fbuf = {.mem = NULL};

	while (!fuse_session_exited(se)) {
		int res = fuse_session_receive_buf(se, &fbuf);

		if (res == -EINTR || res == -EAGAIN)
			continue;
		if (res <= 0)
			break;
		fuse_session_process_buf(se, &fbuf);
	}
	fuse_session_exit(se);
	free(fbuf.mem);
}

static void *worker(void *arg)
{
	pthread_mutex_lock(&ready_lock);
	while (!ready)
		pthread_cond_wait(&ready_cond, &ready_lock);
	pthread_mutex_unlock(&ready_lock);
	serve_requests(arg);
	return NULL;
}

static void start_workers(struct fuse_session *se)
{
	pthread_t t;

	for (unsigned i = 1; i < max_readers + 1; i++)
		if (pthread_create(&t, NULL, worker, se) != 0)
			break; /* fewer threads serve as well */
}

/* What the caller hands over once it has mounted (SCM_RIGHTS): the
 * /dev/fuse fd, and from a caller that becomes the payload (detached
 * server) its mount namespace and a pidfd of itself.  Returns how many
 * fds came (0: it gave up, EOF). */
static size_t receive_fds(int ctl, int fds[3])
{
	char byte, ctrl[CMSG_SPACE(3 * sizeof(int))];
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl,
			   .msg_controllen = sizeof(ctrl)};
	struct cmsghdr *c;
	size_t n;

	if (recvmsg(ctl, &m, MSG_CMSG_CLOEXEC) != 1)
		return 0;
	c = CMSG_FIRSTHDR(&m);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
		return 0;
	n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
	n = n > 3 ? 3 : n;
	memcpy(fds, CMSG_DATA(c), n * sizeof(int));
	return n;
}

/* Holding the container's mount namespace until the process that built
 * it is gone: its exit (the payload's, berth having exec'd into it) then
 * does not unmount the whole container before its parent learns of it;
 * this thread does, right after (closing the last reference).  Processes
 * still in the container keep it as before. */
struct ns_hold {
	int ns_fd, pidfd;
};

static void *hold_ns(void *arg)
{
	struct ns_hold *h = arg;
	struct pollfd p = {.fd = h->pidfd, .events = POLLIN};

	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
	close(h->ns_fd);
	close(h->pidfd);
	return NULL;
}

static void start_hold(int ns_fd, int pidfd)
{
	static struct ns_hold h;
	pthread_t t;

	h = (struct ns_hold){.ns_fd = ns_fd, .pidfd = pidfd};
	if (pthread_create(&t, NULL, hold_ns, &h) != 0) {
		close(ns_fd);
		close(pidfd);
	}
}

/* The server process; never returns.  It is forked before the caller
 * enters its namespaces and opens the image meanwhile; the caller opens
 * /dev/fuse in its user namespace (where it must be opened), mounts, and
 * passes the fd.  Being in no namespace of the container, the server never
 * holds the mount alive: it ends when the last mount of its filesystem
 * goes away (reads on /dev/fuse fail with ENODEV). */
_Noreturn static void serve(const char *image, int ctl)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;
	char mountpoint[32];
	size_t n;
	int fds[3], img;
	sqfs_ll *ll;

	prctl(PR_SET_NAME, "berth-squashfuse");
	if (have_cpus)
		(void)sched_setaffinity(0, sizeof(caller_cpus), &caller_cpus);
	signal(SIGPIPE, SIG_IGN);
	/* Hold none of the caller's files (a slurmstepd has many; its
	 * output pipe or terminal would stay open while the server lives) and
	 * no directory of its busy (a job's cwd on NFS).  The image is opened
	 * first (its path may be relative to the caller's directory); every
	 * library instance then reads that same file through /proc, even if
	 * the path is replaced meanwhile. */
	if (dup2(ctl, 3) < 0 || stdio_devnull() < 0)
		_exit(1);
	ctl = 3;
	if (close_range(4, ~0U, 0) < 0) /* before Linux 5.9 */
		close_fds_except(&ctl, 1);
	img = open(image, O_RDONLY | O_CLOEXEC);
	if (img < 0 || chdir("/") < 0) {
		send_line(ctl, "cannot open the image");
		_exit(1);
	}
	snprintf(image_path, sizeof(image_path), "/proc/self/fd/%d", img);
	ll = sqfs_ll_open(image_path, 0);
	if (!ll) {
		send_line(ctl, "cannot read the squashfs image");
		_exit(1);
	}
	max_readers = readers_for_cpus();
	for (unsigned i = 0; i < MAX_READERS; i++)
		pthread_mutex_init(&readers[i].lock, NULL);
	readers[0].ll = ll;
	nreaders = 1;
	no_xattrs = ll->fs.sb.xattr_id_table_start == UINT64_MAX || ll->fs.xattr_info.xattr_ids == 0;
	fuse_opt_add_arg(&args, "berth-squashfuse");
	se = fuse_session_new(&args, &ops, sizeof(ops), ll);
	if (!se) {
		send_line(ctl, "fuse_session_new failed");
		_exit(1);
	}
	start_workers(se);
	send_line(ctl, "ok");
	n = receive_fds(ctl, fds);
	if (n == 0)
		_exit(0);
	close(ctl);
	if (n == 3)
		start_hold(fds[1], fds[2]);
	/* libfuse >= 3.3: "/dev/fd/N" means "already mounted, serve fd N". */
	snprintf(mountpoint, sizeof(mountpoint), "/dev/fd/%d", fds[0]);
	if (fuse_session_mount(se, mountpoint) != 0)
		_exit(1);
	set_ready();
	serve_requests(se);
	/* The others end the same way; nothing is left to wait for. */
	_exit(0);
}

/* The server's first message: why it stopped, or NULL for "ok" or for
 * nothing within timeout_ms (-1: wait). */
static const char *server_message(struct sqfuse *s, int timeout_ms, char *msg, size_t size)
{
	struct pollfd p = {.fd = s->ctl, .events = POLLIN};
	ssize_t n;

	if (poll(&p, 1, timeout_ms) <= 0)
		return NULL;
	n = recv(s->ctl, msg, size - 1, MSG_DONTWAIT);
	if (n < 0)
		return NULL;
	msg[n] = '\0';
	if (n == 2 && streq(msg, "ok"))
		return NULL;
	return n > 0 ? msg : "the FUSE server died";
}

/* A new process is queued on its parent's CPU here and waits while the
 * parent works on (0.4 ms measured on a cold start, the whole time until
 * the caller first waits for the server).  Move the new process to
 * another CPU the caller may use; the server then returns to the caller's
 * set at once, so nothing stays pinned. */
static void start_elsewhere(pid_t pid)
{
	cpu_set_t other = caller_cpus;
	int cpu = sched_getcpu();

	if (!have_cpus || cpu < 0)
		return;
	CPU_CLR(cpu, &other);
	if (CPU_COUNT(&other) > 0)
		(void)sched_setaffinity(pid, sizeof(other), &other);
}

int sqfuse_start(const char *image, uid_t uid, gid_t gid, unsigned flags, struct sqfuse *s)
{
	char msg[256];
	const char *why;
	int sp[2];

	*s = (struct sqfuse){.pid = -1, .ctl = -1, .image = image};
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return berth_fail(-errno, "socketpair");
	owner_uid = uid;
	owner_gid = gid;
	have_cpus = sched_getaffinity(0, sizeof(caller_cpus), &caller_cpus) == 0;
	s->pid = fork();
	if (s->pid < 0) {
		close(sp[0]);
		close(sp[1]);
		return berth_fail(-errno, "fork");
	}
	if (s->pid == 0) {
		close(sp[0]);
		/* Detached: nobody's child but init's (the caller is about to
		 * become the payload, which must not find an unknown child
		 * that never exits), and out of the caller's session. */
		if ((flags & SQFUSE_DETACH) && (setsid(), fork() != 0))
			_exit(0);
		serve(image, sp[1]);
	}
	start_elsewhere(s->pid);
	close(sp[1]);
	s->ctl = sp[0];
	s->detached = flags & SQFUSE_DETACH;
	if (!(flags & SQFUSE_WAIT))
		return 0;
	s->heard = true;
	if (!(why = server_message(s, -1, msg, sizeof(msg))))
		return 0;
	sqfuse_close(s);
	return berth_failx(BERTH_EFORMAT, "image '%s': %s", image, why);
}

int sqfuse_check(struct sqfuse *s, int r)
{
	char msg[256];
	const char *why;

	/* The server's first message, "ok" or why it stopped, comes within
	 * its start; an error of ours that is not the server's finds "ok". */
	if (r >= 0 || s->ctl < 0 || !(why = server_message(s, s->heard ? 0 : 2000, msg, sizeof(msg))))
		return r;
	return berth_failx(BERTH_EFORMAT, "image '%s': %s", s->image, why);
}

void sqfuse_close(struct sqfuse *s)
{
	if (s->ctl >= 0)
		close(s->ctl);
	/* The middle process of a detached start exits at once. */
	if (s->detached && s->pid > 0)
		waitpid(s->pid, NULL, 0);
	s->ctl = s->pid = -1;
}

static int send_fds(int sock, const int *fds, size_t n)
{
	char byte = 'g', ctrl[CMSG_SPACE(3 * sizeof(int))] = {0};
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl,
			   .msg_controllen = CMSG_SPACE(n * sizeof(int))};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	return sendmsg(sock, &m, MSG_NOSIGNAL) == 1 ? 0 : -errno;
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
	_cleanup_close_ int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	int fds[3] = {fd, -1, -1};
	size_t n = 1;
	int r;

	if (fd < 0)
		return berth_fail(-errno, "open '/dev/fuse' (see 'berth doctor')");
	r = fuse_mount_fd(fd, "berth", "squashfuse", target, MS_RDONLY, uid, gid);
	/* A detached server is also handed our mount namespace to hold while
	 * we live (hold_ns()); without it, it only serves. */
	if (r == 0 && s->detached) {
		long pidfd = syscall(SYS_pidfd_open, getpid(), 0);

		fds[1] = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
		fds[2] = (int)pidfd;
		n = fds[1] >= 0 && fds[2] >= 0 ? 3 : 1;
	}
	/* Only the server holds /dev/fuse then: the mount ends when it dies. */
	if (r == 0 && (r = send_fds(s->ctl, fds, n)) < 0)
		r = sqfuse_check(s, berth_fail(r, "start the FUSE server"));
	for (size_t i = 1; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return r;
}
