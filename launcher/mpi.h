/* MPI in containers: the process manager's rendezvous, PMIx settings and
 * high-speed network pieces (doc/mpi.md has the rules and the why).
 *
 * Containers never get a network or IPC namespace, so TCP, /dev/shm and
 * SysV IPC work as on the host; ranks of a node join one keeper (one user
 * namespace), so shared-memory and CMA transports between them work too.
 * What is left is done here:
 *   mpi_rendezvous_dirs()  the host directories a PMIx client needs (the
 *                          server's tmpdir and dstore, Slurm's client dir,
 *                          Open MPI's session dir), from the environment;
 *   launcher_attach_dirs() binds them at the same paths into a running
 *                          container, per step, without touching its key
 *                          (so keepers and named containers are reused
 *                          across steps and jobs);
 *   mpi_env_fixup()        the PMIX_MCA_* selections a client inside needs
 *                          (enroot's rules), in the container environment;
 *   mpi_plan()/mpi_apply() verbs configuration and provider libraries
 *                          (mpi_inject_verbs), applied by the keeper. */
#ifndef BERTH_MPI_H
#define BERTH_MPI_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

struct launcher_container;

/* Existing, absolute, lexically clean host directories named by the
 * environment (PMIX_SERVER_TMPDIR, PMIX_DSTORE_*_BASE_PATH,
 * OMPI_MCA_orte_jobfam_session_dir, Slurm's client directory
 * <SLURM_PMIX_TMPDIR or slurm.conf TmpFS or /tmp>/spmix_appdir_<uid>_<job>.<step>),
 * none below another; uid is the caller's.  *out is a strv (never NULL on
 * success). */
int mpi_rendezvous_dirs(char *const *env, uid_t uid, char ***out);

/* Bind each host directory at the same path into the running container c
 * (the caller holds a reference; it stays outside the container).  A
 * directory already bound from the same inode is skipped; ones bound for
 * an earlier step whose host directory is gone are unmounted.  Needs
 * open_tree(2)/move_mount(2) (Linux 5.2).  A directory that cannot be
 * bound (read-only image without the path, no permission on the host) is
 * skipped with a warning; other failures return a negative code. */
int launcher_attach_dirs(struct launcher_container *c, char *const *dirs);

/* launcher_attach_dirs() of mpi_rendezvous_dirs(env): one call for the
 * plugin's tasks and `berth run`. */
int launcher_mpi_attach(struct launcher_container *c, char *const *env);

/* In the container environment env: PMIX_MCA_ptl, PMIX_MCA_psec and
 * PMIX_MCA_gds from the server's PMIX_PTL_MODULE, PMIX_SECURITY_MODE and
 * PMIX_GDS_MODULE in the host environment host, unless host sets them
 * (the image's values are replaced). */
int mpi_env_fixup(char ***env, char *const *host);

/* ---- high-speed networks (mpi_verbs.c) ----------------------------------
 * When inject_verbs is on and the host (below root) has /etc/libibverbs.d:
 * that directory at /etc/libibverbs.d, and the host's libibverbs provider
 * directory (<libdir of libibverbs.so.1>/libibverbs, from the host's
 * ld.so.cache) over the image's.  /dev/infiniband, /dev/cxi* and
 * /sys/class/infiniband come with the container's /dev and /sys. */
struct mpi_plan;

int mpi_plan(const char *root, bool inject_verbs, struct mpi_plan **out);
void mpi_plan_free(struct mpi_plan *p);
/* One line per item (part of the keeper key). */
void mpi_plan_describe(const struct mpi_plan *p, FILE *f);
/* In the keeper before pivot_root; root_fd is the container root. */
int mpi_apply(const struct mpi_plan *p, int root_fd, bool writable);

#endif
