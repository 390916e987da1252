#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/keeper.h"
#include "launcher/sqfuse.h"
#include "launcher/userns.h"

#define MAX_CLIENTS 1024

enum { C_NEW, C_REF, C_INFO };

struct keeper {
	int listen_fd;
	int lock_fd;
	int dir_fd; /* keepers/, to remove our state dir after pivot_root */
	const char *key;
	struct pollfd pfd[1 + 2 * MAX_CLIENTS];
	int conn[MAX_CLIENTS], conn_kind[MAX_CLIENTS], pidfd[MAX_CLIENTS];
	size_t nconn, npid;
};

/* sun_path holds 108 bytes; deep runtime dirs (per-job scratch, test
 * trees) go through /proc/self/fd/N of the directory instead. */
static int sock_addr(const char *dir, struct sockaddr_un *sa, int *dirfd)
{
	*sa = (struct sockaddr_un){.sun_family = AF_UNIX};
	*dirfd = -1;
	if ((size_t)snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/sock", dir) <
	    sizeof(sa->sun_path))
		return 0;
	*dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return berth_fail(-errno, "open '%s'", dir);
	snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/sock", *dirfd);
	return 0;
}

int keeper_connect(const char *dir, const char *request, pid_t *peer)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	_cleanup_close_ int dirfd = -1;
	char line[64];
	int r = sock_addr(dir, &sa, &dirfd);

	if (r < 0)
		return r;
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	if (peer) {
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
			return -errno;
		*peer = cred.pid;
	}
	if (!request)
		return TAKE_FD(fd);
	snprintf(line, sizeof(line), "%s\n", request);
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0)
		return -errno;
	return TAKE_FD(fd);
}

static void reply(int fd, const char *text)
{
	(void)send(fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);
}

static unsigned users(const struct keeper *k)
{
	unsigned n = (unsigned)k->npid;

	for (size_t i = 0; i < k->nconn; i++)
		n += k->conn_kind[i] != C_INFO;
	return n;
}

static void drop_conn(struct keeper *k, size_t i)
{
	close(k->conn[i]);
	k->nconn--;
	k->conn[i] = k->conn[k->nconn];
	k->conn_kind[i] = k->conn_kind[k->nconn];
}

/* Count pid as a user until it exits (its pidfd polls readable then). */
static bool track(struct keeper *k, pid_t pid)
{
	long pfd;

	if (k->npid >= MAX_CLIENTS)
		return false;
	pfd = syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0)
		return false;
	k->pidfd[k->npid++] = (int)pfd;
	return true;
}

static void hold(struct keeper *k, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || !track(k, cred.pid)) {
		reply(fd, "error\n");
		return;
	}
	reply(fd, "ok\n");
}

