/* Create, find, join and release keepers (launcher.h "containers"). */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/error.h"
#include "common/lock.h"
#include "common/log.h"
#include "common/util.h"
#include "common/sha256.h"
#include "imgconv/imgconv.h"
#include "launcher/container.h"
#include "launcher/gpu.h"
#include "launcher/keeper.h"
#include "launcher/launcher.h"
#include "launcher/mpi.h"
#include "launcher/rootfs.h"
#include "launcher/sqfuse.h"

struct launcher_container {
	char *dir;
	int ref_fd;
	pid_t keeper;
	pid_t held;   /* this process is tracked by pidfd already (hold_caller) */
	bool own_uts;
	bool built_here; /* this process built the container and is in it */
	/* built_here: its record in running/, written by launcher_settle() */
	int run_fd;
	char run_name[32];
	char *run_text;
};

pid_t launcher_keeper_pid(const struct launcher_container *c)
{
	return c->keeper;
}

const char *launcher_state_dir(const struct launcher_container *c)
{
	return c->dir;
}

void launcher_release(struct launcher_container *c)
{
	if (!c)
		return;
	if (c->ref_fd >= 0)
		close(c->ref_fd);
	if (c->built_here && c->run_fd >= 0)
		close(c->run_fd);
	free(c->run_text);
	free(c->dir);
	free(c);
}

/* Everything that changes what the keeper builds goes into its key, so a
 * run joins only a keeper that would look the same as a fresh one. */
static int options_key(const struct launcher_opts *o, char out[33])
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	unsigned char md[SHA256_BYTES];
	struct stat st;

	if (!f)
		return -ENOMEM;
	if (stat(o->image, &st) == 0)
		fprintf(f, "%s %lu %lu %ld\n", o->image, (unsigned long)st.st_dev,
			(unsigned long)st.st_ino, (long)st.st_mtime);
	fprintf(f, "w%d r%d h%d o%d n=%s host=%s net%d ipc%d\n", o->writable, o->remap_root,
		o->mount_home, o->overlay, o->name ? o->name : "", o->hostname ? o->hostname : "",
		o->unshare_net, o->unshare_ipc);
	fprintf(f, "home=%s\n", getenv("HOME") ? getenv("HOME") : "");
	for (size_t i = 0; o->mounts && i < o->mounts->n; i++) {
		const struct launcher_mount *m = &o->mounts->v[i];

		fprintf(f, "m %d %s %s %u\n", m->kind, m->source ? m->source : "", m->target,
			m->flags);
	}
	gpu_plan_describe(o->gpu, f);
	mpi_plan_describe(o->mpi, f);
	if (fclose(f) != 0)
		return -ENOMEM;
	sha256_small(text, len, md);
	for (unsigned i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static int preflight(const struct launcher_opts *o)
{
	/* Its messages name the image already. */
	int r = imgconv_check_squashfs(o->image);

	if (r < 0)
		return r;
	for (size_t i = 0; o->mounts && i < o->mounts->n; i++) {
		const struct launcher_mount *m = &o->mounts->v[i];

		if (m->kind == LAUNCHER_MOUNT_BIND && access(m->source, F_OK) < 0)
			return berth_fail(-errno, "mount source '%s'", m->source);
	}
	return 0;
}

/* Connect with "ref" (or "hold": the caller itself is tracked until it
 * exits).  Under runtime_dir/lock: the keeper, deciding to exit under the
 * same lock, then sees this connection and stays. */
static int ref_send(const char *dir, bool hold, struct launcher_container **out)
{
	_cleanup_free_ struct launcher_container *c = calloc(1, sizeof(*c));

	if (!c || !(c->dir = strdup(dir)))
		return -ENOMEM;
	c->held = hold ? getpid() : 0;
	c->ref_fd = keeper_connect(dir, hold ? "hold" : "ref", &c->keeper);
	if (c->ref_fd < 0) {
		int r = c->ref_fd;

		free(c->dir);
		return r;
	}
	*out = TAKE_PTR(c);
	return 0;
}

/* The keeper's answer; only after the lock is released, since a keeper
 * about to linger out may be waiting for it. */
static int ref_wait(struct launcher_container **c)
{
	char buf[16] = "";
	ssize_t n = read((*c)->ref_fd, buf, sizeof(buf) - 1);

	if (n >= 3 && strncmp(buf, "ok", 2) == 0)
		return 0;
	launcher_release(*c);
	*c = NULL;
	return berth_failx(BERTH_ECHILD_FAILED, "the container keeper went away");
}

/* A handle on a keeper that tracks this process since its start: no
 * connection, no round trip (launcher_opts.hold_caller). */
static int held_by(const char *dir, pid_t keeper, struct launcher_container **out)
{
	struct launcher_container *c = calloc(1, sizeof(*c));

	if (!c || !(c->dir = strdup(dir))) {
		free(c);
		return -ENOMEM;
	}
	c->ref_fd = -1;
	c->keeper = keeper;
	c->held = getpid();
	*out = c;
	return 0;
}

static int take_ref(const char *dir, struct launcher_container **out)
{
	int r = ref_send(dir, false, out);

	return r < 0 ? r : ref_wait(out);
}

static int write_info(const char *dir, const struct launcher_opts *o, const char *key)
{
	_cleanup_free_ char *path = path_join(dir, "info"),
			    *text = xasprintf("image=%s\nname=%s\nkey=%s\nhostname=%s\n", o->image,
					      o->name ? o->name : "", key,
					      o->hostname ? o->hostname : "");

	if (!path || !text)
		return -ENOMEM;
	return write_file_runtime(path, text, strlen(text), 0600);
}

static int make_state_dir(const char *dir)
{
	static const char *const sub[] = {"lower", "root", "rw"};

	if (mkdir(dir, 0700) < 0)
		return berth_fail(-errno, "create '%s'", dir);
	for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
		_cleanup_free_ char *p = path_join(dir, sub[i]);

		if (!p || mkdir(p, 0700) < 0)
			return berth_fail(p ? -errno : -ENOMEM, "create '%s'", dir);
	}
	return 0;
}

