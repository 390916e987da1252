/* Read-only containers of images that lack the mountpoints berth needs.
 *
 * A writable container creates a missing /proc, /tmp, home or /etc/passwd in
 * its overlay.  A read-only one cannot write into the squashfs, so, as
 * Apptainer's "underlay" does, the directory D of the image that should hold
 * the missing entry is replaced (for this container only) by a directory on
 * berth's private tmpfs that holds a bind mount of each of D's entries, a copy
 * of each of its symlinks, and the missing mountpoints; that directory is made
 * read-only and bound over D.  The image's files stay the image's, served by
 * the same FUSE mount; only the directory listing of D is berth's.
 *
 * Images that have every mountpoint pay only the lookups rootfs.c makes
 * anyway (they are in the kernel's cache afterwards).  User mounts (-v) onto
 * a missing target are not helped: they stay refused in read-only mode,
 * where a typo must not make directories appear in the image. */
#include "config.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/rootfs.h"
#include "launcher/safepath.h"

/* More entries than this in one directory to shadow: refuse rather than
 * make thousands of mounts (a read-only image lacking, say, /usr/x). */
#define MAX_ENTRIES 4096
#define MAX_NEEDS 12

struct need {
	char **parts; /* the path's components */
	bool file;    /* the mountpoint is a file (/etc/passwd), else a directory */
	size_t dir;   /* when missing: parts[0..dir) is the deepest existing directory */
	struct stat dst;
};

static int add_need(struct need *v, size_t *n, const char *path, bool file)
{
	char **parts = strv_split(path, '/');

	if (!parts)
		return -ENOMEM;
	for (size_t i = 0; parts[i]; i++) {
		/* only plain components: a home such as /a/../b is left alone */
		if (streq(parts[i], ".") || streq(parts[i], "..") || *n >= MAX_NEEDS) {
			strv_free(parts);
			return 0;
		}
	}
	if (!parts[0]) {
		strv_free(parts);
		return 0;
	}
	v[(*n)++] = (struct need){.parts = parts, .file = file};
	return 0;
}

/* What berth mounts in every container (rootfs.c standard_mounts, etcfiles.c). */
static int needs_of(const struct rootfs_plan *p, struct need *v, size_t *n)
{
	static const char *const dirs[] = {"/proc", "/sys", "/dev", "/tmp"};
	static const char *const etc[] = {"/etc/passwd", "/etc/group"};
	static const char *const host_etc[] = {"/etc/hosts", "/etc/resolv.conf", "/etc/localtime"};
	int r = 0;

	*n = 0;
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(dirs); i++)
		r = add_need(v, n, dirs[i], false);
	if (r == 0 && p->opts->mount_home && p->home && p->home[0] == '/')
		r = add_need(v, n, p->home, false);
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(etc); i++)
		r = add_need(v, n, etc[i], true);
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(host_etc); i++)
		if (access(host_etc[i], F_OK) == 0)
			r = add_need(v, n, host_etc[i], true);
	return r;
}

static char *prefix_path(char **parts, size_t k)
{
	char *saved = parts[k], *s, *out;

	parts[k] = NULL;
	s = strv_join(parts, "/");
	parts[k] = saved;
	out = s ? xasprintf("/%s", s) : NULL;
	free(s);
	return out;
}

/* Is n's path missing?  Then find the deepest directory of it that exists
 * (n->dir, n->dst), put an O_PATH fd of it in *dfd and return 1.  0:
 * present, or missing in a way the mount itself reports better (a file
 * where a directory should be, a symlink loop). */
static int locate(int root_fd, struct need *n, int *dfd)
{
	_cleanup_free_ char *full = prefix_path(n->parts, strv_length(n->parts));
	int fd = full ? safe_open(root_fd, full, O_PATH) : -ENOMEM;

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (fd != -ENOENT)
		return fd == -ENOMEM ? fd : 0;
	for (size_t k = strv_length(n->parts); k-- > 0;) {
		_cleanup_free_ char *dir = prefix_path(n->parts, k);

		if (!dir)
			return -ENOMEM;
		fd = safe_open(root_fd, dir, O_PATH | O_DIRECTORY);
		if (fd == -ENOENT) /* a missing directory, or a dangling symlink */
			continue;
		if (fd < 0)
			return 0;
		if (fstat(fd, &n->dst) < 0) {
			close(fd);
			return berth_fail(-errno, "stat '%s' in the image", dir);
		}
		n->dir = k;
		*dfd = fd;
		return 1;
	}
	return 0;
}

/* Recreate entry name of dir in shadow: symlinks as symlinks, everything
 * else as a bind mount of the image's entry on an empty one. */
static int mirror(int dir, int shadow, const char *name)
{
	_cleanup_close_ int src = -1, dst = -1;
	char buf[4096], sp[64], tp[64];
	struct stat st;
	ssize_t len;

	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return berth_fail(-errno, "stat '%s' in the image", name);
	if (S_ISLNK(st.st_mode)) {
		len = readlinkat(dir, name, buf, sizeof(buf) - 1);
		if (len < 0)
			return berth_fail(-errno, "read link '%s' in the image", name);
		buf[len] = '\0';
		return symlinkat(buf, shadow, name) < 0 ? berth_fail(-errno, "copy link '%s'", name) : 0;
	}
	if (S_ISDIR(st.st_mode) ? mkdirat(shadow, name, st.st_mode & 07777) < 0
				: mknodat(shadow, name, S_IFREG | 0600, 0) < 0)
		return berth_fail(-errno, "create mountpoint '%s'", name);
	src = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	dst = openat(shadow, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0 || dst < 0)
		return berth_fail(-errno, "open '%s'", name);
	snprintf(sp, sizeof(sp), "/proc/self/fd/%d", src);
	snprintf(tp, sizeof(tp), "/proc/self/fd/%d", dst);
	/* recursive: an earlier shadow may sit below (/ then /home) */
	if (mount(sp, tp, NULL, MS_BIND | MS_REC, NULL) < 0)
		return berth_fail(-errno, "bind '%s' of the image", name);
	return 0;
}

