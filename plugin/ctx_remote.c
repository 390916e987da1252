/* slurmstepd (remote context): one container per node and step.
 *
 *   init_post_opt  (root)  the options; the user's runtime directory
 *   user_init      (euid = user)  a child that is the user for good
 *                  resolves the image and starts the keeper (prepare.c);
 *                  failures are kept for task_init, because Slurm ignores
 *                  user_init's return value and srun would report success
 *   task_init      (each task, the user)  join the keeper's namespaces,
 *                  chdir, set the environment; slurmstepd then execs the
 *                  task itself, so tasks are never berth's children
 *   task_exit      the last one drops the step's keeper reference */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <slurm/slurm.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/gpu.h"
#include "launcher/launcher.h"
#include "launcher/mpi.h"
#include "plugin/plugin.h"
#include "plugin/prepare.h"

static struct {
	struct pconf pconf;
	bool enabled;
	struct job job;
	struct prep_result res;
	struct prep_output out;
	char **entry_delta;     /* the entrypoint's changes to the environment */
	struct gpu_plan *gpu;   /* the step's GPUs on this node, or NULL */
	struct launcher_container *keeper;
	uint32_t exited;
} remote = {
	.pconf = {0},
	.enabled = false,
	.job = {0},
	.res = {0},
	.out = {0},
	.entry_delta = NULL,
	.gpu = NULL,
	.keeper = NULL,
	.exited = 0,
};

int remote_init(spank_t sp, int ac, char **av)
{
	if (pconf_parse(&remote.pconf, ac, av) < 0)
		return -1;
	slog_install(remote.pconf.log_level);
	return args_register(sp);
}

/* As root: "<base>/<uid>", owned by the user, mode 0700.  An existing one
 * must be a real directory of that user (no symlink, nobody else's). */
static int make_user_dir(const char *base, uid_t uid, gid_t gid)
{
	_cleanup_free_ char *dir = xasprintf("%s/%u", base, (unsigned)uid);
	struct stat st;
	int r;

	if (!dir)
		return -1;
	if ((r = mkdir_p(base, 0755)) < 0) {
		slurm_error(PLUGIN_PREFIX "create '%s': %s", base, strerror(-r));
		return -1;
	}
	if (mkdir(dir, 0700) == 0) {
		if (chown(dir, uid, gid) < 0) {
			slurm_error(PLUGIN_PREFIX "chown '%s': %s", dir, strerror(errno));
			rmdir(dir);
			return -1;
		}
		return 0;
	}
	if (errno != EEXIST || lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != uid) {
		slurm_error(PLUGIN_PREFIX "'%s' is not a directory owned by uid %u", dir,
			    (unsigned)uid);
		return -1;
	}
	return 0;
}

static int job_info(spank_t sp, struct job *job)
{
	if (spank_get_item(sp, S_JOB_UID, &job->uid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_GID, &job->gid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_ID, &job->jobid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_STEPID, &job->stepid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_LOCAL_TASK_COUNT, &job->local_tasks) != ESPANK_SUCCESS) {
		slurm_error(PLUGIN_PREFIX "cannot get the job's ids from Slurm");
		return -1;
	}
	return 0;
}

int remote_post_opt(spank_t sp, int ac, char **av)
{
	int r = args_finish(sp);

	if (r <= 0)
		return r;
	if (job_info(sp, &remote.job) < 0)
		return -1;
	if (remote.job.stepid == SLURM_BATCH_SCRIPT && !remote.pconf.sbatch_support)
		return 0;
	remote.enabled = true;
	/* The only things done as root: directories the user cannot make. */
	if (make_user_dir(remote.pconf.runtime_path, remote.job.uid, remote.job.gid) < 0 ||
	    (remote.pconf.cache_dir &&
	     make_user_dir(remote.pconf.cache_dir, remote.job.uid, remote.job.gid) < 0) ||
	    (remote.pconf.image_staging &&
	     make_user_dir(remote.pconf.image_staging, remote.job.uid, remote.job.gid) < 0))
		return -1;
	return 0;
}

static int copy_env(spank_t sp, char ***out)
{
	char **env = NULL;

	if (spank_get_item(sp, S_JOB_ENV, &env) != ESPANK_SUCCESS)
		return -1;
	*out = NULL;
	for (size_t i = 0; env && env[i]; i++)
		if (strv_push(out, env[i]) < 0)
			return -1;
	if (!*out && !(*out = calloc(1, sizeof(char *))))
		return -1;
	return 0;
}

/* Everything the child needs about the job, read while Slurm's API is at
 * hand (the child must not call it). */
