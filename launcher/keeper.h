/* The keeper process (one per running container) and the small protocol
 * clients speak to it over its unix socket, one line each way:
 *   "ref"  -> "ok"          this connection is a reference until it closes
 *   "hold" -> "ok"          track the connecting process until it exits
 *   "info" -> "users N"     not counted; for ps and liveness checks */
#ifndef BERTH_KEEPER_H
#define BERTH_KEEPER_H

#include <stdint.h>
#include <sys/types.h>
#include "launcher/rootfs.h"

struct keeper_args {
	struct rootfs_plan plan;
	const char *runtime_dir;
	const char *key;     /* name of the state dir under keepers/ */
	uint64_t linger;     /* seconds */
	int status_fd;       /* "ok PID\n" or "<code> <message>\n", then closed */
	pid_t hold_pid;      /* track this process from the start, as "hold" does;
				the creator that joins and execs in place (0: none) */
};

/* Runs in the forked keeper; never returns. */
_Noreturn void keeper_main(const struct keeper_args *a);

/* Client side: connect to dir/sock and exchange one line.  Returns the
 * connected fd (O_CLOEXEC) and, if peer is set, the keeper's pid. */
int keeper_connect(const char *dir, const char *request, pid_t *peer);

#endif