struct who {
	char *home, *user, *group, *shell;
};

static void who_clear(struct who *w)
{
	free(w->home);
	free(w->user);
	free(w->group);
	free(w->shell);
}

static int who_am_i(struct who *w)
{
	struct passwd *pw = getpwuid(getuid());
	struct group *gr = getgrgid(getgid());
	const char *home = getenv("HOME");

	if (!home || home[0] != '/')
		home = pw ? pw->pw_dir : "/";
	w->home = strdup(home);
	w->user = pw ? strdup(pw->pw_name) : xasprintf("u%u", (unsigned)getuid());
	w->group = gr ? strdup(gr->gr_name) : xasprintf("g%u", (unsigned)getgid());
	w->shell = strdup(pw && pw->pw_shell && *pw->pw_shell ? pw->pw_shell : "/bin/sh");
	return w->home && w->user && w->group && w->shell ? 0 : -ENOMEM;
}

/* Read the keeper's status line: "ok PID" or "<code> <message>". */
static int read_status(int fd, pid_t *keeper)
{
	char buf[1024];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	char *msg;
	long code;

	if (n <= 0)
		return berth_failx(BERTH_ECHILD_FAILED, "the container keeper died while starting");
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (str_startswith(buf, "ok ")) {
		*keeper = (pid_t)strtol(buf + 3, NULL, 10);
		return 0;
	}
	code = strtol(buf, &msg, 10);
	if (code >= 0 || code < -(BERTH_EBASE + 100))
		code = BERTH_ECHILD_FAILED;
	return berth_failx((int)code, "%s", *msg ? msg + 1 : "the container keeper failed");
}

