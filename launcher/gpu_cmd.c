/* berth gpus, and what berth run does for GPUs (gpu_cli.h). */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "imgconv/imgconv.h"
#include "launcher/cli.h"
#include "launcher/gpu.h"
#include "launcher/gpu_cli.h"
#include "launcher/launcher.h"

int cmd_gpus(struct berth_config *cfg, int argc, char **argv)
{
	int r;

	if (argc > 1 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
		printf("Usage: berth gpus\n"
		       "List the GPUs below the driver root (gpu_driver_root, now '%s'):\n"
		       "index (as in NVIDIA_VISIBLE_DEVICES and --gpus), device, UUID, PCI bus,\n"
		       "NUMA node and local cores (what --gpu-affinity binds to).\n",
		       cfg->gpu_driver_root);
		return 0;
	}
	if (argc > 1) {
		cli_error("gpus: unexpected argument '%s'", argv[1]);
		return 2;
	}
	r = gpu_list(cfg->gpu_driver_root, stdout);
	return r < 0 ? cli_fail(r) : 0;
}

int gpu_cli_prepare(const struct berth_config *cfg, struct gpu_cli *g, const char *image,
		    const struct launcher_image *image_cfg, char *const *host_env)
{
	_cleanup_free_ char *json = NULL;
	struct launcher_image img = {0};
	struct gpu_request req = {.gpus = g->gpus, .env = host_env,
				  .driver_root = cfg->gpu_driver_root};
	size_t len = 0;
	int r;

	/* The image's Env (NVIDIA_VISIBLE_DEVICES, ...) without mounting it,
	 * from the caller's reading of the config when there is one.  An
	 * unreadable config is the launcher's to report; here it has none. */
	if (!image_cfg && (imgconv_read_image_json(image, &json, &len) < 0 ||
			   launcher_image_parse(json, len, &img) < 0)) {
		launcher_image_clear(&img);
		img = (struct launcher_image){0};
	}
	berth_error_clear();
	req.image_env = image_cfg ? image_cfg->env : img.env;
	r = gpu_plan(&req, &g->plan);
	launcher_image_clear(&img);
	if (r < 0 || !g->plan)
		return r;
	if (berth_log_get_level() >= BERTH_LOG_DEBUG)
		gpu_plan_describe(g->plan, stderr);
	if ((r = gpu_env(g->plan, host_env, &g->env)) < 0)
		return r;
	if (g->affinity && (r = gpu_bind_cpus(g->plan)) < 0)
		return r;
	return 0;
}

void gpu_cli_clear(struct gpu_cli *g)
{
	gpu_plan_free(g->plan);
	strv_free(g->env);
	g->plan = NULL;
	g->env = NULL;
}
