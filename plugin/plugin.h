/* spank_berth.so internals, shared by the per-context files.
 *
 * Layout (one file per Slurm context, as pyxis does it):
 *   dispatch.c     the only exported symbols: slurm_spank_* and the plugin
 *                  identification; each switches on spank_context()
 *   ctx_local.c    srun            options, environment fallbacks, checks
 *   ctx_alloc.c    sbatch/salloc   the same, when sbatch_support is on
 *   ctx_remote.c   slurmstepd      user_init (prepare), task_init (join)
 *   ctx_slurmd.c   slurmd          plugstack.conf check; job epilog cleanup
 *   args.c         the option table and the user's container options
 *   pconf.c        plugstack.conf arguments
 *   prepare.c      the per-node work, in a child that is the job's user
 *   taskenv.c      a task's environment in the container
 *   slog.c         berth's log lines into Slurm's log
 *
 * Every symbol here has hidden visibility (-fvisibility=hidden) and the
 * version script exports only the slurm_spank_* functions, so nothing of
 * berth leaks into slurmd, slurmstepd, srun or sbatch. */
#ifndef BERTH_PLUGIN_H
#define BERTH_PLUGIN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <slurm/spank.h>

#define PLUGIN_PREFIX "berth: "

/* ---- plugstack.conf (pconf.c) ------------------------------------------- */

enum scope { SCOPE_GLOBAL, SCOPE_JOB };

struct pconf {
	char *runtime_path;     /* root of the per-user runtime dirs (admin only) */
	char *cache_dir;        /* site default for the image cache; users may override */
	char *importer;         /* external "get URI" / "release" program (admin only) */
	char *image_staging;    /* node-local copy of shared .sqsh files, or NULL */
	bool execute_entrypoint;
	enum scope container_scope;
	bool sbatch_support;
	bool gpu_affinity;      /* bind tasks to their GPUs' cores */
	int log_level;          /* enum berth_log_level */
};

/* Parse the plugstack.conf arguments; an unknown key or a bad value is an
 * error naming it (logged with slurm_error). */
int pconf_parse(struct pconf *c, int ac, char **av);
void pconf_clear(struct pconf *c);

/* ---- container options (args.c) ------------------------------------------ */

enum name_mode { NAME_AUTO, NAME_CREATE, NAME_EXEC, NAME_NO_EXEC };

struct args {
	char *image;
	char *mounts;           /* the raw list; parsed where it is used */
	char *workdir;
	char *name;
	enum name_mode name_mode;
	char *save;             /* --container-save PATH, as given */
	char *env;              /* NAME[,NAME...] */
	char *unshare;          /* "net,ipc,uts" or a part of it */
	int mount_home;         /* -1 unset, 0, 1 */
	int remap_root;
	int entrypoint;
	int entrypoint_log;
	int writable;
};

/* Register the options with Slurm (slurm_spank_init, every context that
 * takes them). */
int args_register(spank_t sp);
/* After the command line: take BERTH_CONTAINER_* then PYXIS_CONTAINER_*
 * variables for what the command line left unset (from getenv, or the
 * job's environment in slurmstepd), then check everything.  Returns 1 when
 * a container is requested, 0 when not (and logs which options it
 * ignores), -1 on bad input (logged). */
int args_finish(spank_t sp);
const struct args *args_get(void);
/* Does --container-unshare name "net", "ipc" or "uts"? */
bool args_unshares(const char *what);
void args_clear(void);

/* ---- per-context entry points ------------------------------------------- */

int local_init(spank_t sp, int ac, char **av);
int local_post_opt(spank_t sp, int ac, char **av);
int local_exit(spank_t sp, int ac, char **av);

int alloc_init(spank_t sp, int ac, char **av);
int alloc_post_opt(spank_t sp, int ac, char **av);
int alloc_exit(spank_t sp, int ac, char **av);

int remote_init(spank_t sp, int ac, char **av);
int remote_post_opt(spank_t sp, int ac, char **av);
int remote_user_init(spank_t sp, int ac, char **av);
int remote_task_init(spank_t sp, int ac, char **av);
int remote_task_exit(spank_t sp, int ac, char **av);
int remote_exit(spank_t sp, int ac, char **av);

int slurmd_init(spank_t sp, int ac, char **av);
int slurmd_job_epilog(spank_t sp, int ac, char **av);

