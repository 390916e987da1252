/* berth oci create|start|state|kill|delete|run: the OCI runtime command
 * line (runtime spec runtime.md; runc's options where they apply), for
 * Slurm's oci.conf and other callers of runc/crun.  See doc/oci.md. */
#include "config.h"
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/cli.h"
#include "launcher/exec.h"
#include "launcher/oci.h"

struct oci_cli {
	char *root;
	const char *log; /* --log FILE: errors are appended there too */
};

static int oci_usage(FILE *out)
{
	fprintf(out,
		"Usage: berth oci [--root DIR] [--log FILE] COMMAND [OPTIONS] ID\n"
		"An OCI runtime for bundles whose config.json names a berth image\n"
		"('berth bundle IMAGE DIR' makes one) or whose root.path is a .sqsh file.\n\n"
		"  create [-b BUNDLE] [--pid-file FILE] ID   set up, wait for start\n"
		"  start ID                                  run process.args\n"
		"  state ID                                  print the state JSON\n"
		"  kill [-a] ID [SIGNAL]                     signal it (default TERM)\n"
		"  delete [-f] ID                            remove it (-f: kill it first)\n"
		"  run [-b BUNDLE] [--pid-file FILE] [--rm] ID   create, start, wait; exit\n"
		"                                            status is the process's\n\n"
		"  --root DIR    state directory (default: runtime_dir/oci); when berth runs\n"
		"                as root it acts as the owner of DIR\n"
		"  --log FILE    also append error messages to FILE\n"
		"Accepted for runc compatibility and ignored: --rootless, --systemd-cgroup,\n"
		"--log-format, --debug (= -v), --no-pivot, --no-new-keyring.\n");
	return out == stdout ? 0 : 2;
}

static int fail(const struct oci_cli *o, int code)
{
	if (o->log) {
		FILE *f = fopen(o->log, "ae");

		if (f) {
			fprintf(f, "berth: %s\n", berth_errmsg(code));
			fclose(f);
		}
	}
	return cli_fail(code);
}

static const struct {
	const char *name;
	int sig;
} signals[] = {
	{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
	{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"CONT", SIGCONT},
	{"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"ALRM", SIGALRM}, {"WINCH", SIGWINCH},
	{"PIPE", SIGPIPE}, {"ABRT", SIGABRT},
};

static int parse_signal(const char *s)
{
	uint64_t n;

	if (parse_u64(s, 64, &n) == 0 && n > 0)
		return (int)n;
	berth_error_clear();
	if (str_startswith(s, "SIG"))
		s += 3;
	for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
		if (streq(s, signals[i].name))
			return signals[i].sig;
	return -1;
}

static int write_pid_file(const char *path, pid_t pid)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d", (int)pid);

	return path ? write_file_atomic(path, buf, (size_t)n, 0644) : 0;
}

/* Options of create and run; returns optind of ID or an exit status < 0. */
struct create_opts {
	const char *bundle, *pid_file;
	bool rm;
};

static int parse_create(int argc, char **argv, struct create_opts *c)
{
	enum { O_PIDFILE = 256, O_CONSOLE, O_IGNORE, O_RM };
	static const struct option opts[] = {
		{"bundle", required_argument, NULL, 'b'},
		{"pid-file", required_argument, NULL, O_PIDFILE},
		{"console-socket", required_argument, NULL, O_CONSOLE},
		{"no-pivot", no_argument, NULL, O_IGNORE},
		{"no-new-keyring", no_argument, NULL, O_IGNORE},
		{"rm", no_argument, NULL, O_RM},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	c->bundle = ".";
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+b:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'b': c->bundle = optarg; break;
		case O_PIDFILE: c->pid_file = optarg; break;
		case O_IGNORE: break;
		case O_RM: c->rm = true; break;
		case O_CONSOLE:
			cli_error("oci %s: --console-socket: berth allocates no terminal "
				  "(process.terminal must be false)", argv[0]);
			return -2;
		case 'h': return -oci_usage(stdout) - 100;
		default: return -2;
		}
	}
	if (optind + 1 != argc) {
		cli_error("oci %s: expected one container ID", argv[0]);
		return -2;
	}
	return optind;
}

