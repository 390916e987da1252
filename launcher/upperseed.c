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
 * through the overlay, which sees what earlier runs left.
 *
 * What the image has at those paths comes from the .sqsh itself when the
 * caller read it (facts.h), not from lookups on the fresh mount.  A
 * mountpoint the image lacks or has empty is marked opaque in the upper
 * layer: overlayfs then never looks for it in the image again (the binds
 * over /proc, /sys, /dev, /tmp and home resolve with no round trip to the
 * FUSE server), and nothing of the image is hidden by it. */
#include "config.h"
#include <errno.h>
#include <sys/xattr.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/macros.h"
#include "common/util.h"
#include "launcher/facts.h"
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

/* Mark the directory name in dir_fd opaque (overlayfs, userxattr): best
 * effort, a kernel without user xattrs on tmpfs (< 6.6) just looks. */
static void make_opaque(int dir_fd, const char *name)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	(void)fsetxattr(fd, "user.overlay.opaque", "y", 1, 0);
	close(fd);
}

/* What the image has at each prefix of the path, from the facts when all
 * were read there: *missing = index of the first component the image
 * lacks (n: none), *blocked when a non-directory stops the path, mode[]
 * of the directories before.  *last_empty: the last component is an
 * empty directory.  Returns false when the facts cannot tell. */
static bool walk_facts(const struct launcher_facts *f, const char *path, size_t n, mode_t *mode,
		       size_t *missing, bool *blocked, bool *last_empty)
{
	const struct imgconv_entry *e[MAX_DEPTH];
	const char *p = path;

	for (size_t i = 0; i < n; i++) {
		char prefix[PATH_MAX];

		p = strchr(p + 1, '/');
		snprintf(prefix, sizeof(prefix), "%.*s", p ? (int)(p - path) : (int)strlen(path), path);
		if (!(e[i] = facts_get(f, prefix)))
			return false;
		if (!p && i + 1 < n)
			return false;
	}
	*blocked = *last_empty = false;
	for (*missing = 0; *missing < n; (*missing)++) {
		const struct imgconv_entry *x = e[*missing];

		if (!x->mode)
			break;
		if (!S_ISDIR(x->mode)) {
			*blocked = true;
			break;
		}
		mode[*missing] = x->mode & 07777;
	}
	*last_empty = *missing == n && e[n - 1]->empty;
	return true;
}

/* The same by looking in the mounted image, one component at a time and
 * never through a symlink. */
