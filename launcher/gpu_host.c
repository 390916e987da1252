/* The host's GPUs as the driver root shows them. */
#include "config.h"
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/gpu_int.h"

static void dev_clear(struct gpu_dev *d)
{
	free(d->uuid);
	free(d->model);
	free(d->busid);
}

void gpu_host_clear(struct gpu_host *h)
{
	for (size_t i = 0; i < h->n; i++)
		dev_clear(&h->v[i]);
	free(h->v);
	free(h->driver_version);
	*h = (struct gpu_host){0};
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the entries of dir (without . and ..). */
static int list_dir(const char *dir, char ***out)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	_cleanup_strv_ char **v = NULL;
	struct dirent *e;

	*out = NULL;
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (strv_push(&v, e->d_name) < 0)
			return -ENOMEM;
	}
	if (v)
		qsort(v, strv_length(v), sizeof(*v), cmp_name);
	*out = TAKE_PTR(v);
	return 0;
}

static int push_dev(struct gpu_host *h, const struct gpu_dev *d)
{
	struct gpu_dev *nv = realloc(h->v, (h->n + 1) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	h->v = nv;
	h->v[h->n] = *d;
	h->v[h->n].index = (unsigned)h->n;
	h->n++;
	return 0;
}

static int load_nvidia(const char *root, struct gpu_host *h)
{
	_cleanup_free_ char *vpath = path_join(root, "proc/driver/nvidia/version"),
			    *gdir = path_join(root, "proc/driver/nvidia/gpus"), *text = NULL;
	_cleanup_strv_ char **names = NULL;
	int r;

	if (!vpath || !gdir)
		return -ENOMEM;
	if ((r = read_file(vpath, 1 << 16, &text, NULL)) < 0)
		return berth_fail(r, "read '%s'", vpath);
	if ((r = gpu_parse_version(text, &h->driver_version)) < 0)
		return berth_fail_context(r, "'%s'", vpath);
	r = list_dir(gdir, &names);
	if (r < 0 && r != -ENOENT)
		return berth_fail(r, "list '%s'", gdir);
	/* Bus-id order is NVML's (and nvidia-smi's) index order. */
	for (size_t i = 0; names && names[i]; i++) {
		_cleanup_free_ char *info = xasprintf("%s/%s/information", gdir, names[i]),
				    *t = NULL;
		struct gpu_dev d;

		if (!info)
			return -ENOMEM;
		if ((r = read_file(info, 1 << 16, &t, NULL)) < 0)
			return berth_fail(r, "read '%s'", info);
		if ((r = gpu_parse_information(t, info, &d)) < 0)
			return r;
		if (!d.busid)
			d.busid = strdup(names[i]);
		if ((r = push_dev(h, &d)) < 0) {
			dev_clear(&d);
			return r;
		}
	}
	for (size_t i = 0; i < h->n; i++)
		for (size_t j = 0; j < i; j++)
			if (h->v[i].minor == h->v[j].minor || streq(h->v[i].uuid, h->v[j].uuid))
				return berth_failx(BERTH_EFORMAT,
						   "'%s': GPUs %s and %s have the same minor or UUID",
						   gdir, h->v[j].busid, h->v[i].busid);
	h->vendor = GPU_NVIDIA;
	return 0;
}

/* "key value" lines of a KFD topology properties file. */
static bool prop(const char *text, const char *key, unsigned long long *v)
{
	size_t k = strlen(key);

	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (strncmp(l, key, k) == 0 && l[k] == ' ') {
			*v = strtoull(l + k + 1, NULL, 10);
			return true;
		}
	return false;
}

/* AMD: GPUs are the KFD topology nodes with a non-zero gpu_id, in node
 * order (ROCm's enumeration); without the topology, the render nodes. */
static int load_amd(const char *root, struct gpu_host *h)
{
	_cleanup_free_ char *topo = path_join(root, "sys/class/kfd/kfd/topology/nodes"),
			    *dri = path_join(root, "dev/dri");
	_cleanup_strv_ char **nodes = NULL, **renders = NULL;
	int r;

	h->vendor = GPU_AMD;
	if (!topo || !dri)
		return -ENOMEM;
	if (list_dir(topo, &nodes) == 0 && nodes) {
		size_t n = strv_length(nodes);

		for (size_t k = 0; k < 1024 && h->n < n; k++) {
			_cleanup_free_ char *id = xasprintf("%s/%zu/gpu_id", topo, k),
					    *pp = xasprintf("%s/%zu/properties", topo, k), *t = NULL,
					    *pt = NULL;
			unsigned long long minor = 0, uid = 0;
			struct gpu_dev d = {0};

			if (!id || !pp)
				return -ENOMEM;
			if (read_file(id, 4096, &t, NULL) < 0)
				continue;
			if (strtoull(t, NULL, 10) == 0 || read_file(pp, 1 << 16, &pt, NULL) < 0 ||
			    !prop(pt, "drm_render_minor", &minor))
				continue;
			d.minor = (unsigned)minor;
			if (prop(pt, "unique_id", &uid))
				d.uuid = xasprintf("%llu", uid);
			d.model = xasprintf("AMD GPU (KFD node %zu)", k);
			if ((r = push_dev(h, &d)) < 0) {
				dev_clear(&d);
				return r;
			}
		}
		return 0;
	}
	if (list_dir(dri, &renders) < 0)
		return 0;
	for (size_t i = 0; renders && renders[i]; i++) {
		uint64_t m;
		struct gpu_dev d = {0};

		if (!str_startswith(renders[i], "renderD") || parse_u64(renders[i] + 7, 1 << 20, &m) < 0)
			continue;
		d.minor = (unsigned)m;
		d.model = strdup("AMD GPU");
		if ((r = push_dev(h, &d)) < 0) {
			dev_clear(&d);
			return r;
		}
	}
	return 0;
}

int gpu_host_load(const char *root, struct gpu_host *h)
{
	_cleanup_close_ int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ char *nv = path_join(root, "proc/driver/nvidia/version"),
			    *kfd = path_join(root, "dev/kfd");
	int r;

	*h = (struct gpu_host){0};
	if (fd < 0)
		return berth_fail(-errno, "GPU driver root '%s' (gpu_driver_root)", root);
	if (!nv || !kfd)
		return -ENOMEM;
	if (access(nv, F_OK) == 0)
		r = load_nvidia(root, h);
	else if (access(kfd, F_OK) == 0)
		r = load_amd(root, h);
	else
		return 0;
	if (r < 0)
		gpu_host_clear(h);
	return r;
}

const struct gpu_dev *gpu_host_find(const struct gpu_host *h, const char *item)
{
	const struct gpu_dev *hit = NULL;
	uint64_t idx;

	if (parse_u64(item, 1 << 20, &idx) == 0)
		return idx < h->n ? &h->v[idx] : NULL;
	for (size_t i = 0; i < h->n; i++) {
		if (!h->v[i].uuid)
			continue;
		if (streq(h->v[i].uuid, item))
			return &h->v[i];
		/* NVIDIA tools accept a unique UUID prefix ("GPU-3b1c"). */
		if (strlen(item) >= 8 && str_startswith(h->v[i].uuid, item)) {
			if (hit)
				return NULL;
			hit = &h->v[i];
		}
	}
	return hit;
}

int gpu_cuda_version(const char *libcuda, char **out)
{
	int fd, v = 0, status;
	pid_t pid;
	ssize_t n;

	pid = fork_pipe(&fd);
	if (pid < 0)
		return pid;
	if (pid == 0) {
		/* A child of its own: the driver library never stays loaded in
		 * berth (or in slurmstepd, for the plugin). */
		void *h = dlopen(libcuda, RTLD_NOW | RTLD_LOCAL);
		int (*get)(int *) = h ? (int (*)(int *))dlsym(h, "cuDriverGetVersion") : NULL;
		int got = 0;

		if (get && get(&got) == 0 && got > 0)
			(void)!write(fd, &got, sizeof(got));
		_exit(0);
	}
	n = read(fd, &v, sizeof(v));
	close(fd);
	waitpid(pid, &status, 0);
	if (n != sizeof(v))
		return berth_failx(BERTH_EHOST,
				   "'%s': cannot get the CUDA version (cuDriverGetVersion failed)",
				   libcuda);
	*out = xasprintf("%d.%d", v / 1000, (v % 1000) / 10);
	return *out ? 0 : -ENOMEM;
}
