/* Bind host directories into a running container (launcher/mpi.h).
 *
 * The keeper has pivot_root'ed: nothing of the host is reachable from
 * inside, and a bind from an fd of the host's mount namespace is refused
 * (mount(2) wants the source in the caller's namespace).  A detached copy
 * made with open_tree(OPEN_TREE_CLONE) can be attached anywhere with
 * move_mount(2), though, and making one needs CAP_SYS_ADMIN only over the
 * mount namespace the copy is taken in.  So:
 *
 *   caller        works out what is new and what is stale, under a lock in
 *                 the keeper's state dir (tasks of a step arrive together)
 *     helper      fork: its own user + mount namespace (a copy of the
 *                 host's), open_tree() of each directory, the fds back over
 *                 a socket; the user's own permissions decide what opens
 *     joiner      fork: setns into the keeper's namespaces, unmount the
 *                 stale binds, create each mount point inside (safepath),
 *                 move_mount() the copies onto them; one report line each
 *
 * The record of what is bound, "<dev> <ino> <path>" per line, lives in
 * the state dir (mpi-binds) so later steps skip or replace entries. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/mount.h>
#include "common/error.h"
#include "common/lock.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/launcher.h"
#include "launcher/mpi.h"
#include "launcher/safepath.h"

#define MAX_DIRS 16

struct bind_rec {
	unsigned long dev, ino;
	char *path;
};

struct binds {
	struct bind_rec v[MAX_DIRS * 2];
	size_t n;
};

static void binds_clear(struct binds *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->v[i].path);
	b->n = 0;
}

static int binds_load(const char *file, struct binds *b)
{
	_cleanup_free_ char *text = NULL;
	char *line, *save = NULL;

	b->n = 0;
	if (read_file(file, 1 << 20, &text, NULL) < 0)
		return 0; /* none yet */
	for (line = strtok_r(text, "\n", &save); line && b->n < ARRAY_SIZE(b->v);
	     line = strtok_r(NULL, "\n", &save)) {
		struct bind_rec *r = &b->v[b->n];
		int off = 0;

		if (sscanf(line, "%lu %lu %n", &r->dev, &r->ino, &off) != 2 || line[off] != '/')
			continue;
		if (!(r->path = strdup(line + off)))
			return -ENOMEM;
		b->n++;
	}
	return 0;
}

static int binds_save(const char *file, const struct binds *b)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < b->n; i++)
		fprintf(f, "%lu %lu %s\n", b->v[i].dev, b->v[i].ino, b->v[i].path);
	if (fclose(f) != 0)
		return -ENOMEM;
	return write_file_atomic(file, text, len, 0600);
}

static bool host_same(const struct bind_rec *r)
{
	struct stat st;

	return stat(r->path, &st) == 0 && st.st_dev == r->dev && st.st_ino == r->ino;
}

/* ---- the helper: detached copies, in a mount namespace of its own ------- */