/* running/<pid>-<start time>: a container built by its caller (no keeper),
 * for ps and exec; the name identifies the process even after its pid is
 * reused.  Prepared here (the directory opened: the path is gone once
 * inside), written by launcher_settle() when the container is complete. */
static int running_record(const struct berth_config *cfg, const struct launcher_opts *o,
			  const char *hash, struct launcher_container *c)
{
	_cleanup_free_ char *dir = path_join(cfg->runtime_dir, "running");

	c->run_text = xasprintf("image=%s\nname=\nkey=%s\nhostname=%s\n", o->image, hash,
				o->hostname ? o->hostname : "");
	if (!dir || !c->run_text)
		return -ENOMEM;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return berth_fail(-errno, "create '%s'", dir);
	c->run_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (c->run_fd < 0)
		return berth_fail(-errno, "open '%s'", dir);
	snprintf(c->run_name, sizeof(c->run_name), "%d-%llu", (int)getpid(),
		 launcher_proc_start(getpid()));
	return 0;
}

void launcher_settle(struct launcher_container *c)
{
	_cleanup_close_ int fd = -1;
	size_t len;

	if (!c || !c->built_here || c->run_fd < 0 || !c->run_text)
		return;
	/* Best effort: without it ps and exec by PID do not find the container. */
	len = strlen(c->run_text);
	fd = openat(c->run_fd, c->run_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, c->run_text, len) != (ssize_t)len)
		log_debug("record the container in running/: %s", strerror(errno));
}

/* What a rootfs_plan points to besides the options. */
struct plan_data {
	struct who w;
	char *upper;
	struct launcher_facts *facts; /* read here when the caller did not */
};

static void plan_data_clear(struct plan_data *d)
{
	who_clear(&d->w);
	free(d->upper);
	launcher_facts_free(d->facts);
}

static int plan_init(const struct berth_config *cfg, const struct launcher_opts *o,
		     const char *dir, struct plan_data *d, struct rootfs_plan *plan)
{
	int r;

	*d = (struct plan_data){0};
	d->upper = o->name ? launcher_named_dir(cfg, o->name) : NULL;
	if ((o->name && !d->upper) || (r = who_am_i(&d->w)) < 0) {
		plan_data_clear(d);
		return -ENOMEM;
	}
	/* Unreadable here: the keeper looks in the mount instead. */
	if (!o->facts && launcher_facts_read(o->image, d->w.home, &d->facts) < 0)
		berth_error_clear();
	*plan = (struct rootfs_plan){
		.opts = o, .state_dir = dir, .upper_dir = d->upper,
		.facts = o->facts ? o->facts : d->facts,
		.uid = o->remap_root ? 0 : getuid(), .gid = o->remap_root ? 0 : getgid(),
		.home = d->w.home, .user_name = d->w.user, .group_name = d->w.group,
		.shell = d->w.shell,
	};
	return 0;
}

/* Start the keeper and wait for its status; on success *keeper is its pid
 * and, with o->hold_caller, the keeper tracks this process already. */
static int spawn_keeper(const struct berth_config *cfg, const struct launcher_opts *o,
			const char *dir, const char *key, pid_t *keeper)
{
	struct plan_data d;
	struct keeper_args a = {0};
	int sp[2], r, status;
	pid_t pid;

	if ((r = plan_init(cfg, o, dir, &d, &a.plan)) < 0)
		return r;
	a.runtime_dir = cfg->runtime_dir;
	a.key = key;
	a.linger = cfg->mount_linger;
	a.hold_pid = o->hold_caller ? getpid() : 0;
	if (pipe2(sp, O_CLOEXEC) < 0) {
		plan_data_clear(&d);
		return berth_fail(-errno, "pipe");
	}
	pid = fork();
	if (pid == 0) {
		/* Double fork: the keeper is nobody's child to wait for, and
		 * its own session keeps it out of the caller's job control. */
		close(sp[0]);
		setsid();
		if (fork() != 0)
			_exit(0);
		a.status_fd = sp[1];
		keeper_main(&a);
	}
	close(sp[1]);
	plan_data_clear(&d);
	if (pid < 0) {
		close(sp[0]);
		return berth_fail(-errno, "fork");
	}
	/* The status first: the middle process exits while the keeper
	 * builds the root, so this waitpid does not wait for a wake-up. */
	r = read_status(sp[0], keeper);
	close(sp[0]);
	waitpid(pid, &status, 0);
	return r;
}

