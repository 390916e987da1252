/* The container process of `berth oci create|run`: it joins the launcher's
 * keeper for the image (user + mount namespaces, the image mounted), adds
 * the namespaces config.json asks for, and execs process.args. */
#include "config.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/exec.h"
#include "launcher/oci.h"

#define FIFO_NAME "exec.fifo"

/* A new network namespace has only a loopback that is down. */
static int loopback_up(void)
{
	struct ifreq ifr = {0};
	_cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return berth_fail(-errno, "network namespace: socket");
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return berth_fail(-errno, "network namespace: loopback");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return berth_fail(-errno, "network namespace: bring up loopback");
	return 0;
}

/* Namespaces below the keeper's user namespace, for this container only
 * (the keeper's mount namespace is shared with other runs of the image). */
static int extra_namespaces(unsigned ns)
{
	int flags = (ns & OCI_NS_IPC ? CLONE_NEWIPC : 0) | (ns & OCI_NS_NET ? CLONE_NEWNET : 0) |
		    (ns & OCI_NS_CGROUP ? CLONE_NEWCGROUP : 0);

	if (flags && unshare(flags) < 0)
		return berth_fail(-errno, "create ipc/network/cgroup namespaces");
	return ns & OCI_NS_NET ? loopback_up() : 0;
}

/* process.env, the first of duplicate names winning (getenv's rule), so a
 * bundle's Env stays ahead of the job environment Slurm appends. */
static int dedup_env(char *const *env, char ***out)
{
	char **v = calloc(1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; env && env[i]; i++) {
		size_t n = strcspn(env[i], "=");
		bool seen = false;

		for (size_t j = 0; v[j] && !seen; j++)
			seen = strncmp(v[j], env[i], n + 1) == 0;
		if (!seen && strv_push(&v, env[i]) < 0) {
			strv_free(v);
			return -ENOMEM;
		}
	}
	*out = v;
	return 0;
}

static int setup(const struct berth_config *cfg, const struct oci_spec *spec)
{
	struct launcher_container *c = NULL;
	struct launcher_opts lo = {
		.image = spec->image, .mounts = &spec->mounts, .writable = !spec->readonly,
		.remap_root = spec->remap_root, .mount_home = false,
		.hostname = spec->namespaces & OCI_NS_UTS ? spec->hostname : NULL,
		.overlay = streq(cfg->overlay, "kernel") ? LAUNCHER_OVERLAY_KERNEL
			   : streq(cfg->overlay, "fuse") ? LAUNCHER_OVERLAY_FUSE
							  : LAUNCHER_OVERLAY_AUTO,
	};
	int r = launcher_create(cfg, &lo, &c);

	if (r == 0)
		r = launcher_join(c);
	launcher_release(c);
	if (r == 0)
		r = extra_namespaces(spec->namespaces);
	if (r == 0 && chdir(spec->cwd) < 0)
		r = berth_fail(-errno, "process.cwd '%s' in the container", spec->cwd);
	for (size_t i = 0; r == 0 && i < spec->n_rlimits; i++)
		if (setrlimit(spec->rlimits[i].resource, &spec->rlimits[i].lim) < 0)
			r = berth_fail(-errno, "process.rlimits[%zu]", i);
	if (r == 0 && spec->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		r = berth_fail(-errno, "noNewPrivileges");
	return r;
}

/* Tell the parent "ok" or "<code> <message>". */
static void report(int fd, int r)
{
	char buf[1200];
	int n = r == 0 ? snprintf(buf, sizeof(buf), "ok\n")
		       : snprintf(buf, sizeof(buf), "%d %s\n", r, berth_errmsg(r));

	if (write(fd, buf, (size_t)n) < 0) {
		/* the parent is gone; nothing to tell */
	}
	close(fd);
}

/* The FIFO is opened O_PATH before joining (its host path is not visible
 * in the container), then for writing through /proc/self/fd: that open
 * blocks until `start` opens the other end. */
static void wait_start(int path_fd)
{
	char p[64];
	int fd;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", path_fd);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "0", 1) != 1) {
		fprintf(stderr, "berth: waiting for start: %s\n", strerror(errno));
		_exit(1);
	}
	close(fd);
	close(path_fd);
}

_Noreturn static void container(const struct berth_config *cfg, const struct oci_spec *spec,
				const char *dir, bool wait, int status_fd, const sigset_t *old)
{
	_cleanup_strv_ char **envp = NULL;
	_cleanup_free_ char *fifo = path_join(dir, FIFO_NAME);
	int r = 0, fifo_fd = -1;

	if (wait) {
		setsid(); /* outlives `create`, detached from its session */
		fifo_fd = fifo ? open(fifo, O_PATH | O_CLOEXEC) : -1;
		if (fifo_fd < 0)
			r = berth_fail(-errno, "open '%s'", fifo ? fifo : FIFO_NAME);
	} else {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	}
	if (r == 0)
		r = setup(cfg, spec);
	if (r == 0 && (r = dedup_env(spec->env, &envp)) < 0)
		berth_fail(r, "environment");
	if (r == 0 && (spec->namespaces & OCI_NS_PID) && unshare(CLONE_NEWPID | CLONE_NEWNS) < 0)
		r = berth_fail(-errno, "create PID namespace");
	report(status_fd, r);
	if (r < 0)
		_exit(1);
	if (wait)
		wait_start(fifo_fd);
	if (spec->namespaces & OCI_NS_PID) {
		pid_t init = fork();

		if (init < 0)
			_exit(1);
		if (init == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			r = exec_pid_init(spec->args, envp, old);
			if (r < 0)
				fprintf(stderr, "berth: %s\n", berth_errmsg(r));
			_exit(r < 0 ? 1 : r);
		}
		_exit(exec_wait_forward(init, false));
	}
	sigprocmask(SIG_SETMASK, old, NULL);
	r = launcher_exec(spec->args, envp);
	fprintf(stderr, "berth: %s\n", berth_errmsg(r));
	_exit(launcher_exec_status(r));
}

