/* launcher: run a squashfs image in a user namespace, unprivileged.
 *
 * The only door into launcher/ for the CLI and the Slurm plugin.  Every
 * function returns 0 or a negative code (common/error.h) with one line
 * recorded by berth_fail(); nothing here exits.
 *
 * Model (DESIGN.md "Data flow" 6): a *keeper* process owns one user
 * namespace and one mount namespace in which the image is mounted
 * (squashfuse in a child of berth's, an overlay on top, the binds), and
 * has pivot_root'ed into it.  Any process of the same user may *join* it:
 * setns() into the keeper's namespaces puts the caller's root directory at
 * the container's root, and the caller then execs its payload itself, so
 * the payload is never a child of berth (what slurmstepd needs).
 *
 *   create:  launcher_create()  find a live keeper for the same image and
 *            options, or start one; the handle holds a reference
 *   join:    launcher_join()    from the same or another process (open it
 *            there with launcher_open()); the joining process is tracked by
 *            the keeper until it exits, also across exec
 *   release: launcher_release() drops the handle's reference
 *
 * The keeper lingers cfg->mount_linger seconds after its last reference
 * and tracked process, then exits; later runs with the same key join it
 * meanwhile.  The mounts live exactly as long as the mount namespace has a
 * member: the FUSE servers run outside it and exit when their mount dies,
 * so a SIGKILLed berth leaves nothing behind.
 *
 * Runtime state under cfg->runtime_dir:
 *   keepers/<key>/          one live keeper: sock, info, mountpoints
 *   containers/<name>/      a named container: image, upper/, work/
 *   lock                    taken while keepers start, stop or are cleaned
 */
#ifndef BERTH_LAUNCHER_H
#define BERTH_LAUNCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/conf.h"

/* ---- mount specs ---------------------------------------------------------
 * "SRC:DST[:FLAGS]" with FLAGS joined by '+' (pyxis) or ',' (docker -v);
 * several specs in one string are separated by ','.  "SRC" alone means
 * SRC:SRC.  SRC "tmpfs" mounts a tmpfs at DST; SRC "umount" removes the
 * mount at DST.  A relative SRC is taken from the current directory.  */

enum launcher_mount_kind {
	LAUNCHER_MOUNT_BIND,
	LAUNCHER_MOUNT_TMPFS,
	LAUNCHER_MOUNT_UMOUNT,
};

enum launcher_mount_flags {
	LAUNCHER_MNT_RO = 1 << 0,
	LAUNCHER_MNT_RW = 1 << 1,
	LAUNCHER_MNT_NOSUID = 1 << 2,
	LAUNCHER_MNT_NODEV = 1 << 3,
	LAUNCHER_MNT_NOEXEC = 1 << 4,
	LAUNCHER_MNT_RBIND = 1 << 5,    /* submounts too (default for a bind: no) */
	LAUNCHER_MNT_PRIVATE = 1 << 6,  /* propagation private (the default) */
	LAUNCHER_MNT_SLAVE = 1 << 7,    /* receive host mount events */
	LAUNCHER_MNT_ALL_FLAGS = (1 << 8) - 1,
};

struct launcher_mount {
	enum launcher_mount_kind kind;
	char *source; /* absolute host path (BIND), NULL otherwise */
	char *target; /* absolute path in the container */
	unsigned flags;
};

struct launcher_mounts {
	struct launcher_mount *v;
	size_t n;
};

/* Parse text (one or several specs) and append to m.  A bad spec gives
 * BERTH_EINVAL_INPUT naming it; m is unchanged then. */
int launcher_mounts_parse(struct launcher_mounts *m, const char *text);
void launcher_mounts_clear(struct launcher_mounts *m);

/* ---- environment -----------------------------------------------------------
 * The rules, documented with examples in berth(1):
 *  1. start from the host environment;
 *  2. the image's Env is applied over it, except for the pass-through
 *     names (SLURM_*, CUDA_*, NVIDIA_*, PMIX_*, PMI_*, OMPI_*, UCX_*, FI_*,
 *     HOME, USER, TERM, LANG) and the names in keep_host, which keep the
 *     host's value when the host sets them;
 *  3. PATH is the image's (or the Docker default when the image has none);
 *     PMIX_MCA_ptl/psec/gds follow the host's PMIx server unless the host
 *     sets them (mpi_env_fixup());
 *  4. the user's -e / --env-file entries, in order, last.  */

struct launcher_env_rules {
	char *const *host;      /* host environment ("NAME=VALUE") */
	char *const *image;     /* image config Env */
	char *const *keep_host; /* names whose host value wins (--container-env) */
	char *const *user;      /* "NAME=VALUE" or "NAME" (unset) in order */
};