/* ---- the per-node preparation (prepare.c) -------------------------------- */

struct job {
	uid_t uid;
	gid_t gid;
	gid_t *gids;            /* supplementary groups (Slurm's copy) */
	int ngids;
	uint32_t jobid;
	uint32_t stepid;
	uint32_t local_tasks;
	char **env;             /* the job's environment (copy) */
	char *cwd;              /* the job's working directory on the host */
	char *script;           /* batch step: the script, bound into the container */
};

/* What the child reports back (one SOCK_SEQPACKET message plus, on success,
 * the keeper reference as SCM_RIGHTS). */
struct prep_result {
	int code;               /* 0, or a negative berth code */
	bool imported;          /* the image was pulled in this step */
	bool reused;            /* joined a running named container */
	uint64_t ms;            /* wall time of the preparation */
	char state_dir[1024];   /* the keeper's state directory */
	char image[1024];       /* the .sqsh that is mounted */
	char runtime_dir[1024]; /* the user's runtime dir (for the tasks) */
	char workdir[1024];     /* image WorkingDir ("" when none) */
	char save[1024];        /* --container-save as an absolute path, or "" */
	char gpu_root[1024];    /* the user's gpu_driver_root */
	char message[2048];     /* one line when code < 0 */
};

struct launcher_container;

/* What prepare_run() brings back besides the result (malloc'd, or NULL). */
struct prep_output {
	char *log;              /* the child's log lines */
	char *entry_log;        /* --container-entrypoint: the entrypoint's output */
	char *entry_env;        /* its environment changes, NUL-separated */
	size_t log_len, entry_log_len, entry_env_len;
};

/* Fork a child that drops to the job's user for good and prepares the
 * container; wait for it.  On success *out is the step's own reference on
 * the keeper, held until its tasks have joined.  Returns -errno only when
 * the child could not be run; its failures are in res->code and
 * res->message, its log and the entrypoint's in *o. */
int prepare_run(const struct pconf *pc, const struct args *a, const struct job *job,
		struct prep_result *res, struct launcher_container **out, struct prep_output *o);

/* Run fn(pc, job, arg) in a child that is the job's user for good, in the
 * job's environment; its log lines go to Slurm's log (as errors when it
 * failed).  0, or -1 when it failed. */
int prepare_as_user(const struct pconf *pc, const struct job *job,
		    int (*fn)(const struct pconf *pc, const struct job *job, void *arg), void *arg);

/* Drop to uid/gid/gids for good (setgroups, setresgid, setresuid), from a
 * process whose real or saved uid is root; then make the process dumpable
 * again so the kernel lets it write its own uid_map.  -errno on failure. */
int drop_privileges(uid_t uid, gid_t gid, const gid_t *gids, int ngids);

/* The runtime dir of uid under runtime_path: "<runtime_path>/<uid>". */
char *user_runtime_dir(const struct pconf *pc, uid_t uid);

/* Container name on disk for a --container-name: NAME (global scope) or
 * "j<jobid>_NAME" (job scope). */
char *scoped_name(const struct pconf *pc, const char *name, uint32_t jobid);

/* ---- a task's environment (taskenv.c) ------------------------------------ */

/* The environment a task gets in the container from the job's (task's)
 * environment, the image's Env and the --container-env names, then the
 * entrypoint's changes (entry_delta: "NAME=VALUE" set, "NAME" unset; NULL
 * when no entrypoint ran), plus the PyTorch variables pyxis sets when the
 * image has PYTORCH_VERSION. */
int taskenv_build(char *const *job_env, char *const *image_env, char *const *entry_delta,
		  const char *keep_names, char ***out);
/* First host of a Slurm hostlist ("n[01-04],m" -> "n01"); NULL if malformed. */
char *hostlist_first(const char *list);

/* ---- logging (slog.c) ---------------------------------------------------- */

/* Route berth's log lines to Slurm's log (slurm_error/info/verbose/debug). */
void slog_install(int level);
/* In a child: berth's log lines go, one per line, to fd. */
void slog_to_fd(int fd, int level);
/* Hand lines a child wrote with slog_to_fd() (text is modified) to Slurm:
 * errors and warnings with slurm_error (srun shows them), info with
 * slurm_verbose (srun -v), or as errors too when the child failed. */
void slog_replay(char *text, bool failed);

#endif