/* "<code> <message>" from the child, as our own failure. */
static int child_failure(const char *line)
{
	char *end;
	long code = strtol(line, &end, 10);

	if (end == line || code >= 0 || *end != ' ')
		return berth_failx(BERTH_ECHILD_FAILED, "container process failed");
	return berth_failx((int)code, "%.*s", (int)strcspn(end + 1, "\n"), end + 1);
}

int oci_proc_spawn(const struct berth_config *cfg, const struct oci_spec *spec,
		   struct oci_state *st, bool wait_for_start)
{
	_cleanup_free_ char *fifo = path_join(st->dir, FIFO_NAME);
	char line[1200] = "";
	int fds[2], ws;
	sigset_t old;
	ssize_t n;
	pid_t pid;

	if (!fifo)
		return -ENOMEM;
	if (wait_for_start && mkfifo(fifo, 0600) < 0)
		return berth_fail(-errno, "create '%s'", fifo);
	if (pipe2(fds, O_CLOEXEC) < 0)
		return berth_fail(-errno, "pipe");
	exec_block_signals(&old);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(fds[0]);
		close(fds[1]);
		return berth_fail(-errno, "fork");
	}
	if (pid == 0) {
		close(fds[0]);
		container(cfg, spec, st->dir, wait_for_start, fds[1], &old);
	}
	close(fds[1]);
	n = read(fds[0], line, sizeof(line) - 1);
	close(fds[0]);
	if (n < 2 || strncmp(line, "ok\n", 3) != 0) {
		waitpid(pid, &ws, 0);
		sigprocmask(SIG_SETMASK, &old, NULL);
		return n > 0 ? child_failure(line)
			     : berth_failx(BERTH_ECHILD_FAILED, "container process died while starting");
	}
	/* run keeps the signals blocked: it forwards them to the container. */
	if (wait_for_start)
		sigprocmask(SIG_SETMASK, &old, NULL);
	st->pid = pid;
	st->starttime = oci_pid_starttime(pid);
	return 0;
}

int oci_proc_start(const struct oci_state *st)
{
	_cleanup_free_ char *fifo = path_join(st->dir, FIFO_NAME);
	_cleanup_close_ int fd = -1;
	struct pollfd p;
	char c;

	if (!fifo)
		return -ENOMEM;
	/* Non-blocking: a container that died before start must not hang us. */
	fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return berth_fail(-errno, "container '%s': start", st->id);
	p = (struct pollfd){.fd = fd, .events = POLLIN};
	for (int i = 0; i < 100; i++) {
		if (poll(&p, 1, 100) > 0 && read(fd, &c, 1) == 1) {
			unlink(fifo);
			return 0;
		}
		if (oci_state_status(st) == OCI_STOPPED)
			break;
	}
	return berth_failx(BERTH_ECHILD_FAILED, "container '%s' did not start (its process "
			   "exited)", st->id);
}

/* Children of pid, from /proc/<pid>/task/<tid>/children.  pid is stopped
 * while its children are listed and signalled: killed first, its children
 * would be reparented (and escape) before the list is read; running, it
 * could fork a child after it. */
static int kill_tree(pid_t pid, int sig, int depth)
{
	_cleanup_free_ char *dir = xasprintf("/proc/%d/task", (int)pid);
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *e;

	kill(pid, SIGSTOP);
	d = dir && depth <= 64 ? opendir(dir) : NULL;
	while (d && (e = readdir(d))) {
		_cleanup_free_ char *path = NULL, *buf = NULL;
		size_t len;

		if (e->d_name[0] == '.')
			continue;
		path = xasprintf("%s/%s/children", dir, e->d_name);
		if (!path || read_file(path, 1 << 16, &buf, &len) < 0)
			continue;
		for (char *s = buf, *end; *s; s = end) {
			long child = strtol(s, &end, 10);

			if (end == s)
				break;
			kill_tree((pid_t)child, sig, depth + 1);
		}
	}
	kill(pid, sig);
	kill(pid, SIGCONT);
	berth_error_clear();
	return 0;
}

int oci_proc_kill(const struct oci_state *st, int sig, bool all)
{
	enum oci_status s = oci_state_status(st);

	if (s != OCI_CREATED && s != OCI_RUNNING)
		return berth_failx(BERTH_EINVAL_INPUT, "container '%s' is not running", st->id);
	if (all)
		return kill_tree(st->pid, sig, 0);
	if (kill(st->pid, sig) < 0)
		return berth_fail(-errno, "container '%s': kill", st->id);
	return 0;
}
