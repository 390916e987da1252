/* Putting a plan into the container (in the keeper, before pivot_root).
 *
 * /dev: the container's /dev (the host's, as the launcher bound it) is
 * rebuilt on a tmpfs with every entry bound back except the GPU devices,
 * then the selected GPU devices are bound from the driver root: a GPU that
 * was not selected does not exist inside.
 * Libraries: a tmpfs at /usr/local/berth-gpu holds lib/ (and lib32/) with
 * the driver's files bound read-only and their soname links.  The image's
 * own ldconfig then runs, already pivoted into the container (nothing from
 * the image runs with the host's root in view), with
 * /etc/ld.so.conf.d/000-berth-gpu.conf naming those directories, so the
 * image's ld cache finds them, also after a later ldconfig in the
 * container (apt-get).  Both live in the writable layer. */
#include "config.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/gpu_int.h"
#include "launcher/launcher.h"
#include "launcher/rootfs.h"
#include "launcher/safepath.h"

#define LIB_FLAGS (LAUNCHER_MNT_RO | LAUNCHER_MNT_NOSUID | LAUNCHER_MNT_NODEV)

static bool hidden(const struct gpu_plan *p, const char *name)
{
	if (p->vendor == GPU_AMD)
		return streq(name, "kfd") || streq(name, "dri");
	return str_startswith(name, "nvidia");
}

/* Bind what /dev entry `name` of old_fd is onto /dev/name in the root. */
static int copy_dev_entry(int root_fd, int old_fd, const char *name)
{
	_cleanup_free_ char *dst = xasprintf("/dev/%s", name);
	char src[PATH_MAX];
	struct stat st;

	if (!dst)
		return -ENOMEM;
	if (fstatat(old_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0; /* gone meanwhile */
	if (S_ISLNK(st.st_mode)) {
		_cleanup_close_ int dev = safe_open(root_fd, "/dev", O_PATH | O_DIRECTORY);
		ssize_t n = readlinkat(old_fd, name, src, sizeof(src) - 1);

		if (n < 0 || dev < 0)
			return berth_fail(n < 0 ? -errno : dev, "copy symlink '/dev/%s'", name);
		src[n] = '\0';
		if (symlinkat(src, dev, name) < 0)
			return berth_fail(-errno, "create symlink '/dev/%s'", name);
		return 0;
	}
	snprintf(src, sizeof(src), "/proc/self/fd/%d/%s", old_fd, name);
	return rootfs_bind(root_fd, src, dst, S_ISDIR(st.st_mode) ? LAUNCHER_MNT_RBIND : 0, true);
}

static int dev_rebuild(const struct gpu_plan *p, int root_fd)
{
	_cleanup_close_ int old = safe_open(root_fd, "/dev", O_RDONLY | O_DIRECTORY),
			    at = safe_open(root_fd, "/dev", O_PATH | O_DIRECTORY), dev = -1;
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *e;
	char path[64];
	int r = 0;

	if (old < 0 || at < 0)
		return berth_fail(old < 0 ? old : at, "open the container's /dev");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", at);
	if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=1m") < 0)
		return berth_fail(-errno, "mount a tmpfs on the container's /dev");
	d = fdopendir(dup(old));
	if (!d)
		return berth_fail(-errno, "list /dev");
	while (r == 0 && (e = readdir(d)))
		if (!streq(e->d_name, ".") && !streq(e->d_name, "..") && !hidden(p, e->d_name))
			r = copy_dev_entry(root_fd, old, e->d_name);
	for (size_t i = 0; r == 0 && i < p->nitems; i++) {
		const struct gpu_item *it = &p->items[i];
		struct stat st;

		if (it->kind != GPU_ITEM_DEV)
			continue;
		if (stat(it->src, &st) < 0)
			return berth_fail(-errno, "GPU device '%s'", it->src);
		r = rootfs_bind(root_fd, it->src, it->dst, S_ISDIR(st.st_mode) ? LAUNCHER_MNT_RBIND : 0,
				true);
	}
	if (r < 0)
		return r;
	/* Read-only like the host's /dev is for the user. */
	dev = safe_open(root_fd, "/dev", O_PATH | O_DIRECTORY);
	if (dev < 0)
		return berth_fail(dev, "reopen /dev");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", dev);
	if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) < 0)
		return berth_fail(-errno, "make the container's /dev read-only");
	return 0;
}

