/* Image commands: berth import, images, rmi, inspect, cache prune, export
 * (berth-image: doc/decisions.md, "Lean run path").
 * Standard output carries only results (the path, the table, the JSON);
 * progress and errors go to standard error. */
#include "config.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "common/error.h"
#include "common/util.h"
#include "imgconv/imgconv.h"
#include "launcher/cli.h"
#include "launcher/launcher.h"

static bool want_help(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (streq(argv[i], "--help") || streq(argv[i], "-h"))
			return true;
	return false;
}

int cmd_import(struct berth_config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'},
		{"arch", required_argument, NULL, 'a'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct imgconv_import_opts io = {0};
	_cleanup_free_ char *path = NULL;
	int c, r;

	if (want_help(argc, argv)) {
		printf("Usage: berth import [--output FILE] [--arch ARCH] [--quiet] REF\n"
		       "Fetch an image and convert it to one squashfs file; print its path.\n"
		       "REF: docker://[USER@][REGISTRY#]IMAGE[:TAG|@DIGEST], IMAGE[:TAG],\n"
		       "     REGISTRY/IMAGE[:TAG|@DIGEST], docker-archive://FILE.tar,\n"
		       "     oci-dir://DIR[:TAG], or a .sqsh file.\n"
		       "  -o, --output FILE  write the squashfs to FILE instead of the cache\n"
		       "  -a, --arch ARCH    platform to pick from a multi-arch image\n"
		       "                     (ARCH[/VARIANT] or OS/ARCH[/VARIANT]; default: host)\n"
		       "  -q, --quiet        no progress output\n");
		return 0;
	}
	optind = 0; /* glibc: a full restart, main() parsed its own options */
	while ((c = getopt_long(argc, argv, "+o:a:q", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			io.output = optarg;
			break;
		case 'a':
			io.arch = optarg;
			break;
		case 'q':
			io.flags |= IMGCONV_QUIET;
			break;
		default:
			return 2;
		}
	}
	if (optind != argc - 1) {
		cli_error("import: %s (see 'berth import --help')",
			  optind >= argc ? "missing image reference" : "too many arguments");
		return 2;
	}
	if (!(io.flags & IMGCONV_QUIET) && isatty(STDERR_FILENO))
		io.flags |= IMGCONV_PROGRESS;
	r = imgconv_import(cfg, argv[optind], &io, &path);
	if (r < 0)
		return cli_fail(r);
	printf("%s\n", path);
	return 0;
}

int cmd_images(struct berth_config *cfg, int argc, char **argv)
{
	struct imgconv_image *imgs;
	size_t n;
	bool digests_only = false;
	int r;

	if (want_help(argc, argv)) {
		printf("Usage: berth images [-q|--quiet]\n"
		       "List the images in the cache: reference, digest, size, import date.\n"
		       "  -q, --quiet  print only the full digests\n");
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "-q") || streq(argv[i], "--quiet")) {
			digests_only = true;
		} else {
			cli_error("images: unexpected argument '%s'", argv[i]);
			return 2;
		}
	}
	r = imgconv_list_images(cfg, &imgs, &n);
	if (r < 0)
		return cli_fail(r);
	if (!digests_only)
		printf("%-50s %-19s %10s  %s\n", "REFERENCE", "DIGEST", "SIZE", "IMPORTED");
	for (size_t i = 0; i < n; i++) {
		char size[16], when[32];
		time_t t = (time_t)imgs[i].created;
		struct tm tm;
		size_t nref = strv_length(imgs[i].references);

		if (digests_only) {
			printf("%s\n", imgs[i].digest);
			continue;
		}
		format_bytes(imgs[i].size, size, sizeof(size));
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M", localtime_r(&t, &tm));
		for (size_t k = 0; k < (nref ? nref : 1); k++)
			printf("%-50s %.19s %10s  %s\n", nref ? imgs[i].references[k] : "<none>",
			       imgs[i].digest, size, when);
	}
	imgconv_free_images(imgs, n);
	return 0;
}

