/* A bundle's config.json (OCI runtime spec, config.md and config-linux.md)
 * as far as an unprivileged runtime can honour it; the rest is refused
 * with the field named, or, for settings that only restrict what a
 * rootless process could not do anyway, ignored with a debug line. */
#include "config.h"
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/oci.h"

#define BAD(...) berth_failx(BERTH_EINVAL_INPUT, __VA_ARGS__)

void oci_spec_clear(struct oci_spec *s)
{
	free(s->bundle);
	free(s->image);
	strv_free(s->args);
	strv_free(s->env);
	free(s->cwd);
	free(s->hostname);
	launcher_mounts_clear(&s->mounts);
	free(s->rlimits);
	free(s->annotations);
	*s = (struct oci_spec){0};
}

bool oci_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 128 || !((id[0] >= 'a' && id[0] <= 'z') || (id[0] >= 'A' && id[0] <= 'Z') ||
				   (id[0] >= '0' && id[0] <= '9')))
		return false;
	return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-") == n;
}

static int strings(json_t *a, const char *field, bool need, char ***out)
{
	size_t i;
	json_t *v;

	if (!a && !need)
		return 0;
	if (!json_is_array(a))
		return BAD("config.json: %s must be an array of strings", field);
	json_array_foreach(a, i, v) {
		if (!json_is_string(v))
			return BAD("config.json: %s[%zu] is not a string", field, i);
		if (strv_push(out, json_string_value(v)) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int dup_string(json_t *v, const char *field, char **out)
{
	if (!v)
		return 0;
	if (!json_is_string(v))
		return BAD("config.json: %s is not a string", field);
	*out = strdup(json_string_value(v));
	return *out ? 0 : -ENOMEM;
}

/* process.user and linux.{uid,gid}Mappings: one uid, the caller's, shown
 * either as itself or as root (--remap-root). */
static int parse_identity(json_t *root, json_t *proc, struct oci_spec *s)
{
	json_t *user = json_object_get(proc, "user"), *linux_ = json_object_get(root, "linux");
	json_int_t uid = getuid(), gid = getgid(), want_uid = uid, want_gid = gid;
	json_t *extra = json_object_get(user, "additionalGids");
	const char *maps[] = {"uidMappings", "gidMappings"};

	if (user) {
		if (!json_is_integer(json_object_get(user, "uid")) ||
		    !json_is_integer(json_object_get(user, "gid")))
			return BAD("config.json: process.user needs integer uid and gid");
		want_uid = json_integer_value(json_object_get(user, "uid"));
		want_gid = json_integer_value(json_object_get(user, "gid"));
	}
	if (json_is_array(extra) && json_array_size(extra) > 0)
		return BAD("config.json: process.user.additionalGids: supplementary groups cannot be set without privileges");
	if (json_object_get(user, "username"))
		return BAD("config.json: process.user.username is for Windows");
	if (!((want_uid == 0 && want_gid == 0) || (want_uid == uid && want_gid == gid)))
		return BAD("config.json: process.user %lld:%lld: an unprivileged runtime runs as "
			   "the caller (%lld:%lld) or as root (0:0) in a user namespace",
			   (long long)want_uid, (long long)want_gid, (long long)uid, (long long)gid);
	s->remap_root = want_uid == 0 && uid != 0;
	for (size_t k = 0; k < 2; k++) {
		json_t *m = json_object_get(linux_, maps[k]), *e;
		json_int_t host = k == 0 ? uid : gid, inside = k == 0 ? want_uid : want_gid;

		if (!m || (json_is_array(m) && json_array_size(m) == 0))
			continue;
		e = json_array_get(m, 0);
		if (!json_is_array(m) || json_array_size(m) != 1 ||
		    json_integer_value(json_object_get(e, "size")) != 1 ||
		    json_integer_value(json_object_get(e, "hostID")) != host ||
		    json_integer_value(json_object_get(e, "containerID")) != inside)
			return BAD("config.json: linux.%s: an unprivileged runtime maps one id, "
				   "the caller's (%lld), to process.user's (%lld)",
				   maps[k], (long long)host, (long long)inside);
	}
	return 0;
}

static const struct {
	const char *name;
	int resource;
} rlimit_names[] = {
	{"RLIMIT_AS", RLIMIT_AS},         {"RLIMIT_CORE", RLIMIT_CORE},
	{"RLIMIT_CPU", RLIMIT_CPU},       {"RLIMIT_DATA", RLIMIT_DATA},
	{"RLIMIT_FSIZE", RLIMIT_FSIZE},   {"RLIMIT_LOCKS", RLIMIT_LOCKS},
	{"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
	{"RLIMIT_NICE", RLIMIT_NICE},     {"RLIMIT_NOFILE", RLIMIT_NOFILE},
	{"RLIMIT_NPROC", RLIMIT_NPROC},   {"RLIMIT_RSS", RLIMIT_RSS},
	{"RLIMIT_RTPRIO", RLIMIT_RTPRIO}, {"RLIMIT_RTTIME", RLIMIT_RTTIME},
	{"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING}, {"RLIMIT_STACK", RLIMIT_STACK},
};

static int parse_rlimits(json_t *a, struct oci_spec *s)
{
	size_t i;
	json_t *v;

	if (!a)
		return 0;
	if (!json_is_array(a))
		return BAD("config.json: process.rlimits must be an array");
	s->rlimits = calloc(json_array_size(a) + 1, sizeof(*s->rlimits));
	if (!s->rlimits)
		return -ENOMEM;
	json_array_foreach(a, i, v) {
		const char *type = json_string_value(json_object_get(v, "type"));
		json_t *soft = json_object_get(v, "soft"), *hard = json_object_get(v, "hard");
		size_t k;

		for (k = 0; type && k < ARRAY_SIZE(rlimit_names); k++)
			if (streq(type, rlimit_names[k].name))
				break;
		if (!type || k == ARRAY_SIZE(rlimit_names))
			return BAD("config.json: process.rlimits[%zu]: unknown type '%s'", i,
				   type ? type : "");
		if (!json_is_integer(soft) || !json_is_integer(hard))
			return BAD("config.json: process.rlimits[%zu]: soft and hard must be integers", i);
		s->rlimits[s->n_rlimits++] = (struct oci_rlimit){
			.resource = rlimit_names[k].resource,
			.lim = {(rlim_t)json_integer_value(soft), (rlim_t)json_integer_value(hard)},
		};
	}
	return 0;
}

static int parse_process(json_t *root, struct oci_spec *s)
{
	json_t *proc = json_object_get(root, "process");
	int r;

	if (!json_is_object(proc))
		return BAD("config.json: no process object");
	if (json_is_true(json_object_get(proc, "terminal")))
		return BAD("config.json: process.terminal: berth passes the caller's stdio "
			   "and allocates no terminal (set it to false)");
	if ((r = strings(json_object_get(proc, "args"), "process.args", true, &s->args)) < 0 ||
	    (r = strings(json_object_get(proc, "env"), "process.env", false, &s->env)) < 0 ||
	    (r = dup_string(json_object_get(proc, "cwd"), "process.cwd", &s->cwd)) < 0)
		return r;
	if (!s->args || !s->args[0] || !*s->args[0])
		return BAD("config.json: process.args is empty");
	if (!s->cwd || s->cwd[0] != '/')
		return BAD("config.json: process.cwd must be an absolute path");
	for (char **e = s->env; e && *e; e++)
		if (!strchr(*e, '=') || **e == '=')
			return BAD("config.json: process.env entry '%s' is not NAME=VALUE", *e);
	s->no_new_privs = json_is_true(json_object_get(proc, "noNewPrivileges"));
	if (json_object_get(proc, "capabilities"))
		log_debug("config.json: process.capabilities: the process has those of its "
			  "user namespace");
	if ((r = parse_identity(root, proc, s)) < 0)
		return r;
	return parse_rlimits(json_object_get(proc, "rlimits"), s);
}

static const struct {
	const char *name;
	unsigned flag;
} ns_names[] = {
	{"pid", OCI_NS_PID}, {"network", OCI_NS_NET}, {"ipc", OCI_NS_IPC},
	{"uts", OCI_NS_UTS}, {"cgroup", OCI_NS_CGROUP}, {"mount", 0}, {"user", 0},
};

static int parse_namespaces(json_t *linux_, struct oci_spec *s)
{
	json_t *a = json_object_get(linux_, "namespaces"), *v;
	size_t i;

	if (!a)
		return 0;
	if (!json_is_array(a))
		return BAD("config.json: linux.namespaces must be an array");
	json_array_foreach(a, i, v) {
		const char *type = json_string_value(json_object_get(v, "type"));
		size_t k;

		for (k = 0; type && k < ARRAY_SIZE(ns_names); k++)
			if (streq(type, ns_names[k].name))
				break;
		if (!type || k == ARRAY_SIZE(ns_names))
			return BAD("config.json: linux.namespaces[%zu]: type '%s' is not supported "
				   "(pid, network, ipc, uts, cgroup, mount, user)", i, type ? type : "");
		if (json_object_get(v, "path"))
			return BAD("config.json: linux.namespaces[%zu]: joining a %s namespace by "
				   "path is not supported", i, type);
		s->namespaces |= ns_names[k].flag;
	}
	return 0;
}

/* Mounts berth makes itself (launcher: /proc, /dev, /dev/pts, /dev/shm,
 * /sys, /tmp) are accepted and left to it. */
static bool provided_mount(const char *type, const char *dst)
{
	static const char *const own[] = {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
					  "/sys", "/sys/fs/cgroup"};

	if (!type || streq(type, "bind"))
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(own); i++)
		if (streq(dst, own[i]))
			return true;
	return false;
}

static int mount_flags(json_t *opts, size_t i, unsigned *flags)
{
	static const struct {
		const char *name;
		unsigned flag;
	} names[] = {
		{"ro", LAUNCHER_MNT_RO}, {"rw", LAUNCHER_MNT_RW}, {"nosuid", LAUNCHER_MNT_NOSUID},
		{"nodev", LAUNCHER_MNT_NODEV}, {"noexec", LAUNCHER_MNT_NOEXEC},
		{"rbind", LAUNCHER_MNT_RBIND}, {"bind", 0}, {"private", LAUNCHER_MNT_PRIVATE},
		{"rprivate", LAUNCHER_MNT_PRIVATE}, {"slave", LAUNCHER_MNT_SLAVE},
		{"rslave", LAUNCHER_MNT_SLAVE}, {"suid", 0}, {"dev", 0}, {"exec", 0},
		{"relatime", 0}, {"noatime", 0}, {"strictatime", 0}, {"nosymfollow", 0},
	};
	size_t j;
	json_t *o;

	json_array_foreach(opts, j, o) {
		const char *w = json_string_value(o);
		size_t k;

		for (k = 0; w && k < ARRAY_SIZE(names); k++)
			if (streq(w, names[k].name))
				break;
		/* tmpfs size=/mode= options are the kernel's business: the
		 * launcher's tmpfs has its own defaults. */
		if (w && k == ARRAY_SIZE(names) && (str_startswith(w, "size=") ||
						    str_startswith(w, "mode=")))
			continue;
		if (!w || k == ARRAY_SIZE(names))
			return BAD("config.json: mounts[%zu]: option '%s' is not supported", i,
				   w ? w : "");
		*flags |= names[k].flag;
	}
	return 0;
}

static int parse_mount(json_t *v, size_t i, const char *bundle, struct launcher_mount *m)
{
	const char *dst = json_string_value(json_object_get(v, "destination"));
	const char *type = json_string_value(json_object_get(v, "type"));
	const char *src = json_string_value(json_object_get(v, "source"));
	json_t *opts = json_object_get(v, "options");
	bool bind = false;
	int r;

	if (!dst || dst[0] != '/')
		return BAD("config.json: mounts[%zu]: destination must be an absolute path", i);
	if (opts && !json_is_array(opts))
		return BAD("config.json: mounts[%zu]: options must be an array", i);
	for (size_t j = 0; opts && j < json_array_size(opts); j++) {
		const char *w = json_string_value(json_array_get(opts, j));

		bind |= w && (streq(w, "bind") || streq(w, "rbind"));
	}
	*m = (struct launcher_mount){0};
	if ((r = mount_flags(opts, i, &m->flags)) < 0)
		return r;
	if (type && streq(type, "tmpfs") && !bind) {
		m->kind = LAUNCHER_MOUNT_TMPFS;
	} else if (bind || (type && streq(type, "bind"))) {
		m->kind = LAUNCHER_MOUNT_BIND;
		if (!src || !*src)
			return BAD("config.json: mounts[%zu]: a bind mount needs a source", i);
		m->source = src[0] == '/' ? strdup(src) : path_join(bundle, src);
		if (!m->source)
			return -ENOMEM;
		if (access(m->source, F_OK) < 0) {
			r = berth_fail(-errno, "config.json: mounts[%zu]: source '%s'", i, m->source);
			free(m->source);
			m->source = NULL;
			return r;
		}
	} else {
		return BAD("config.json: mounts[%zu]: type '%s' at '%s' is not supported "
			   "(bind and tmpfs are)", i, type ? type : "", dst);
	}
	m->target = strdup(dst);
	if (!m->target) {
		free(m->source);
		return -ENOMEM;
	}
	return 0;
}

static int parse_mounts(json_t *a, const char *bundle, struct oci_spec *s)
{
	size_t i;
	json_t *v;

	if (!a)
		return 0;
	if (!json_is_array(a))
		return BAD("config.json: mounts must be an array");
	s->mounts.v = calloc(json_array_size(a) + 1, sizeof(*s->mounts.v));
	if (!s->mounts.v)
		return -ENOMEM;
	json_array_foreach(a, i, v) {
		const char *dst = json_string_value(json_object_get(v, "destination"));
		int r;

		if (dst && provided_mount(json_string_value(json_object_get(v, "type")), dst)) {
			log_debug("config.json: mounts[%zu] (%s): berth mounts it itself", i, dst);
			continue;
		}
		if ((r = parse_mount(v, i, bundle, &s->mounts.v[s->mounts.n])) < 0)
			return r;
		s->mounts.n++;
	}
	return 0;
}

/* The squashfs to run: annotation org.berth.image (what `berth bundle`
 * writes; root.path is then an empty directory), or root.path itself when
 * it is a squashfs file.  A plain directory root is refused. */
static int parse_root(json_t *root, const char *bundle, struct oci_spec *s)
{
	json_t *r = json_object_get(root, "root");
	const char *path = json_string_value(json_object_get(r, "path"));
	const char *img = json_string_value(json_object_get(json_object_get(root, "annotations"),
							     "org.berth.image"));
	_cleanup_free_ char *full = NULL;
	struct stat st;

	s->readonly = json_is_true(json_object_get(r, "readonly"));
	if (img) {
		s->image = img[0] == '/' ? strdup(img) : path_join(bundle, img);
		return s->image ? 0 : -ENOMEM;
	}
	if (!path || !*path)
		return BAD("config.json: root.path is missing");
	full = path[0] == '/' ? strdup(path) : path_join(bundle, path);
	if (!full)
		return -ENOMEM;
	if (stat(full, &st) < 0)
		return berth_fail(-errno, "config.json: root.path '%s'", full);
	if (S_ISDIR(st.st_mode))
		return BAD("config.json: root.path '%s' is a directory: berth runs squashfs "
			   "images (make the bundle with 'berth bundle IMAGE DIR', or point "
			   "root.path at a .sqsh file)", full);
	s->image = TAKE_PTR(full);
	return 0;
}

static void note_ignored(json_t *root)
{
	json_t *linux_ = json_object_get(root, "linux");
	static const char *const keys[] = {"resources", "maskedPaths", "readonlyPaths",
					   "seccomp", "devices", "sysctl", "cgroupsPath"};

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (json_object_get(linux_, keys[i]))
			log_debug("config.json: linux.%s is not applied (unprivileged; the batch "
				  "system's cgroups and the user namespace limit the container)",
				  keys[i]);
}

static int parse_all(json_t *root, const char *bundle, struct oci_spec *s)
{
	json_t *linux_ = json_object_get(root, "linux"), *ann = json_object_get(root, "annotations");
	json_t *hooks = json_object_get(root, "hooks");
	int r;

	if (!json_is_object(root))
		return BAD("config.json: not a JSON object");
	if (!json_is_string(json_object_get(root, "ociVersion")))
		return BAD("config.json: ociVersion is missing");
	if (hooks && json_object_size(hooks) > 0)
		return BAD("config.json: hooks are not supported");
	if ((r = parse_process(root, s)) < 0 || (r = parse_root(root, bundle, s)) < 0 ||
	    (r = parse_namespaces(linux_, s)) < 0 ||
	    (r = parse_mounts(json_object_get(root, "mounts"), bundle, s)) < 0 ||
	    (r = dup_string(json_object_get(root, "hostname"), "hostname", &s->hostname)) < 0)
		return r;
	if (s->hostname && (!*s->hostname || strlen(s->hostname) > 64))
		return BAD("config.json: hostname '%s' must be 1 to 64 characters", s->hostname);
	if (s->hostname && !(s->namespaces & OCI_NS_UTS))
		return BAD("config.json: hostname needs a uts namespace in linux.namespaces");
	if (json_is_object(ann) && !(s->annotations = json_dumps(ann, JSON_COMPACT)))
		return -ENOMEM;
	note_ignored(root);
	return 0;
}

int oci_spec_parse(const char *json, size_t len, const char *bundle, struct oci_spec *out)
{
	json_error_t jerr;
	json_t *root = json_loadb(json, len, 0, &jerr);
	struct oci_spec s = {0};
	int r;

	if (!root)
		return BAD("config.json: %s (line %d)", jerr.text, jerr.line);
	s.bundle = strdup(bundle);
	r = s.bundle ? parse_all(root, bundle, &s) : -ENOMEM;
	json_decref(root);
	if (r < 0) {
		oci_spec_clear(&s);
		return r;
	}
	*out = s;
	return 0;
}

int oci_spec_load(const char *bundle, struct oci_spec *out)
{
	_cleanup_free_ char *dir = realpath(bundle, NULL), *path = NULL, *buf = NULL;
	size_t len;
	int r;

	if (!dir)
		return berth_fail(-errno, "bundle '%s'", bundle);
	path = path_join(dir, "config.json");
	if (!path)
		return -ENOMEM;
	r = read_file(path, 4 << 20, &buf, &len);
	if (r < 0)
		return berth_fail_context(r, "bundle '%s'", bundle);
	r = oci_spec_parse(buf, len, dir, out);
	return r < 0 ? berth_fail_context(r, "bundle '%s'", bundle) : 0;
}
