#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include "common/lock.h"

int lock_path(const char *path, bool shared, bool wait)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	int op = (shared ? LOCK_SH : LOCK_EX) | (wait ? 0 : LOCK_NB);

	if (fd < 0)
		return -errno;
	while (flock(fd, op) < 0) {
		int e = errno;

		if (e == EINTR)
			continue;
		close(fd);
		return -e;
	}
	return fd;
}