/* Build the container environment; *out is a NULL-terminated strv. */
int launcher_env_build(const struct launcher_env_rules *r, char ***out);

/* One -e spec: "NAME=VALUE" is kept, "NAME" takes the host value (or
 * becomes an unset when the host has none).  Appends to *user. */
int launcher_env_parse(char ***user, const char *spec, char *const *host);

/* An --env-file: NAME=VALUE or NAME lines, '#' comments, blank lines. */
int launcher_env_parse_file(char ***user, const char *path, char *const *host);

/* Is NAME passed through from the host by rule 2? */
bool launcher_env_passthrough(const char *name);

/* ---- image config ----------------------------------------------------- */

struct launcher_image {
	char **env;
	char **entrypoint;
	char **cmd;
	char *workdir; /* NULL: none */
};

/* Parse /.berth/image.json ({"config": {"config": {...}}}). */
int launcher_image_parse(const char *json, size_t len, struct launcher_image *out);
/* Read and parse /.berth/image.json below root_fd (AT_FDCWD: "/"). */
int launcher_image_load(int root_fd, struct launcher_image *out);
void launcher_image_clear(struct launcher_image *img);

/* Docker's rules: args replace Cmd; entrypoint (non-NULL) replaces the
 * Entrypoint and drops the image's Cmd ("" = no entrypoint); no_entrypoint
 * drops the Entrypoint and keeps Cmd.  BERTH_EINVAL_INPUT when nothing is
 * left to run. */
int launcher_argv_build(const struct launcher_image *img, const char *entrypoint,
			bool no_entrypoint, char *const *args, char ***out);

/* Find argv[0] through PATH from envp (inside the caller's root) and
 * execve.  Returns only on failure: -ENOENT when the command is not in the
 * image (exit 127 for it), -EACCES/-ENOEXEC when it cannot run (126). */
int launcher_exec(char *const *argv, char *const *envp);

/* ---- containers ------------------------------------------------------- */

enum launcher_overlay {
	LAUNCHER_OVERLAY_AUTO, /* kernel overlayfs, else fuse-overlayfs */
	LAUNCHER_OVERLAY_KERNEL,
	LAUNCHER_OVERLAY_FUSE,
};

struct gpu_plan; /* launcher/gpu.h */
struct mpi_plan; /* launcher/mpi.h */

struct launcher_opts {
	const char *image;    /* path of the .sqsh file */
	const char *name;     /* named container (writable layer on disk) or NULL */
	const struct launcher_mounts *mounts;
	bool writable;
	bool remap_root;
	bool mount_home;
	const char *hostname; /* own UTS namespace with this name, or NULL */
	/* Opt-in (the default shares the host's, which MPI needs): an own
	 * network namespace with loopback only, an own IPC namespace. */
	bool unshare_net;
	bool unshare_ipc;
	enum launcher_overlay overlay;
	const struct gpu_plan *gpu; /* GPUs to add (gpu_plan()), or NULL */
	const struct mpi_plan *mpi; /* verbs pieces to add (mpi_plan()), or NULL */
	/* Not part of the container's identity: the calling process will
	 * launcher_join() and exec in place, so the keeper tracks it by pidfd
	 * from the start instead of through a reference connection (one
	 * fewer round trip to the keeper per start). */
	bool hold_caller;
	/* The caller may also build the container in its own process when
	 * no keeper is wanted (mount_linger 0, no name): it then is in the
	 * container on return, with no keeper, and execs in place.  Needs
	 * hold_caller; not with MPI rendezvous directories to attach. */
	bool build_here;
	/* What the caller read from the .sqsh (launcher_facts_read()), or
	 * NULL: read here. */
	const struct launcher_facts *facts;
	/* A FUSE server started ahead by launcher_prestart(), or NULL. */
	struct launcher_server *server;
	/* Paths in the image where the payload's executable may be (in PATH
	 * order): the first that exists is read ahead as soon as the image
	 * is mounted, while the rest of the container is built.  Or NULL. */
	char *const *warm;
};

struct launcher_container;

/* When launcher_create() will build the container in the calling process
 * (build_here, mount_linger 0, unnamed), start its FUSE server now, before
 * the rest of the preparation: it opens the image meanwhile.  NULL when
 * not (or it could not start: launcher_create() tries again).  Pass it in
 * launcher_opts.server; free it after launcher_create(). */
struct launcher_server;
struct launcher_server *launcher_prestart(const struct berth_config *cfg,
					  const struct launcher_opts *o);
