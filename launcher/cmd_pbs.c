/* berth pbs-wrap: `berth run` with the rules of a PBS/Torque job.
 *
 * One implementation of "run this job command in the job's container",
 * shared by the OpenPBS execjob_launch hook (etc/pbs/berth_hook.py), the
 * Torque job starter ($job_starter in mom_priv/config) and ranks started
 * by pbsdsh or mpiexec from a job script.  The rules (doc/pbs.md):
 *  - the image is --image or $BERTH_IMAGE; with neither the command runs
 *    on the host unchanged, so the wrapper can start every job;
 *  - a cached image is used without asking the registry (every rank of a
 *    job starts from the same cache entry the prologue/hook imported);
 *  - mounts: $BERTH_MOUNTS (specs separated by ',' or ';'), -v options,
 *    the job script when PBS passes it as a path, $TMPDIR when it is a
 *    per-job directory, and the working directory unless $HOME covers it;
 *  - every PBS_* variable keeps the job's value whatever the image says;
 *  - the container state lives in runtime_dir/pbs-<JOB NUMBER>, which
 *    `berth pbs-wrap --cleanup JOBID` removes at the end of the job.  */
#include "config.h"
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "imgconv/imgconv.h"
#include "launcher/cli.h"
#include "launcher/launcher.h"

extern char **environ;

struct wrap {
	const char *image;
	char **mounts; /* -v specs */
	char **envs;   /* -e specs */
	const char *workdir;
	const char *cleanup; /* --cleanup JOBID */
};

static void wrap_usage(FILE *out)
{
	fprintf(out,
		"Usage: berth pbs-wrap [OPTIONS] [--] CMD [ARG...]\n"
		"       berth pbs-wrap --cleanup JOBID\n"
		"Run CMD in the PBS job's container (BERTH_IMAGE), or on the host when the\n"
		"job asked for none.  For the OpenPBS hook, Torque's $job_starter, and\n"
		"ranks started by pbsdsh or mpiexec (see doc/pbs.md).\n\n"
		"      --image IMAGE        image (default: $BERTH_IMAGE)\n"
		"  -v, --mount SPEC         an extra mount, as for berth run (also $BERTH_MOUNTS)\n"
		"  -e, --env NAME[=VALUE]   an extra variable, as for berth run\n"
		"  -w, --workdir DIR        working directory (default: $BERTH_WORKDIR, else\n"
		"                           the current directory)\n"
		"      --cleanup JOBID      stop the job's containers and remove their state\n");
}

/* A job's state directory: runtime_dir/pbs-<sequence number>, from the job
 * id up to the server name ("123.server" -> pbs-123, array job
 * "12[3].server" -> pbs-12_3_).  Short on purpose: the keeper's socket
 * path below it must fit in sun_path. */