static bool replaced(struct need *v, size_t n, const struct need *d, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].parts && v[i].dir == d->dir && v[i].dst.st_dev == d->dst.st_dev &&
		    v[i].dst.st_ino == d->dst.st_ino && streq(v[i].parts[v[i].dir], name))
			return true;
	return false;
}

/* The shadow's entries: the image's, less those a missing path replaces (a
 * dangling symlink /etc/resolv.conf becomes a file). */
static int mirror_all(int dir_path_fd, int shadow, struct need *v, size_t n, const struct need *d)
{
	_cleanup_closedir_ DIR *dir = NULL;
	int fd = openat(dir_path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *e;
	size_t count = 0;
	int r = 0;

	if (fd < 0 || !(dir = fdopendir(fd))) {
		r = berth_fail(-errno, "read a directory of the image");
		if (fd >= 0)
			close(fd);
		return r;
	}
	while (r == 0 && (e = readdir(dir))) {
		if (streq(e->d_name, ".") || streq(e->d_name, "..") || replaced(v, n, d, e->d_name))
			continue;
		if (++count > MAX_ENTRIES)
			return berth_failx(BERTH_EINVAL_INPUT, "more than %d entries to mirror", MAX_ENTRIES);
		r = mirror(dirfd(dir), shadow, e->d_name);
	}
	return r;
}

/* The missing part of need n, below the shadow. */
static int create_missing(int shadow, const struct need *n)
{
	_cleanup_close_ int at = dup(shadow);

	for (size_t i = n->dir; at >= 0 && n->parts[i]; i++) {
		bool last = !n->parts[i + 1];
		int next;

		if (last && n->file) {
			if (mknodat(at, n->parts[i], S_IFREG | 0644, 0) < 0 && errno != EEXIST)
				return -errno;
			return 0;
		}
		if (mkdirat(at, n->parts[i], 0755) < 0 && errno != EEXIST)
			return -errno;
		next = openat(at, n->parts[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(at);
		at = next;
	}
	return at < 0 ? -errno : 0;
}

/* Build the shadow of the directory d (fd dfd), with every need that has
 * the same directory, on a tmpfs of its own at work/underN; make it
 * read-only like the image and move it, binds and all, over d. */
static int shadow_dir(int dfd, struct need *v, size_t n, const struct need *d, const char *work,
		      unsigned id)
{
	_cleanup_free_ char *path = xasprintf("%s/under%u", work, id),
			    *where = prefix_path(d->parts, d->dir);
	_cleanup_close_ int sfd = -1;
	char tp[64];
	int r;

	if (!path || !where)
		return -ENOMEM;
	log_debug("read-only image: mirroring '%s' to add mountpoints", where);
	if (mkdir(path, 0700) < 0 || mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, NULL) < 0 ||
	    (sfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fchmod(sfd, d->dst.st_mode & 07777) < 0)
		return berth_fail(-errno, "create '%s'", path);
	if ((r = mirror_all(dfd, sfd, v, n, d)) < 0)
		return berth_fail_context(r, "read-only image: mirror '%s'", where);
	for (size_t i = 0; i < n; i++) {
		if (!v[i].parts || v[i].dir != d->dir || v[i].dst.st_dev != d->dst.st_dev ||
		    v[i].dst.st_ino != d->dst.st_ino)
			continue;
		if ((r = create_missing(sfd, &v[i])) < 0)
			return berth_fail(r, "create a mountpoint below '%s'", path);
		strv_free(v[i].parts);
		v[i].parts = NULL; /* done */
	}
	if (mount(NULL, path, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		return berth_fail(-errno, "make '%s' read-only", path);
	/* MS_MOVE takes the submounts along: no copy of the binds */
	snprintf(tp, sizeof(tp), "/proc/self/fd/%d", dfd);
	if (mount(path, tp, NULL, MS_MOVE, NULL) < 0)
		return berth_fail(-errno, "mount the mirror of '%s'", where);
	return 0;
}

static void needs_free(struct need *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		strv_free(v[i].parts);
}

int underlay_apply(const struct rootfs_plan *p, const char *root, const char *work, int *root_fd)
{
	struct need v[MAX_NEEDS];
	size_t n = 0;
	int r = needs_of(p, v, &n);

	/* Each round shadows one directory; at most one round per need. */
	for (unsigned round = 0; r == 0 && round <= MAX_NEEDS; round++) {
		int dfd = -1, fd = -1;
		size_t first = n;

		for (size_t i = 0; i < n && r == 0; i++) {
			if (!v[i].parts)
				continue;
			r = locate(*root_fd, &v[i], &fd);
			if (r == 0) {
				strv_free(v[i].parts); /* present, or not ours to fix */
				v[i].parts = NULL;
			} else if (r > 0 && first == n) {
				first = i;
				dfd = fd;
			} else if (r > 0) {
				close(fd);
			}
			r = r > 0 ? 0 : r;
		}
		if (r < 0 || first == n) {
			if (dfd >= 0)
				close(dfd);
			break;
		}
		r = shadow_dir(dfd, v, n, &v[first], work, round);
		close(dfd);
		/* the root itself may have been covered: look it up again */
		if (r == 0) {
			fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0) {
				r = berth_fail(-errno, "open '%s'", root);
			} else {
				close(*root_fd);
				*root_fd = fd;
			}
		}
	}
	needs_free(v, n);
	return r;
}
