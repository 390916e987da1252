/* berth run, berth create. */
#include "config.h"
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/cli.h"
#include "launcher/gpu_cli.h"
#include "launcher/launcher.h"
#include "launcher/mpi.h"
#include "launcher/runcmd.h"

extern char **environ;

struct run_cli {
	struct launcher_mounts mounts;
	char **user_env;
	const char *workdir, *entrypoint, *hostname, *name;
	bool no_entrypoint, pid_ns, rm, unshare_net, unshare_ipc, unshare_uts;
	int remap_root, mount_home, writable; /* -1: from the config */
	struct gpu_cli gpu;
};

static void run_usage(FILE *out)
{
	fprintf(out,
		"Usage: berth run [OPTIONS] IMAGE [--] [CMD [ARG...]]\n"
		"Run IMAGE (a .sqsh file, a named container, or a reference to import).\n\n"
		"  -v, --mount SRC:DST[:FLAGS]  bind SRC at DST; FLAGS ro,rw,nosuid,nodev,noexec,\n"
		"                               rbind,private,slave joined by '+' or ','\n"
		"  -e, --env NAME[=VALUE]       set (or pass from the host) a variable\n"
		"      --env-file FILE          NAME=VALUE lines\n"
		"  -w, --workdir DIR            working directory (default: the image's)\n"
		"      --entrypoint CMD         replace the image's Entrypoint ('' for none)\n"
		"      --no-entrypoint          run CMD (or the image's Cmd) without Entrypoint\n"
		"      --remap-root, --no-remap-root    appear as root (uid 0) inside\n"
		"      --mount-home, --no-mount-home    bind $HOME\n"
		"      --writable, --readonly   writable overlay on the image, or none\n"
		"      --pid                    own PID namespace with a minimal init\n"
		"      --hostname NAME          own UTS namespace with this host name\n"
		"      --unshare net,ipc,uts    own network (loopback only), IPC, UTS namespaces\n"
		"      --name NAME              use (or create) the named container NAME\n"
		"      --rm                     remove the named container afterwards\n"
		"      --gpus all|none|LIST     GPUs to add (indexes or UUIDs; see 'berth gpus')\n"
		"      --gpu-affinity           bind to the cores local to the GPUs\n"
		"Exit status: the command's; 128+N if signal N killed it; 127 command not\n"
		"found; 126 not executable; 1 when berth itself failed.\n");
}

