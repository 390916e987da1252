/* The GPU side of `berth run` (gpu_cmd.c). */
#ifndef BERTH_GPU_CLI_H
#define BERTH_GPU_CLI_H

#include <stdbool.h>
#include "common/conf.h"
#include "launcher/gpu.h"

struct gpu_cli {
	const char *gpus; /* --gpus, or NULL */
	bool affinity;    /* --gpu-affinity */
	struct gpu_plan *plan; /* out: for launcher_opts.gpu (NULL: no GPU) */
	char **env;            /* out: host environment for the payload, or NULL */
};

struct launcher_image;

/* Plan the GPUs for the .sqsh image (its Env from image_cfg, else read
 * from its /.berth/image.json),
 * the payload's environment, and --gpu-affinity for this process (the
 * payload inherits it).  Call before launcher_create(). */
int gpu_cli_prepare(const struct berth_config *cfg, struct gpu_cli *g, const char *image,
		    const struct launcher_image *image_cfg, char *const *host_env);
void gpu_cli_clear(struct gpu_cli *g);

#endif
