/* The environment inside: CUDA_VISIBLE_DEVICES keeps naming the same GPUs.
 *
 * Inside, the container's GPUs are numbered 0..n-1 in index (PCI bus)
 * order, because the driver only enumerates the device nodes it finds.
 * An index in the job's CUDA_VISIBLE_DEVICES counts over what the job saw
 * outside: its Slurm allocation when there is one (Slurm's local indexes,
 * as with ConstrainDevices=yes; a list of allocated ids that is not local
 * is read as Slurm's global ids, as Slurm writes it without the cgroup),
 * else all GPUs of the node.  UUIDs stay as they are.  As CUDA does, the
 * list ends at the first entry that names no GPU of the container. */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/gpu_int.h"

static int inside_position(const struct gpu_plan *p, unsigned index)
{
	for (size_t i = 0; i < p->nsel; i++)
		if (p->sel[i].index == index)
			return (int)i;
	return -1;
}

static bool all_local(const struct gpu_plan *p, char *const *v)
{
	for (size_t i = 0; v[i]; i++) {
		uint64_t x;

		if (parse_u64(v[i], 1 << 20, &x) == 0 && x >= p->nhost_view)
			return false;
	}
	return true;
}

/* The host GPU an index entry names, or NULL. */
static const struct gpu_dev *host_gpu(const struct gpu_plan *p, uint64_t x, bool local)
{
	if (local)
		return x < p->nhost_view ? &p->host_view[x] : NULL;
	for (size_t i = 0; i < p->nhost_view; i++)
		if (p->host_view[i].minor == x)
			return &p->host_view[i];
	return NULL;
}

int gpu_renumber(const struct gpu_plan *p, const char *value, char **out)
{
	_cleanup_strv_ char **v = strv_split(value, ',');
	_cleanup_strv_ char **res = NULL;
	bool local;

	*out = NULL;
	if (!v)
		return -ENOMEM;
	local = !p->alloc || all_local(p, v);
	for (size_t i = 0; v[i]; i++) {
		const struct gpu_dev *d;
		char num[16];
		uint64_t x;
		int pos;

		if (str_startswith(v[i], "GPU-") || str_startswith(v[i], "MIG-")) {
			if (strv_push(&res, v[i]) < 0)
				return -ENOMEM;
			continue;
		}
		if (parse_u64(v[i], 1 << 20, &x) < 0 || !(d = host_gpu(p, x, local)) ||
		    (pos = inside_position(p, d->index)) < 0)
			break;
		snprintf(num, sizeof(num), "%d", pos);
		if (strv_push(&res, num) < 0)
			return -ENOMEM;
	}
	*out = res ? strv_join(res, ",") : strdup("");
	return *out ? 0 : -ENOMEM;
}

int gpu_env(const struct gpu_plan *p, char *const *env, char ***out)
{
	_cleanup_strv_ char **v = NULL;
	const char *name = p && p->vendor == GPU_AMD ? "ROCR_VISIBLE_DEVICES=" : "CUDA_VISIBLE_DEVICES=";

	*out = NULL;
	for (size_t i = 0; env && env[i]; i++) {
		_cleanup_free_ char *val = NULL, *line = NULL;
		int r;

		if (!p || !str_startswith(env[i], name)) {
			if (strv_push(&v, env[i]) < 0)
				return -ENOMEM;
			continue;
		}
		if ((r = gpu_renumber(p, env[i] + strlen(name), &val)) < 0)
			return r;
		line = xasprintf("%s%s", name, val);
		if (!line || strv_push(&v, line) < 0)
			return -ENOMEM;
	}
	if (!v && !(v = calloc(1, sizeof(*v))))
		return -ENOMEM;
	*out = TAKE_PTR(v);
	return 0;
}
