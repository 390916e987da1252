/* Between prepare.c (the child process) and node.c (what it does). */
#ifndef BERTH_PLUGIN_PREPARE_H
#define BERTH_PLUGIN_PREPARE_H

#include "common/conf.h"
#include "launcher/gpu.h"
#include "plugin/plugin.h"

struct prep_ctx {
	const struct pconf *pconf;
	const struct args *args;
	const struct job *job;
	struct prep_result *res;
	int entry_log_fd;       /* the entrypoint's output goes here */
	int entry_env_fd;       /* its environment changes, NUL-separated */
};

/* As the job's user, in the job's environment and working directory:
 * resolve the image, find or start the keeper, fill p->res.  Returns 0 or
 * a negative code with the message recorded. */
int prepare_container(struct prep_ctx *p, struct launcher_container **out);

/* The user's configuration (files, BERTH_* of the job), then what only
 * the admin decides (plugstack.conf runtime_path, cache_dir default). */
int node_user_config(const struct pconf *pc, uid_t uid, struct berth_config **out);

/* --container-save, before the container starts: the path made absolute
 * against the job's directory into p->res->save; an existing directory, a
 * missing or unwritable parent directory are errors naming the path. */
int save_check(struct prep_ctx *p);

/* What the step's last task hands to node_save(). */
struct save_req {
	const char *state_dir; /* the keeper */
	const char *image;     /* the .sqsh it runs */
	const char *path;      /* absolute output path */
};

/* As the user (prepare_as_user, arg a struct save_req): write the running
 * container as a squashfs (launcher_save). */
int node_save(const struct pconf *pc, const struct job *job, void *arg);

/* --container-entrypoint (entry.c): run the image's entrypoint once in
 * the started container c; its changes to the environment go to
 * p->entry_env_fd, its output to p->entry_log_fd. */
int entrypoint_run(struct prep_ctx *p, struct launcher_container *c, const char *image);

/* The GPU plan (plugin/gpu.c) of a step on this node: from the job's
 * environment (Slurm's GPU allocation, NVIDIA_VISIBLE_DEVICES) and the
 * image's Env, below driver_root.  for_tasks: the copy slurmstepd keeps
 * for the tasks' environment and affinity, without the NVIDIA_REQUIRE_*
 * check.  *out NULL: no GPU for this step. */
int node_gpu_plan(const struct job *job, const char *image, const char *driver_root,
		  bool for_tasks, struct gpu_plan **out);

/* Run the site's importer: "IMPORTER get URI" prints the squashfs path. */
int importer_get(const struct pconf *pc, const char *uri, char **path);
/* "IMPORTER release" (errors only logged: it must be idempotent). */
void importer_release(const struct pconf *pc);

/* Run as the job's user (prepare_as_user): remove the job's named
 * containers (container_scope=job); the importer's release. */
int node_cleanup_job(const struct pconf *pc, const struct job *job, void *arg);
int node_release(const struct pconf *pc, const struct job *job, void *arg);

#endif
