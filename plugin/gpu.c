/* GPUs in Slurm steps: the launcher's gpu_plan/gpu_apply/gpu_env/
 * gpu_bind_cpus (doc/gpu.md), fed from the job.
 *
 * The request is the job's: a Slurm GPU allocation (SLURM_STEP_GPUS, else
 * SLURM_JOB_GPUS, from gres/gpu), the job's NVIDIA_VISIBLE_DEVICES, else
 * the image's.  The plan is made twice from the same inputs: in the
 * per-node child, where it goes into the keeper (devices, libraries), and
 * in slurmstepd after the child, for the tasks (their CUDA_VISIBLE_DEVICES
 * renumbered for the GPUs inside, and gpu_affinity).  The second plan
 * skips the NVIDIA_REQUIRE_* check, which the first one made, so that
 * slurmstepd never loads the driver's libcuda in a child of its own. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "common/util.h"
#include "imgconv/imgconv.h"
#include "launcher/gpu.h"
#include "launcher/launcher.h"
#include "plugin/prepare.h"

int node_gpu_plan(const struct job *job, const char *image, const char *driver_root,
		  bool for_tasks, struct gpu_plan **out)
{
	_cleanup_free_ char *json = NULL;
	_cleanup_strv_ char **env = NULL;
	struct launcher_image img = {0};
	struct gpu_request req = {.driver_root = driver_root};
	size_t len = 0;
	int r;

	*out = NULL;
	/* The image's Env (CUDA images say NVIDIA_VISIBLE_DEVICES=all). */
	r = imgconv_read_image_json(image, &json, &len);
	if (r == 0)
		r = launcher_image_parse(json, len, &img);
	if (r < 0) {
		launcher_image_clear(&img);
		return berth_fail_context(r, "image '%s'", image);
	}
	for (size_t i = 0; job->env && job->env[i] && r == 0; i++)
		r = strv_push(&env, job->env[i]);
	if (r == 0 && for_tasks)
		r = strv_push(&env, "NVIDIA_DISABLE_REQUIRE=true");
	if (r == 0 && !env)
		r = (env = calloc(1, sizeof(*env))) ? 0 : -ENOMEM;
	if (r == 0) {
		req.env = env;
		req.image_env = img.env;
		r = gpu_plan(&req, out);
	}
	launcher_image_clear(&img);
	return r;
}