static char *job_dir(const struct berth_config *cfg, const char *jobid)
{
	_cleanup_free_ char *seq = strndup(jobid, strcspn(jobid, "."));

	if (!seq)
		return NULL;
	for (char *p = seq; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_'))
			*p = '_';
	return xasprintf("%s/pbs-%s", cfg->runtime_dir, seq);
}

static int use_job_runtime_dir(struct berth_config *cfg, const char *jobid)
{
	char *dir;

	if (!*jobid || *jobid == '.' || strlen(jobid) > 200)
		return berth_failx(BERTH_EINVAL_INPUT, "job id '%s': not a PBS job id", jobid);
	dir = job_dir(cfg, jobid);
	if (!dir)
		return -ENOMEM;
	free(cfg->runtime_dir);
	cfg->runtime_dir = dir;
	return 0;
}

static bool path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* BERTH_MOUNTS as -v specs: ';' separates specs too, because ',' is
 * qsub -v's own separator and needs quoting there. */
static int add_env_mounts(char ***run)
{
	const char *text = getenv("BERTH_MOUNTS");
	_cleanup_free_ char *copy = NULL;
	char *save = NULL;

	if (!text || !*text)
		return 0;
	copy = strdup(text);
	if (!copy)
		return -ENOMEM;
	for (char *s = strtok_r(copy, ";", &save); s; s = strtok_r(NULL, ";", &save)) {
		if (!*s)
			continue;
		if (strv_push(run, "-v") < 0 || strv_push(run, s) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int push_bind(char ***run, const char *path, const char *flags)
{
	_cleanup_free_ char *spec = xasprintf("%s:%s%s%s", path, path, flags ? ":" : "",
					      flags ? flags : "");

	if (!spec || strv_push(run, "-v") < 0 || strv_push(run, spec) < 0)
		return -ENOMEM;
	return 0;
}

/* The job script, when the MOM passes it by path (mom_priv/jobs/ID.SC):
 * it is bound read-only at the same path so the command line stays valid. */
static int add_script_mounts(char ***run, char *const *cmd)
{
	for (size_t i = 1; cmd[i]; i++) {
		struct stat st;

		if (cmd[i][0] != '/' || !strstr(cmd[i], "/mom_priv/jobs/") ||
		    strchr(cmd[i], ':') || stat(cmd[i], &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (push_bind(run, cmd[i], "ro") < 0)
			return -ENOMEM;
	}
	return 0;
}

/* The working directory and $TMPDIR: the job's files are where it runs. */
static int add_job_dirs(const struct berth_config *cfg, char ***run, const char *workdir)
{
	const char *home = getenv("HOME"), *tmp = getenv("TMPDIR");
	bool home_bound = cfg->mount_home && home && home[0] == '/';

	if (!streq(workdir, "/") && !strchr(workdir, ':') && is_dir(workdir) &&
	    !(home_bound && path_under(workdir, home)) && push_bind(run, workdir, NULL) < 0)
		return -ENOMEM;
	if (tmp && tmp[0] == '/' && !streq(tmp, "/tmp") && !strchr(tmp, ':') && is_dir(tmp) &&
	    !path_under(workdir, tmp) && !(home_bound && path_under(tmp, home)) &&
	    push_bind(run, tmp, NULL) < 0)
		return -ENOMEM;
	return 0;
}

/* -e NAME for every PBS_* variable: the host value wins over the image. */
static int add_pbs_env(char ***run)
{
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		_cleanup_free_ char *name = NULL;

		if (!str_startswith(*e, "PBS_") || !eq)
			continue;
		name = strndup(*e, (size_t)(eq - *e));
		if (!name || strv_push(run, "-e") < 0 || strv_push(run, name) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* The cached squashfs when there is one (no registry round trip per rank),
 * else the reference itself for berth run to import. */
static char *image_arg(const struct berth_config *cfg, const char *image)
{
	char *path = NULL;

	if (imgconv_find_cached(cfg, image, &path, NULL) == 0)
		return path;
	berth_error_clear();
	return strdup(image);
}

static int build_run(const struct berth_config *cfg, const struct wrap *w, char *const *cmd,
		     char ***out)
{
	_cleanup_free_ char *cwd = NULL, *image = NULL;
	char **run = NULL;
	const char *workdir = w->workdir ? w->workdir : getenv("BERTH_WORKDIR");
	int r = -ENOMEM;

	if (!workdir || !*workdir) {
		cwd = getcwd(NULL, 0);
		if (!cwd)
			return berth_fail(-errno, "current directory");
		workdir = cwd;
	}
	if (workdir[0] != '/')
		return berth_failx(BERTH_EINVAL_INPUT, "workdir '%s' is not an absolute path", workdir);
	image = image_arg(cfg, w->image);
	if (!image || strv_push(&run, "run") < 0)
		goto fail;
	if ((r = add_env_mounts(&run)) < 0 || (r = add_script_mounts(&run, cmd)) < 0 ||
	    (r = add_job_dirs(cfg, &run, workdir)) < 0)
		goto fail;
	r = -ENOMEM;
	for (char **m = w->mounts; m && *m; m++)
		if (strv_push(&run, "-v") < 0 || strv_push(&run, *m) < 0)
			goto fail;
	if ((r = add_pbs_env(&run)) < 0)
		goto fail;
	r = -ENOMEM;
	for (char **e = w->envs; e && *e; e++)
		if (strv_push(&run, "-e") < 0 || strv_push(&run, *e) < 0)
			goto fail;
	if (strv_push(&run, "-w") < 0 || strv_push(&run, workdir) < 0 ||
	    strv_push(&run, image) < 0 || strv_push(&run, "--") < 0)
		goto fail;
	for (size_t i = 0; cmd[i]; i++)
		if (strv_push(&run, cmd[i]) < 0)
			goto fail;
	*out = run;
	return 0;
fail:
	strv_free(run);
	return r == -ENOMEM ? berth_fail(-ENOMEM, "pbs-wrap") : r;
}

/* End the keepers of the job's containers, then remove their state. */
static int wrap_cleanup(struct berth_config *cfg, const char *jobid)
{
	struct launcher_entry *v = NULL;
	size_t n = 0;
	int r;

	if ((r = use_job_runtime_dir(cfg, jobid)) < 0)
		return cli_fail(r);
	if (access(cfg->runtime_dir, F_OK) < 0)
		return 0;
	if (launcher_list(cfg, &v, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			if (v[i].dir && v[i].keeper > 0)
				kill(v[i].keeper, SIGTERM);
		/* A keeper's mounts vanish with its namespace; wait for it so the
		 * state removal below never races a live FUSE mount. */
		for (int t = 0; t < 100; t++) {
			bool alive = false;

			for (size_t i = 0; i < n; i++)
				if (v[i].dir && v[i].keeper > 0 && kill(v[i].keeper, 0) == 0)
					alive = true;
			if (!alive)
				break;
			if (t == 50)
				for (size_t i = 0; i < n; i++)
					if (v[i].dir && v[i].keeper > 0)
						kill(v[i].keeper, SIGKILL);
			usleep(50 * 1000);
		}
		launcher_list_free(v, n);
	}
	berth_error_clear();
	launcher_cleanup_stale(cfg);
	berth_error_clear();
	/* rm_rf never crosses a mount point, so a mount that outlived its
	 * keeper cannot take host files with it. */
	r = rm_rf(cfg->runtime_dir);
	if (r < 0)
		return cli_fail(berth_fail(r, "remove '%s'", cfg->runtime_dir));
	return 0;
}

static int parse_wrap(int argc, char **argv, struct wrap *w)
{
	enum { O_IMAGE = 256, O_CLEANUP };
	static const struct option opts[] = {
		{"image", required_argument, NULL, O_IMAGE},
		{"mount", required_argument, NULL, 'v'},
		{"env", required_argument, NULL, 'e'},
		{"workdir", required_argument, NULL, 'w'},
		{"cleanup", required_argument, NULL, O_CLEANUP},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+v:e:w:h", opts, NULL)) != -1) {
		switch (c) {
		case O_IMAGE: w->image = optarg; break;
		case O_CLEANUP: w->cleanup = optarg; break;
		case 'w': w->workdir = optarg; break;
		case 'v':
			if (strv_push(&w->mounts, optarg) < 0)
				return cli_fail(-ENOMEM) + 1;
			break;
		case 'e':
			if (strv_push(&w->envs, optarg) < 0)
				return cli_fail(-ENOMEM) + 1;
			break;
		case 'h':
			wrap_usage(stdout);
			return -1;
		default:
			wrap_usage(stderr);
			return 2;
		}
	}
	if (!w->cleanup && optind >= argc) {
		cli_error("pbs-wrap: missing CMD (see 'berth pbs-wrap --help')");
		return 2;
	}
	if (w->cleanup && optind < argc) {
		cli_error("pbs-wrap: --cleanup takes no command");
		return 2;
	}
	return 0;
}

static int wrap_run(struct berth_config *cfg, struct wrap *w, char **cmd)
{
	const char *jobid = getenv("PBS_JOBID");
	char **run = NULL;
	int r, status;

	if (!w->image) {
		const char *e = getenv("BERTH_IMAGE");

		w->image = e && *e ? e : NULL;
	}
	if (!w->image) {
		/* No container asked for: be transparent (a job starter wraps
		 * every job of the node). */
		execvp(cmd[0], cmd);
		r = errno;
		cli_error("pbs-wrap: %s: %s", cmd[0], strerror(r));
		return r == ENOENT ? 127 : 126;
	}
	if (jobid && *jobid && (r = use_job_runtime_dir(cfg, jobid)) < 0)
		return cli_fail(r);
	if ((r = build_run(cfg, w, cmd, &run)) < 0)
		return cli_fail(r);
	if (berth_log_get_level() >= BERTH_LOG_DEBUG) {
		_cleanup_free_ char *line = strv_join(run, " ");

		log_debug("pbs-wrap: berth %s", line ? line : "run ...");
	}
	status = cmd_run(cfg, (int)strv_length(run), run);
	strv_free(run);
	return status;
}

int cmd_pbs_wrap(struct berth_config *cfg, int argc, char **argv)
{
	struct wrap w = {0};
	int r;

	r = parse_wrap(argc, argv, &w);
	if (r == 0 && w.cleanup)
		r = wrap_cleanup(cfg, w.cleanup);
	else if (r == 0)
		r = wrap_run(cfg, &w, argv + optind);
	else if (r < 0)
		r = 0;
	strv_free(w.mounts);
	strv_free(w.envs);
	return r;
}