static int send_fd(int sock, int fd, int err)
{
	char buf[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec io = {.iov_base = &err, .iov_len = sizeof(err)};
	struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1};

	if (fd >= 0) {
		struct cmsghdr *cm;

		m.msg_control = buf;
		m.msg_controllen = sizeof(buf);
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	return sendmsg(sock, &m, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* Returns the fd, or -errno as the helper saw it. */
static int recv_fd(int sock)
{
	char buf[CMSG_SPACE(sizeof(int))];
	int err = 0, fd = -1;
	struct iovec io = {.iov_base = &err, .iov_len = sizeof(err)};
	struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = buf,
			   .msg_controllen = sizeof(buf)};
	struct cmsghdr *cm;

	if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC) != sizeof(err))
		return -EPIPE;
	cm = CMSG_FIRSTHDR(&m);
	if (cm && cm->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	if (fd >= 0)
		return fd;
	return err < 0 ? err : -EIO;
}

/* A detached, nosuid/nodev/noexec copy of dir (sockets and shared-memory
 * files only: as enroot binds them), or -errno. */
static int copy_tree(const char *dir)
{
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
					      MOUNT_ATTR_NOEXEC};
	int fd = (int)syscall(SYS_open_tree, AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0 &&
	    errno != ENOSYS) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

_Noreturn static void helper(int sock, char *const *dirs, size_t n)
{
	/* A mount namespace this process may copy from: its own, in a user
	 * namespace of its own.  Lookups still run with the caller's uid. */
	int err = unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0 ? -errno : 0;

	for (size_t i = 0; i < n; i++) {
		int fd = err < 0 ? err : copy_tree(dirs[i]);

		if (send_fd(sock, fd, fd < 0 ? fd : 0) < 0)
			_exit(1);
		if (fd >= 0)
			close(fd);
	}
	_exit(0);
}

/* ---- the joiner: inside the container ----------------------------------- */

static void report(FILE *out, const char *what, const char *path, int err)
{
	fprintf(out, "%s %d %s\n", what, err, path);
}

static void attach_one(int root_fd, const char *path, int fd, FILE *out)
{
	int tfd;

	if (fd < 0) {
		report(out, "skip", path, fd);
		return;
	}
	tfd = safe_mkpath(root_fd, path, false);
	if (tfd < 0) {
		report(out, "nodir", path, tfd);
		return;
	}
	if (syscall(SYS_move_mount, fd, "", tfd, "",
		    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		report(out, "fail", path, -errno);
	else
		report(out, "ok", path, 0);
	close(tfd);
}

_Noreturn static void joiner(pid_t keeper, char *const *dirs, const int *fds, size_t n,
			     char *const *stale, int outfd)
{
	FILE *out = fdopen(outfd, "w");
	int root_fd, r, err;

	if (!out)
		_exit(1);
	r = launcher_join_pid(keeper);
	if (r < 0) {
		fprintf(out, "join %d %s\n", r, berth_errmsg(r));
		fclose(out);
		_exit(1);
	}
	root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	err = root_fd < 0 ? -errno : 0;
	for (size_t i = 0; stale && stale[i]; i++)
		umount2(stale[i], MNT_DETACH | UMOUNT_NOFOLLOW);
	for (size_t i = 0; i < n; i++)
		attach_one(root_fd, dirs[i], err < 0 ? err : fds[i], out);
	fclose(out);
	_exit(0);
}

static int wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

/* The detached copies of dirs, in fds (-errno where one failed). */
static int make_copies(char *const *dirs, size_t n, int *fds)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return berth_fail(-errno, "socketpair");
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return berth_fail(-errno, "fork");
	}
	if (pid == 0) {
		close(sv[0]);
		helper(sv[1], dirs, n);
	}
	close(sv[1]);
	for (size_t i = 0; i < n; i++)
		fds[i] = recv_fd(sv[0]);
	close(sv[0]);
	if (wait_child(pid) < 0)
		return berth_failx(BERTH_ECHILD_FAILED, "the bind helper failed");
	return 0;
}

/* Run the joiner; parse its report into *ok (bound now) and log the rest. */
static int run_joiner(pid_t keeper, char *const *dirs, const int *fds, size_t n,
		      char *const *stale, bool *ok)
{
	int fd, r;
	pid_t pid = fork_pipe(&fd);

	if (pid < 0)
		return pid;
	if (pid == 0)
		joiner(keeper, dirs, fds, n, stale, fd);
	{
		FILE *in = fdopen(fd, "r");
		char line[4200];

		if (!in) {
			close(fd);
			wait_child(pid);
			return -ENOMEM;
		}
		while (fgets(line, sizeof(line), in)) {
			char what[8], path[4096];
			int err;

			line[strcspn(line, "\n")] = '\0';
			if (sscanf(line, "%7s %d %4095[^\n]", what, &err, path) != 3)
				continue;
			if (streq(what, "join")) {
				fclose(in);
				wait_child(pid);
				return berth_failx(err < 0 ? err : BERTH_ECHILD_FAILED, "%s", path);
			}
			for (size_t i = 0; i < n; i++)
				if (streq(dirs[i], path))
					ok[i] = streq(what, "ok");
			if (streq(what, "skip"))
				log_warn("cannot bind '%s' into the container: %s", path,
					 berth_strerror(err));
			else if (streq(what, "nodir"))
				log_warn("no mount point for '%s' in the container (%s%s)", path,
					 berth_strerror(err),
					 err == -EROFS ? "; the image is read-only" : "");
			else if (streq(what, "fail"))
				log_warn("bind '%s' into the container: %s", path,
					 berth_strerror(err));
		}
		fclose(in);
	}
	r = wait_child(pid);
	return r < 0 ? berth_failx(BERTH_ECHILD_FAILED, "binding into the container failed") : 0;
}

/* Entries of the record whose host directory is gone or replaced go;
 * dirs already bound from the same inode drop out of todo. */
static void plan_attach(struct binds *b, char *const *dirs, char **todo, size_t *ntodo,
			char **stale, size_t *nstale)
{
	size_t keep = 0;

	*ntodo = *nstale = 0;
	for (size_t i = 0; i < b->n; i++) {
		if (host_same(&b->v[i])) {
			b->v[keep++] = b->v[i];
			continue;
		}
		stale[(*nstale)++] = b->v[i].path;
	}
	b->n = keep;
	for (size_t i = 0; dirs[i] && *ntodo < MAX_DIRS; i++) {
		bool done = false;

		for (size_t j = 0; j < b->n && !done; j++)
			done = streq(b->v[j].path, dirs[i]);
		if (!done)
			todo[(*ntodo)++] = dirs[i];
	}
	todo[*ntodo] = NULL;
	stale[*nstale] = NULL;
}

static int attach_locked(struct launcher_container *c, const char *file, char *const *dirs)
{
	char *todo[MAX_DIRS + 1], *stale[MAX_DIRS * 2 + 1];
	int fds[MAX_DIRS];
	bool ok[MAX_DIRS] = {false};
	struct binds b = {.n = 0};
	size_t ntodo, nstale;
	int r = binds_load(file, &b);

	if (r < 0)
		return r;
	plan_attach(&b, dirs, todo, &ntodo, stale, &nstale);
	if (ntodo == 0 && nstale == 0) {
		binds_clear(&b);
		return 0;
	}
	for (size_t i = 0; i < ntodo; i++)
		fds[i] = -1;
	r = ntodo ? make_copies(todo, ntodo, fds) : 0;
	if (r == 0)
		r = run_joiner(launcher_keeper_pid(c), todo, fds, ntodo, stale, ok);
	for (size_t i = 0; i < ntodo; i++) {
		struct stat st;

		if (fds[i] >= 0)
			close(fds[i]);
		if (r == 0 && ok[i] && b.n < ARRAY_SIZE(b.v) && stat(todo[i], &st) == 0 &&
		    (b.v[b.n].path = strdup(todo[i]))) {
			b.v[b.n].dev = st.st_dev;
			b.v[b.n].ino = st.st_ino;
			b.n++;
			log_debug("bound '%s' into the container", todo[i]);
		}
	}
	for (size_t i = 0; i < nstale; i++)
		free(stale[i]);
	if (r == 0)
		r = binds_save(file, &b);
	binds_clear(&b);
	return r;
}

int launcher_attach_dirs(struct launcher_container *c, char *const *dirs)
{
	_cleanup_free_ char *file = NULL, *lock = NULL;
	_cleanup_close_ int lfd = -1;

	if (!dirs || !dirs[0])
		return 0;
	file = path_join(launcher_state_dir(c), "mpi-binds");
	lock = path_join(launcher_state_dir(c), "mpi-binds.lock");
	if (!file || !lock)
		return -ENOMEM;
	lfd = lock_path(lock, false, true);
	if (lfd < 0)
		return berth_fail(lfd, "lock '%s'", lock);
	return attach_locked(c, file, dirs);
}

int launcher_mpi_attach(struct launcher_container *c, char *const *env)
{
	_cleanup_strv_ char **dirs = NULL;
	int r = mpi_rendezvous_dirs(env, getuid(), &dirs);

	if (r < 0)
		return r;
	r = launcher_attach_dirs(c, dirs);
	return r < 0 ? berth_fail_context(r, "MPI rendezvous directories") : 0;
}