static int is_regular(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int resolve_image(const struct berth_config *cfg, const char *text, char **path,
			 const char **named)
{
	int r;

	*named = NULL;
	if (is_regular(text)) {
		*path = realpath(text, NULL);
		return *path ? 0 : berth_fail(-errno, "image '%s'", text);
	}
	if (text[0] == '/' || str_startswith(text, "./") || str_startswith(text, "../") ||
	    str_endswith(text, ".sqsh") || str_endswith(text, ".squashfs")) {
		if (access(text, F_OK) < 0)
			return berth_fail(-errno, "image '%s'", text);
		return berth_failx(BERTH_EINVAL_INPUT, "image '%s': not a regular file", text);
	}
	r = launcher_named_image(cfg, text, path);
	if (r == 0) {
		*named = text;
		return 0;
	}
	berth_error_clear();
	/* Everything that is not a file or a named container is a reference:
	 * berth-image finds it in the cache, or pulls and converts it now. */
	return image_helper_import(cfg, text, path);
}

/* --unshare net,ipc,uts (any of them; the default shares all three). */
static int parse_unshare(struct run_cli *o, const char *list)
{
	_cleanup_strv_ char **items = strv_split(list, ',');

	if (!items || !items[0] || list[0] == ',' || list[strlen(list) - 1] == ',' ||
	    strstr(list, ",,")) {
		cli_error("--unshare '%s': a comma-separated list of net, ipc, uts", list);
		return -1;
	}
	for (size_t i = 0; items[i]; i++) {
		if (streq(items[i], "net"))
			o->unshare_net = true;
		else if (streq(items[i], "ipc"))
			o->unshare_ipc = true;
		else if (streq(items[i], "uts"))
			o->unshare_uts = true;
		else {
			cli_error("--unshare '%s': '%s' is not one of net, ipc, uts", list, items[i]);
			return -1;
		}
	}
	return 0;
}

static int parse_run(struct berth_config *cfg, int argc, char **argv, struct run_cli *o)
{
	enum { O_ENVFILE = 256, O_ENTRY, O_NOENTRY, O_REMAP, O_NOREMAP, O_HOME, O_NOHOME,
	       O_WRITABLE, O_READONLY, O_PID, O_HOSTNAME, O_NAME, O_RM, O_GPUS, O_GPU_AFF,
	       O_UNSHARE };
	static const struct option opts[] = {
		{"mount", required_argument, NULL, 'v'},
		{"volume", required_argument, NULL, 'v'},
		{"env", required_argument, NULL, 'e'},
		{"env-file", required_argument, NULL, O_ENVFILE},
		{"workdir", required_argument, NULL, 'w'},
		{"entrypoint", required_argument, NULL, O_ENTRY},
		{"no-entrypoint", no_argument, NULL, O_NOENTRY},
		{"remap-root", no_argument, NULL, O_REMAP},
		{"no-remap-root", no_argument, NULL, O_NOREMAP},
		{"mount-home", no_argument, NULL, O_HOME},
		{"no-mount-home", no_argument, NULL, O_NOHOME},
		{"writable", no_argument, NULL, O_WRITABLE},
		{"readonly", no_argument, NULL, O_READONLY},
		{"pid", no_argument, NULL, O_PID},
		{"hostname", required_argument, NULL, O_HOSTNAME},
		{"unshare", required_argument, NULL, O_UNSHARE},
		{"name", required_argument, NULL, O_NAME},
		{"rm", no_argument, NULL, O_RM},
		{"gpus", required_argument, NULL, O_GPUS},
		{"gpu-affinity", no_argument, NULL, O_GPU_AFF},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, r;

	(void)cfg;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+v:e:w:h", opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			if ((r = launcher_mounts_parse(&o->mounts, optarg)) < 0)
				return cli_fail(r) + 1;
			break;
		case 'e':
			if ((r = launcher_env_parse(&o->user_env, optarg, environ)) < 0)
				return cli_fail(r) + 1;
			break;
		case O_ENVFILE:
			if ((r = launcher_env_parse_file(&o->user_env, optarg, environ)) < 0)
				return cli_fail(r) + 1;
			break;
		case 'w':
			if (optarg[0] != '/') {
				cli_error("workdir '%s' is not an absolute path", optarg);
				return 2;
			}
			o->workdir = optarg;
			break;
		case O_ENTRY: o->entrypoint = optarg; break;
		case O_NOENTRY: o->no_entrypoint = true; break;
		case O_REMAP: o->remap_root = 1; break;
		case O_NOREMAP: o->remap_root = 0; break;
		case O_HOME: o->mount_home = 1; break;
		case O_NOHOME: o->mount_home = 0; break;
		case O_WRITABLE: o->writable = 1; break;
		case O_READONLY: o->writable = 0; break;
		case O_PID: o->pid_ns = true; break;
		case O_HOSTNAME: o->hostname = optarg; break;
		case O_UNSHARE:
			if (parse_unshare(o, optarg) < 0)
				return 2;
			break;
		case O_NAME: o->name = optarg; break;
		case O_RM: o->rm = true; break;
		case O_GPUS: o->gpu.gpus = optarg; break;
		case O_GPU_AFF: o->gpu.affinity = true; break;
		case 'h':
			run_usage(stdout);
			return -1;
		default:
			run_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc && !o->name) {
		cli_error("run: missing IMAGE (see 'berth run --help')");
		return 2;
	}
	if (o->name && !launcher_name_valid(o->name)) {
		cli_error("container name '%s': use letters, digits, '_', '.', '-'", o->name);
		return 2;
	}
	if (o->hostname && (!*o->hostname || strlen(o->hostname) > 64)) {
		cli_error("hostname '%s': must be 1 to 64 characters", o->hostname);
		return 2;
	}
	return 0;
}

static enum launcher_overlay overlay_mode(const char *s)
{
	return streq(s, "kernel") ? LAUNCHER_OVERLAY_KERNEL
	       : streq(s, "fuse") ? LAUNCHER_OVERLAY_FUSE : LAUNCHER_OVERLAY_AUTO;
}

/* --rm of a named container: the keeper must be gone before its layer. */
static int remove_named(const struct berth_config *cfg, const char *name)
{
	for (int i = 0; i < 100; i++) {
		int r = launcher_named_remove(cfg, name);

		if (r != BERTH_EINVAL_INPUT)
			return r < 0 ? cli_fail(r) : 0;
		usleep(50 * 1000);
	}
	return cli_fail(launcher_named_remove(cfg, name));
}

/* Under a PMIx server the rendezvous directories are bound in after the
 * container is made (launcher_mpi_attach), which takes a keeper. */
static bool needs_rendezvous(void)
{
	_cleanup_strv_ char **dirs = NULL;

	return mpi_rendezvous_dirs(environ, getuid(), &dirs) != 0 || (dirs && dirs[0]);
}

/* What the run needs from the image before it is mounted, in one opening
 * of the .sqsh (launcher_facts_read()): the config for the payload, the
 * rest for building the container.  A container built in this process
 * cannot reach the .sqsh by its host path once inside, and through the
 * fresh mount each item costs round trips to the FUSE server. */
struct image_files {
	struct launcher_server *server;
	struct launcher_facts *facts;
	struct launcher_image cfg;
	bool have_cfg;
};

static void image_files_read(const char *image, struct image_files *f, struct launcher_opts *lo)
{
	const char *home = getenv("HOME"), *json;

	if (launcher_facts_read(image, home, &f->facts) < 0) {
		berth_error_clear();
		return;
	}
	lo->facts = f->facts;
	json = launcher_facts_config(f->facts);
	f->have_cfg = json && launcher_image_parse(json, strlen(json), &f->cfg) == 0;
	if (!f->have_cfg)
		berth_error_clear();
}

static void image_files_clear(struct image_files *f)
{
	launcher_server_free(f->server);
	launcher_facts_free(f->facts);
	launcher_image_clear(&f->cfg);
}

static int run_image_files(struct berth_config *cfg, struct run_cli *o, int argc, char **argv,
			   struct image_files *files)
{
	_cleanup_free_ char *image = NULL;
	_cleanup_strv_ char **warm = NULL;
	const char *named = NULL, *text = optind < argc ? argv[optind] : NULL;
	struct launcher_container *c = NULL;
	struct launcher_opts lo = {0};
	struct mpi_plan *mpi = NULL;
	struct payload p = {0};
	char host[256] = "";
	int r, status;

	if (text && (r = resolve_image(cfg, text, &image, &named)) < 0)
		return cli_fail(r);
	if (o->name && !named) {
		if (!image && (r = launcher_named_image(cfg, o->name, &image)) < 0)
			return cli_fail(r);
		if ((r = launcher_named_create(cfg, o->name, image)) < 0)
			return cli_fail(r);
		named = o->name;
	}
	if (named && !o->name)
		o->name = named;
	/* --unshare uts alone: the host's name, in a namespace of its own */
	if (o->unshare_uts && !o->hostname && gethostname(host, sizeof(host) - 1) == 0)
		o->hostname = host;
	lo = (struct launcher_opts){
		.image = image, .name = named, .mounts = &o->mounts,
		.writable = o->writable >= 0 ? o->writable : cfg->writable || named,
		.remap_root = o->remap_root >= 0 ? o->remap_root : cfg->remap_root,
		.mount_home = o->mount_home >= 0 ? o->mount_home : cfg->mount_home,
		.hostname = o->hostname, .overlay = overlay_mode(cfg->overlay),
		.unshare_net = o->unshare_net, .unshare_ipc = o->unshare_ipc,
		/* Nothing to do after the payload: become it (see payload_exec). */
		.hold_caller = !o->rm && !o->pid_ns,
	};
	if (named && !lo.writable) {
		cli_error("container '%s': a named container is always writable", named);
		return 2;
	}
	lo.build_here = lo.hold_caller && !needs_rendezvous();
	/* First: a container built here has its FUSE server open the image
	 * while the rest is prepared. */
	files->server = lo.server = launcher_prestart(cfg, &lo);
	image_files_read(image, files, &lo);
	if ((r = gpu_cli_prepare(cfg, &o->gpu, image, files->have_cfg ? &files->cfg : NULL,
				 environ)) < 0)
		return cli_fail(r);
	lo.gpu = o->gpu.plan;
	if ((r = mpi_plan(cfg->gpu_driver_root, cfg->mpi_inject_verbs, &mpi)) < 0)
		return cli_fail(r);
	lo.mpi = mpi;
	p = (struct payload){
		.host_env = o->gpu.env ? o->gpu.env : environ,
		.user_env = o->user_env,
		.workdir = o->workdir, .entrypoint = o->entrypoint,
		.no_entrypoint = o->no_entrypoint, .own_pid_ns = o->pid_ns,
		.image = image, .image_cfg = files->have_cfg ? &files->cfg : NULL,
		.args = text && optind + 1 < argc ? argv + optind + 1 : NULL,
	};
	if (p.args && streq(p.args[0], "--"))
		p.args = p.args[1] ? p.args + 1 : NULL;
	warm = payload_exec_paths(&p);
	lo.warm = warm;
	r = launcher_create(cfg, &lo, &c);
	mpi_plan_free(mpi);
	if (r == 0 && (r = launcher_mpi_attach(c, environ)) < 0)
		launcher_release(c);
	if (r < 0)
		return cli_fail(r);
	p.container = c;
	if (lo.hold_caller)
		return payload_exec(&p);
	status = payload_run(&p);
	launcher_release(c);
	if (o->rm && named && remove_named(cfg, named) != 0 && status == 0)
		status = 1;
	return status;
}

static int run_image(struct berth_config *cfg, struct run_cli *o, int argc, char **argv)
{
	struct image_files files = {0};
	int status;

	status = run_image_files(cfg, o, argc, argv, &files);
	image_files_clear(&files);
	return status;
}

int cmd_run(struct berth_config *cfg, int argc, char **argv)
{
	struct run_cli o = {.remap_root = -1, .mount_home = -1, .writable = -1};
	int r;

	launcher_cleanup_stale(cfg);
	r = parse_run(cfg, argc, argv, &o);
	if (r == 0)
		r = run_image(cfg, &o, argc, argv);
	else if (r < 0)
		r = 0;
	launcher_mounts_clear(&o.mounts);
	strv_free(o.user_env);
	gpu_cli_clear(&o.gpu);
	return r;
}

int cmd_create(struct berth_config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{"name", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	_cleanup_free_ char *image = NULL;
	const char *name = NULL, *named = NULL;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+n:h", opts, NULL)) != -1) {
		if (c == 'n') {
			name = optarg;
		} else if (c == 'h') {
			printf("Usage: berth create --name NAME IMAGE\n"
			       "Make a named container: IMAGE plus a writable layer kept on disk\n"
			       "under runtime_dir until 'berth rm NAME'.\n");
			return 0;
		} else {
			return 2;
		}
	}
	if (!name || optind + 1 != argc) {
		cli_error("create: usage: berth create --name NAME IMAGE");
		return 2;
	}
	launcher_cleanup_stale(cfg);
	r = resolve_image(cfg, argv[optind], &image, &named);
	if (r == 0 && named)
		r = berth_failx(BERTH_EINVAL_INPUT, "image '%s' is a container name", argv[optind]);
	if (r == 0)
		r = launcher_named_create(cfg, name, image);
	if (r < 0)
		return cli_fail(r);
	printf("%s\n", name);
	return 0;
}
