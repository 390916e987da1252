/* Seeding a fresh upper layer before the overlay is mounted (rootfs.h).
 *
 * Writing /etc/passwd through the overlay copies /etc up and leaves a
 * whiteout behind, and creating a missing home directory copies /home up:
 * on a cold start that was ~1 ms of the keeper's ~3 ms (bench/RESULTS.md).
 * The upper directory of a plain run is a new, empty tmpfs directory that
 * only the keeper has seen, so the same result can be put there directly
 * before the mount: a directory that the image also has is mirrored (same
 * mode; overlayfs merges the two), what the image lacks is created.  Named
 * containers keep their upper layer across runs and take the slower path
 * through the overlay, which sees what earlier runs left. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/macros.h"
#include "common/util.h"
#include "launcher/rootfs.h"

#define MAX_DEPTH 32

/* Create name in upper_dir as a directory with mode; the upper layer is
 * new, so something already there can only be what an earlier seed made. */
static int upper_mkdir(int upper_dir, const char *name, mode_t mode)
{
	if (mkdirat(upper_dir, name, 0700) < 0 && errno != EEXIST)
		return berth_fail(-errno, "create '%s' in the writable layer", name);
	if (fchmodat(upper_dir, name, mode, 0) < 0)
		return berth_fail(-errno, "set the mode of '%s' in the writable layer", name);
	return 0;
}

static void close_all(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* Make sure the absolute path is a directory in the merged view: if the
 * image lacks part of it, mirror the image's directories above the gap and
 * create the rest in the upper layer.  Where the image has something that
 * is not a directory on the way (a symlink, a file) nothing is done: the
 * bind later resolves that inside the root, through the overlay. */
static int seed_dir(int lower_fd, int upper_fd, const char *path)
{
	_cleanup_free_ char *copy = strdup(path);
	char *comp[MAX_DEPTH], *save = NULL;
	mode_t mode[MAX_DEPTH];
	int lower[MAX_DEPTH + 1], upper[MAX_DEPTH + 1];
	size_t n = 0, missing;
	bool blocked = false;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (n == MAX_DEPTH || streq(c, ".") || streq(c, ".."))
			return 0;
		comp[n++] = c;
	}
	/* Walk the image: which components exist, as directories, and how. */
	lower[0] = lower_fd;
	for (missing = 0; missing < n; missing++) {
		struct stat st;

		if (fstatat(lower[missing], comp[missing], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				r = berth_fail(-errno, "look up '%s' in the image", path);
			break;
		}
		if (!S_ISDIR(st.st_mode)) {
			blocked = true;
			break;
		}
		mode[missing] = st.st_mode & 07777;
		lower[missing + 1] = openat(lower[missing], comp[missing],
					    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (lower[missing + 1] < 0) {
			r = berth_fail(-errno, "open '%s' in the image", path);
			break;
		}
	}
	close_all(lower + 1, missing);
	/* All there, or stopped at a non-directory: the overlay path. */
	if (r < 0 || missing == n || blocked)
		return r;
	upper[0] = upper_fd;
	for (size_t i = 0; i < n && r == 0; i++) {
		r = upper_mkdir(upper[i], comp[i], i < missing ? mode[i] : 0755);
		upper[i + 1] = -1;
		if (r == 0) {
			upper[i + 1] = openat(upper[i], comp[i],
					      O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (upper[i + 1] < 0)
				r = berth_fail(-errno, "open '%s' in the writable layer", comp[i]);
		}
		if (r < 0)
			close_all(upper + 1, i);
	}
	if (r == 0)
		close_all(upper + 1, n);
	return r;
}

/* passwd and group into upper/etc when the image's /etc is a directory. */
static int seed_users(const struct rootfs_plan *p, int lower_fd, int upper_fd, bool *done)
{
	_cleanup_close_ int etc = -1;
	struct stat st;
	int r;

	if (fstatat(lower_fd, "etc", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
		return 0;
	r = upper_mkdir(upper_fd, "etc", st.st_mode & 07777);
	if (r < 0)
		return r;
	etc = openat(upper_fd, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (etc < 0)
		return berth_fail(-errno, "open etc/ in the writable layer");
	r = etcfiles_seed_users(p, lower_fd, etc);
	*done = r == 0;
	return r;
}

int upper_seed(const struct rootfs_plan *p, const char *lower, const char *upper,
	       bool *users_done)
{
	static const char *const mountpoints[] = {"/proc", "/sys", "/dev", "/tmp"};
	_cleanup_close_ int lower_fd = -1, upper_fd = -1;
	int r = 0;

	*users_done = false;
	if (p->upper_dir)
		return 0;
	lower_fd = open(lower, O_PATH | O_DIRECTORY | O_CLOEXEC);
	upper_fd = open(upper, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (lower_fd < 0 || upper_fd < 0)
		return berth_fail(-errno, "open the layers in '%s'", p->state_dir);
	for (size_t i = 0; i < ARRAY_SIZE(mountpoints) && r == 0; i++)
		r = seed_dir(lower_fd, upper_fd, mountpoints[i]);
	if (r == 0 && p->opts->mount_home && p->home && p->home[0] == '/' && !streq(p->home, "/"))
		r = seed_dir(lower_fd, upper_fd, p->home);
	if (r == 0)
		r = seed_users(p, lower_fd, upper_fd, users_done);
	return r;
}
