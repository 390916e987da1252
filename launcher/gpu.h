/* GPUs in containers: NVIDIA devices and driver libraries, AMD devices.
 *
 * Three steps, each at its own point of a run (doc/gpu.md has the rules):
 *   gpu_plan()   in the caller (berth run, the Slurm plugin), before the
 *                container exists: reads the driver root (devices,
 *                /proc/driver/nvidia, ld.so.cache), decides what to add,
 *                checks NVIDIA_REQUIRE_CUDA.  A request that cannot be met
 *                fails here with one line.  No GPU asked for, or none on the
 *                node for an implicit request: *out is NULL.
 *   gpu_apply()  in the keeper, in the container's mount namespace, on the
 *                container root before pivot_root: binds devices, libraries,
 *                tools, sockets and ICD files, regenerates the ld cache.
 *   gpu_env()    the environment seen inside (CUDA_VISIBLE_DEVICES and
 *                ROCR_VISIBLE_DEVICES renumbered for the GPUs inside).
 * Every host path is read below the driver root (gpu_driver_root). */
#ifndef BERTH_GPU_H
#define BERTH_GPU_H

#include <stdbool.h>
#include <stdio.h>

struct gpu_request {
	const char *gpus;        /* --gpus=all|none|LIST, or NULL */
	char *const *env;        /* the job's environment (NVIDIA_*, SLURM_*, ...) */
	char *const *image_env;  /* the image's Env; NULL when none */
	const char *driver_root; /* "/" or a fake tree */
};

struct gpu_plan;

int gpu_plan(const struct gpu_request *req, struct gpu_plan **out);
void gpu_plan_free(struct gpu_plan *p);

/* One line per item (devices, libraries, files): the keeper key, and
 * what `berth run -v` logs. */
void gpu_plan_describe(const struct gpu_plan *p, FILE *f);

/* In the keeper before pivot_root; root_fd is the container root. */
int gpu_apply(const struct gpu_plan *p, int root_fd, bool writable);

/* env with the changes for inside (a new strv in *out). */
int gpu_env(const struct gpu_plan *p, char *const *env, char ***out);

/* Restrict the calling process to the cores local to the plan's GPUs,
 * unless its affinity is already narrower than the CPUs it may use
 * (Slurm bound it).  0 also when there is nothing to do. */
int gpu_bind_cpus(const struct gpu_plan *p);

/* `berth gpus`: the GPUs below driver_root, their NUMA node and cores. */
int gpu_list(const char *driver_root, FILE *out);

#endif
