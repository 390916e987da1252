/* Paths in a container root never resolve outside it: openat2 and the
 * fallback walk, compared on the same hostile tree. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/util.h"
#include "launcher/safepath.h"
#include "tests/tap.h"

static char top[] = "/tmp/berth-safepath-XXXXXX";
static char root[256];

static void mk(const char *rel, const char *link)
{
	_cleanup_free_ char *p = path_join(top, rel);

	if (link) {
		if (symlink(link, p) < 0)
			perror(p);
	} else if (mkdir_p(p, 0755) < 0) {
		perror(p);
	}
}

static bool same(int fd, const char *rel)
{
	_cleanup_free_ char *p = path_join(top, rel);
	struct stat a, b;

	return fd >= 0 && fstat(fd, &a) == 0 && stat(p, &b) == 0 && a.st_ino == b.st_ino &&
	       a.st_dev == b.st_dev;
}

static void check(int root_fd, const char *mode)
{
	int fd;

	fd = safe_open(root_fd, "/etc/x", O_PATH);
	ok(fd == -ENOENT, "%s: /etc/x -> /../../../host: ENOENT, not the host's /host", mode);
	fd = safe_open(root_fd, "/etc/rel/f", O_PATH);
	ok(same(fd, "root/outside/f"), "%s: relative escape lands at /outside in the root", mode);
	close(fd);
	fd = safe_open(root_fd, "/../../a/b/c", O_RDONLY);
	ok(same(fd, "root/a/b/c"), "%s: leading .. stays at the root", mode);
	close(fd);
	fd = safe_open(root_fd, "link_a/b/../b/c", O_RDONLY);
	ok(same(fd, "root/a/b/c"), "%s: absolute link inside the root", mode);
	close(fd);
	fd = safe_open(root_fd, "/etc/loop", O_PATH);
	ok(fd == -ELOOP, "%s: symlink loop: ELOOP", mode);
	fd = safe_open(root_fd, "/etc/x", O_PATH | O_NOFOLLOW);
	ok(fd >= 0, "%s: O_NOFOLLOW opens the link itself", mode);
	close(fd);
	fd = safe_open(root_fd, "/", O_PATH);
	ok(same(fd, "root"), "%s: / is the root", mode);
	close(fd);
	fd = safe_open(root_fd, "/proc/self/root", O_PATH);
	ok(fd < 0, "%s: magic links are not followed", mode);
}

int main(void)
{
	_cleanup_close_ int root_fd = -1;
	int fd;

	if (!mkdtemp(top))
		return 1;
	snprintf(root, sizeof(root), "%s/root", top);
	mk("host", NULL);      /* outside the root: must never be reached */
	mk("outside/f", NULL); /* idem */
	mk("root/etc", NULL);
	mk("root/a/b/c", NULL);
	mk("root/outside/f", NULL);
	mk("root/etc/x", "/../../../host");
	mk("root/etc/rel", "../../../../outside");
	mk("root/etc/loop", "loop");
	mk("root/link_a", "/a");
	mk("root/proc", "/proc");
	root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	check(root_fd, "openat2");
	safe_force_walk(true);
	check(root_fd, "walk");
	fd = safe_mkpath(root_fd, "/etc/x/sub", false);
	ok(same(fd, "root/host/sub"), "walk: mkpath through an escaping link creates inside");
	close(fd);
	ok(access("/tmp/nonexistent-host-sub", F_OK) < 0, "nothing created outside");
	{
		_cleanup_free_ char *outside = path_join(top, "host/sub");

		ok(access(outside, F_OK) < 0, "the host's /host untouched");
	}
	safe_force_walk(false);
	fd = safe_mkpath(root_fd, "/new/dir/file", true);
	ok(same(fd, "root/new/dir/file"), "openat2: mkpath creates dirs and a file");
	close(fd);
	rm_rf(top);
	return tap_done();
}
