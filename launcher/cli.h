/* The berth command line: one function per subcommand, each in a cmd_*.c
 * file, listed in the table in main.c.  A command returns the process exit
 * status; it prints its own errors with cli_error(). */
#ifndef BERTH_CLI_H
#define BERTH_CLI_H

#include "common/conf.h"
#include "common/macros.h"

struct cli_command {
	const char *name;
	int (*run)(struct berth_config *cfg, int argc, char **argv);
	const char *summary;
};

/* "berth: <message>" on stderr, one line. */
void cli_error(const char *fmt, ...) _printf_(1, 2);
/* cli_error with berth_errmsg(code); returns 1 (or the given status). */
int cli_fail(int code);

/* main's options before the command name (-v, -q), for berth-image. */
extern char **cli_global_argv;
extern int cli_global_argc;
/* imghelper.c: the image side lives in berth-image (doc/decisions.md). */
int cli_forward(struct berth_config *cfg, int argc, char **argv);
/* Where berth-image is: next to this executable, else LIBEXECDIR/berth. */
int image_helper_path(char **out);
/* Import REF with berth-image; *path: the .sqsh.  Its one error line
 * becomes this process's error (berth_errmsg). */
int image_helper_import(const struct berth_config *cfg, const char *ref, char **path);

int cmd_doctor(struct berth_config *cfg, int argc, char **argv);
int cmd_config(struct berth_config *cfg, int argc, char **argv);
int cmd_run(struct berth_config *cfg, int argc, char **argv);
int cmd_create(struct berth_config *cfg, int argc, char **argv);
int cmd_ps(struct berth_config *cfg, int argc, char **argv);
int cmd_exec(struct berth_config *cfg, int argc, char **argv);
int cmd_rm(struct berth_config *cfg, int argc, char **argv);
int cmd_export(struct berth_config *cfg, int argc, char **argv);
int cmd_import(struct berth_config *cfg, int argc, char **argv);
int cmd_images(struct berth_config *cfg, int argc, char **argv);
int cmd_rmi(struct berth_config *cfg, int argc, char **argv);
int cmd_inspect(struct berth_config *cfg, int argc, char **argv);
int cmd_cache(struct berth_config *cfg, int argc, char **argv);
int cmd_gpus(struct berth_config *cfg, int argc, char **argv); /* gpu_cmd.c */
int cmd_pbs_wrap(struct berth_config *cfg, int argc, char **argv);
int cmd_oci(struct berth_config *cfg, int argc, char **argv);
int cmd_bundle(struct berth_config *cfg, int argc, char **argv);

#endif
