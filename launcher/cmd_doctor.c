/* berth doctor: what an admin checks before a rollout, one verdict a line. */
#include "config.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/magic.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/cli.h"
#include "launcher/userns.h"

#ifndef PLUGINDIR
#define PLUGINDIR ""
#endif

enum verdict { OK, FAIL, INFO };

struct doctor {
	int failures;
};

static void report(struct doctor *d, enum verdict v, const char *what, const char *fmt, ...)
	_printf_(4, 5);

static void report(struct doctor *d, enum verdict v, const char *what, const char *fmt, ...)
{
	static const char *const tag[] = {"ok", "FAIL", "info"};
	va_list ap;

	printf("%-5s %-28s ", tag[v], what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (v == FAIL)
		d->failures++;
}

/* Run fn in a child process; its exit status is the result (0 = works). */
static int in_child(int (*fn)(const char *), const char *arg)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(fn(arg) == 0 ? 0 : 1);
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int try_userns(const char *unused)
{
	(void)unused;
	return userns_enter(false, CLONE_NEWNS);
}

static int read_sysctl(const char *path, long *v)
{
	_cleanup_free_ char *buf = NULL;

	if (read_file(path, 4096, &buf, NULL) < 0)
		return -1;
	*v = strtol(buf, NULL, 10);
	return 0;
}

static bool check_userns(struct doctor *d)
{
	long v;

	if (in_child(try_userns, NULL) == 0) {
		report(d, OK, "user namespaces", "unprivileged user namespaces work");
		return true;
	}
	if (read_sysctl("/proc/sys/kernel/unprivileged_userns_clone", &v) == 0 && v == 0)
		report(d, FAIL, "user namespaces",
		       "disabled: sysctl -w kernel.unprivileged_userns_clone=1");
	else if (read_sysctl("/proc/sys/user/max_user_namespaces", &v) == 0 && v == 0)
		report(d, FAIL, "user namespaces",
		       "disabled: sysctl -w user.max_user_namespaces=15000");
	else if (read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", &v) == 0 &&
		 v == 1)
		report(d, FAIL, "user namespaces",
		       "blocked by AppArmor: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0");
	else
		report(d, FAIL, "user namespaces", "unshare(CLONE_NEWUSER) refused: %s",
		       berth_errmsg(-EPERM));
	return false;
}

static bool check_dev_fuse(struct doctor *d)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		report(d, FAIL, "/dev/fuse", "cannot open: %s (an admin can run: chmod 0666 /dev/fuse)",
		       strerror(errno));
		return false;
	}
	close(fd);
	report(d, OK, "/dev/fuse", "usable");
	return true;
}

/* In a new user+mount namespace, mount a FUSE filesystem (the way the
 * launcher mounts squashfs images) on dir.  The kernel accepts the mount
 * before any request is served, so no server is needed to test it. */
static int try_fuse_mount(const char *dir)
{
	char opts[128];
	int fd;

	if (userns_enter(false, CLONE_NEWNS) < 0)
		return -1;
	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=%u,group_id=%u", fd,
		 (unsigned)getuid(), (unsigned)getgid());
	if (mount("berth-doctor", dir, "fuse.squashfuse", MS_NOSUID | MS_NODEV, opts) < 0)
		return -1;
	return umount2(dir, MNT_DETACH);
}

static int try_overlay(const char *dir)
{
	_cleanup_free_ char *lower = path_join(dir, "l"), *upper = path_join(dir, "u"),
			    *work = path_join(dir, "w"), *merged = path_join(dir, "m"),
			    *opts = NULL;

	if (userns_enter(false, CLONE_NEWNS) < 0)
		return -1;
	if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -1;
	if (mount("tmpfs", dir, "tmpfs", 0, "mode=0700") < 0)
		return -1;
	if (mkdir(lower, 0700) < 0 || mkdir(upper, 0700) < 0 || mkdir(work, 0700) < 0 ||
	    mkdir(merged, 0700) < 0)
		return -1;
	opts = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
	if (!opts || mount("overlay", merged, "overlay", 0, opts) < 0)
		return -1;
	return 0;
}

