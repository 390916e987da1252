/* Driver libraries, tools and files for a plan, found below the driver
 * root through its ld.so.cache. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/gpu_int.h"
#include "launcher/gpu_libs.h"
#include "launcher/ldcache.h"
#include "launcher/safepath.h"

/* libnvidia-container's grouping of the driver's user-space libraries.
 * Every one is installed as lib*.so.<driver version>. */
static const struct {
	unsigned cap;
	const char *name;
	bool required;
} libs[] = {
	{GPU_CAP_UTILITY, "libnvidia-ml", true},
	{GPU_CAP_UTILITY, "libnvidia-cfg", false},
	{GPU_CAP_COMPUTE, "libcuda", true},
	{GPU_CAP_COMPUTE, "libcudadebugger", false},
	{GPU_CAP_COMPUTE, "libnvidia-opencl", false},
	{GPU_CAP_COMPUTE, "libnvidia-ptxjitcompiler", false},
	{GPU_CAP_COMPUTE, "libnvidia-fatbinaryloader", false},
	{GPU_CAP_COMPUTE, "libnvidia-allocator", false},
	{GPU_CAP_COMPUTE, "libnvidia-compiler", false},
	{GPU_CAP_COMPUTE, "libnvidia-pkcs11", false},
	{GPU_CAP_COMPUTE, "libnvidia-pkcs11-openssl3", false},
	{GPU_CAP_COMPUTE, "libnvidia-nvvm", false},
	{GPU_CAP_COMPUTE, "libnvidia-gpucomp", false},
	{GPU_CAP_VIDEO, "libvdpau_nvidia", false},
	{GPU_CAP_VIDEO, "libnvidia-encode", false},
	{GPU_CAP_VIDEO, "libnvidia-opticalflow", false},
	{GPU_CAP_VIDEO, "libnvcuvid", false},
	{GPU_CAP_GRAPHICS, "libnvidia-eglcore", false},
	{GPU_CAP_GRAPHICS, "libnvidia-glcore", false},
	{GPU_CAP_GRAPHICS, "libnvidia-tls", false},
	{GPU_CAP_GRAPHICS, "libnvidia-glsi", false},
	{GPU_CAP_GRAPHICS, "libnvidia-fbc", false},
	{GPU_CAP_GRAPHICS, "libnvidia-ifr", false},
	{GPU_CAP_GRAPHICS, "libnvidia-rtcore", false},
	{GPU_CAP_GRAPHICS, "libnvoptix", false},
	{GPU_CAP_GRAPHICS, "libGLX_nvidia", false},
	{GPU_CAP_GRAPHICS, "libEGL_nvidia", false},
	{GPU_CAP_GRAPHICS, "libGLESv2_nvidia", false},
	{GPU_CAP_GRAPHICS, "libGLESv1_CM_nvidia", false},
	{GPU_CAP_GRAPHICS, "libnvidia-glvkspirv", false},
	{GPU_CAP_GRAPHICS, "libnvidia-cbl", false},
	{GPU_CAP_GRAPHICS, "libnvidia-vulkan-producer", false},
};

static const struct {
	unsigned cap;
	const char *name;
} tools[] = {
	{GPU_CAP_UTILITY, "nvidia-smi"},
	{GPU_CAP_UTILITY, "nvidia-debugdump"},
	{GPU_CAP_UTILITY, "nvidia-persistenced"},
	{GPU_CAP_COMPUTE, "nvidia-cuda-mps-control"},
	{GPU_CAP_COMPUTE, "nvidia-cuda-mps-server"},
};

static const char *const tool_dirs[] = {"usr/bin", "usr/sbin", "bin", "sbin", "usr/local/bin"};