/* Make root/<id> and the spec; on failure nothing is left behind. */
static int prepare(const struct berth_config *cfg, const struct oci_cli *o, const char *bundle,
		   const char *id, struct oci_spec *spec, struct oci_state *st)
{
	int r;

	(void)cfg;
	if (!oci_id_valid(id))
		return berth_failx(BERTH_EINVAL_INPUT, "container id '%s': use letters, digits, "
				   "'_', '.', '+', '-' (at most 128)", id);
	if ((r = oci_spec_load(bundle, spec)) < 0 || (r = oci_root_open(o->root)) < 0)
		return r;
	*st = (struct oci_state){.dir = path_join(o->root, id), .id = strdup(id),
				 .bundle = strdup(spec->bundle)};
	if (spec->annotations)
		st->annotations = strdup(spec->annotations);
	if (!st->dir || !st->id || !st->bundle)
		return -ENOMEM;
	if (mkdir(st->dir, 0700) < 0)
		return errno == EEXIST ? berth_failx(BERTH_EINVAL_INPUT, "container '%s' already "
						     "exists", id)
				       : berth_fail(-errno, "create '%s'", st->dir);
	return 0;
}

static int do_create(const struct berth_config *cfg, const struct oci_cli *o, int argc,
		     char **argv, bool run)
{
	struct create_opts c = {0};
	struct oci_spec spec = {0};
	struct oci_state st = {0};
	int idx = parse_create(argc, argv, &c), r, status = 0;
	bool made = false;

	if (idx < 0)
		return idx <= -100 ? 0 : -idx;
	if (c.rm && !run) {
		cli_error("oci create: --rm is for run");
		return 2;
	}
	r = prepare(cfg, o, c.bundle, argv[idx], &spec, &st);
	made = r == 0;
	if (r == 0)
		r = oci_proc_spawn(cfg, &spec, &st, !run);
	if (r == 0) {
		st.started = run;
		r = oci_state_save(&st);
	}
	if (r == 0 && (r = write_pid_file(c.pid_file, st.pid)) < 0)
		r = berth_fail_context(r, "pid file '%s'", c.pid_file);
	if (r < 0) {
		if (st.pid > 0)
			kill(st.pid, SIGKILL);
		if (made)
			rm_rf(st.dir);
		status = fail(o, r);
	} else if (run) {
		status = exec_wait_forward(st.pid, false);
		if (c.rm)
			rm_rf(st.dir);
	}
	oci_spec_clear(&spec);
	oci_state_clear(&st);
	return status;
}

/* ID as the only operand after options of a simple command. */
static int load(const struct oci_cli *o, const char *id, struct oci_state *st)
{
	int r = oci_root_open(o->root);

	return r < 0 ? r : oci_state_load(o->root, id, st);
}

static int do_state(const struct oci_cli *o, int argc, char **argv)
{
	struct oci_state st = {0};
	_cleanup_free_ char *json = NULL;
	int r;

	if (argc != 2) {
		cli_error("oci state: expected one container ID");
		return 2;
	}
	if ((r = load(o, argv[1], &st)) < 0)
		return fail(o, r);
	json = oci_state_json(&st);
	oci_state_clear(&st);
	if (!json)
		return fail(o, -ENOMEM);
	printf("%s\n", json);
	return 0;
}

static int do_start(const struct oci_cli *o, int argc, char **argv)
{
	struct oci_state st = {0};
	int r;

	if (argc != 2) {
		cli_error("oci start: expected one container ID");
		return 2;
	}
	if ((r = load(o, argv[1], &st)) == 0) {
		if (oci_state_status(&st) != OCI_CREATED)
			r = berth_failx(BERTH_EINVAL_INPUT, "container '%s' is not in the created "
					"state", st.id);
		else if ((r = oci_proc_start(&st)) == 0) {
			st.started = true;
			r = oci_state_save(&st);
		}
	}
	oci_state_clear(&st);
	return r < 0 ? fail(o, r) : 0;
}

static int do_kill(const struct oci_cli *o, int argc, char **argv)
{
	static const struct option opts[] = {
		{"all", no_argument, NULL, 'a'},
		{NULL, 0, NULL, 0},
	};
	struct oci_state st = {0};
	bool all = false;
	int ch, sig = SIGTERM, r;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "+a", opts, NULL)) != -1) {
		if (ch != 'a')
			return 2;
		all = true;
	}
	if (optind >= argc || argc - optind > 2) {
		cli_error("oci kill: usage: kill [-a] ID [SIGNAL]");
		return 2;
	}
	if (optind + 1 < argc && (sig = parse_signal(argv[optind + 1])) < 0) {
		cli_error("oci kill: unknown signal '%s'", argv[optind + 1]);
		return 2;
	}
	if ((r = load(o, argv[optind], &st)) == 0)
		r = oci_proc_kill(&st, sig, all);
	oci_state_clear(&st);
	return r < 0 ? fail(o, r) : 0;
}

