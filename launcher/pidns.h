/* berth exec into a container that runs with its own PID namespace (--pid).
 *
 * A `berth run --pid` payload lives in a PID namespace made below the
 * container's user namespace, with a mount namespace of its own whose /proc
 * shows that PID namespace (runcmd.c, exec.c).  To see and signal those
 * processes, berth exec joins both.  setns(CLONE_NEWPID) only changes the
 * namespace of the caller's later children (setns(2)), so the caller must
 * fork after pidns_enter(); the child is then in it. */
#ifndef BERTH_PIDNS_H
#define BERTH_PIDNS_H

#include <stdbool.h>
#include <sys/types.h>

struct pidns_target {
	int mnt_fd; /* /proc/P/ns/mnt, or -1 */
	int pid_fd; /* /proc/P/ns/pid, or -1: nothing to join */
};

#define PIDNS_TARGET_NONE ((struct pidns_target){.mnt_fd = -1, .pid_fd = -1})

/* The PID namespace of the oldest --pid payload running in the container
 * of keeper (a process whose user namespace is the keeper's and which is
 * pid 1 of a PID namespace one level below ours).  None found: both fds
 * -1, return 0.  Call before joining: it reads the host's /proc. */
int pidns_of_keeper(pid_t keeper, struct pidns_target *t);

/* The PID and mount namespaces of pid when its PID namespace is not ours
 * (both fds -1 otherwise).  Before joining. */
int pidns_of_pid(pid_t pid, struct pidns_target *t);

/* setns into t's mount namespace (root and cwd become its root) and PID
 * namespace, after joining the container's user namespace.  Returns 1 when
 * a PID namespace was joined (fork now), 0 when t is empty.  Closes t. */
int pidns_enter(struct pidns_target *t);

void pidns_close(struct pidns_target *t);

#endif