void launcher_server_free(struct launcher_server *s);

/* What the launcher needs from the .sqsh before mounting it (its config,
 * passwd and group, what the paths it mounts on are in the image; home:
 * the caller's home directory, or NULL), read in one opening of the file.
 * A caller that reads the config anyway hands it over in
 * launcher_opts.facts. */
struct launcher_facts;
int launcher_facts_read(const char *image, const char *home, struct launcher_facts **out);
/* The image's /.berth/image.json, or NULL. */
const char *launcher_facts_config(const struct launcher_facts *f);
void launcher_facts_free(struct launcher_facts *f);

/* Find the keeper for (image, options) or start one; the handle holds a
 * reference.  Needs single-threaded callers (it forks). */
int launcher_create(const struct berth_config *cfg, const struct launcher_opts *opts,
		    struct launcher_container **out);

/* Open a running keeper by state directory (launcher_state_dir()) or by
 * container name, from any process of the same user; holds a reference. */
int launcher_open(const struct berth_config *cfg, const char *dir_or_name,
		  struct launcher_container **out);

pid_t launcher_keeper_pid(const struct launcher_container *c);
const char *launcher_state_dir(const struct launcher_container *c);

/* Make the calling process a member of the container: registered with the
 * keeper (tracked until it exits), setns into its user and mount
 * namespaces (and UTS, network, IPC when the container has its own); the root directory and cwd are then the container's "/".
 * Single-threaded callers only (setns(CLONE_NEWUSER) requires it).  The
 * caller then chdir()s, builds the environment and execs. */
int launcher_join(struct launcher_container *c);

/* Right before the payload starts in a container that this process built
 * (build_here): make the container visible to ps and exec by PID (not
 * while it is half built).  No-op otherwise. */
void launcher_settle(struct launcher_container *c);

/* Is the caller root of a user namespace that maps one uid (what
 * --remap-root makes), judged from /proc/self/uid_map?  After joining. */
bool launcher_userns_remapped(void);

/* For remap-root containers, the last step before exec: a seccomp filter
 * (no_new_privs set) that makes chown, fchown, fchownat, lchown and
 * setuid, setgid, setreuid, setregid, setresuid, setresgid, setgroups,
 * setfsuid, setfsgid return 0 without effect, so package managers work in
 * a one-uid namespace.  Inherited by children and kept across exec. */
int launcher_seccomp_remap_root(void);

/* Join the namespaces of any process of a container (berth exec PID). */
int launcher_join_pid(pid_t pid);

/* Drop the reference and free the handle (NULL is fine). */
void launcher_release(struct launcher_container *c);

/* Remove runtime state of keepers that died without cleaning up. */
int launcher_cleanup_stale(const struct berth_config *cfg);

/* ---- named containers and listing ------------------------------------- */

struct launcher_entry {
	char *name;  /* container name, or NULL for an unnamed keeper */
	char *image; /* .sqsh path */
	char *dir;   /* keeper state dir, or NULL when not running */
	pid_t keeper;
	unsigned users; /* tracked processes + references */
};

/* Create containers/<name> for image (BERTH_EINVAL_INPUT if it exists with
 * another image; 0 if it exists with this one). */
int launcher_named_create(const struct berth_config *cfg, const char *name, const char *image);
/* Image path of a named container; BERTH_ENOTFOUND when there is none. */
int launcher_named_image(const struct berth_config *cfg, const char *name, char **image);
/* Remove a named container that is not running. */
int launcher_named_remove(const struct berth_config *cfg, const char *name);
/* Directory of the named container (for export). */
char *launcher_named_dir(const struct berth_config *cfg, const char *name);
/* Is name a valid container name ([A-Za-z0-9][A-Za-z0-9_.-]*, <= 64)? */
bool launcher_name_valid(const char *name);

/* Write image + writable layer of a named container that is not running
 * as a new squashfs at out (atomically). */
int launcher_export(const struct berth_config *cfg, const char *name, const char *out);

/* Write a running container's root filesystem (its image and writable
 * layer; nothing mounted on top of it, no /proc, /dev or binds) as a new
 * squashfs at out, atomically, with image's config (the .sqsh it runs).
 * Files are stored as root's.  An existing directory at out is an error.
 * Forks; the calling process joins nothing. */
int launcher_save(const struct berth_config *cfg, struct launcher_container *c,
		  const char *image, const char *out);

int launcher_list(const struct berth_config *cfg, struct launcher_entry **out, size_t *n);
void launcher_list_free(struct launcher_entry *v, size_t n);

#endif