static int do_delete(const struct oci_cli *o, int argc, char **argv)
{
	static const struct option opts[] = {
		{"force", no_argument, NULL, 'f'},
		{NULL, 0, NULL, 0},
	};
	struct oci_state st = {0};
	enum oci_status s;
	bool force = false;
	int ch, r;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "+f", opts, NULL)) != -1) {
		if (ch != 'f')
			return 2;
		force = true;
	}
	if (optind + 1 != argc) {
		cli_error("oci delete: usage: delete [-f] ID");
		return 2;
	}
	if ((r = load(o, argv[optind], &st)) < 0)
		return fail(o, r);
	s = oci_state_status(&st);
	if (s == OCI_RUNNING && !force) {
		r = berth_failx(BERTH_EINVAL_INPUT, "container '%s' is running (stop it, or "
				"delete --force)", st.id);
	} else if (s == OCI_RUNNING || s == OCI_CREATED) {
		/* A created container is only waiting: runc deletes it too. */
		oci_proc_kill(&st, SIGKILL, true);
		for (int i = 0; i < 100 && oci_state_status(&st) != OCI_STOPPED; i++)
			usleep(20 * 1000);
	}
	if (r == 0 && (r = rm_rf(st.dir)) < 0)
		r = berth_fail(r, "remove '%s'", st.dir);
	oci_state_clear(&st);
	return r < 0 ? fail(o, r) : 0;
}

static int parse_global(const struct berth_config *cfg, int argc, char **argv, struct oci_cli *o)
{
	enum { O_ROOT = 256, O_LOG, O_IGNORE_ARG, O_IGNORE, O_DEBUG };
	static const struct option opts[] = {
		{"root", required_argument, NULL, O_ROOT},
		{"log", required_argument, NULL, O_LOG},
		{"log-format", required_argument, NULL, O_IGNORE_ARG},
		{"rootless", optional_argument, NULL, O_IGNORE},
		{"systemd-cgroup", no_argument, NULL, O_IGNORE},
		{"debug", no_argument, NULL, O_DEBUG},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (ch) {
		case O_ROOT:
			if (optarg[0] != '/') {
				cli_error("oci: --root '%s' is not an absolute path", optarg);
				return -2;
			}
			free(o->root);
			o->root = strdup(optarg);
			break;
		case O_LOG: o->log = optarg; break;
		case O_DEBUG: berth_log_set_level(BERTH_LOG_DEBUG); break;
		case O_IGNORE: case O_IGNORE_ARG: break;
		case 'h': return -oci_usage(stdout) - 100;
		default: return -oci_usage(stderr);
		}
	}
	if (!o->root)
		o->root = path_join(cfg->runtime_dir, "oci");
	if (!o->root)
		return -1;
	if (optind >= argc) {
		cli_error("oci: missing COMMAND (see 'berth oci --help')");
		return -2;
	}
	return optind;
}

int cmd_oci(struct berth_config *cfg, int argc, char **argv)
{
	struct oci_cli o = {0};
	int idx = parse_global(cfg, argc, argv, &o), status;
	char **sub;
	int n;

	if (idx < 0) {
		free(o.root);
		return idx <= -100 ? 0 : -idx;
	}
	sub = argv + idx;
	n = argc - idx;
	if (streq(sub[0], "create"))
		status = do_create(cfg, &o, n, sub, false);
	else if (streq(sub[0], "run"))
		status = do_create(cfg, &o, n, sub, true);
	else if (streq(sub[0], "start"))
		status = do_start(&o, n, sub);
	else if (streq(sub[0], "state"))
		status = do_state(&o, n, sub);
	else if (streq(sub[0], "kill"))
		status = do_kill(&o, n, sub);
	else if (streq(sub[0], "delete"))
		status = do_delete(&o, n, sub);
	else {
		cli_error("oci: unknown command '%s' (see 'berth oci --help')", sub[0]);
		status = 2;
	}
	free(o.root);
	return status;
}
