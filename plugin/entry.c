/* --container-entrypoint, with pyxis's semantics: the image's Entrypoint
 * runs once per node and step, inside the container, when the container
 * starts; the tasks themselves are exec'd by slurmstepd as always (never
 * children of berth or of the entrypoint).
 *
 * As enroot and pyxis do it, the entrypoint gets a probe as its command,
 * "/bin/sh -c 'kill -STOP $$'": an entrypoint that prepares the container
 * and then execs "$@" (the Docker convention) ends in the probe, which
 * stops itself.  Its environment then is the entrypoint's environment;
 * what the entrypoint changed there (exports, unsets) is applied to every
 * task's environment (taskenv.c), and what it changed in the container's
 * files stays.  The probe is then killed, and with it whatever else the
 * entrypoint left running (its process group).  The entrypoint's output
 * goes to a log that srun shows with --container-entrypoint-log, or when
 * it fails.
 *
 * An entrypoint that runs "$@" as a child instead of exec'ing it works as
 * well: the probe is found as a stopped process of the entrypoint's
 * session.  One that never runs its command (a server) keeps the step
 * waiting; --no-container-entrypoint is the way out, as with pyxis. */
#include "config.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "imgconv/imgconv.h"
#include "launcher/launcher.h"
#include "plugin/prepare.h"

static char *const probe[] = {(char *)"/bin/sh", (char *)"-c",
			      (char *)"kill -STOP $$; exit 0", NULL};

/* Names a shell sets on its own; not the entrypoint's doing. */
static bool shell_noise(const char *entry)
{
	static const char *const names[] = {"_=", "PWD=", "OLDPWD=", "SHLVL="};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (str_startswith(entry, names[i]))
			return true;
	return false;
}

/* The runner: the container's process that execs the entrypoint. */
_Noreturn static void runner(struct launcher_container *c, char **argv, char **env,
			     const char *wd, int logfd)
{
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC), r;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* A session of its own: the probe is found among its processes. */
	setsid();
	if (null >= 0)
		dup2(null, 0);
	dup2(logfd, 1);
	dup2(logfd, 2);
	r = launcher_join(c);
	if (r == 0 && chdir(wd) < 0)
		r = berth_fail(-errno, "workdir '%s' in the container", wd);
	if (r == 0 && launcher_userns_remapped())
		r = launcher_seccomp_remap_root();
	if (r == 0)
		r = launcher_exec(argv, env);
	dprintf(2, "berth: %s\n", berth_errmsg(r));
	_exit(r == -ENOENT ? 127 : 126);
}

/* A stopped process of session sid (the probe), or 0. */
static pid_t stopped_in_session(pid_t sid)
{
	_cleanup_closedir_ DIR *d = opendir("/proc");
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char path[64], buf[512], state;
		_cleanup_free_ char *text = NULL;
		int pid, ppid, pgrp, session;
		const char *rp;

		if (!(pid = atoi(de->d_name)))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		if (read_file(path, sizeof(buf), &text, NULL) < 0 || !(rp = strrchr(text, ')')))
			continue;
		if (sscanf(rp + 1, " %c %d %d %d", &state, &ppid, &pgrp, &session) == 4 &&
		    session == sid && state == 'T')
			return pid;
	}
	return 0;
}

/* Wait until the probe stops (0, *probe_pid set) or the runner exits
 * (BERTH_ECHILD_FAILED with the status in the message). */
