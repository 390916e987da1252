#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>
#include "common/macros.h"
#include "common/util.h"
#include "launcher/safepath.h"

#define MAX_LINKS 40
#define MAX_DEPTH 256

static bool force_walk;

void safe_force_walk(bool on)
{
	force_walk = on;
}

/* The walk keeps a stack of directory fds from the root down, so ".."
 * pops one level and can never go above the root, whatever the mounts. */
struct walk {
	int fds[MAX_DEPTH];
	int depth; /* fds[0] is the root (not owned) */
};

static void walk_reset(struct walk *w)
{
	for (int i = 1; i <= w->depth; i++)
		close(w->fds[i]);
	w->depth = 0;
}

static int walk_push(struct walk *w, int fd)
{
	if (w->depth + 1 >= MAX_DEPTH) {
		close(fd);
		return -ENAMETOOLONG;
	}
	w->fds[++w->depth] = fd;
	return 0;
}

/* Next component of *p (skips "/" and "."), NUL-terminated in place. */
static char *next_component(char **p)
{
	char *s = *p, *e;

	for (;;) {
		while (*s == '/')
			s++;
		if (!*s)
			return NULL;
		e = strchr(s, '/');
		if (e)
			*e++ = '\0';
		else
			e = s + strlen(s);
		*p = e;
		if (!streq(s, "."))
			return s;
		s = e;
	}
}

static bool rest_empty(const char *p)
{
	for (; *p; p++)
		if (*p != '/' && !(*p == '.' && (p[1] == '/' || p[1] == '\0')))
			return false;
	return true;
}

/* Replace the unread rest with "target/rest". */
static int splice_link(char **buf, char **p, const char *target)
{
	char *n = xasprintf("%s/%s", target, *p);

	if (!n)
		return -ENOMEM;
	free(*buf);
	*buf = *p = n;
	return 0;
}

static int walk_link(struct walk *w, int dirfd, const char *name, char **buf, char **p,
		     int *links)
{
	char target[PATH_MAX];
	ssize_t n;

	if (++*links > MAX_LINKS)
		return -ELOOP;
	n = readlinkat(dirfd, name, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	if (target[0] == '/')
		walk_reset(w);
	return splice_link(buf, p, target);
}

int safe_open_walk(int root_fd, const char *path, int flags)
{
	struct walk w = {.fds = {root_fd}};
	_cleanup_free_ char *buf = strdup(path);
	char *p = buf, *c;
	int links = 0, r = 0;

	if (!buf)
		return -ENOMEM;
	while ((c = next_component(&p))) {
		int cur = w.fds[w.depth], fd;
		bool last = rest_empty(p);
		struct stat st;

		if (streq(c, "..")) {
			if (w.depth > 0)
				close(w.fds[w.depth--]);
			continue;
		}
		if (fstatat(cur, c, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			break;
		}
		if (S_ISLNK(st.st_mode) && !(last && (flags & O_NOFOLLOW))) {
			if ((r = walk_link(&w, cur, c, &buf, &p, &links)) < 0)
				break;
			continue;
		}
		if (last) {
			fd = openat(cur, c, flags | O_NOFOLLOW | O_CLOEXEC);
			r = fd < 0 ? -errno : fd;
			walk_reset(&w);
			return r;
		}
		fd = openat(cur, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			/* replaced by a symlink since the fstatat: go around again */
			r = errno == ENOTDIR && S_ISDIR(st.st_mode) ? -EAGAIN : -errno;
			break;
		}
		if ((r = walk_push(&w, fd)) < 0)
			break;
	}
	if (r == 0) {
		/* path named the root itself (or its ".." chain) */
		r = openat(w.fds[w.depth], ".", (flags & ~O_NOFOLLOW) | O_CLOEXEC);
		if (r < 0)
			r = -errno;
	}
	walk_reset(&w);
	return r;
}

int safe_open(int root_fd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (unsigned)flags | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	long fd;

	if (!force_walk) {
		do
			fd = syscall(SYS_openat2, root_fd, path, &how, sizeof(how));
		while (fd < 0 && errno == EAGAIN);
		if (fd >= 0)
			return (int)fd;
		/* ENOSYS: kernel < 5.6; EPERM: seccomp filters that refuse it */
		if (errno != ENOSYS && errno != EPERM)
			return -errno;
	}
	return safe_open_walk(root_fd, path, flags);
}

static int make_component(int parent, const char *name, bool file)
{
	if (file) {
		int fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				0644);

		if (fd < 0)
			return errno == EEXIST ? 0 : -errno;
		close(fd);
		return 0;
	}
	if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* A dangling symlink on the way: go on at its target (inside the root),
 * as the kernel would when creating through it.  prefix ends at the link. */
static int follow_dangling(int root_fd, int parent, const char *prefix, const char *name,
			   const char *rest, bool last_is_file, int depth);

static int mkpath(int root_fd, const char *path, bool last_is_file, int depth)
{
	_cleanup_free_ char *buf = strdup(path);
	_cleanup_close_ int parent = -1;
	char *p = buf, *c;
	int fd;

	if (!buf)
		return -ENOMEM;
	if (depth > MAX_LINKS)
		return -ELOOP;
	fd = safe_open(root_fd, path, O_PATH);
	if (fd != -ENOENT)
		return fd;
	parent = openat(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (parent < 0)
		return -errno;
	/* Each prefix is resolved in the root again, so a symlink anywhere
	 * still lands inside; only plain names are created, in the directory
	 * that resolution gave. */
	while ((c = next_component(&p))) {
		bool last = rest_empty(p);
		_cleanup_free_ char *prefix = strndup(buf, (size_t)(c - buf) + strlen(c));
		int r;

		if (!prefix)
			return -ENOMEM;
		fd = safe_open(root_fd, prefix, O_PATH);
		if (fd == -ENOENT && !streq(c, "..")) {
			r = make_component(parent, c, last && last_is_file);
			if (r < 0)
				return r;
			fd = safe_open(root_fd, prefix, O_PATH);
			if (fd == -ENOENT)
				return follow_dangling(root_fd, parent, prefix, c, p, last_is_file,
						       depth);
		}
		if (fd < 0 || last)
			return fd;
		close(parent);
		parent = fd;
		/* restore the '/' that next_component cut */
		c[strlen(c)] = '/';
	}
	return safe_open(root_fd, path, O_PATH);
}

static int follow_dangling(int root_fd, int parent, const char *prefix, const char *name,
			   const char *rest, bool last_is_file, int depth)
{
	_cleanup_free_ char *dir = strdup(prefix), *next = NULL;
	char target[PATH_MAX];
	ssize_t n = readlinkat(parent, name, target, sizeof(target) - 1);
	char *slash;

	if (n < 0)
		return errno == EINVAL ? -ENOENT : -errno;
	if (!dir)
		return -ENOMEM;
	target[n] = '\0';
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	next = target[0] == '/' ? xasprintf("%s/%s", target, rest)
				: xasprintf("%s/%s/%s", dir, target, rest);
	if (!next)
		return -ENOMEM;
	return mkpath(root_fd, next, last_is_file, depth + 1);
}

int safe_mkpath(int root_fd, const char *path, bool last_is_file)
{
	return mkpath(root_fd, path, last_is_file, 0);
}
