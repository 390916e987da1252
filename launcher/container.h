/* Internal to launcher/: state-dir housekeeping shared by container.c and
 * named.c. */
#ifndef BERTH_CONTAINER_H
#define BERTH_CONTAINER_H

#include <sys/types.h>
#include "common/conf.h"

/* Remove keepers/<key> dirs whose keeper is gone; the caller holds
 * runtime_dir/lock. */
void launcher_cleanup_locked(const struct berth_config *cfg);

/* Remove a tree the user owns even where it has mode 0 directories (the
 * overlay's work/work); never crosses mounts or follows symlinks. */
int rm_rf_owned(const char *path);

/* Start time of a process (/proc/PID/stat, field 22), 0 if it is gone:
 * with the pid, what names a container built by its caller in running/. */
unsigned long long launcher_proc_start(pid_t pid);

#endif