static int wait_probe(pid_t runner, pid_t *probe_pid, const char *what)
{
	for (unsigned n = 0;; n++) {
		int st;
		pid_t p = waitpid(runner, &st, WUNTRACED | WNOHANG);

		if (p == runner && WIFSTOPPED(st)) {
			*probe_pid = runner;
			return 0;
		}
		if (p == runner)
			return berth_failx(BERTH_ECHILD_FAILED,
					   "--container-entrypoint: the image's entrypoint '%s' %s %d "
					   "before it ran its command (it is started with "
					   "\"/bin/sh -c 'kill -STOP $$'\" as command, so the image "
					   "needs /bin/sh; --no-container-entrypoint skips it)",
					   what, WIFSIGNALED(st) ? "was killed by signal" :
					   "exited with status",
					   WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		if (p < 0 && errno != EINTR)
			return berth_fail(-errno, "wait for the entrypoint");
		/* Not exec'd by the entrypoint: a child of it, stopped. */
		if (n % 10 == 9 && (*probe_pid = stopped_in_session(runner)) > 0)
			return 0;
		usleep(n < 100 ? 10 * 1000 : 50 * 1000);
	}
}

/* What the entrypoint changed: entries of env1 not in env0 ("N=V") and
 * names of env0 missing from env1 ("N"), NUL-terminated each, to fd. */
static int write_delta(int fd, char *const *env0, const char *env1, size_t len1)
{
	_cleanup_strv_ char **after = NULL;
	_cleanup_free_ char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < len1; i += strlen(env1 + i) + 1)
		if (strchr(env1 + i, '=') && strv_push(&after, env1 + i) < 0) {
			fclose(f);
			return -ENOMEM;
		}
	for (size_t i = 0; after && after[i]; i++)
		if (!shell_noise(after[i]) && !strv_contains(env0, after[i]))
			fprintf(f, "%s%c", after[i], '\0');
	for (size_t i = 0; env0 && env0[i]; i++) {
		size_t n = strcspn(env0[i], "=") + 1;
		bool kept = false;

		for (size_t j = 0; after && after[j] && !kept; j++)
			kept = strncmp(after[j], env0[i], n) == 0;
		if (!kept && !shell_noise(env0[i]))
			fprintf(f, "%.*s%c", (int)(n - 1), env0[i], '\0');
	}
	if (fclose(f) != 0)
		return -ENOMEM;
	if (size && write(fd, text, size) != (ssize_t)size)
		return berth_fail(-errno, "keep the entrypoint's environment");
	return 0;
}

static int load_image(const char *image, struct launcher_image *img)
{
	_cleanup_free_ char *json = NULL;
	size_t len = 0;
	int r = imgconv_read_image_json(image, &json, &len);

	return r < 0 ? r : launcher_image_parse(json, len, img);
}

static int run(struct prep_ctx *p, struct launcher_container *c, struct launcher_image *img)
{
	_cleanup_strv_ char **keep = NULL, **env0 = NULL, **argv = NULL;
	_cleanup_free_ char *what = NULL, *env1 = NULL;
	const char *wd = p->args->workdir ? p->args->workdir : img->workdir ? img->workdir : "/";
	struct launcher_env_rules rules = {.host = p->job->env, .image = img->env};
	char path[64];
	size_t len1 = 0;
	pid_t pid, stopped = 0;
	int r;

	if (p->args->env && !(keep = strv_split(p->args->env, ',')))
		return -ENOMEM;
	rules.keep_host = keep;
	if ((r = launcher_env_build(&rules, &env0)) < 0 ||
	    (r = launcher_argv_build(img, NULL, false, probe, &argv)) < 0)
		return r;
	what = strv_join(img->entrypoint, " ");
	if (!what)
		return -ENOMEM;
	log_info("running the image's entrypoint '%s'", what);
	pid = fork();
	if (pid < 0)
		return berth_fail(-errno, "fork");
	if (pid == 0)
		runner(c, argv, env0, wd, p->entry_log_fd);
	r = wait_probe(pid, &stopped, what);
	if (r == 0) {
		snprintf(path, sizeof(path), "/proc/%d/environ", (int)stopped);
		r = read_file(path, 1 << 20, &env1, &len1);
		if (r < 0)
			r = berth_fail(r, "read the entrypoint's environment");
		else
			r = write_delta(p->entry_env_fd, env0, env1, len1);
	}
	/* The entrypoint's work is done: the probe and whatever the
	 * entrypoint left running (its process group, which setsid() made)
	 * go, so nothing of it outlives the step untracked. */
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return r;
}

int entrypoint_run(struct prep_ctx *p, struct launcher_container *c, const char *image)
{
	struct launcher_image img = {0};
	int r = load_image(image, &img);

	if (r == 0 && (!img.entrypoint || !img.entrypoint[0]))
		log_info("the image has no entrypoint to run");
	else if (r == 0)
		r = run(p, c, &img);
	launcher_image_clear(&img);
	return r;
}