struct launcher_server {
	struct sqfuse sq;
	bool taken;
};

static bool builds_here(const struct berth_config *cfg, const struct launcher_opts *o)
{
	return o->build_here && o->hold_caller && cfg->mount_linger == 0 && !o->name;
}

static int server_start(const struct launcher_opts *o, struct sqfuse *sq)
{
	return sqfuse_start(o->image, o->remap_root ? 0 : getuid(), o->remap_root ? 0 : getgid(),
			    SQFUSE_DETACH, sq);
}

struct launcher_server *launcher_prestart(const struct berth_config *cfg,
					  const struct launcher_opts *o)
{
	struct launcher_server *s;

	if (!builds_here(cfg, o) || !(s = calloc(1, sizeof(*s))))
		return NULL;
	if (server_start(o, &s->sq) < 0) {
		berth_error_clear();
		free(s);
		return NULL;
	}
	return s;
}

void launcher_server_free(struct launcher_server *s)
{
	if (!s)
		return;
	if (!s->taken)
		sqfuse_close(&s->sq);
	free(s);
}

/* No keeper needed (build_here, mount_linger 0, unnamed): this process
 * builds the container in namespaces of its own and will exec the payload
 * in it, as ch-run does.  The FUSE server is the only other process; it
 * ends with the mount namespace, i.e. with the container's last process.
 * A record in running/ lets ps and exec find the container; the next
 * berth call removes it once that process is gone.  Called with the
 * runtime lock held in *lock_fd; releases it before building. */
static int build_here(const struct berth_config *cfg, const struct launcher_opts *o,
		      const char *hash, int *lock_fd, struct launcher_container **out)
{
	_cleanup_free_ char *mnt = path_join(cfg->runtime_dir, "mnt");
	struct launcher_container *c = calloc(1, sizeof(*c));
	struct rootfs_plan plan;
	struct plan_data d;
	struct sqfuse sq;
	int r;

	if (!mnt || !c) {
		free(c);
		return -ENOMEM;
	}
	c->ref_fd = c->run_fd = -1;
	c->built_here = true;
	/* First: the server opens the image while this process goes on. */
	if (o->server && !o->server->taken) {
		sq = o->server->sq;
		o->server->taken = true;
		r = 0;
	} else {
		r = server_start(o, &sq);
	}
	if (r < 0) {
		launcher_release(c);
		return r;
	}
	if (mkdir(mnt, 0700) < 0 && errno != EEXIST)
		r = berth_fail(-errno, "create '%s'", mnt);
	if (r == 0)
		r = running_record(cfg, o, hash, c);
	close(TAKE_FD(*lock_fd));
	if (r == 0 && (r = plan_init(cfg, o, mnt, &d, &plan)) == 0) {
		plan.in_caller = true;
		r = rootfs_create(&plan, &sq);
		plan_data_clear(&d);
	}
	sqfuse_close(&sq);
	if (r < 0) {
		launcher_release(c);
		return r;
	}
	c->dir = xasprintf("%s/running/%s", cfg->runtime_dir, c->run_name);
	c->keeper = c->held = getpid();
	*out = c;
	return 0;
}

static char *keeper_dir(const struct berth_config *cfg, const char *key)
{
	return xasprintf("%s/keepers/%s", cfg->runtime_dir, key);
}