/* Handle what connection i sent; false when it closed. */
static bool serve_conn(struct keeper *k, size_t i)
{
	char buf[64];
	ssize_t n = recv(k->conn[i], buf, sizeof(buf) - 1, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (n <= 0)
		return false;
	buf[n] = '\0';
	if (str_startswith(buf, "ref")) {
		k->conn_kind[i] = C_REF;
		reply(k->conn[i], "ok\n");
	} else if (str_startswith(buf, "hold")) {
		/* The process is tracked by its pidfd; the connection itself
		 * closes on exec and is no reference. */
		k->conn_kind[i] = C_INFO;
		hold(k, k->conn[i]);
	} else if (str_startswith(buf, "info")) {
		char line[32];

		k->conn_kind[i] = C_INFO;
		snprintf(line, sizeof(line), "users %u\n", users(k));
		reply(k->conn[i], line);
	}
	return true;
}

static void accept_all(struct keeper *k)
{
	int fd;

	while (k->nconn < MAX_CLIENTS &&
	       (fd = accept4(k->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		k->conn[k->nconn] = fd;
		k->conn_kind[k->nconn++] = C_NEW;
	}
}

static void poll_once(struct keeper *k, int timeout_ms)
{
	size_t n = 0;

	k->pfd[n++] = (struct pollfd){.fd = k->listen_fd, .events = POLLIN};
	for (size_t i = 0; i < k->nconn; i++)
		k->pfd[n++] = (struct pollfd){.fd = k->conn[i], .events = POLLIN};
	for (size_t i = 0; i < k->npid; i++)
		k->pfd[n++] = (struct pollfd){.fd = k->pidfd[i], .events = POLLIN};
	if (poll(k->pfd, n, timeout_ms) <= 0)
		return;
	/* pidfds and connections first (indices shift as they go), then new ones. */
	for (size_t i = k->npid; i-- > 0;) {
		if (k->pfd[1 + k->nconn + i].revents) {
			close(k->pidfd[i]);
			k->pidfd[i] = k->pidfd[--k->npid];
		}
	}
	for (size_t i = k->nconn; i-- > 0;)
		if (k->pfd[1 + i].revents && !serve_conn(k, i))
			drop_conn(k, i);
	if (k->pfd[0].revents)
		accept_all(k);
}

static void remove_state(struct keeper *k)
{
	static const char *const dirs[] = {"lower", "root", "rw"};
	int d = openat(k->dir_fd, k->key, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (d >= 0) {
		unlinkat(d, "sock", 0);
		unlinkat(d, "info", 0);
		for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
			unlinkat(d, dirs[i], AT_REMOVEDIR);
		close(d);
	}
	unlinkat(k->dir_fd, k->key, AT_REMOVEDIR);
}

/* No users for the whole linger time: leave, unless a client is connecting
 * right now.  Clients connect under the same lock, so after taking it any
 * newcomer is already in the listen queue.  Never wait for the lock: its
 * holder may be asking this keeper "info" (launcher_cleanup_locked) and
 * would wait for the answer forever; the caller serves and retries. */
static bool try_exit(struct keeper *k)
{
	if (flock(k->lock_fd, LOCK_EX | LOCK_NB) < 0)
		return false;
	accept_all(k);
	for (size_t i = k->nconn; i-- > 0;)
		if (!serve_conn(k, i))
			drop_conn(k, i);
	if (users(k) > 0) {
		flock(k->lock_fd, LOCK_UN);
		return false;
	}
	close(k->listen_fd);
	remove_state(k);
	return true; /* the lock goes with the process */
}

static void loop(struct keeper *k, uint64_t linger)
{
	uint64_t idle_since = now_ns();

	for (;;) {
		int timeout = -1;

		if (users(k) == 0) {
			uint64_t waited = (now_ns() - idle_since) / 1000000;

			if (waited >= linger * 1000) {
				if (try_exit(k))
					return;
				/* A newcomer, or the lock was busy (another
				 * keeper leaving, a berth starting): answer,
				 * and retry soon rather than after another
				 * whole linger time. */
				poll_once(k, 10);
				if (users(k) > 0)
					idle_since = now_ns();
				continue;
			}
			timeout = (int)(linger * 1000 - waited);
		}
		poll_once(k, timeout);
		if (users(k) > 0)
			idle_since = now_ns();
	}
}

static int listen_at(const char *dir)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	_cleanup_close_ int dirfd = -1;
	struct sockaddr_un sa;
	int r = sock_addr(dir, &sa, &dirfd);

	if (r < 0)
		return r;
	if (fd < 0)
		return berth_fail(-errno, "socket");
	unlink(sa.sun_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0)
		return berth_fail(-errno, "listen on '%s'", sa.sun_path);
	return TAKE_FD(fd);
}

static void report(int fd, int code)
{
	char line[1024];
	int n;

	if (code == 0)
		n = snprintf(line, sizeof(line), "ok %d\n", (int)getpid());
	else
		n = snprintf(line, sizeof(line), "%d %s\n", code, berth_errmsg(code));
	if (n > 0)
		(void)write(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	close(fd);
}

static int setup(struct keeper *k, const struct keeper_args *a, struct sqfuse *sq)
{
	_cleanup_free_ char *lock = path_join(a->runtime_dir, "lock"),
			    *keepers = path_join(a->runtime_dir, "keepers");

	if (!lock || !keepers)
		return -ENOMEM;
	k->lock_fd = open(lock, O_RDWR | O_CLOEXEC);
	k->dir_fd = open(keepers, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (k->lock_fd < 0 || k->dir_fd < 0)
		return berth_fail(-errno, "open '%s'", a->runtime_dir);
	k->listen_fd = listen_at(a->plan.state_dir);
	if (k->listen_fd < 0)
		return k->listen_fd;
	return rootfs_create(&a->plan, sq);
}

_Noreturn void keeper_main(const struct keeper_args *a)
{
	static struct keeper k; /* large; one per process */
	struct sqfuse sq;
	int keep[] = {a->status_fd};
	int r;

	prctl(PR_SET_NAME, "berth-keeper");
	signal(SIGPIPE, SIG_IGN);
	close_fds_except(keep, ARRAY_SIZE(keep));
	/* Nothing of the keeper's (or its FUSE servers') may reach the
	 * caller's terminal or a job's output once the caller is gone. */
	(void)stdio_devnull();
	k.key = a->key;
	/* First: the server opens the image while the keeper goes on. */
	r = sqfuse_start(a->plan.opts->image, a->plan.uid, a->plan.gid, 0, &sq);
	if (r == 0) {
		r = setup(&k, a, &sq);
		sqfuse_close(&sq);
	}
	if (r < 0) {
		report(a->status_fd, r);
		if (k.dir_fd > 0)
			remove_state(&k);
		_exit(1);
	}
	/* FUSE servers are our children; let the kernel reap them. */
	signal(SIGCHLD, SIG_IGN);
	if (a->hold_pid > 0 && !track(&k, a->hold_pid)) {
		report(a->status_fd, berth_fail(-errno, "track process %d (pidfd_open)",
						(int)a->hold_pid));
		remove_state(&k);
		_exit(1);
	}
	report(a->status_fd, 0);
	loop(&k, a->linger);
	_exit(0);
}
