/* The --container-* options: pyxis's names, meanings and error cases, each
 * also settable by BERTH_CONTAINER_<NAME> and PYXIS_CONTAINER_<NAME>
 * (command line first, then BERTH_, then PYXIS_).
 *
 * Slurm calls an option's callback once in srun/sbatch and again in
 * slurmstepd, sometimes twice with the same value; the same value again is
 * fine, a different one is an error as in pyxis. */
#include "config.h"
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/launcher.h"
#include "plugin/plugin.h"

#define MAX_IMAGE 2048
#define MAX_NAME 48 /* "j<jobid>_" + NAME stays within launcher's 64 */

static struct args args = {
	.name_mode = NAME_AUTO,
	.mount_home = -1,
	.remap_root = -1,
	.entrypoint = -1,
	.entrypoint_log = -1,
	.writable = -1,
};

const struct args *args_get(void)
{
	return &args;
}

/* Store a string option; "multiple times" is an error unless equal. */
static int set_string(char **field, const char *opt, const char *v)
{
	if (!v || !*v) {
		slurm_error(PLUGIN_PREFIX "--%s: argument required", opt);
		return -1;
	}
	if (*field) {
		if (streq(*field, v))
			return 0;
		slurm_error(PLUGIN_PREFIX "--%s specified multiple times", opt);
		return -1;
	}
	*field = strdup(v);
	return *field ? 0 : -1;
}

static int set_flag(int *field, int v, const char *yes, const char *no)
{
	if (*field != -1 && *field != v) {
		slurm_error(PLUGIN_PREFIX "both --%s and --%s were specified", yes, no);
		return -1;
	}
	*field = v;
	return 0;
}

static int opt_image(int val, const char *v, int remote)
{
	if (v && strlen(v) > MAX_IMAGE) {
		slurm_error(PLUGIN_PREFIX "--container-image: longer than %d characters", MAX_IMAGE);
		return -1;
	}
	return set_string(&args.image, "container-image", v);
}

static int opt_mounts(int val, const char *v, int remote)
{
	return set_string(&args.mounts, "container-mounts", v);
}

static int opt_workdir(int val, const char *v, int remote)
{
	return set_string(&args.workdir, "container-workdir", v);
}

static int opt_name(int val, const char *v, int remote)
{
	_cleanup_free_ char *copy = NULL;
	char *flag;

	if (!v || !*v) {
		slurm_error(PLUGIN_PREFIX "--container-name: argument required");
		return -1;
	}
	copy = strdup(v);
	if (!copy)
		return -1;
	flag = strchr(copy, ':');
	if (flag)
		*flag++ = '\0';
	if (!*copy) {
		slurm_error(PLUGIN_PREFIX "--container-name '%s': empty name", v);
		return -1;
	}
	if (strlen(copy) > MAX_NAME || !launcher_name_valid(copy)) {
		slurm_error(PLUGIN_PREFIX "--container-name '%s': use letters, digits, '_', '.', "
			    "'-' (first a letter or digit, at most %d)", v, MAX_NAME);
		return -1;
	}
	if (!flag || !*flag || streq(flag, "auto"))
		args.name_mode = NAME_AUTO;
	else if (streq(flag, "create"))
		args.name_mode = NAME_CREATE;
	else if (streq(flag, "exec"))
		args.name_mode = NAME_EXEC;
	else if (streq(flag, "no_exec"))
		args.name_mode = NAME_NO_EXEC;
	else {
		slurm_error(PLUGIN_PREFIX "--container-name '%s': flag must be auto, create, exec "
			    "or no_exec", v);
		return -1;
	}
	if (args.name && !streq(args.name, copy)) {
		slurm_error(PLUGIN_PREFIX "--container-name specified multiple times");
		return -1;
	}
	free(args.name);
	args.name = TAKE_PTR(copy);
	return 0;
}