static int walk_lower(int lower_fd, const char *path, char **comp, size_t n, mode_t *mode,
		      size_t *missing, bool *blocked)
{
	int lower[MAX_DEPTH + 1];
	int r = 0;

	*blocked = false;
	lower[0] = lower_fd;
	for (*missing = 0; *missing < n; (*missing)++) {
		size_t i = *missing;
		struct stat st;

		if (fstatat(lower[i], comp[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				r = berth_fail(-errno, "look up '%s' in the image", path);
			break;
		}
		if (!S_ISDIR(st.st_mode)) {
			*blocked = true;
			break;
		}
		mode[i] = st.st_mode & 07777;
		lower[i + 1] = openat(lower[i], comp[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (lower[i + 1] < 0) {
			r = berth_fail(-errno, "open '%s' in the image", path);
			break;
		}
	}
	close_all(lower + 1, *missing);
	return r;
}

/* Make sure the absolute path is a directory in the merged view: if the
 * image lacks part of it, mirror the image's directories above the gap and
 * create the rest in the upper layer.  Where the image has something that
 * is not a directory on the way (a symlink, a file) nothing is done: the
 * bind later resolves that inside the root, through the overlay. */
static int seed_dir(const struct rootfs_plan *p, int lower_fd, int upper_fd, const char *path)
{
	_cleanup_free_ char *copy = strdup(path);
	char *comp[MAX_DEPTH], *save = NULL;
	mode_t mode[MAX_DEPTH];
	int upper[MAX_DEPTH + 1];
	size_t n = 0, missing;
	bool blocked = false, last_empty = false, known;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (n == MAX_DEPTH || streq(c, ".") || streq(c, ".."))
			return 0;
		comp[n++] = c;
	}
	if (n == 0)
		return 0;
	/* Walk the image: which components exist, as directories, and how. */
	known = walk_facts(p->facts, path, n, mode, &missing, &blocked, &last_empty);
	if (!known)
		r = walk_lower(lower_fd, path, comp, n, mode, &missing, &blocked);
	/* Stopped at a non-directory: the overlay path.  Nothing missing and
	 * not known empty: the image's own directory, merged as it is. */
	if (r < 0 || blocked || (missing == n && !last_empty))
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
	if (r == 0) {
		make_opaque(upper[n - 1], comp[n - 1]);
		close_all(upper + 1, n);
	}
	return r;
}

/* The image's /etc: its mode, or 0 when it is not a directory. */
static mode_t image_etc(const struct rootfs_plan *p, int lower_fd)
{
	const struct imgconv_entry *e = facts_get(p->facts, "/etc");
	struct stat st;

	if (e)
		return S_ISDIR(e->mode) ? e->mode : 0;
	if (fstatat(lower_fd, "etc", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
		return 0;
	return st.st_mode;
}

/* The host's hosts, resolv.conf and localtime as files of the fresh layer
 * (like passwd and group): no bind, no lookup in the image.  Only where
 * the facts say the image has a file, a link or nothing there. */
static int seed_host_files(const struct rootfs_plan *p, int etc, unsigned *seeded)
{
	for (size_t i = 0; i < ETCFILES_HOST_N; i++) {
		_cleanup_free_ char *in_image = xasprintf("/etc/%s", etcfiles_host[i]), *buf = NULL;
		const struct imgconv_entry *e = in_image ? facts_get(p->facts, in_image) : NULL;
		size_t len = 0;
		int r;

		if (!e || S_ISDIR(e->mode) || read_file(in_image, 4u << 20, &buf, &len) < 0)
			continue; /* etcfiles_install() deals with it */
		r = etcfiles_write_new(etc, etcfiles_host[i], buf, len);
		if (r < 0)
			return r;
		*seeded |= ETCFILES_SEEDED_HOST(i);
	}
	return 0;
}

/* passwd, group and the host's files into upper/etc when the image's /etc
 * is a directory. */
static int seed_etc(const struct rootfs_plan *p, int lower_fd, int upper_fd, unsigned *seeded)
{
	_cleanup_close_ int etc = -1;
	mode_t mode = image_etc(p, lower_fd);
	int r;

	if (!mode)
		return 0;
	r = upper_mkdir(upper_fd, "etc", mode & 07777);
	if (r < 0)
		return r;
	etc = openat(upper_fd, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (etc < 0)
		return berth_fail(-errno, "open etc/ in the writable layer");
	r = etcfiles_seed_users(p, lower_fd, etc);
	if (r < 0)
		return r;
	*seeded |= ETCFILES_SEEDED_USERS;
	return seed_host_files(p, etc, seeded);
}

int upper_seed(const struct rootfs_plan *p, const char *lower, const char *upper,
	       unsigned *seeded)
{
	static const char *const mountpoints[] = {"/proc", "/sys", "/dev", "/tmp"};
	_cleanup_close_ int lower_fd = -1, upper_fd = -1;
	int r = 0;

	*seeded = 0;
	if (p->upper_dir)
		return 0;
	lower_fd = open(lower, O_PATH | O_DIRECTORY | O_CLOEXEC);
	upper_fd = open(upper, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (lower_fd < 0 || upper_fd < 0)
		return berth_fail(-errno, "open the layers in '%s'", p->state_dir);
	for (size_t i = 0; i < ARRAY_SIZE(mountpoints) && r == 0; i++)
		r = seed_dir(p, lower_fd, upper_fd, mountpoints[i]);
	if (r == 0 && p->opts->mount_home && p->home && p->home[0] == '/' && !streq(p->home, "/"))
		r = seed_dir(p, lower_fd, upper_fd, p->home);
	if (r == 0)
		r = seed_etc(p, lower_fd, upper_fd, seeded);
	return r;
}
