/* Helpers of `berth run` around the payload (exec.c). */
#ifndef BERTH_EXEC_H
#define BERTH_EXEC_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

/* The paths launcher_exec() tries for argv0 under the PATH of envp, in
 * order (argv0 itself when it has a '/'); NULL on ENOMEM or an empty argv0. */
char **launcher_exec_candidates(const char *argv0, char *const *envp);

/* Read ahead the first of paths that exists below root_fd (resolved in
 * it, links included), as launcher_exec() does before execve: run on the
 * image while the container is still being built, the reads overlap the
 * build. */
void launcher_exec_prefetch_at(int root_fd, char *const *paths);

/* Exit status for a failed launcher_exec(): 127 not found, 126 not runnable. */
int launcher_exec_status(int code);

/* Block the forwarded signals and SIGCHLD (old mask saved for children). */
void exec_block_signals(sigset_t *old);

/* Wait for child, forwarding SIGTERM/INT/HUP/USR1/USR2/QUIT/CONT/WINCH;
 * returns its exit status, or 128+N when signal N killed it.  reap_all:
 * act as an init (reap every child, forward every signal). */
int exec_wait_forward(pid_t child, bool reap_all);

/* Exit status of a wait status, shell style. */
int exec_status(int wstatus);

/* As pid 1 of a new PID namespace: mount /proc, run argv, reap, forward. */
int exec_pid_init(char *const *argv, char *const *envp, const sigset_t *old);

#endif