static int key_for(const struct launcher_opts *o, char *key, size_t size)
{
	char hash[33];
	int r = options_key(o, hash);

	if (r < 0)
		return r;
	if (o->name)
		snprintf(key, size, "n-%s", o->name);
	else
		snprintf(key, size, "k-%s", hash);
	return 0;
}

/* A named container's keeper must have been built with the same options. */
static int check_same(const char *dir, const struct launcher_opts *o)
{
	_cleanup_free_ char *info = path_join(dir, "info"), *text = NULL, *want = NULL;
	char hash[33];

	if (!info || options_key(o, hash) < 0)
		return -ENOMEM;
	if (read_file(info, 0, &text, NULL) < 0)
		return 0;
	want = xasprintf("key=%s\n", hash);
	if (want && !strstr(text, want))
		return berth_failx(BERTH_EINVAL_INPUT,
				   "container '%s' is running with other options; use "
				   "'berth exec %s' or stop it first",
				   o->name, o->name);
	return 0;
}

int launcher_create(const struct berth_config *cfg, const struct launcher_opts *o,
		    struct launcher_container **out)
{
	_cleanup_free_ char *lock = path_join(cfg->runtime_dir, "lock"),
			    *keepers = path_join(cfg->runtime_dir, "keepers"), *dir = NULL;
	_cleanup_close_ int lock_fd = -1;
	char key[128], hash[33];
	pid_t keeper = 0;
	int r;

	if (!lock || !keepers)
		return -ENOMEM;
	if ((r = preflight(o)) < 0)
		return r;
	if ((r = key_for(o, key, sizeof(key))) < 0 || (r = options_key(o, hash)) < 0)
		return r;
	if ((r = mkdir_p(keepers, 0700)) < 0)
		return berth_fail(r, "create '%s'", keepers);
	lock_fd = lock_path(lock, false, true);
	if (lock_fd < 0)
		return berth_fail(lock_fd, "lock '%s'", lock);
	launcher_cleanup_locked(cfg);
	dir = keeper_dir(cfg, key);
	if (!dir)
		return -ENOMEM;
	if (access(dir, F_OK) == 0) {
		if (o->name && (r = check_same(dir, o)) < 0)
			return r;
		if (ref_send(dir, o->hold_caller, out) == 0) {
			close(TAKE_FD(lock_fd));
			log_debug("joining the running keeper %d in '%s'", (int)(*out)->keeper, dir);
			return ref_wait(out);
		}
		rm_rf(dir);
	}
	if (builds_here(cfg, o))
		return build_here(cfg, o, hash, &lock_fd, out);
	if ((r = make_state_dir(dir)) < 0 || (r = write_info(dir, o, hash)) < 0) {
		rm_rf(dir);
		return r;
	}
	r = spawn_keeper(cfg, o, dir, key, &keeper);
	if (r == 0 && o->hold_caller)
		return held_by(dir, keeper, out);
	if (r == 0)
		r = ref_send(dir, false, out);
	if (r < 0) {
		int saved = r;

		rm_rf(dir);
		return saved;
	}
	close(TAKE_FD(lock_fd));
	return ref_wait(out);
}

int launcher_open(const struct berth_config *cfg, const char *dir_or_name,
		  struct launcher_container **out)
{
	_cleanup_free_ char *dir = NULL;
	int r;

	if (strchr(dir_or_name, '/'))
		dir = strdup(dir_or_name);
	else
		dir = xasprintf("%s/keepers/n-%s", cfg->runtime_dir, dir_or_name);
	if (!dir)
		return -ENOMEM;
	r = take_ref(dir, out);
	if (r < 0)
		return berth_failx(BERTH_ENOTFOUND, "container '%s' is not running", dir_or_name);
	return 0;
}