static const struct {
	unsigned cap;
	const char *path;
} files[] = {
	{GPU_CAP_GRAPHICS, "/usr/share/vulkan/icd.d/nvidia_icd.json"},
	{GPU_CAP_GRAPHICS, "/etc/vulkan/icd.d/nvidia_icd.json"},
	{GPU_CAP_GRAPHICS, "/usr/share/vulkan/implicit_layer.d/nvidia_layers.json"},
	{GPU_CAP_GRAPHICS, "/etc/vulkan/implicit_layer.d/nvidia_layers.json"},
	{GPU_CAP_GRAPHICS, "/usr/share/glvnd/egl_vendor.d/10_nvidia.json"},
	{GPU_CAP_DISPLAY, "/usr/lib/xorg/modules/drivers/nvidia_drv.so"},
	{GPU_CAP_DISPLAY, "/usr/lib64/xorg/modules/drivers/nvidia_drv.so"},
	{GPU_CAP_UTILITY | GPU_CAP_COMPUTE, "/run/nvidia-persistenced/socket"},
};

/* "libcuda.so.1" -> does it name library `base`? */
static bool key_is(const char *key, const char *base)
{
	size_t n = strlen(base);

	return strncmp(key, base, n) == 0 && str_startswith(key + n, ".so");
}

