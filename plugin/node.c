/* What the per-node child does as the job's user (see prepare.c): pick
 * the named container or the image, import it once (imgconv locks per
 * image, so concurrent steps and nodes sharing a cache wait for one pull),
 * and start or find the keeper that holds the container's namespaces. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>
#include "common/conf.h"
#include "common/error.h"
#include "common/lock.h"
#include "common/log.h"
#include "common/util.h"
#include "imgconv/imgconv.h"
#include "launcher/launcher.h"
#include "launcher/mpi.h"
#include "plugin/prepare.h"

static void copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool is_squashfs_path(const char *text)
{
	return text[0] == '/' || text[0] == '.' || str_endswith(text, ".sqsh") ||
	       str_endswith(text, ".squashfs");
}

int node_user_config(const struct pconf *pc, uid_t uid, struct berth_config **out)
{
	struct berth_config *cfg = NULL, *def = NULL;
	_cleanup_free_ char *run = user_runtime_dir(pc, uid);
	int r;

	if (!run)
		return -ENOMEM;
	r = berth_config_load(&cfg, 0);
	if (r < 0)
		return berth_fail_context(r, "configuration");
	r = berth_config_set(cfg, "runtime_dir", run, "plugstack.conf runtime_path");
	/* cache_dir= in plugstack.conf is the site's default: the user's file
	 * or BERTH_CACHE_DIR still win over it. */
	if (r == 0 && pc->cache_dir && berth_config_load(&def, BERTH_CONFIG_NO_FILES |
								  BERTH_CONFIG_NO_ENV) == 0) {
		if (streq(def->cache_dir, cfg->cache_dir)) {
			_cleanup_free_ char *dir = xasprintf("%s/%u", pc->cache_dir, (unsigned)uid);

			r = dir ? berth_config_set(cfg, "cache_dir", dir, "plugstack.conf cache_dir")
				: -ENOMEM;
		}
		berth_config_free(def);
	}
	if (r < 0) {
		berth_config_free(cfg);
		return r;
	}
	*out = cfg;
	return 0;
}

/* image_staging: a node-local copy of a squashfs that lives on a shared
 * filesystem, so FUSE reads page in from local disk.  Keyed by the file's
 * identity; written under a lock to a temporary name, then renamed. */
static int stage(const struct pconf *pc, uid_t uid, const char *src, char **out)
{
	_cleanup_free_ char *dir = xasprintf("%s/%u", pc->image_staging, (unsigned)uid);
	_cleanup_free_ char *dst = NULL, *lock = NULL, *tmp = NULL;
	_cleanup_close_ int lfd = -1, in = -1, o = -1;
	struct stat st;

	if (!dir)
		return -ENOMEM;
	if (stat(src, &st) < 0)
		return berth_fail(-errno, "image '%s'", src);
	dst = xasprintf("%s/%lx-%lx-%lx.sqsh", dir, (unsigned long)st.st_dev,
			(unsigned long)st.st_ino, (unsigned long)st.st_mtime);
	lock = xasprintf("%s/.lock", dir);
	tmp = xasprintf("%s.tmp.%d", dst ? dst : "", (int)getpid());
	if (!dst || !lock || !tmp)
		return -ENOMEM;
	if ((lfd = lock_path(lock, false, true)) < 0)
		return berth_fail(lfd, "lock '%s'", lock);
	if (access(dst, F_OK) == 0) {
		*out = TAKE_PTR(dst);
		return 0;
	}
	in = open(src, O_RDONLY | O_CLOEXEC);
	o = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (in < 0 || o < 0)
		return berth_fail(-errno, "stage '%s' in '%s'", src, dir);
	for (;;) {
		char buf[1 << 16];
		ssize_t n = read(in, buf, sizeof(buf));

		if (n == 0)
			break;
		if (n < 0 || write(o, buf, (size_t)n) != n) {
			int e = errno ? errno : EIO;

			unlink(tmp);
			return berth_fail(-e, "stage '%s' in '%s'", src, dir);
		}
	}
	if (fsync(o) < 0 || rename(tmp, dst) < 0) {
		int e = errno;

		unlink(tmp);
		return berth_fail(-e, "stage '%s' in '%s'", src, dir);
	}
	log_info("staged '%s' as '%s'", src, dst);
	*out = TAKE_PTR(dst);
	return 0;
}