static bool in_path(const char *prog)
{
	_cleanup_strv_ char **dirs = strv_split(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin", ':');

	for (size_t i = 0; dirs && dirs[i]; i++) {
		_cleanup_free_ char *p = path_join(dirs[i], prog);

		if (p && access(p, X_OK) == 0)
			return true;
	}
	return false;
}

static bool check_dir(struct doctor *d, const char *what, const char *dir)
{
	int r = mkdir_p(dir, 0700);

	if (r == 0 && access(dir, W_OK | X_OK) < 0)
		r = -errno;
	if (r < 0) {
		report(d, FAIL, what, "%s: %s", dir, strerror(-r));
		return false;
	}
	report(d, OK, what, "%s writable", dir);
	return true;
}

static void check_slurm(struct doctor *d)
{
	_cleanup_free_ char *so = path_join(PLUGINDIR, "spank_berth.so");
	glob_t g;
	bool listed = false;
	void *h;

	if (!*PLUGINDIR || access(so, F_OK) < 0) {
		report(d, INFO, "Slurm plugin", "spank_berth.so not installed (built without Slurm?)");
		return;
	}
	h = dlopen(so, RTLD_LAZY | RTLD_LOCAL);
	if (!h) {
		report(d, FAIL, "Slurm plugin", "%s does not load: %s", so, dlerror());
		return;
	}
	dlclose(h);
	if (glob("/etc/slurm/plugstack.conf*", 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc && !listed; i++) {
			_cleanup_free_ char *buf = NULL;

			if (read_file(g.gl_pathv[i], 0, &buf, NULL) == 0 && strstr(buf, "spank_berth"))
				listed = true;
		}
		globfree(&g);
	}
	report(d, OK, "Slurm plugin", "%s loads%s", so,
	       listed ? ", listed in plugstack.conf" : "; not yet in /etc/slurm/plugstack.conf");
}

/* The image side (import, images, ...) runs in berth-image. */
static void check_image_helper(struct doctor *d)
{
	_cleanup_free_ char *path = NULL;
	int r = image_helper_path(&path);

	if (r < 0)
		report(d, FAIL, "image helper", "%s: berth import and image references fail "
		       "(reinstall berth)", berth_errmsg(r));
	else
		report(d, OK, "image helper", "%s", path);
}

static void check_cgroup(struct doctor *d)
{
	struct statfs fs;

	if (statfs("/sys/fs/cgroup", &fs) < 0)
		report(d, INFO, "cgroups", "/sys/fs/cgroup not mounted");
	else if (fs.f_type == CGROUP2_SUPER_MAGIC)
		report(d, INFO, "cgroups", "v2 (unified)");
	else
		report(d, INFO, "cgroups", "v1 (legacy or hybrid)");
}

int cmd_doctor(struct berth_config *cfg, int argc, char **argv)
{
	struct doctor d = {0};
	_cleanup_free_ char *probe = NULL;
	bool userns, fuse;

	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("Usage: berth doctor\n"
		       "Check this host for what berth needs; exit 0 only if containers can run.\n");
		return 0;
	}
	if (argc > 1) {
		cli_error("doctor: unexpected argument '%s'", argv[1]);
		return 2;
	}
	userns = check_userns(&d);
	fuse = check_dev_fuse(&d);
	if (check_dir(&d, "runtime directory", cfg->runtime_dir))
		probe = xasprintf("%s/doctor.%d", cfg->runtime_dir, (int)getpid());
	check_dir(&d, "cache directory", cfg->cache_dir);
	if (probe && mkdir(probe, 0700) < 0) {
		free(probe);
		probe = NULL;
	}
	if (userns && fuse && probe) {
		if (in_child(try_fuse_mount, probe) == 0)
			report(&d, OK, "squashfuse", "FUSE mounts work in a user namespace");
		else
			report(&d, FAIL, "squashfuse",
			       "FUSE mount refused in a user namespace (kernel >= 4.18 needed)");
	} else {
		report(&d, FAIL, "squashfuse", "needs user namespaces and /dev/fuse");
	}
	if (userns && probe && in_child(try_overlay, probe) == 0)
		report(&d, OK, "overlay", "kernel overlayfs works in a user namespace");
	else if (in_path("fuse-overlayfs"))
		report(&d, OK, "overlay", "fuse-overlayfs (kernel overlayfs refused in a user namespace)");
	else
		report(&d, FAIL, "overlay",
		       "neither kernel overlayfs in a user namespace nor fuse-overlayfs: "
		       "install fuse-overlayfs, or run with --readonly");
	if (probe)
		rmdir(probe);
	check_image_helper(&d);
	check_slurm(&d);
	check_cgroup(&d);
	if (d.failures) {
		printf("berth cannot run containers here: %d check%s failed\n", d.failures,
		       d.failures == 1 ? "" : "s");
		return 1;
	}
	printf("berth can run containers here\n");
	return 0;
}