static bool same_ns(pid_t pid, const char *ns)
{
	char p[64];
	struct stat a, b;

	snprintf(p, sizeof(p), "/proc/%d/ns/%s", (int)pid, ns);
	if (stat(p, &a) < 0)
		return false;
	snprintf(p, sizeof(p), "/proc/self/ns/%s", ns);
	return stat(p, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

/* The namespaces a container may have of its own, in setns order: the
 * user namespace first (it owns the others). */
static const struct {
	const char *name;
	int type;
} ns_order[] = {{"user", CLONE_NEWUSER}, {"mnt", CLONE_NEWNS}, {"uts", CLONE_NEWUTS},
		{"net", CLONE_NEWNET}, {"ipc", CLONE_NEWIPC}};

/* setns by /proc/PID/ns files: the fallback for kernels without pidfd
 * setns (< 5.8), and how berth exec joins an arbitrary process.  flags:
 * which of ns_order to join. */
static int join_ns_files(pid_t pid, int flags)
{
	int fds[ARRAY_SIZE(ns_order)], r = 0;

	for (size_t i = 0; i < ARRAY_SIZE(ns_order); i++)
		fds[i] = -1;
	for (size_t i = 0; i < ARRAY_SIZE(ns_order) && r == 0; i++) {
		char p[64];

		if (!(flags & ns_order[i].type))
			continue;
		snprintf(p, sizeof(p), "/proc/%d/ns/%s", (int)pid, ns_order[i].name);
		fds[i] = open(p, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0)
			r = berth_fail(-errno, "open '%s'", p);
	}
	for (size_t i = 0; i < ARRAY_SIZE(ns_order) && r == 0; i++)
		if (fds[i] >= 0 && setns(fds[i], ns_order[i].type) < 0)
			r = berth_fail(-errno, "join the %s namespace of process %d",
				       ns_order[i].name, (int)pid);
	for (size_t i = 0; i < ARRAY_SIZE(ns_order); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return r;
}

/* User and mount always; UTS, network and IPC where pid's differ from
 * ours (the container has its own). */
static int ns_to_join(pid_t pid)
{
	int flags = CLONE_NEWUSER | CLONE_NEWNS;

	for (size_t i = 2; i < ARRAY_SIZE(ns_order); i++)
		if (!same_ns(pid, ns_order[i].name))
			flags |= ns_order[i].type;
	return flags;
}

static int join_keeper_ns(pid_t pid)
{
	int flags = ns_to_join(pid);
	long pfd = syscall(SYS_pidfd_open, pid, 0);
	int r;

	if (pfd < 0)
		return join_ns_files(pid, flags);
	/* One call joins them all in the right order (setns(2), 5.8+). */
	r = setns((int)pfd, flags);
	close((int)pfd);
	if (r == 0)
		return 0;
	if (errno != EINVAL)
		return berth_fail(-errno, "join the container of keeper %d", (int)pid);
	return join_ns_files(pid, flags);
}

int launcher_join(struct launcher_container *c)
{
	_cleanup_close_ int fd = -1;
	char buf[16] = "";
	pid_t peer = 0;
	ssize_t n;

	if (c->built_here && c->held == getpid())
		return 0;
	if (c->held == getpid())
		return join_keeper_ns(c->keeper);
	fd = keeper_connect(c->dir, "hold", &peer);
	if (fd < 0)
		return berth_fail(fd, "contact the container keeper in '%s'", c->dir);
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 2 || strncmp(buf, "ok", 2) != 0)
		return berth_failx(BERTH_ECHILD_FAILED, "the container keeper refused to track us");
	/* Tracked by pidfd from here on; the connection may go. */
	return join_keeper_ns(peer);
}

int launcher_join_pid(pid_t pid)
{
	char p[64];

	snprintf(p, sizeof(p), "/proc/%d", (int)pid);
	if (access(p, F_OK) < 0)
		return berth_failx(BERTH_ENOTFOUND, "process %d: no such process", (int)pid);
	if (same_ns(pid, "user") || same_ns(pid, "mnt"))
		return berth_failx(BERTH_EINVAL_INPUT, "process %d is not in a berth container",
				   (int)pid);
	return join_ns_files(pid, ns_to_join(pid));
}