static int job_details(spank_t sp, struct job *job)
{
	gid_t *gids = NULL;
	char buf[4096];
	int n = 0, argc = 0;
	char **argv = NULL;

	if (copy_env(sp, &job->env) < 0)
		return -1;
	if (spank_get_item(sp, S_JOB_SUPPLEMENTARY_GIDS, &gids, &n) == ESPANK_SUCCESS && n > 0) {
		job->gids = calloc((size_t)n, sizeof(gid_t));
		if (!job->gids)
			return -1;
		memcpy(job->gids, gids, (size_t)n * sizeof(gid_t));
		job->ngids = n;
	}
	if (spank_getenv(sp, "PWD", buf, sizeof(buf)) == ESPANK_SUCCESS)
		job->cwd = strdup(buf);
	else
		job->cwd = getcwd(NULL, 0);
	if (job->stepid == SLURM_BATCH_SCRIPT &&
	    spank_get_item(sp, S_JOB_ARGV, &argc, &argv) == ESPANK_SUCCESS && argc > 0)
		job->script = strdup(argv[0]);
	return 0;
}

static void replay_log(bool as_errors)
{
	slog_replay(remote.out.log, as_errors);
	free(remote.out.log);
	remote.out.log = NULL;
}

/* The entrypoint's output, a line each: as errors when the container
 * could not start, else on srun's stderr for --container-entrypoint-log. */
static void show_entry_log(bool as_errors)
{
	char *text = remote.out.entry_log;

	for (char *line = text, *end; line && *line; line = end) {
		end = strchr(line, '\n');
		if (end)
			*end++ = '\0';
		if (as_errors)
			slurm_error(PLUGIN_PREFIX "entrypoint: %s", line);
		else
			slurm_spank_log("%s", line);
		if (!end)
			break;
	}
	free(text);
	remote.out.entry_log = NULL;
}

/* "A=1\0B\0" -> {"A=1", "B"} */
static int parse_delta(const char *buf, size_t len, char ***out)
{
	for (size_t i = 0; buf && i < len; i += strlen(buf + i) + 1)
		if (buf[i] && strv_push(out, buf + i) < 0)
			return -ENOMEM;
	return 0;
}

int remote_user_init(spank_t sp, int ac, char **av)
{
	const struct args *a = args_get();
	uint64_t start = now_ns();
	int r;

	if (!remote.enabled)
		return 0;
	if (job_details(sp, &remote.job) < 0) {
		remote.res.code = -ENOMEM;
		snprintf(remote.res.message, sizeof(remote.res.message),
			 "cannot read the job's details from Slurm");
		return 0;
	}
	r = prepare_run(&remote.pconf, a, &remote.job, &remote.res, &remote.keeper, &remote.out);
	if (r < 0) {
		remote.res.code = r;
		snprintf(remote.res.message, sizeof(remote.res.message),
			 "cannot start the preparation process: %s", strerror(-r));
	}
	if (remote.res.code < 0)
		return 0; /* reported by task_init, where srun sees it */
	replay_log(false);
	if (a->entrypoint_log == 1)
		show_entry_log(false);
	if (parse_delta(remote.out.entry_env, remote.out.entry_env_len, &remote.entry_delta) < 0) {
		remote.res.code = -ENOMEM;
		snprintf(remote.res.message, sizeof(remote.res.message),
			 "cannot keep the entrypoint's environment");
		return 0;
	}
	/* The tasks' copy of the GPU plan (gpu.c); the keeper has its own. */
	r = node_gpu_plan(&remote.job, remote.res.image, remote.res.gpu_root, true, &remote.gpu);
	if (r < 0) {
		remote.res.code = r;
		snprintf(remote.res.message, sizeof(remote.res.message), "%s", berth_errmsg(r));
		return 0;
	}
	slurm_info(PLUGIN_PREFIX "container ready in %llu ms (image %s, %s)",
		   (unsigned long long)((now_ns() - start) / 1000000),
		   a->image ? a->image : a->name,
		   remote.res.imported ? "imported" : "cached");
	return 0;
}

/* Make the task's environment in slurmstepd's copy what it should be in
 * the container: unset what goes, set what comes or changes. */
static int apply_env(spank_t sp, char **cur, char **want)
{
	for (size_t i = 0; cur && cur[i]; i++) {
		size_t len = strcspn(cur[i], "=");
		bool keep = false;

		for (size_t j = 0; want[j] && !keep; j++)
			keep = strncmp(want[j], cur[i], len) == 0 && want[j][len] == '=';
		if (!keep) {
			_cleanup_free_ char *name = strndup(cur[i], len);

			if (!name || spank_unsetenv(sp, name) != ESPANK_SUCCESS)
				return -1;
		}
	}
	for (size_t j = 0; want[j]; j++) {
		_cleanup_free_ char *name = strndup(want[j], strcspn(want[j], "="));

		if (!name || spank_setenv(sp, name, want[j] + strlen(name) + 1, 1) != ESPANK_SUCCESS)
			return -1;
	}
	return 0;
}

/* --container-workdir, else the image's WorkingDir, else the job's
 * directory when the container has it (a mounted home or --container-mounts
 * of it), else "/". */
static int enter_workdir(const char *image_wd, const char *host_cwd)
{
	const char *wd = args_get()->workdir;

	if (!wd && image_wd && *image_wd)
		wd = image_wd;
	if (wd) {
		if (chdir(wd) == 0)
			return 0;
		slurm_error(PLUGIN_PREFIX "--container-workdir '%s': %s in the container", wd,
			    errno == ENOENT ? "does not exist" : strerror(errno));
		return -1;
	}
	if (host_cwd && chdir(host_cwd) == 0)
		return 0;
	return chdir("/") == 0 ? 0 : -1;
}

