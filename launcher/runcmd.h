/* What `berth run` and `berth exec` share: the process that joins a
 * container and becomes the payload (runcmd.c). */
#ifndef BERTH_RUNCMD_H
#define BERTH_RUNCMD_H

#include <stdbool.h>
#include <sys/types.h>
#include "launcher/launcher.h"

struct payload {
	struct launcher_container *container; /* join this keeper, or */
	pid_t join_pid;                       /* the namespaces of this process */
	char **host_env;                      /* environment before joining */
	char **user_env;                      /* -e / --env-file, in order */
	const char *workdir;                  /* -w, or NULL: the image's, else "/" */
	const char *entrypoint;               /* --entrypoint, or NULL */
	bool no_entrypoint;
	bool own_pid_ns;
	bool exec;                            /* berth exec: join a --pid payload's PID namespace */
	char **args;                          /* CMD [ARG...] or NULL */
	const char *image;                    /* the .sqsh (payload_exec reads its config) */
	const struct launcher_image *image_cfg; /* the image config, or NULL: read it */
};

/* Fork the payload, forward signals to it and wait: returns berth's exit
 * status (the payload's; 128+N for signal N; 127 command not found; 1 for
 * errors before exec, printed as one line). */
int payload_run(const struct payload *p);

/* Join and exec the payload in this process (ch-run's way): no fork, no
 * signal forwarding, the payload's exit status is the caller's to see.
 * For `berth run` without --rm/--pid; the container must have been
 * created with hold_caller.  Returns an exit status only on failure. */
int payload_exec(const struct payload *p);

/* Where the payload's executable will be looked for (the image config must
 * be known: image_cfg), for reading it ahead while the container is
 * built (launcher_opts.warm); NULL when unknown. */
char **payload_exec_paths(const struct payload *p);

#endif
