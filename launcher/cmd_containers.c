/* berth ps, berth exec, berth rm. */
#include "config.h"
#include <ctype.h>
#include <errno.h>
#include <unistd.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/cli.h"
#include "launcher/launcher.h"
#include "launcher/runcmd.h"

extern char **environ;

int cmd_ps(struct berth_config *cfg, int argc, char **argv)
{
	struct launcher_entry *v = NULL;
	size_t n = 0;
	int r;

	if (argc > 1 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
		printf("Usage: berth ps\nList named containers and running containers.\n");
		return 0;
	}
	if (argc > 1) {
		cli_error("ps: unexpected argument '%s'", argv[1]);
		return 2;
	}
	launcher_cleanup_stale(cfg);
	r = launcher_list(cfg, &v, &n);
	if (r < 0)
		return cli_fail(r);
	printf("%-20s %-8s %-8s %-6s %s\n", "NAME", "STATE", "PID", "USERS", "IMAGE");
	for (size_t i = 0; i < n; i++) {
		char pid[16] = "-", users[16] = "-";

		if (v[i].dir) {
			snprintf(pid, sizeof(pid), "%d", (int)v[i].keeper);
			snprintf(users, sizeof(users), "%u", v[i].users);
		}
		printf("%-20s %-8s %-8s %-6s %s\n", v[i].name ? v[i].name : "-",
		       v[i].dir ? "running" : "stopped", pid, users,
		       v[i].image ? v[i].image : "?");
	}
	launcher_list_free(v, n);
	return 0;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

int cmd_exec(struct berth_config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{"env", required_argument, NULL, 'e'},
		{"env-file", required_argument, NULL, 'f'},
		{"workdir", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	_cleanup_strv_ char **user_env = NULL;
	struct launcher_container *c = NULL;
	struct payload p = {.host_env = environ, .no_entrypoint = true, .exec = true};
	const char *target;
	int ch, r;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "+e:w:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'e':
			if ((r = launcher_env_parse(&user_env, optarg, environ)) < 0)
				return cli_fail(r) + 1;
			break;
		case 'f':
			if ((r = launcher_env_parse_file(&user_env, optarg, environ)) < 0)
				return cli_fail(r) + 1;
			break;
		case 'w':
			p.workdir = optarg;
			break;
		case 'h':
			printf("Usage: berth exec [-e NAME[=VALUE]] [--env-file FILE] [-w DIR] "
			       "NAME|PID [--] CMD [ARG...]\n"
			       "Run CMD in a running container: by name, or by the PID of any of\n"
			       "its processes.\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind + 1 >= argc) {
		cli_error("exec: usage: berth exec NAME|PID [--] CMD [ARG...]");
		return 2;
	}
	target = argv[optind++];
	if (streq(argv[optind], "--"))
		optind++;
	if (optind >= argc) {
		cli_error("exec: no command given");
		return 2;
	}
	p.args = argv + optind;
	p.user_env = user_env;
	launcher_cleanup_stale(cfg);
	if (all_digits(target)) {
		p.join_pid = (pid_t)strtol(target, NULL, 10);
	} else {
		_cleanup_free_ char *image = NULL;

		if (!launcher_name_valid(target) ||
		    (r = launcher_named_image(cfg, target, &image)) < 0) {
			cli_error("no container named '%s' (see 'berth ps')", target);
			return 1;
		}
		if ((r = launcher_open(cfg, target, &c)) < 0)
			return cli_fail(r);
		p.container = c;
	}
	r = payload_run(&p);
	launcher_release(c);
	return r;
}

int cmd_rm(struct berth_config *cfg, int argc, char **argv)
{
	int status = 0;

	if (argc > 1 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
		printf("Usage: berth rm NAME...\nRemove named containers that are not running.\n");
		return 0;
	}
	if (argc < 2) {
		cli_error("rm: usage: berth rm NAME...");
		return 2;
	}
	launcher_cleanup_stale(cfg);
	for (int i = 1; i < argc; i++) {
		int r = launcher_named_remove(cfg, argv[i]);

		if (r < 0) {
			if (r == BERTH_ENOTFOUND && !launcher_name_valid(argv[i]))
				cli_error("no container named '%s' (see 'berth ps')", argv[i]);
			else
				cli_fail(r);
			status = 1;
		}
	}
	return status;
}
