/* Container state under the --root directory, and the OCI state JSON. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/oci.h"

/* Slurm runs RunTimeQuery/Kill/Delete as root.  Everything berth does for
 * a container it does as the container's owner: the owner of the state
 * root (never followed through a symlink). */
static int become_owner(const char *root)
{
	struct stat st;

	if (lstat(root, &st) < 0)
		return berth_fail(-errno, "state root '%s'", root);
	if (!S_ISDIR(st.st_mode))
		return berth_failx(BERTH_EINVAL_INPUT, "state root '%s' is not a directory", root);
	if (st.st_uid == 0)
		return berth_failx(BERTH_EINVAL_INPUT,
				   "state root '%s' belongs to root: berth runs containers "
				   "for unprivileged users only", root);
	if (setgroups(0, NULL) < 0 || setresgid(st.st_gid, st.st_gid, st.st_gid) < 0 ||
	    setresuid(st.st_uid, st.st_uid, st.st_uid) < 0)
		return berth_fail(-errno, "switch to the owner (uid %u) of '%s'", st.st_uid, root);
	log_debug("oci: acting as uid %u, the owner of '%s'", st.st_uid, root);
	return 0;
}

int oci_root_open(const char *root)
{
	struct stat st;

	if (geteuid() == 0)
		return become_owner(root);
	if (mkdir_p(root, 0700) < 0 && errno != EEXIST)
		return berth_fail(-errno, "create state root '%s'", root);
	if (lstat(root, &st) < 0)
		return berth_fail(-errno, "state root '%s'", root);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return berth_failx(BERTH_EINVAL_INPUT, "state root '%s' is not a directory of "
				   "uid %u", root, geteuid());
	return 0;
}

unsigned long long oci_pid_starttime(pid_t pid)
{
	_cleanup_free_ char *path = xasprintf("/proc/%d/stat", (int)pid), *buf = NULL;
	unsigned long long t = 0;
	size_t len;
	char *p;

	if (!path || read_file(path, 4096, &buf, &len) < 0) {
		berth_error_clear();
		return 0;
	}
	/* comm (field 2) may hold spaces and parens: count from the last ')'. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
			 "%*d %*d %*d %*d %llu", &t) != 1)
		return 0;
	return t;
}

void oci_state_clear(struct oci_state *st)
{
	free(st->dir);
	free(st->id);
	free(st->bundle);
	free(st->annotations);
	*st = (struct oci_state){0};
}

int oci_state_save(const struct oci_state *st)
{
	json_t *o = json_pack("{s:s, s:s, s:i, s:I, s:b}", "id", st->id, "bundle", st->bundle,
			      "pid", (int)st->pid, "starttime", (json_int_t)st->starttime,
			      "started", st->started);
	_cleanup_free_ char *text = NULL, *path = NULL;
	int r;

	if (o && st->annotations) {
		json_t *a = json_loads(st->annotations, 0, NULL);

		if (a)
			json_object_set_new(o, "annotations", a);
	}
	text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	path = path_join(st->dir, "state.json");
	if (!text || !path)
		return -ENOMEM;
	r = write_file_atomic(path, text, strlen(text), 0600);
	return r < 0 ? berth_fail_context(r, "container '%s'", st->id) : 0;
}

static int state_from_json(json_t *o, struct oci_state *st)
{
	json_t *a = json_object_get(o, "annotations");
	const char *bundle = json_string_value(json_object_get(o, "bundle"));

	if (!bundle || !json_is_integer(json_object_get(o, "pid")))
		return berth_failx(BERTH_EFORMAT, "container '%s': state.json is damaged", st->id);
	st->bundle = strdup(bundle);
	st->pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
	st->starttime = (unsigned long long)json_integer_value(json_object_get(o, "starttime"));
	st->started = json_is_true(json_object_get(o, "started"));
	if (json_is_object(a))
		st->annotations = json_dumps(a, JSON_COMPACT);
	return st->bundle ? 0 : -ENOMEM;
}

int oci_state_load(const char *root, const char *id, struct oci_state *out)
{
	struct oci_state st = {0};
	_cleanup_free_ char *path = NULL, *buf = NULL;
	json_t *o;
	size_t len;
	int r;

	if (!oci_id_valid(id))
		return berth_failx(BERTH_EINVAL_INPUT, "container id '%s': use letters, digits, "
				   "'_', '.', '+', '-' (at most 128)", id);
	st.dir = path_join(root, id);
	st.id = strdup(id);
	path = st.dir ? path_join(st.dir, "state.json") : NULL;
	if (!path || !st.id) {
		oci_state_clear(&st);
		return -ENOMEM;
	}
	r = read_file(path, 1 << 20, &buf, &len);
	if (r == -ENOENT) {
		berth_error_clear();
		/* A directory without state.json is a create in progress (or a
		 * crashed one: delete removes it). */
		r = access(st.dir, F_OK) == 0
			    ? 0
			    : berth_failx(BERTH_ENOTFOUND, "container '%s' does not exist", id);
		if (r == 0 && !(st.bundle = strdup("")))
			r = -ENOMEM;
		if (r < 0)
			oci_state_clear(&st);
		else
			*out = st;
		return r;
	}
	if (r < 0) {
		oci_state_clear(&st);
		return berth_fail_context(r, "container '%s'", id);
	}
	o = json_loadb(buf, len, 0, NULL);
	r = o ? state_from_json(o, &st)
	      : berth_failx(BERTH_EFORMAT, "container '%s': state.json is damaged", id);
	json_decref(o);
	if (r < 0) {
		oci_state_clear(&st);
		return r;
	}
	*out = st;
	return 0;
}

enum oci_status oci_state_status(const struct oci_state *st)
{
	if (st->pid <= 0)
		return *st->bundle ? OCI_STOPPED : OCI_CREATING;
	/* A recycled pid is a different process: compare start times.  A
	 * zombie (exited, not yet reaped) is stopped too. */
	if (kill(st->pid, 0) < 0 && errno == ESRCH)
		return OCI_STOPPED;
	if (oci_pid_starttime(st->pid) != st->starttime)
		return OCI_STOPPED;
	{
		_cleanup_free_ char *path = xasprintf("/proc/%d/stat", (int)st->pid), *buf = NULL;
		size_t len;
		char *p;

		if (path && read_file(path, 4096, &buf, &len) == 0 && (p = strrchr(buf, ')')) &&
		    (p[2] == 'Z' || p[2] == 'X'))
			return OCI_STOPPED;
		berth_error_clear();
	}
	return st->started ? OCI_RUNNING : OCI_CREATED;
}

static const char *status_name(enum oci_status s)
{
	switch (s) {
	case OCI_CREATING: return "creating";
	case OCI_CREATED: return "created";
	case OCI_RUNNING: return "running";
	case OCI_STOPPED: return "stopped";
	}
	return "stopped";
}

char *oci_state_json(const struct oci_state *st)
{
	enum oci_status s = oci_state_status(st);
	json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:s}", "ociVersion", "1.0.2", "id", st->id,
			      "status", status_name(s), "pid",
			      s == OCI_CREATED || s == OCI_RUNNING ? (int)st->pid : 0, "bundle",
			      st->bundle);
	char *text;

	if (o && st->annotations) {
		json_t *a = json_loads(st->annotations, 0, NULL);

		if (a)
			json_object_set_new(o, "annotations", a);
	}
	text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return text;
}
