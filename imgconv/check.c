#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqfs/error.h>
#include <sqfs/io.h>
#include <sqfs/super.h>
#include "common/error.h"
#include "imgconv/imgconv.h"

int imgconv_check_squashfs(const char *path)
{
	sqfs_super_t super;
	sqfs_file_t *file;
	struct stat st;
	int r;

	if (stat(path, &st) < 0)
		return berth_fail(-errno, "image '%s'", path);
	if (!S_ISREG(st.st_mode))
		return berth_failx(BERTH_EFORMAT, "image '%s': not a regular file", path);
	file = sqfs_open_file(path, SQFS_FILE_OPEN_READ_ONLY);
	if (!file)
		return berth_fail(access(path, R_OK) < 0 ? -errno : BERTH_EFORMAT, "image '%s'", path);
	r = sqfs_super_read(&super, file);
	sqfs_destroy(file);
	if (r != 0)
		return berth_failx(BERTH_EFORMAT, "image '%s': not a squashfs file (bad superblock)",
				   path);
	if (super.bytes_used > (uint64_t)st.st_size)
		return berth_failx(BERTH_EFORMAT, "image '%s': truncated squashfs (%llu of %llu bytes)",
				   path, (unsigned long long)st.st_size,
				   (unsigned long long)super.bytes_used);
	return 0;
}
