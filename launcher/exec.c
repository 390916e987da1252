/* The last steps before the payload: PATH lookup inside the container and
 * execve, and the minimal init of --pid. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/exec.h"
#include "launcher/launcher.h"
#include "launcher/safepath.h"

static const char *env_path(char *const *envp)
{
	for (size_t i = 0; envp && envp[i]; i++)
		if (str_startswith(envp[i], "PATH="))
			return envp[i] + 5;
	return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

/* Ask for the executable (its first 8 MiB) before execve: on a fresh FUSE
 * mount each page fault of the loader is otherwise its own round trip to
 * the FUSE server, one after the other (twenty for busybox, 2.9 ms);
 * asked for together they queue and are served back to back (1.1 ms),
 * and exec finds the pages cached.  The kernel caps one WILLNEED to one
 * readahead window, hence one call per window.  Only regular files are
 * opened (opening a device can have effects).  Returns -ENOENT/-ENOTDIR
 * when nothing is at path (no execve needed), else 0. */
#define PREFETCH_MAX (8 << 20)
#define PREFETCH_STEP (128 << 10)

static void prefetch_fd(int fd, off_t size)
{
	for (off_t o = 0; o < size && o < PREFETCH_MAX; o += PREFETCH_STEP)
		(void)posix_fadvise(fd, o, PREFETCH_STEP, POSIX_FADV_WILLNEED);
}

static int prefetch(const char *path)
{
	struct stat st;
	int fd;

	if (stat(path, &st) < 0)
		return errno == ENOENT || errno == ENOTDIR ? -errno : 0;
	if (!S_ISREG(st.st_mode))
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return 0;
	prefetch_fd(fd, st.st_size);
	close(fd);
	return 0;
}

char **launcher_exec_candidates(const char *argv0, char *const *envp)
{
	_cleanup_strv_ char **dirs = NULL;
	char **out = NULL;

	if (!argv0 || !*argv0)
		return NULL;
	if (strchr(argv0, '/'))
		return strv_push(&out, argv0) == 0 ? out : NULL;
	dirs = strv_split(env_path(envp), ':');
	for (size_t i = 0; dirs && dirs[i]; i++) {
		_cleanup_free_ char *p = path_join(dirs[i], argv0);

		if (!p || strv_push(&out, p) < 0) {
			strv_free(out);
			return NULL;
		}
	}
	return out;
}

void launcher_exec_prefetch_at(int root_fd, char *const *paths)
{
	for (size_t i = 0; paths && paths[i]; i++) {
		/* Resolved inside root_fd: the image's links never lead out.
		 * A relative one depends on the workdir: not read ahead. */
		int fd = paths[i][0] == '/' ? safe_open(root_fd, paths[i], O_RDONLY | O_NONBLOCK)
					    : -ENOENT;
		struct stat st;

		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
			prefetch_fd(fd, st.st_size);
		close(fd);
		return;
	}
}

int launcher_exec(char *const *argv, char *const *envp)
{
	_cleanup_strv_ char **paths = NULL;
	int err = ENOENT;

	if (!argv || !argv[0] || !*argv[0])
		return berth_failx(BERTH_EINVAL_INPUT, "empty command");
	/* execvpe() would search the PATH of berth's own environment, not
	 * the container's. */
	if (strchr(argv[0], '/')) {
		prefetch(argv[0]);
		execve(argv[0], argv, envp);
		err = errno;
	} else {
		paths = launcher_exec_candidates(argv[0], envp);
		if (!paths)
			return -ENOMEM;
		for (size_t i = 0; paths[i]; i++) {
			if (prefetch(paths[i]) < 0)
				continue; /* not in this directory */
			execve(paths[i], argv, envp);
			/* like execvp: keep looking past missing and unreadable */
			if (errno == EACCES)
				err = EACCES;
			else if (errno != ENOENT && errno != ENOTDIR) {
				err = errno;
				break;
			}
		}
	}
	if (err == ENOENT)
		return berth_failx(-ENOENT, "'%s': command not found in the image", argv[0]);
	return berth_fail(-err, "cannot run '%s'", argv[0]);
}

int launcher_exec_status(int code)
{
	return code == -ENOENT ? 127 : code == -EACCES || code == -ENOEXEC ? 126 : 1;
}

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT,
				SIGCONT, SIGWINCH};

void exec_block_signals(sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
		sigaddset(&set, forwarded[i]);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, old);
}

int exec_status(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return 1;
}

int exec_wait_forward(pid_t child, bool reap_all)
{
	sigset_t set;
	int status = 1;

	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
		sigaddset(&set, forwarded[i]);
	sigaddset(&set, SIGCHLD);
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si), ws;
		pid_t p;

		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			/* Signals a terminal sends reach the whole foreground
			 * process group, payload included: forward only those
			 * sent to us alone (kill, scancel, a batch system). */
			if (si.si_code == SI_USER || si.si_code == SI_QUEUE)
				kill(child, sig);
			continue;
		}
		while ((p = waitpid(reap_all ? -1 : child, &ws, WNOHANG)) > 0) {
			if (p == child) {
				status = exec_status(ws);
				if (!reap_all)
					return status;
			}
		}
		if (p < 0 && errno == ECHILD)
			return status;
	}
}

int exec_pid_init(char *const *argv, char *const *envp, const sigset_t *old)
{
	pid_t child;

	/* We are pid 1 of a new PID namespace, in a mount namespace of our
	 * own: a /proc that shows this namespace's processes. */
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return berth_fail(-errno, "mount /proc for the PID namespace");
	child = fork();
	if (child < 0)
		return berth_fail(-errno, "fork");
	if (child == 0) {
		int r;

		sigprocmask(SIG_SETMASK, old, NULL);
		r = launcher_exec(argv, envp);
		_exit(launcher_exec_status(r));
	}
	prctl(PR_SET_NAME, "berth-init");
	/* An init reaps every orphan and ends with its first child.  The
	 * forwarded signals stay blocked (taken by sigwaitinfo): the kernel
	 * drops signals sent to a namespace's init from inside only when they
	 * are unblocked at SIG_DFL, so `berth exec C kill -TERM 1` arrives. */
	return exec_wait_forward(child, true);
}