static int opt_save(int val, const char *v, int remote)
{
	if (v && *v && v[strlen(v) - 1] == '/') {
		slurm_error(PLUGIN_PREFIX "--container-save '%s': the target is a directory; name "
			    "the squashfs file to write", v);
		return -1;
	}
	return set_string(&args.save, "container-save", v);
}

static int opt_mount_home(int val, const char *v, int remote)
{
	return set_flag(&args.mount_home, val, "container-mount-home", "no-container-mount-home");
}

static int opt_remap_root(int val, const char *v, int remote)
{
	return set_flag(&args.remap_root, val, "container-remap-root", "no-container-remap-root");
}

static int opt_entrypoint(int val, const char *v, int remote)
{
	return set_flag(&args.entrypoint, val, "container-entrypoint", "no-container-entrypoint");
}

static int opt_entrypoint_log(int val, const char *v, int remote)
{
	args.entrypoint_log = val;
	return 0;
}

static int opt_writable(int val, const char *v, int remote)
{
	return set_flag(&args.writable, val, "container-writable", "container-readonly");
}

static int check_env_names(const char *v)
{
	_cleanup_strv_ char **names = NULL;

	if (v[0] == ',' || v[strlen(v) - 1] == ',' || strstr(v, ",,")) {
		slurm_error(PLUGIN_PREFIX "--container-env '%s': empty name in the list", v);
		return -1;
	}
	names = strv_split(v, ',');
	if (!names)
		return -1;
	for (size_t i = 0; names[i]; i++) {
		const char *n = names[i];

		if (isdigit((unsigned char)n[0]) || strchr(n, '=')) {
			slurm_error(PLUGIN_PREFIX "--container-env '%s': '%s' is not a variable name",
				    v, n);
			return -1;
		}
		for (size_t j = 0; n[j]; j++) {
			if (!isalnum((unsigned char)n[j]) && n[j] != '_') {
				slurm_error(PLUGIN_PREFIX "--container-env '%s': '%s' is not a "
					    "variable name", v, n);
				return -1;
			}
		}
	}
	return 0;
}

static int opt_env(int val, const char *v, int remote)
{
	if (v && *v && check_env_names(v) < 0)
		return -1;
	return set_string(&args.env, "container-env", v);
}

static int opt_unshare(int val, const char *v, int remote)
{
	_cleanup_strv_ char **items = NULL;

	if (v && *v) {
		if (v[0] == ',' || v[strlen(v) - 1] == ',' || strstr(v, ",,")) {
			slurm_error(PLUGIN_PREFIX "--container-unshare '%s': empty entry in the list",
				    v);
			return -1;
		}
		if (!(items = strv_split(v, ',')))
			return -1;
		for (size_t i = 0; items[i]; i++) {
			if (!streq(items[i], "uts") && !streq(items[i], "net") &&
			    !streq(items[i], "ipc")) {
				slurm_error(PLUGIN_PREFIX "--container-unshare '%s': '%s' is not one of "
					    "net, ipc, uts", v, items[i]);
				return -1;
			}
		}
	}
	return set_string(&args.unshare, "container-unshare", v);
}

bool args_unshares(const char *what)
{
	_cleanup_strv_ char **items = args.unshare ? strv_split(args.unshare, ',') : NULL;

	return items && strv_contains(items, what);
}