/* The image text to a .sqsh path in the user's cache (or the file given). */
static int resolve_image(struct prep_ctx *p, const struct berth_config *cfg, char **path)
{
	const char *text = p->args->image;
	uint64_t start = realtime_ns();
	struct imgconv_import_opts io = {.flags = IMGCONV_QUIET};
	struct stat st;
	int r;

	if (p->pconf->importer && !is_squashfs_path(text)) {
		_cleanup_free_ char *uri = str_startswith(text, "docker://")
						   ? strdup(text) : xasprintf("docker://%s", text);

		r = uri ? importer_get(p->pconf, uri, path) : -ENOMEM;
	} else {
		r = imgconv_import(cfg, text, &io, path);
	}
	if (r < 0)
		return r;
	/* A fresh import renamed a file written after we started. */
	p->res->imported = !is_squashfs_path(text) && stat(*path, &st) == 0 &&
			   (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec >=
				   start;
	if (p->pconf->image_staging) {
		_cleanup_free_ char *src = TAKE_PTR(*path);

		r = stage(p->pconf, p->job->uid, src, path);
	}
	return r;
}

/* proc and devpts hold magic links and another namespace's view: binding
 * them from the host into a container is refused. */
static int check_sources(const struct launcher_mounts *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct statfs sf;

		if (m->v[i].kind != LAUNCHER_MOUNT_BIND)
			continue;
		if (statfs(m->v[i].source, &sf) < 0)
			return berth_fail(-errno, "mount source '%s'", m->v[i].source);
		if (sf.f_type == PROC_SUPER_MAGIC || sf.f_type == DEVPTS_SUPER_MAGIC)
			return berth_failx(BERTH_EINVAL_INPUT,
					   "mount source '%s': %s filesystems cannot be bound into "
					   "a container",
					   m->v[i].source, sf.f_type == PROC_SUPER_MAGIC ? "proc" : "devpts");
	}
	return 0;
}

static int build_mounts(struct prep_ctx *p, struct launcher_mounts *m)
{
	int r;

	if (p->args->mounts && (r = launcher_mounts_parse(m, p->args->mounts)) < 0)
		return berth_fail_context(r, "--container-mounts");
	if ((r = check_sources(m)) < 0)
		return berth_fail_context(r, "--container-mounts");
	/* The batch script lives in slurmd's spool: slurmstepd execs it by
	 * that path, so it is bound read-only at the same path. */
	if (p->job->script) {
		_cleanup_free_ char *spec = xasprintf("%s:%s:ro+nosuid+nodev", p->job->script,
						      p->job->script);

		if (!spec)
			return -ENOMEM;
		if ((r = launcher_mounts_parse(m, spec)) < 0)
			return berth_fail_context(r, "batch script");
	}
	return 0;
}

static enum launcher_overlay overlay_mode(const char *s)
{
	if (s && streq(s, "kernel"))
		return LAUNCHER_OVERLAY_KERNEL;
	if (s && streq(s, "fuse"))
		return LAUNCHER_OVERLAY_FUSE;
	return LAUNCHER_OVERLAY_AUTO;
}

static int start_keeper(struct prep_ctx *p, const struct berth_config *cfg, const char *image,
			const char *name, struct launcher_container **out)
{
	const struct args *a = p->args;
	struct launcher_mounts m = {0};
	struct launcher_opts lo;
	struct mpi_plan *mpi = NULL;
	struct gpu_plan *gpu = NULL;
	char host[256] = "";
	int r = build_mounts(p, &m);

	if (r < 0) {
		launcher_mounts_clear(&m);
		return r;
	}
	/* uts: the node's name, in a namespace of its own */
	if (args_unshares("uts") && gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "container");
	lo = (struct launcher_opts){
		.image = image, .name = name, .mounts = &m,
		.writable = a->writable >= 0 ? a->writable : (name || cfg->writable),
		.remap_root = a->remap_root >= 0 ? a->remap_root : cfg->remap_root,
		.mount_home = a->mount_home >= 0 ? a->mount_home : cfg->mount_home,
		.hostname = args_unshares("uts") ? host : NULL,
		.unshare_net = args_unshares("net"),
		.unshare_ipc = args_unshares("ipc"),
		.overlay = overlay_mode(cfg->overlay),
	};
	if (name && !lo.writable)
		r = berth_failx(BERTH_EINVAL_INPUT, "--container-readonly: container '%s' is "
				"named, and a named container is always writable", a->name);
	else if ((r = node_gpu_plan(p->job, image, cfg->gpu_driver_root, false, &gpu)) == 0 &&
		 (r = mpi_plan(cfg->gpu_driver_root, cfg->mpi_inject_verbs, &mpi)) == 0) {
		lo.gpu = gpu;
		lo.mpi = mpi;
		r = launcher_create(cfg, &lo, out);
	}
	mpi_plan_free(mpi);
	gpu_plan_free(gpu);
	launcher_mounts_clear(&m);
	return r;
}

