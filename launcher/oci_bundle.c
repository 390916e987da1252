/* berth bundle IMAGE DIR: an OCI bundle for `berth oci` and Slurm's
 * `srun --container=DIR`.  DIR/config.json runs the image's Entrypoint +
 * Cmd with its Env and WorkingDir; annotation org.berth.image names the
 * squashfs that `berth oci` mounts as the root, and DIR/rootfs is an empty
 * directory for tools that expect one (nothing is unpacked). */
#include "config.h"
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include "common/error.h"
#include "common/util.h"
#include "imgconv/imgconv.h"
#include "launcher/cli.h"
#include "launcher/launcher.h"

struct bundle_opts {
	bool remap_root, readonly;
	const char *hostname;
};

static json_t *strv_json(char *const *v)
{
	json_t *a = json_array();

	for (size_t i = 0; a && v && v[i]; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *id_map(unsigned inside, unsigned host)
{
	return json_pack("[{s:I, s:I, s:i}]", "containerID", (json_int_t)inside, "hostID",
			 (json_int_t)host, "size", 1);
}

/* process.args: Entrypoint + Cmd (Docker's rules); a shell when the image
 * names nothing to run (srun --container replaces args anyway). */
static json_t *process_json(const struct launcher_image *img, const struct bundle_opts *b)
{
	_cleanup_strv_ char **argv = NULL, **env = NULL;
	unsigned uid = b->remap_root ? 0 : getuid(), gid = b->remap_root ? 0 : getgid();
	bool has_path = false;

	if (launcher_argv_build(img, NULL, false, NULL, &argv) < 0) {
		berth_error_clear();
		strv_free(argv);
		argv = NULL;
		if (strv_push(&argv, "/bin/sh") < 0)
			return NULL;
	}
	for (size_t i = 0; img->env && img->env[i]; i++) {
		has_path |= str_startswith(img->env[i], "PATH=");
		if (strv_push(&env, img->env[i]) < 0)
			return NULL;
	}
	if (!has_path &&
	    strv_push(&env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") < 0)
		return NULL;
	return json_pack("{s:b, s:{s:I, s:I}, s:o, s:o, s:s}", "terminal", 0, "user", "uid",
			 (json_int_t)uid, "gid", (json_int_t)gid, "args", strv_json(argv), "env",
			 strv_json(env), "cwd", img->workdir ? img->workdir : "/");
}

static json_t *config_json(const char *sqsh, const char *ref, const struct launcher_image *img,
			   const struct bundle_opts *b)
{
	json_t *ns = json_pack("[{s:s}, {s:s}]", "type", "user", "type", "mount");
	json_t *c;

	if (ns && b->hostname)
		json_array_append_new(ns, json_pack("{s:s}", "type", "uts"));
	c = json_pack("{s:s, s:o, s:{s:s, s:b}, s:[], s:{s:o, s:o, s:o}, s:{s:s, s:s}}",
		      "ociVersion", "1.0.2", "process", process_json(img, b), "root", "path",
		      "rootfs", "readonly", b->readonly, "mounts", "linux", "namespaces", ns,
		      "uidMappings", id_map(b->remap_root ? 0 : getuid(), getuid()),
		      "gidMappings", id_map(b->remap_root ? 0 : getgid(), getgid()),
		      "annotations", "org.berth.image", sqsh, "org.opencontainers.image.ref.name",
		      ref);
	if (c && b->hostname)
		json_object_set_new(c, "hostname", json_string(b->hostname));
	return c;
}

/* DIR must be new or an empty directory: a bundle is never merged into
 * (or written over) something else. */
static int make_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0755) == 0)
		return 0;
	if (errno != EEXIST)
		return berth_fail(-errno, "bundle directory '%s'", dir);
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return berth_failx(BERTH_EINVAL_INPUT, "bundle directory '%s' exists and is not "
				   "a directory", dir);
	if (rmdir(dir) == 0)
		return mkdir(dir, 0755) < 0 ? berth_fail(-errno, "bundle directory '%s'", dir) : 0;
	return berth_failx(BERTH_EINVAL_INPUT, "bundle directory '%s' is not empty", dir);
}

static int write_bundle(const struct berth_config *cfg, const char *ref, const char *dir,
			const struct bundle_opts *b)
{
	_cleanup_free_ char *sqsh = NULL, *abs = NULL, *json = NULL, *text = NULL, *p = NULL;
	struct launcher_image img = {0};
	json_t *c;
	size_t len;
	int r;

	if ((r = image_helper_import(cfg, ref, &sqsh)) < 0) /* berth-image */
		return r;
	if (!(abs = realpath(sqsh, NULL)))
		return berth_fail(-errno, "image '%s'", sqsh);
	if ((r = imgconv_read_image_json(abs, &json, &len)) < 0 ||
	    (r = launcher_image_parse(json, len, &img)) < 0)
		return berth_fail_context(r, "image '%s'", ref);
	c = config_json(abs, ref, &img, b);
	launcher_image_clear(&img);
	text = c ? json_dumps(c, JSON_INDENT(2)) : NULL;
	json_decref(c);
	if (!text)
		return -ENOMEM;
	if ((r = make_dir(dir)) < 0)
		return r;
	p = path_join(dir, "rootfs");
	if (!p || mkdir(p, 0755) < 0) {
		r = p ? berth_fail(-errno, "create '%s'", p) : -ENOMEM;
		rm_rf(dir);
		return r;
	}
	free(p);
	p = path_join(dir, "config.json");
	r = p ? write_file_atomic(p, text, strlen(text), 0644) : -ENOMEM;
	if (r < 0) {
		rm_rf(dir);
		return berth_fail_context(r, "bundle '%s'", dir);
	}
	return 0;
}

int cmd_bundle(struct berth_config *cfg, int argc, char **argv)
{
	enum { O_REMAP = 256, O_READONLY, O_HOSTNAME };
	static const struct option opts[] = {
		{"remap-root", no_argument, NULL, O_REMAP},
		{"readonly", no_argument, NULL, O_READONLY},
		{"hostname", required_argument, NULL, O_HOSTNAME},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct bundle_opts b = {0};
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case O_REMAP: b.remap_root = true; break;
		case O_READONLY: b.readonly = true; break;
		case O_HOSTNAME: b.hostname = optarg; break;
		case 'h':
			printf("Usage: berth bundle [--remap-root] [--readonly] [--hostname NAME] "
			       "IMAGE DIR\n"
			       "Make an OCI bundle (DIR/config.json, DIR/rootfs) that runs IMAGE with\n"
			       "'berth oci' or Slurm's 'srun --container=DIR' (doc/oci.md).\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind + 2 != argc) {
		cli_error("bundle: usage: berth bundle [OPTIONS] IMAGE DIR");
		return 2;
	}
	if (b.hostname && (!*b.hostname || strlen(b.hostname) > 64)) {
		cli_error("hostname '%s': must be 1 to 64 characters", b.hostname);
		return 2;
	}
	r = write_bundle(cfg, argv[optind], argv[optind + 1], &b);
	if (r < 0)
		return cli_fail(r);
	printf("%s\n", argv[optind + 1]);
	return 0;
}
