/* --container-save: when the step's last task on the node has exited, the
 * container (image and writable layer) becomes a squashfs file that a
 * later step can run with --container-image=PATH.
 *
 * The path is checked before the container starts, where a failure still
 * fails the step with a message in srun's output; the save itself runs in
 * slurm_spank_task_exit, after the tasks' exit statuses are fixed, so a
 * failure there is reported on srun's stderr but cannot change srun's exit
 * status.  Each node of a multi-node step writes its own container to the
 * path (atomically: temporary file, then rename). */
#include "config.h"
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/launcher.h"
#include "plugin/prepare.h"

int save_check(struct prep_ctx *p)
{
	const char *given = p->args->save;
	_cleanup_free_ char *path = NULL, *copy = NULL;
	const char *dir;
	struct stat st;

	if (!given)
		return 0;
	if (given[0] == '/')
		path = strdup(given);
	else if (p->job->cwd && p->job->cwd[0] == '/')
		path = path_join(p->job->cwd, given);
	else
		return berth_failx(BERTH_EINVAL_INPUT, "--container-save '%s': a relative path, and "
				   "the job's working directory is not known", given);
	if (!path || !(copy = strdup(path)))
		return -ENOMEM;
	if (strlen(path) >= sizeof(p->res->save))
		return berth_failx(BERTH_EINVAL_INPUT, "--container-save '%s': path too long", given);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return berth_failx(BERTH_EINVAL_INPUT, "--container-save '%s': '%s' is a directory; "
				   "name the squashfs file to write", given, path);
	dir = dirname(copy);
	if (stat(dir, &st) < 0)
		return berth_fail(-errno, "--container-save '%s': directory '%s'", given, dir);
	if (!S_ISDIR(st.st_mode))
		return berth_failx(BERTH_EINVAL_INPUT, "--container-save '%s': '%s' is not a "
				   "directory", given, dir);
	/* access() checks the real uid: this process is the user for good. */
	if (access(dir, W_OK | X_OK) < 0)
		return berth_fail(-errno, "--container-save '%s': cannot write in '%s'", given, dir);
	snprintf(p->res->save, sizeof(p->res->save), "%s", path);
	return 0;
}

int node_save(const struct pconf *pc, const struct job *job, void *arg)
{
	const struct save_req *s = arg;
	struct berth_config *cfg = NULL;
	struct launcher_container *c = NULL;
	uint64_t start = now_ns();
	int r = node_user_config(pc, job->uid, &cfg);

	if (r < 0)
		return r;
	/* A reference of our own: the keeper stays while we read from it. */
	r = launcher_open(cfg, s->state_dir, &c);
	if (r == 0)
		r = launcher_save(cfg, c, s->image, s->path);
	if (r == 0)
		log_info("saved the container as '%s' in %llu ms", s->path,
			 (unsigned long long)((now_ns() - start) / 1000000));
	launcher_release(c);
	berth_config_free(cfg);
	return r;
}