/* Host path of what fd is open on. */
static char *fd_target(int fd)
{
	char p[64], buf[PATH_MAX];
	ssize_t n;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	n = readlink(p, buf, sizeof(buf) - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

static struct gpu_item *find_item(struct gpu_plan *p, enum gpu_item_kind k, const char *src)
{
	for (size_t i = 0; i < p->nitems; i++)
		if (p->items[i].kind == k && streq(p->items[i].src, src))
			return &p->items[i];
	return NULL;
}

/* The file an ld.so.cache entry names, resolved inside the driver root;
 * its name must carry the driver's version. */
static int resolve_lib(struct gpu_plan *p, int root_fd, const struct ldcache_entry *e,
		       char **real)
{
	_cleanup_close_ int fd = safe_open(root_fd, e->path, O_PATH);
	const char *name, *ver;

	*real = NULL;
	if (fd == -ENOENT) {
		log_debug("ld.so.cache names '%s', which is missing: skipped", e->path);
		return 0;
	}
	if (fd < 0)
		return berth_fail(fd, "driver library '%s' below '%s'", e->path, p->driver_root);
	*real = fd_target(fd);
	if (!*real)
		return berth_fail(-errno, "resolve '%s'", e->path);
	name = strrchr(*real, '/') + 1;
	ver = strstr(name, ".so.");
	if (!ver || !streq(ver + 4, p->driver_version)) {
		int r = berth_failx(BERTH_EHOST,
				    "driver library '%s' is '%s', not version %s of the running "
				    "driver (mixed driver versions below '%s'?)",
				    e->path, name, p->driver_version, p->driver_root);

		free(TAKE_PTR(*real));
		return r;
	}
	return 0;
}

static int add_lib(struct gpu_plan *p, int root_fd, const struct ldcache_entry *e, bool lib32)
{
	_cleanup_free_ char *real = NULL;
	enum gpu_item_kind k = lib32 ? GPU_ITEM_LIB32 : GPU_ITEM_LIB;
	struct gpu_item *it;
	const char *name;
	int r = resolve_lib(p, root_fd, e, &real);

	if (r < 0 || !real)
		return r;
	name = strrchr(real, '/') + 1;
	it = find_item(p, k, real);
	if (!it) {
		if ((r = gpu_plan_add(p, k, real, name)) < 0)
			return r;
		it = &p->items[p->nitems - 1];
	}
	if (!streq(e->key, name) && !strchr(e->key, '/') && !strv_contains(it->links, e->key))
		return strv_push(&it->links, e->key);
	return 0;
}

static int add_libs(struct gpu_plan *p, int root_fd, const struct ldcache *c, const char *cpath)
{
	for (size_t l = 0; l < ARRAY_SIZE(libs); l++) {
		bool found = false;

		if (!(p->caps & libs[l].cap))
			continue;
		for (size_t i = 0; i < ldcache_count(c); i++) {
			const struct ldcache_entry *e = ldcache_get(c, i);
			enum ldcache_abi abi = ldcache_abi(e->flags);
			int r;

			if (!key_is(e->key, libs[l].name))
				continue;
			if (abi == LDCACHE_ABI_NATIVE)
				r = add_lib(p, root_fd, e, false);
			else if (abi == LDCACHE_ABI_32 && (p->caps & GPU_CAP_COMPAT32))
				r = add_lib(p, root_fd, e, true);
			else
				continue;
			if (r < 0)
				return r;
			found = found || abi == LDCACHE_ABI_NATIVE;
		}
		if (!found && libs[l].required)
			return berth_failx(BERTH_EHOST,
					   "GPU driver library %s.so (capability '%s') is not in "
					   "'%s'",
					   libs[l].name,
					   libs[l].cap == GPU_CAP_COMPUTE ? "compute" : "utility", cpath);
	}
	return 0;
}

static int add_tools(struct gpu_plan *p)
{
	for (size_t t = 0; t < ARRAY_SIZE(tools); t++) {
		if (!(p->caps & tools[t].cap))
			continue;
		for (size_t d = 0; d < ARRAY_SIZE(tool_dirs); d++) {
			_cleanup_free_ char *src = xasprintf("%s/%s/%s", p->driver_root, tool_dirs[d],
							     tools[t].name),
					    *dst = xasprintf("/usr/bin/%s", tools[t].name);

			if (!src || !dst)
				return -ENOMEM;
			if (access(src, X_OK) == 0) {
				int r = gpu_plan_add(p, GPU_ITEM_BIN, src, dst);

				if (r < 0)
					return r;
				break;
			}
		}
	}
	return 0;
}

static int add_files(struct gpu_plan *p, char *const *env)
{
	const char *mps = NULL;

	for (size_t f = 0; f < ARRAY_SIZE(files); f++) {
		_cleanup_free_ char *src = path_join(p->driver_root, files[f].path);
		int r;

		if (!src)
			return -ENOMEM;
		if (!(p->caps & files[f].cap) || access(src, F_OK) < 0)
			continue;
		if ((r = gpu_plan_add(p, GPU_ITEM_FILE, src, files[f].path)) < 0)
			return r;
	}
	/* The MPS control daemon's pipe directory (CUDA_MPS_PIPE_DIRECTORY). */
	for (size_t i = 0; env && env[i]; i++)
		if (str_startswith(env[i], "CUDA_MPS_PIPE_DIRECTORY=") && env[i][24] == '/')
			mps = env[i] + 24;
	if (p->caps & GPU_CAP_COMPUTE) {
		_cleanup_free_ char *src = path_join(p->driver_root, mps ? mps : "/tmp/nvidia-mps");

		if (!src)
			return -ENOMEM;
		if (access(src, F_OK) == 0)
			return gpu_plan_add(p, GPU_ITEM_FILE, src, mps ? mps : "/tmp/nvidia-mps");
	}
	return 0;
}

int gpu_libs_plan(struct gpu_plan *p, char *const *env, char **libcuda)
{
	_cleanup_close_ int root_fd = open(p->driver_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ char *cpath = path_join(p->driver_root, "etc/ld.so.cache");
	struct ldcache *c = NULL;
	int r;

	*libcuda = NULL;
	if (!cpath)
		return -ENOMEM;
	if (root_fd < 0)
		return berth_fail(-errno, "GPU driver root '%s'", p->driver_root);
	r = ldcache_load(root_fd, "etc/ld.so.cache", &c);
	if (r < 0)
		return berth_fail_context(r, "GPU driver root '%s'", p->driver_root);
	r = add_libs(p, root_fd, c, cpath);
	/* The CUDA version comes from libcuda, also when only utility is
	 * asked for (NVIDIA_REQUIRE_CUDA is checked all the same). */
	for (size_t i = 0; r == 0 && !*libcuda && i < ldcache_count(c); i++) {
		const struct ldcache_entry *e = ldcache_get(c, i);
		_cleanup_free_ char *real = NULL;

		if (!key_is(e->key, "libcuda") || ldcache_abi(e->flags) != LDCACHE_ABI_NATIVE)
			continue;
		r = resolve_lib(p, root_fd, e, &real);
		*libcuda = TAKE_PTR(real);
	}
	ldcache_free(c);
	if (r == 0)
		r = add_tools(p);
	if (r == 0)
		r = add_files(p, env);
	return r;
}