/* Slurm's option table has char * fields for constant strings. */
#define S(text) ((char *)(text))
static struct spank_option options[] = {
	{S("container-image"), S("[USER@][REGISTRY#]IMAGE[:TAG]|PATH"),
	 S("[berth] the image to use for the container filesystem: a docker image "
	 "reference (enroot form) or a squashfs file on the compute node"),
	 1, 0, opt_image},
	{S("container-mounts"), S("SRC:DST[:FLAGS][,SRC:DST...]"),
	 S("[berth] bind mount[s] inside the container; flags joined with \"+\", e.g. ro+nosuid"),
	 1, 0, opt_mounts},
	{S("container-workdir"), S("PATH"), S("[berth] working directory inside the container"), 1, 0,
	 opt_workdir},
	{S("container-name"), S("NAME[:auto|create|exec|no_exec]"),
	 S("[berth] keep the container (and its writable layer) under this name for later steps"),
	 1, 0, opt_name},
	{S("container-save"), S("PATH"),
	 S("[berth] when the step ends, save the container (image and changes) as a squashfs "
	 "file on the compute node; a relative PATH is taken from the job's directory"),
	 1, 0, opt_save},
	{S("container-mount-home"), NULL, S("[berth] bind mount the user's home directory"), 0, 1,
	 opt_mount_home},
	{S("no-container-mount-home"), NULL, S("[berth] do not bind mount the user's home directory"),
	 0, 0, opt_mount_home},
	{S("container-remap-root"), NULL,
	 S("[berth] be root inside the container (no privilege on the host)"), 0, 1,
	 opt_remap_root},
	{S("no-container-remap-root"), NULL, S("[berth] keep your uid inside the container"), 0, 0,
	 opt_remap_root},
	{S("container-entrypoint"), NULL, S("[berth] run the image's entrypoint"), 0, 1,
	 opt_entrypoint},
	{S("no-container-entrypoint"), NULL, S("[berth] do not run the image's entrypoint"), 0, 0,
	 opt_entrypoint},
	{S("container-entrypoint-log"), NULL, S("[berth] show the entrypoint's output"), 0, 1,
	 opt_entrypoint_log},
	{S("container-writable"), NULL, S("[berth] make the container filesystem writable"), 0, 1,
	 opt_writable},
	{S("container-readonly"), NULL, S("[berth] make the container filesystem read-only"), 0, 0,
	 opt_writable},
	{S("container-env"), S("NAME[,NAME...]"),
	 S("[berth] variables whose job value wins over the image's"), 1, 0, opt_env},
	{S("container-unshare"), S("net,ipc,uts"),
	 S("[berth] own namespaces: net (loopback only), ipc, uts (by default all are "
	 "the host's, as MPI needs)"), 1, 0, opt_unshare},
	SPANK_OPTIONS_TABLE_END,
};
#undef S

int args_register(spank_t sp)
{
	for (size_t i = 0; options[i].name; i++) {
		spank_err_t rc = spank_option_register(sp, &options[i]);

		if (rc != ESPANK_SUCCESS) {
			slurm_error(PLUGIN_PREFIX "cannot register --%s: %s", options[i].name,
				    spank_strerror(rc));
			return -1;
		}
	}
	return 0;
}

/* The job's environment in slurmstepd, the process's in srun and sbatch. */
static const char *lookup(spank_t sp, const char *name, char *buf, size_t size)
{
	if (spank_context() == S_CTX_REMOTE)
		return spank_getenv(sp, name, buf, (int)size) == ESPANK_SUCCESS ? buf : NULL;
	return getenv(name);
}

/* BERTH_CONTAINER_<suffix>, else PYXIS_CONTAINER_<suffix>; *var names it. */
static const char *from_env(spank_t sp, const char *suffix, char *buf, size_t size,
			    char *var, size_t var_size)
{
	static const char *const prefixes[] = {"BERTH_CONTAINER_", "PYXIS_CONTAINER_"};

	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++) {
		const char *v;

		snprintf(var, var_size, "%s%s", prefixes[i], suffix);
		v = lookup(sp, var, buf, size);
		if (v)
			return v;
	}
	return NULL;
}

