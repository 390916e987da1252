#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/error.h"
#include "common/util.h"
#include "imgconv/imgconv.h"
#include "launcher/cli.h"
#include "launcher/exec.h"
#include "launcher/pidns.h"
#include "launcher/runcmd.h"

/* In the joined container: environment, argv, workdir.  Returns an exit
 * status on failure. */
static int prepare(const struct payload *p, char ***argv, char ***envp)
{
	struct launcher_image img = {0}; /* read here, or the caller's */
	const struct launcher_image *cfg = p->image_cfg ? p->image_cfg : &img;
	struct launcher_env_rules rules = {.host = p->host_env, .user = p->user_env};
	const char *wd;
	int r = p->image_cfg ? 0 : launcher_image_load(AT_FDCWD, &img);

	if (r < 0)
		return cli_fail(r);
	rules.image = cfg->env;
	r = launcher_env_build(&rules, envp);
	if (r == 0)
		r = launcher_argv_build(cfg, p->entrypoint, p->no_entrypoint, p->args, argv);
	if (r < 0) {
		launcher_image_clear(&img);
		return cli_fail(r);
	}
	wd = p->workdir ? p->workdir : cfg->workdir ? cfg->workdir : "/";
	if (chdir(wd) < 0) {
		cli_error("workdir '%s': %s in the container", wd,
			  errno == ENOENT ? "does not exist" : strerror(errno));
		launcher_image_clear(&img);
		return 1;
	}
	launcher_image_clear(&img);
	return 0;
}

/* Join the container, and the PID namespace of its --pid payload if it has
 * one (berth exec): *fork_now says whether the caller must fork for its
 * child to be in it.  The namespaces to join are found before joining,
 * from the host's /proc. */
static int join(const struct payload *p, bool *fork_now)
{
	struct pidns_target t = PIDNS_TARGET_NONE;
	int r = 0;

	*fork_now = false;
	if (p->exec)
		r = p->container ? pidns_of_keeper(launcher_keeper_pid(p->container), &t)
				 : pidns_of_pid(p->join_pid, &t);
	if (r == 0)
		r = p->container ? launcher_join(p->container) : launcher_join_pid(p->join_pid);
	if (r == 0 && (r = pidns_enter(&t)) > 0) {
		*fork_now = true;
		r = 0;
	}
	pidns_close(&t);
	return r < 0 ? cli_fail(r) : 0;
}

/* In a joined PID namespace only our children are members: fork, and wait
 * here forwarding signals.  Returns in the child. */
static void enter_pid_ns(void)
{
	pid_t pid = fork();

	if (pid < 0)
		_exit(cli_fail(berth_fail(-errno, "fork")));
	if (pid > 0)
		_exit(exec_wait_forward(pid, false));
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* --pid: a new PID namespace below the joined user namespace, whose pid 1
 * (berth's minimal init) mounts a matching /proc in a mount namespace of
 * its own and runs the payload. */
static int in_pid_ns(char **argv, char **envp, const sigset_t *old)
{
	pid_t init;

	if (unshare(CLONE_NEWPID | CLONE_NEWNS) < 0) {
		cli_error("create PID namespace: %s", strerror(errno));
		return 1;
	}
	init = fork();
	if (init < 0) {
		cli_error("fork: %s", strerror(errno));
		return 1;
	}
	if (init == 0) {
		int r;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		r = exec_pid_init(argv, envp, old);
		if (r < 0)
			_exit(cli_fail(r));
		_exit(r);
	}
	return exec_wait_forward(init, false);
}

_Noreturn static void child(const struct payload *p, pid_t parent, const sigset_t *old)
{
	_cleanup_strv_ char **argv = NULL, **envp = NULL;
	bool fork_now;
	int r;

	/* SIGKILL of berth takes the payload along: nothing keeps running
	 * on a mount whose owner is gone unseen. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	if ((r = join(p, &fork_now)) != 0)
		_exit(r);
	if (fork_now)
		enter_pid_ns();
	if ((r = prepare(p, &argv, &envp)) != 0)
		_exit(r);
	/* --remap-root: chown and set*id succeed without effect (apt, dpkg) */
	if (launcher_userns_remapped() && (r = launcher_seccomp_remap_root()) < 0)
		_exit(cli_fail(r));
	if (p->own_pid_ns)
		_exit(in_pid_ns(argv, envp, old));
	sigprocmask(SIG_SETMASK, old, NULL);
	r = launcher_exec(argv, envp);
	cli_fail(r);
	_exit(launcher_exec_status(r));
}

/* The image config straight from the .sqsh (libsquashfs, in this process)
 * rather than through the container's FUSE mount: a cold start then does
 * not wait for nine round trips to the FUSE server for it.  An image
 * without one (made by other tools) is read in the container as before. */
static bool image_cfg_from_file(const char *image, struct launcher_image *img)
{
	_cleanup_free_ char *json = NULL;
	size_t len;

	return image && imgconv_read_image_json(image, &json, &len) == 0 &&
	       launcher_image_parse(json, len, img) == 0;
}

char **payload_exec_paths(const struct payload *p)
{
	struct launcher_env_rules rules = {.host = p->host_env, .user = p->user_env};
	_cleanup_strv_ char **argv = NULL, **envp = NULL;

	if (!p->image_cfg)
		return NULL;
	rules.image = p->image_cfg->env;
	if (launcher_env_build(&rules, &envp) < 0 ||
	    launcher_argv_build(p->image_cfg, p->entrypoint, p->no_entrypoint, p->args, &argv) < 0) {
		berth_error_clear();
		return NULL;
	}
	return launcher_exec_candidates(argv[0], envp);
}

int payload_exec(const struct payload *p)
{
	_cleanup_strv_ char **argv = NULL, **envp = NULL;
	struct launcher_image img = {0};
	struct payload q = *p;
	bool fork_now; /* only berth exec joins a PID namespace */
	int r;

	if (!p->image_cfg && image_cfg_from_file(p->image, &img))
		q.image_cfg = &img;
	r = join(&q, &fork_now);
	if (r == 0)
		r = prepare(&q, &argv, &envp);
	launcher_image_clear(&img);
	if (r != 0)
		return r;
	launcher_settle(q.container);
	if (launcher_userns_remapped() && (r = launcher_seccomp_remap_root()) < 0)
		return cli_fail(r);
	fflush(NULL);
	r = launcher_exec(argv, envp);
	cli_fail(r);
	return launcher_exec_status(r);
}

int payload_run(const struct payload *p)
{
	pid_t parent = getpid(), pid;
	sigset_t old;

	exec_block_signals(&old);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		cli_error("fork: %s", strerror(errno));
		return 1;
	}
	if (pid == 0)
		child(p, parent, &old);
	return exec_wait_forward(pid, false);
}