/* Processes in the named container's keeper, 0 when it is not running. */
static unsigned named_users(const struct berth_config *cfg, const char *name)
{
	struct launcher_entry *v = NULL;
	size_t n = 0;
	unsigned users = 0;

	if (launcher_list(cfg, &v, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (v[i].name && v[i].dir && streq(v[i].name, name))
			users = v[i].users;
	launcher_list_free(v, n);
	return users;
}

/* --container-name: join it while it runs, else start it from its saved
 * layer, else create it from --container-image (pyxis's rules). */
static int named(struct prep_ctx *p, const struct berth_config *cfg, const char *name,
		 struct launcher_container **out)
{
	const struct args *a = p->args;
	_cleanup_free_ char *image = NULL;
	bool exists, running;
	int r;

	exists = launcher_named_image(cfg, name, &image) == 0;
	berth_error_clear();
	/* Running: some process is in it.  A keeper that only lingers after
	 * its last user is joined too, but counts as stopped for :exec. */
	running = exists && named_users(cfg, name) > 0;
	if (a->name_mode == NAME_CREATE && exists)
		return berth_failx(BERTH_EINVAL_INPUT, "--container-name=%s:create: the container "
				   "already exists", a->name);
	if (a->name_mode == NAME_EXEC && !running)
		return berth_failx(BERTH_EINVAL_INPUT, "--container-name=%s:exec: the container is "
				   "not running", a->name);
	if (a->name_mode == NAME_NO_EXEC && running)
		return berth_failx(BERTH_EINVAL_INPUT, "--container-name=%s:no_exec: the container "
				   "is running, and one named container cannot run twice (join it "
				   "with :exec or :auto)", a->name);
	if (running && launcher_open(cfg, name, out) < 0) {
		running = false; /* it stopped meanwhile: start it again */
		berth_error_clear();
	}
	if (running) {
		if (a->mounts)
			log_warn("ignoring --container-mounts when attaching to a running container");
		p->res->reused = true;
		copy_str(p->res->image, sizeof(p->res->image), image);
		return 0;
	}
	if (!exists) {
		if (!a->image)
			return berth_failx(BERTH_ENOTFOUND, "--container-name=%s: no such container, "
					   "and --container-image is not set", a->name);
		free(image);
		image = NULL;
		if ((r = resolve_image(p, cfg, &image)) < 0 ||
		    (r = launcher_named_create(cfg, name, image)) < 0)
			return r;
	}
	copy_str(p->res->image, sizeof(p->res->image), image);
	return start_keeper(p, cfg, image, name, out);
}

int prepare_container(struct prep_ctx *p, struct launcher_container **out)
{
	struct berth_config *cfg = NULL;
	_cleanup_free_ char *image = NULL, *name = NULL;
	int r = node_user_config(p->pconf, p->job->uid, &cfg);

	if (r < 0)
		return r;
	copy_str(p->res->runtime_dir, sizeof(p->res->runtime_dir), cfg->runtime_dir);
	copy_str(p->res->gpu_root, sizeof(p->res->gpu_root), cfg->gpu_driver_root);
	if ((r = mkdir_p(cfg->runtime_dir, 0700)) < 0) {
		r = berth_fail(r, "runtime directory '%s'", cfg->runtime_dir);
	} else if ((r = save_check(p)) < 0) {
		/* before anything runs: a bad --container-save fails the step */
	} else if (p->args->name) {
		name = scoped_name(p->pconf, p->args->name, p->job->jobid);
		r = name ? named(p, cfg, name, out) : -ENOMEM;
	} else if ((r = resolve_image(p, cfg, &image)) == 0) {
		copy_str(p->res->image, sizeof(p->res->image), image);
		r = start_keeper(p, cfg, image, NULL, out);
	}
	if (r == 0)
		copy_str(p->res->state_dir, sizeof(p->res->state_dir), launcher_state_dir(*out));
	/* A running named container that was joined has started already. */
	if (r == 0 && !p->res->reused &&
	    (p->args->entrypoint == 1 ||
	     (p->args->entrypoint == -1 && p->pconf->execute_entrypoint)))
		r = entrypoint_run(p, *out, p->res->image);
	berth_config_free(cfg);
	return r;
}

/* container_scope=job, at the job's end: stop and remove the job's named
 * containers ("j<jobid>_*").  Runs as the user, after the job's tasks. */
int node_cleanup_job(const struct pconf *pc, const struct job *job, void *arg)
{
	struct berth_config *cfg = NULL;
	struct launcher_entry *v = NULL;
	_cleanup_free_ char *prefix = xasprintf("j%u_", (unsigned)job->jobid);
	size_t n = 0;
	int r = prefix ? node_user_config(pc, job->uid, &cfg) : -ENOMEM, rc = 0;

	if (r < 0)
		return r;
	if (access(cfg->runtime_dir, F_OK) < 0 || launcher_list(cfg, &v, &n) < 0) {
		berth_config_free(cfg);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (!v[i].name || !str_startswith(v[i].name, prefix))
			continue;
		if (v[i].dir && v[i].keeper > 0)
			kill(v[i].keeper, SIGKILL);
		/* The keeper's socket goes with it; give it a moment. */
		for (int t = 0; t < 50 && (r = launcher_named_remove(cfg, v[i].name)) ==
						   BERTH_EINVAL_INPUT; t++)
			usleep(100 * 1000);
		if (r < 0 && r != BERTH_ENOTFOUND) {
			log_error("remove container '%s': %s", v[i].name, berth_errmsg(r));
			rc = r;
		} else {
			log_info("removed container '%s'", v[i].name);
		}
	}
	launcher_cleanup_stale(cfg);
	launcher_list_free(v, n);
	berth_config_free(cfg);
	return rc;
}

/* At the step's end: the importer's "release". */
int node_release(const struct pconf *pc, const struct job *job, void *arg)
{
	(void)job;
	(void)arg;
	if (pc->importer)
		importer_release(pc);
	return 0;
}