static const struct {
	const char *suffix;
	int (*cb)(int val, const char *v, int remote);
	size_t offset; /* of the field that tells "set on the command line" */
	bool is_flag;
	bool invert; /* READONLY=1 means writable=0 */
} env_options[] = {
	{"IMAGE", opt_image, offsetof(struct args, image), false, false},
	{"MOUNTS", opt_mounts, offsetof(struct args, mounts), false, false},
	{"WORKDIR", opt_workdir, offsetof(struct args, workdir), false, false},
	{"NAME", opt_name, offsetof(struct args, name), false, false},
	{"SAVE", opt_save, offsetof(struct args, save), false, false},
	{"ENV", opt_env, offsetof(struct args, env), false, false},
	{"UNSHARE", opt_unshare, offsetof(struct args, unshare), false, false},
	{"MOUNT_HOME", opt_mount_home, offsetof(struct args, mount_home), true, false},
	{"REMAP_ROOT", opt_remap_root, offsetof(struct args, remap_root), true, false},
	{"ENTRYPOINT", opt_entrypoint, offsetof(struct args, entrypoint), true, false},
	{"ENTRYPOINT_LOG", opt_entrypoint_log, offsetof(struct args, entrypoint_log), true, false},
	{"WRITABLE", opt_writable, offsetof(struct args, writable), true, false},
	{"READONLY", opt_writable, offsetof(struct args, writable), true, true},
};

static int apply_env(spank_t sp)
{
	for (size_t i = 0; i < ARRAY_SIZE(env_options); i++) {
		char buf[4096], var[64];
		void *field = (char *)&args + env_options[i].offset;
		const char *v;
		bool b;

		if (env_options[i].is_flag ? *(int *)field != -1 : *(char **)field != NULL)
			continue; /* the command line wins */
		v = from_env(sp, env_options[i].suffix, buf, sizeof(buf), var, sizeof(var));
		if (!v)
			continue;
		if (!env_options[i].is_flag) {
			if (env_options[i].cb(0, v, 0) < 0) {
				slurm_error(PLUGIN_PREFIX "(the value came from %s)", var);
				return -1;
			}
			continue;
		}
		if (streq(v, "y") || streq(v, "n")) {
			b = v[0] == 'y';
		} else if (parse_bool(v, &b) < 0) {
			slurm_error(PLUGIN_PREFIX "%s=%s: not a boolean (1/0, yes/no, true/false)", var,
				    v);
			return -1;
		}
		if (env_options[i].cb(b != env_options[i].invert, NULL, 0) < 0)
			return -1;
	}
	return 0;
}

/* Without an image or a name nothing happens; say which options are
 * ignored, so a typo in the image option does not go unnoticed. */
static void report_ignored(void)
{
	const struct {
		bool set;
		const char *what;
	} opts[] = {
		{args.mounts != NULL, "--container-mounts"},
		{args.workdir != NULL, "--container-workdir"},
		{args.save != NULL, "--container-save"},
		{args.env != NULL, "--container-env"},
		{args.unshare != NULL, "--container-unshare"},
		{args.mount_home != -1, "--[no-]container-mount-home"},
		{args.remap_root != -1, "--[no-]container-remap-root"},
		{args.entrypoint != -1, "--[no-]container-entrypoint"},
		{args.entrypoint_log != -1, "--container-entrypoint-log"},
		{args.writable != -1, "--container-writable/--container-readonly"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
		if (opts[i].set)
			slurm_error(PLUGIN_PREFIX "ignoring %s because neither --container-image nor "
				    "--container-name is set", opts[i].what);
}

int args_finish(spank_t sp)
{
	if (apply_env(sp) < 0)
		return -1;
	if (!args.image && !args.name) {
		report_ignored();
		return 0;
	}
	if (args.mounts) {
		/* Syntax only here; sources are checked on the node. */
		struct launcher_mounts m = {0};
		int r = launcher_mounts_parse(&m, args.mounts);

		launcher_mounts_clear(&m);
		if (r < 0) {
			slurm_error(PLUGIN_PREFIX "--container-mounts: %s", berth_errmsg(r));
			return -1;
		}
	}
	return 1;
}

void args_clear(void)
{
	free(args.image);
	free(args.mounts);
	free(args.workdir);
	free(args.name);
	free(args.save);
	free(args.env);
	free(args.unshare);
	args = (struct args){.name_mode = NAME_AUTO, .mount_home = -1, .remap_root = -1,
			     .entrypoint = -1, .entrypoint_log = -1, .writable = -1};
}