int cmd_rmi(struct berth_config *cfg, int argc, char **argv)
{
	int status = 0;

	if (want_help(argc, argv) || argc < 2) {
		printf("Usage: berth rmi REF|DIGEST...\n"
		       "Remove images from the cache (by reference, or by digest or a prefix\n"
		       "of 12+ hex digits).  'berth cache prune' then frees their blobs.\n");
		return argc < 2 ? 2 : 0;
	}
	for (int i = 1; i < argc; i++) {
		_cleanup_free_ char *digest = NULL;
		int r = imgconv_remove_image(cfg, argv[i], &digest);

		if (r < 0)
			status = cli_fail(r);
		else
			printf("removed %s\n", digest);
	}
	return status;
}

static int print_config(const char *what, const char *json, size_t len)
{
	json_t *root = json_loadb(json, len, 0, NULL), *conf;
	char *text;

	if (!root) {
		cli_error("inspect '%s': /.berth/image.json is not valid JSON", what);
		return 1;
	}
	/* image.json is {"reference", "manifest_digest", "config": <the image
	 * config blob>}; the blob's own "config" member holds Env, Entrypoint,
	 * Cmd, WorkingDir, User, Labels. */
	conf = json_object_get(json_object_get(root, "config"), "config");
	if (!json_is_object(conf))
		conf = json_object();
	else
		json_incref(conf);
	text = json_dumps(conf, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(conf);
	json_decref(root);
	if (!text)
		return cli_fail(-ENOMEM);
	printf("%s\n", text);
	free(text);
	return 0;
}

int cmd_inspect(struct berth_config *cfg, int argc, char **argv)
{
	_cleanup_free_ char *path = NULL, *json = NULL;
	struct imgconv_ref ref;
	size_t len;
	int r;

	if (want_help(argc, argv)) {
		printf("Usage: berth inspect REF|FILE.sqsh\n"
		       "Print the image config stored in a squashfs (Env, Entrypoint, Cmd,\n"
		       "WorkingDir, User, Labels, ...) as JSON.  REF must be in the cache.\n");
		return 0;
	}
	if (argc != 2) {
		cli_error("inspect: expected one image reference or file");
		return 2;
	}
	r = imgconv_ref_parse(argv[1], cfg->default_registry, &ref);
	if (r == 0 && ref.kind == IMGCONV_REF_SQUASHFS)
		path = strdup(ref.path);
	else if (r == 0)
		r = imgconv_find_cached(cfg, argv[1], &path, NULL);
	else if (strchr(argv[1], '/') || access(argv[1], F_OK) == 0)
		r = 0, path = strdup(argv[1]);
	imgconv_ref_clear(&ref);
	if (r == 0 && !path)
		r = -ENOMEM;
	if (r == 0)
		r = imgconv_check_squashfs(path);
	if (r == 0)
		r = imgconv_read_image_json(path, &json, &len);
	if (r < 0)
		return cli_fail(r);
	return print_config(argv[1], json, len);
}

int cmd_cache(struct berth_config *cfg, int argc, char **argv)
{
	size_t files;
	uint64_t bytes;
	char sz[16];
	int r;

	if (want_help(argc, argv) || argc != 2 || !streq(argv[1], "prune")) {
		printf("Usage: berth cache prune\n"
		       "Remove blobs no cached image uses, and what interrupted imports left\n"
		       "behind.  Refuses while an import is running.\n");
		return want_help(argc, argv) ? 0 : 2;
	}
	r = imgconv_prune(cfg, &files, &bytes);
	if (r < 0)
		return cli_fail(r);
	printf("removed %zu file%s, %s\n", files, files == 1 ? "" : "s",
	       format_bytes(bytes, sz, sizeof(sz)));
	return 0;
}

int cmd_export(struct berth_config *cfg, int argc, char **argv)
{
	_cleanup_free_ char *out = NULL;
	int r;

	if (argc > 1 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
		printf("Usage: berth export NAME FILE.sqsh\n"
		       "Save the named container NAME (its image plus its writable layer) as a\n"
		       "new squashfs image; the container must not be running.\n");
		return 0;
	}
	if (argc != 3) {
		cli_error("export: usage: berth export NAME FILE.sqsh");
		return 2;
	}
	launcher_cleanup_stale(cfg);
	out = argv[2][0] == '/' ? strdup(argv[2]) : NULL;
	if (!out) {
		_cleanup_free_ char *cwd = getcwd(NULL, 0);

		out = cwd ? path_join(cwd, argv[2]) : NULL;
	}
	if (!out)
		return cli_fail(-ENOMEM);
	r = launcher_export(cfg, argv[1], out);
	if (r < 0)
		return cli_fail(r);
	return 0;
}