/* The host's /proc/driver/nvidia/gpus lists every GPU; show the selected
 * ones only.  Only where the container's /proc has it (driver root "/"). */
static void mask_proc(const struct gpu_plan *p, int root_fd)
{
	_cleanup_close_ int at = -1;
	char path[64];

	if (p->vendor != GPU_NVIDIA || !streq(p->driver_root, "/"))
		return;
	at = safe_open(root_fd, "/proc/driver/nvidia/gpus", O_PATH | O_DIRECTORY);
	if (at < 0)
		return;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", at);
	if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0555,size=64k") < 0) {
		log_warn("cannot hide unselected GPUs in /proc/driver/nvidia/gpus: %s",
			 strerror(errno));
		return;
	}
	for (size_t i = 0; i < p->nsel; i++) {
		_cleanup_free_ char *src = xasprintf("/proc/driver/nvidia/gpus/%s", p->sel[i].busid);

		if (src && rootfs_bind(root_fd, src, src, LAUNCHER_MNT_RBIND, true) < 0)
			log_warn("%s", berth_errmsg(-EIO));
	}
}

/* "libcuda.so.545.23.08" -> "libcuda" and the major version 545. */
static bool versioned_lib(const char *name, char **base, unsigned long *major)
{
	const char *so = strstr(name, ".so.");

	if (!str_startswith(name, "lib") || !so || !strchr(so + 4, '.'))
		return false;
	*major = strtoul(so + 4, NULL, 10);
	*base = strndup(name, (size_t)(so - name));
	return *base != NULL;
}

/* Replace the driver's soname links of `base` by links to `name`. */
static int relink(const struct gpu_plan *p, int lib_fd, const char *base, const char *name)
{
	for (size_t i = 0; i < p->nitems; i++) {
		const struct gpu_item *it = &p->items[i];

		if (it->kind != GPU_ITEM_LIB || !str_startswith(it->dst, base) ||
		    !str_startswith(it->dst + strlen(base), ".so."))
			continue;
		for (size_t l = 0; it->links && it->links[l]; l++) {
			if (unlinkat(lib_fd, it->links[l], 0) < 0 && errno != ENOENT)
				return berth_fail(-errno, "replace link '%s'", it->links[l]);
			if (symlinkat(name, lib_fd, it->links[l]) < 0)
				return berth_fail(-errno, "link '%s'", it->links[l]);
		}
	}
	return 0;
}

/* CUDA forward compatibility: the image's newer libcuda & co from
 * /usr/local/cuda/compat replace the driver's (as NVIDIA's runtime does). */