/* The task's environment in slurmstepd's copy: taskenv.c's rules, then
 * CUDA_VISIBLE_DEVICES renumbered for the GPUs inside. */
static int task_env(spank_t sp, const struct launcher_image *img, char **cur)
{
	_cleanup_strv_ char **want = NULL, **gpu = NULL;

	if (taskenv_build(cur, img->env, remote.entry_delta, args_get()->env, &want) < 0 ||
	    (remote.gpu && gpu_env(remote.gpu, want, &gpu) < 0) ||
	    apply_env(sp, cur, gpu ? gpu : want) < 0) {
		slurm_error(PLUGIN_PREFIX "cannot set the task's environment");
		return -1;
	}
	return 0;
}

static int task_enter(spank_t sp)
{
	struct berth_config none = {0};
	struct launcher_container *c = NULL;
	struct launcher_image img = {0};
	_cleanup_free_ char *cwd = getcwd(NULL, 0);
	_cleanup_strv_ char **cur = NULL;
	int r = 0;

	/* gpu_affinity: from the host's view of the GPUs, before joining;
	 * a binding Slurm made (--cpu-bind) stands. */
	if (remote.gpu && remote.pconf.gpu_affinity && (r = gpu_bind_cpus(remote.gpu)) < 0) {
		slurm_error(PLUGIN_PREFIX "gpu_affinity: %s", berth_errmsg(r));
		return -1;
	}
	r = launcher_open(&none, remote.res.state_dir, &c);
	/* The step's PMIx directories go into the running container before
	 * the task is inside it (launcher/mpi_attach.c). */
	if (r == 0)
		r = copy_env(sp, &cur) < 0 ? -ENOMEM : launcher_mpi_attach(c, cur);
	if (r == 0)
		r = launcher_join(c);
	launcher_release(c);
	if (r == 0)
		r = launcher_image_load(AT_FDCWD, &img);
	if (r < 0) {
		slurm_error(PLUGIN_PREFIX "%s", berth_errmsg(r));
		return -1;
	}
	r = enter_workdir(img.workdir, cwd);
	/* --container-remap-root: package managers' chown and set*id */
	if (r == 0 && launcher_userns_remapped() && (r = launcher_seccomp_remap_root()) < 0)
		slurm_error(PLUGIN_PREFIX "%s", berth_errmsg(r));
	if (r == 0)
		r = task_env(sp, &img, cur);
	launcher_image_clear(&img);
	return r;
}

/* A task that cannot enter its container must not run at all: with the
 * plugin "optional" in plugstack.conf Slurm would ignore the failure and
 * exec the command on the host.  This is the task's last step before
 * execve, so it ends here. */
_Noreturn static void task_fail(void)
{
	_exit(1);
}

int remote_task_init(spank_t sp, int ac, char **av)
{
	int id = 0;

	if (!remote.enabled)
		return 0;
	if (remote.res.code < 0) {
		/* One report per node; every task fails. */
		if (spank_get_item(sp, S_TASK_ID, &id) != ESPANK_SUCCESS || id == 0) {
			slurm_error(PLUGIN_PREFIX "%s", remote.res.message);
			replay_log(true);
			show_entry_log(true);
		}
		task_fail();
	}
	if (task_enter(sp) < 0)
		task_fail();
	return 0;
}

int remote_task_exit(spank_t sp, int ac, char **av)
{
	if (!remote.enabled)
		return 0;
	/* The step's reference keeps the keeper up until every task of the
	 * node has joined; a task that exits early may precede a slow joiner,
	 * so the reference goes with the last task (the joined tasks hold the
	 * mounts from then on, the keeper lingers after them). */
	if (++remote.exited >= remote.job.local_tasks) {
		/* --container-save: the tasks are done, the container still up */
		if (remote.res.save[0] && remote.keeper && remote.res.code == 0) {
			struct save_req req = {.state_dir = remote.res.state_dir,
					       .image = remote.res.image, .path = remote.res.save};

			prepare_as_user(&remote.pconf, &remote.job, node_save, &req);
		}
		launcher_release(remote.keeper);
		remote.keeper = NULL;
	}
	return 0;
}

int remote_exit(spank_t sp, int ac, char **av)
{
	if (remote.enabled && remote.pconf.importer)
		prepare_as_user(&remote.pconf, &remote.job, node_release, NULL);
	launcher_release(remote.keeper);
	free(remote.out.log);
	free(remote.out.entry_log);
	free(remote.out.entry_env);
	strv_free(remote.entry_delta);
	gpu_plan_free(remote.gpu);
	strv_free(remote.job.env);
	free(remote.job.gids);
	free(remote.job.cwd);
	free(remote.job.script);
	args_clear();
	pconf_clear(&remote.pconf);
	remote.keeper = NULL;
	remote.out = (struct prep_output){0};
	remote.entry_delta = NULL;
	remote.gpu = NULL;
	remote.job = (struct job){0};
	remote.enabled = false;
	return 0;
}
