/* gpu_libs.c: the driver's files for a plan (p->caps, p->driver_version,
 * p->driver_root set).  *libcuda: host path of the driver's libcuda, or
 * NULL when the cache has none. */
#ifndef BERTH_GPU_LIBS_H
#define BERTH_GPU_LIBS_H

#include "launcher/gpu_int.h"

int gpu_libs_plan(struct gpu_plan *p, char *const *env, char **libcuda);

#endif