static int use_compat(const struct gpu_plan *p, int root_fd, int lib_fd)
{
	_cleanup_close_ int dfd = safe_open(root_fd, "/usr/local/cuda/compat", O_RDONLY | O_DIRECTORY);
	_cleanup_closedir_ DIR *d = NULL;
	unsigned long driver_major = strtoul(p->driver_version, NULL, 10);
	bool have_cuda = false;
	struct dirent *e;
	int r = 0;

	if (dfd < 0 || !(d = fdopendir(dup(dfd))))
		return berth_failx(BERTH_EHOST, "%s", p->compat_error);
	while (r == 0 && (e = readdir(d))) {
		_cleanup_free_ char *base = NULL, *dst = NULL;
		_cleanup_close_ int fd = -1;
		unsigned long major;
		struct stat st;
		char src[64];

		if (!versioned_lib(e->d_name, &base, &major) || major <= driver_major)
			continue;
		fd = openat(dfd, e->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		dst = xasprintf(GPU_DIR "/lib/%s", e->d_name);
		if (!dst)
			return -ENOMEM;
		snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
		r = rootfs_bind(root_fd, src, dst, LIB_FLAGS, true);
		if (r == 0)
			r = relink(p, lib_fd, base, e->d_name);
		have_cuda = have_cuda || streq(base, "libcuda");
	}
	if (r == 0 && !have_cuda)
		return berth_failx(BERTH_EHOST, "%s", p->compat_error);
	return r;
}

static int bind_libs(const struct gpu_plan *p, int root_fd, int gpu_fd)
{
	_cleanup_close_ int lib_fd = -1, lib32_fd = -1;
	int r = 0;

	if (mkdirat(gpu_fd, "lib", 0755) < 0 || mkdirat(gpu_fd, "lib32", 0755) < 0 ||
	    (lib_fd = openat(gpu_fd, "lib", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (lib32_fd = openat(gpu_fd, "lib32", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return berth_fail(-errno, "create '%s/lib'", GPU_DIR);
	for (size_t i = 0; r == 0 && i < p->nitems; i++) {
		const struct gpu_item *it = &p->items[i];
		bool l32 = it->kind == GPU_ITEM_LIB32;
		_cleanup_free_ char *dst = NULL;

		if (it->kind != GPU_ITEM_LIB && !l32)
			continue;
		dst = xasprintf("%s/%s/%s", GPU_DIR, l32 ? "lib32" : "lib", it->dst);
		if (!dst)
			return -ENOMEM;
		r = rootfs_bind(root_fd, it->src, dst, LIB_FLAGS, true);
		for (size_t l = 0; r == 0 && it->links && it->links[l]; l++)
			if (symlinkat(it->dst, l32 ? lib32_fd : lib_fd, it->links[l]) < 0 && errno != EEXIST)
				r = berth_fail(-errno, "link '%s'", it->links[l]);
	}
	if (r == 0 && p->compat)
		r = use_compat(p, root_fd, lib_fd);
	return r;
}

/* The tmpfs at GPU_DIR, which must be creatable (writable container). */
static int gpu_dir(int root_fd, bool writable)
{
	_cleanup_close_ int at = writable ? safe_mkpath(root_fd, GPU_DIR, false)
					  : safe_open(root_fd, GPU_DIR, O_PATH | O_DIRECTORY);
	char path[64];
	int fd;

	if (at == -ENOENT && !writable)
		return berth_failx(BERTH_EINVAL_INPUT,
				   "GPU driver libraries need a writable container: the read-only "
				   "image has no '%s' (drop --readonly)",
				   GPU_DIR);
	if (at < 0)
		return berth_fail(at, "create '%s' in the container", GPU_DIR);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", at);
	if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0)
		return berth_fail(-errno, "mount a tmpfs on '%s'", GPU_DIR);
	fd = safe_open(root_fd, GPU_DIR, O_RDONLY | O_DIRECTORY);
	return fd < 0 ? berth_fail(fd, "open '%s'", GPU_DIR) : fd;
}

static int bind_other(const struct gpu_plan *p, int root_fd, bool writable)
{
	for (size_t i = 0; i < p->nitems; i++) {
		const struct gpu_item *it = &p->items[i];
		struct stat st;
		unsigned flags = LAUNCHER_MNT_NOSUID | LAUNCHER_MNT_NODEV;
		int r;

		if (it->kind != GPU_ITEM_BIN && it->kind != GPU_ITEM_FILE)
			continue;
		if (stat(it->src, &st) < 0)
			return berth_fail(-errno, "GPU file '%s'", it->src);
		/* Sockets and the MPS pipe directory are talked to; the rest
		 * is read. */
		if (S_ISREG(st.st_mode))
			flags |= LAUNCHER_MNT_RO;
		if (S_ISDIR(st.st_mode))
			flags |= LAUNCHER_MNT_RBIND;
		r = rootfs_bind(root_fd, it->src, it->dst, flags, writable);
		if (r < 0)
			return r;
	}
	return 0;
}



int gpu_apply(const struct gpu_plan *p, int root_fd, bool writable)
{
	_cleanup_close_ int gpu_fd = -1;
	bool libs = false, lib32 = false;
	int r;

	if (!p)
		return 0;
	r = dev_rebuild(p, root_fd);
	if (r < 0)
		return berth_fail_context(r, "GPU devices");
	mask_proc(p, root_fd);
	for (size_t i = 0; i < p->nitems; i++) {
		libs = libs || p->items[i].kind == GPU_ITEM_LIB;
		lib32 = lib32 || p->items[i].kind == GPU_ITEM_LIB32;
	}
	if (libs || lib32) {
		gpu_fd = gpu_dir(root_fd, writable);
		if (gpu_fd < 0)
			return gpu_fd;
		if ((r = bind_libs(p, root_fd, gpu_fd)) < 0)
			return r;
	}
	if ((r = bind_other(p, root_fd, writable)) < 0)
		return r;
	return libs || lib32 ? gpu_ldconfig(root_fd, lib32) : 0;
}
