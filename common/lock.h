/* Cross-process locks on files (flock): the kernel drops them when the
 * holder dies, so a killed import never wedges the cache.  flock works on
 * NFS (Linux >= 2.6.12 emulates it with fcntl locks) and Lustre with
 * -o flock, the shared filesystems cache directories live on. */
#ifndef BERTH_LOCK_H
#define BERTH_LOCK_H

#include <stdbool.h>

/* Open (creating, mode 0600) and lock path.  Returns the fd holding the lock,
 * or -errno.  shared: LOCK_SH instead of LOCK_EX.  wait=false: -EWOULDBLOCK
 * when held elsewhere.  Close the fd to unlock. */
int lock_path(const char *path, bool shared, bool wait);

#endif
