/* berth as an OCI runtime (`berth oci ...`, `berth bundle`), on top of
 * launcher.h.  See doc/oci.md for what of the runtime spec is honoured and
 * what is refused.
 *
 * A container is a process that joined a launcher keeper (the image
 * mounted in a user and mount namespace), set up what config.json asks
 * for (cwd, env, rlimits, extra namespaces) and, for `create`, waits on a
 * FIFO until `start` opens it, then execs process.args.
 *
 * State, under the --root directory (default runtime_dir/oci):
 *   <id>/state.json   {"id", "bundle", "pid", "starttime", "started", "annotations"}
 *   <id>/exec.fifo    present from create until start
 */
#ifndef BERTH_OCI_H
#define BERTH_OCI_H

#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>
#include "common/conf.h"
#include "launcher/launcher.h"

/* The namespaces a container may ask for (linux.namespaces[].type). */
enum oci_ns {
	OCI_NS_PID = 1 << 0,
	OCI_NS_NET = 1 << 1,
	OCI_NS_IPC = 1 << 2,
	OCI_NS_UTS = 1 << 3,
	OCI_NS_CGROUP = 1 << 4,
};

struct oci_rlimit {
	int resource;
	struct rlimit lim;
};

/* What berth takes from a bundle's config.json. */
struct oci_spec {
	char *bundle;   /* absolute bundle directory */
	char *image;    /* .sqsh: annotation org.berth.image, or root.path */
	char **args;
	char **env;     /* as given; duplicates resolved when exec'ing */
	char *cwd;
	bool remap_root;
	bool readonly;
	bool no_new_privs;
	char *hostname;
	unsigned namespaces; /* enum oci_ns */
	struct launcher_mounts mounts;
	struct oci_rlimit *rlimits;
	size_t n_rlimits;
	char *annotations; /* JSON object text, or NULL */
};

/* Read and check bundle/config.json.  Anything berth cannot honour as an
 * unprivileged runtime is BERTH_EINVAL_INPUT naming the field. */
int oci_spec_load(const char *bundle, struct oci_spec *out);
/* The same from JSON text; bundle is used for relative root.path. */
int oci_spec_parse(const char *json, size_t len, const char *bundle, struct oci_spec *out);
void oci_spec_clear(struct oci_spec *s);

/* Is id usable as a container id ([A-Za-z0-9][A-Za-z0-9_.+-]*, <= 128)? */
bool oci_id_valid(const char *id);

/* ---- state (oci_state.c) --------------------------------------------- */

enum oci_status { OCI_CREATING, OCI_CREATED, OCI_RUNNING, OCI_STOPPED };

struct oci_state {
	char *dir; /* root/<id> */
	char *id;
	char *bundle;
	pid_t pid;
	unsigned long long starttime; /* /proc/<pid>/stat field 22 */
	bool started;
	char *annotations;
};

/* Prepare the state root: create it (0700) or check that the caller owns
 * it.  Called as root (Slurm runs state/kill/delete as root), switch to
 * the root directory's owner first: nothing is done as root. */
int oci_root_open(const char *root);
int oci_state_load(const char *root, const char *id, struct oci_state *out);
int oci_state_save(const struct oci_state *st);
enum oci_status oci_state_status(const struct oci_state *st);
/* The OCI state JSON (runtime spec "State"), one line, malloc'd. */
char *oci_state_json(const struct oci_state *st);
void oci_state_clear(struct oci_state *st);
/* Start time of pid (to tell it from a later process with the same pid). */
unsigned long long oci_pid_starttime(pid_t pid);

/* ---- the container process (oci_proc.c) ------------------------------- */

/* Fork the container process: it joins (or starts) the keeper for the
 * spec, prepares everything, and then waits on st->dir/exec.fifo (wait:
 * create) or goes on at once (run).  Returns its pid once it is ready to
 * exec, or an error it reported; st->pid/starttime are filled in. */
int oci_proc_spawn(const struct berth_config *cfg, const struct oci_spec *spec,
		   struct oci_state *st, bool wait_for_start);

/* Open the FIFO of a created container and let it exec. */
int oci_proc_start(const struct oci_state *st);

/* Signal the container process, or (all) it and every descendant. */
int oci_proc_kill(const struct oci_state *st, int sig, bool all);

#endif
