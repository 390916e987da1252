/* berth: run Docker/OCI images on HPC clusters, unprivileged. */
#include "config.h"
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/cli.h"

/* Two programs are built from this file (doc/decisions.md, "Lean run
 * path"): `berth`, which runs containers and loads no registry, archive or
 * TLS library, and `berth-image` (BERTH_IMAGE_HELPER), which has the image
 * side.  `berth` hands the image commands to it whole (cli_forward). */
#ifdef BERTH_IMAGE_HELPER
#define RUN_SIDE(f) NULL
#define IMAGE_SIDE(f) f
#else
#define RUN_SIDE(f) f
#define IMAGE_SIDE(f) cli_forward
#endif

static const struct cli_command commands[] = {
	{"config", RUN_SIDE(cmd_config), "print the effective configuration and where each value came from"},
	{"doctor", RUN_SIDE(cmd_doctor), "check that this host can run berth containers"},
	{"run", RUN_SIDE(cmd_run), "run a command in an image, unprivileged"},
	{"create", RUN_SIDE(cmd_create), "make a named container with a persistent writable layer"},
	{"ps", RUN_SIDE(cmd_ps), "list named and running containers"},
	{"exec", RUN_SIDE(cmd_exec), "run a command in a running container"},
	{"rm", RUN_SIDE(cmd_rm), "remove named containers"},
	{"export", IMAGE_SIDE(cmd_export), "save a named container (image + changes) as a .sqsh file"},
	{"import", IMAGE_SIDE(cmd_import), "fetch an image and convert it to a squashfs file"},
	{"images", IMAGE_SIDE(cmd_images), "list the images in the cache"},
	{"rmi", IMAGE_SIDE(cmd_rmi), "remove images from the cache"},
	{"inspect", IMAGE_SIDE(cmd_inspect), "print an image's config (env, entrypoint, ...) as JSON"},
	{"gpus", RUN_SIDE(cmd_gpus), "list GPUs with their NUMA node and local cores"},
	{"cache", IMAGE_SIDE(cmd_cache), "cache maintenance: 'berth cache prune'"},
	{"pbs-wrap", RUN_SIDE(cmd_pbs_wrap), "run a PBS job's command in its container (hooks, pbsdsh, mpiexec)"},
	{"oci", RUN_SIDE(cmd_oci), "OCI runtime: create/start/state/kill/delete/run (Slurm's srun --container)"},
	{"bundle", RUN_SIDE(cmd_bundle), "make an OCI bundle (config.json + rootfs) from an image"},
};

char **cli_global_argv;
int cli_global_argc;

#ifdef BERTH_IMAGE_HELPER
/* `berth run REF` reads the one error line from here (image_helper_import). */
static int error_fd = STDERR_FILENO;
#endif

void cli_error(const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
#ifdef BERTH_IMAGE_HELPER
	dprintf(error_fd, "berth: %s\n", msg);
#else
	fflush(stdout);
	fprintf(stderr, "berth: %s\n", msg);
#endif
}

int cli_fail(int code)
{
	cli_error("%s", berth_errmsg(code));
	return 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: berth [-v|-vv|-q] COMMAND [ARGS...]\n"
		"Run Docker/OCI images on HPC clusters without root.\n\n"
		"Commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (commands[i].run)
			fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out,
		"\nOptions:\n"
		"  -v, --verbose   more detail (-vv for tracing)\n"
		"  -q, --quiet     errors only\n"
		"  -h, --help      this help; 'berth COMMAND --help' for a command\n"
		"  -V, --version   print the version\n\n"
		"Configuration: see berth.conf(5); 'berth config' shows the values in effect.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct berth_config *cfg = NULL;
	enum berth_log_level level;
	int verbose = 0, quiet = 0, c, r;

#ifdef BERTH_IMAGE_HELPER
	const char *efd = getenv("BERTH_ERROR_FD");
	uint64_t v;

	if (efd && parse_u64(efd, 1023, &v) == 0 && v > 2 && fcntl((int)v, F_GETFD) >= 0)
		error_fd = (int)v;
	unsetenv("BERTH_ERROR_FD");
#endif

	/* '+': stop at the command name; its options are its own. */
	while ((c = getopt_long(argc, argv, "+vqhV", opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			verbose++;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("berth %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	/* -v/-q travel with a command handed to berth-image. */
	cli_global_argv = argv + 1;
	cli_global_argc = optind - 1;
	r = berth_config_load(&cfg, 0);
	if (r < 0)
		return cli_fail(r);
	if (berth_log_parse_level(cfg->log_level, &level) < 0)
		level = BERTH_LOG_INFO;
	if (verbose)
		level = verbose > 1 ? BERTH_LOG_TRACE : BERTH_LOG_DEBUG;
	if (quiet)
		level = BERTH_LOG_ERROR;
	berth_log_set_level(level);

	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (commands[i].run && strcmp(argv[optind], commands[i].name) == 0) {
			/* The command sees argv[0] = its name; getopt restarts. */
			optind++;
			r = commands[i].run(cfg, argc - optind + 1, argv + optind - 1);
			berth_config_free(cfg);
			return r;
		}
	}
	cli_error("unknown command '%s' (see 'berth --help')", argv[optind]);
	berth_config_free(cfg);
	return 2;
}
