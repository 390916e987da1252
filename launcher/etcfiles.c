/* /etc files of the container: the caller in passwd and group, and the
 * host's hosts, resolv.conf and localtime.  In a writable container
 * passwd and group are written into the overlay (so adduser and friends
 * keep working) and the host's files are bound over the image's (as
 * Docker does); in a read-only one all are bound over the image's files
 * when those exist.
 * A writable remap-root Debian container also gets apt told not to switch
 * to its sandbox user (as enroot's aptfix hook does). */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/facts.h"
#include "launcher/rootfs.h"
#include "launcher/safepath.h"

/* Content of /etc/NAME in the image ("" when missing). */
static int read_image_file(int root_fd, const char *path, char **out)
{
	_cleanup_close_ int fd = safe_open(root_fd, path, O_RDONLY);
	char p[64];

	if (fd == -ENOENT || fd == -ENOTDIR || fd == -ELOOP) {
		*out = strdup("");
		return *out ? 0 : -ENOMEM;
	}
	if (fd < 0)
		return berth_fail(fd, "open '%s' in the image", path);
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	return read_file(p, 4u << 20, out, NULL);
}

/* Is there a line whose field number `field` (0-based, ':'-separated)
 * equals value? */
static bool has_entry(const char *text, unsigned field, const char *value)
{
	size_t vlen = strlen(value);

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *f = l;

		for (unsigned i = 0; i < field && f; i++) {
			f = strchr(f, ':');
			f = f ? f + 1 : NULL;
		}
		if (f && strncmp(f, value, vlen) == 0 && (f[vlen] == ':' || f[vlen] == '\n' ||
							  f[vlen] == '\0'))
			return true;
	}
	return false;
}

static char *with_line(const char *text, const char *line)
{
	size_t n = strlen(text);

	return xasprintf("%s%s%s\n", text, n && text[n - 1] != '\n' ? "\n" : "", line);
}

/* Is /etc/NAME in the image a regular file (after links inside the
 * root)?  Only a file can be bound over. */
static bool image_has_file(int root_fd, const char *path)
{
	_cleanup_close_ int fd = safe_open(root_fd, path, O_PATH);
	struct stat st;

	return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* Bind a copy of content (in the keeper's tmpfs) over the image's file:
 * no copy-up of /etc into the overlay, no whiteout. */
static int bind_file(int root_fd, const char *path, const char *name, const char *content, size_t len,
		     bool writable, const char *files_dir)
{
	_cleanup_free_ char *copy = path_join(files_dir, name);
	int r;

	if (!copy)
		return -ENOMEM;
	r = write_file_runtime(copy, content, len, 0644);
	if (r < 0)
		return berth_fail(r, "write '%s'", copy);
	return rootfs_bind(root_fd, copy, path, writable ? 0 : LAUNCHER_MNT_RO, false);
}

/* Write /etc/NAME into the writable layer, replacing whatever is there (a
 * symlink out of the image included); never write through a link. */
static int replace_file(int root_fd, const char *path, const char *name, const char *content,
			size_t len)
{
	_cleanup_close_ int etc = -1, fd = -1;

	etc = safe_mkpath(root_fd, "/etc", false);
	if (etc < 0)
		return berth_fail(etc, "create /etc in the container");
	close(etc);
	etc = safe_open(root_fd, "/etc", O_RDONLY | O_DIRECTORY);
	if (etc < 0)
		return berth_fail(etc, "open /etc in the container");
	if (unlinkat(etc, name, 0) < 0 && errno != ENOENT)
		return berth_fail(-errno, "replace '%s'", path);
	fd = openat(etc, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return berth_fail(-errno, "create '%s'", path);
	if (write(fd, content, len) != (ssize_t)len)
		return berth_fail(-errno, "write '%s'", path);
	return 0;
}

/* passwd and group (in_layer) are real files of a writable container, so
 * that adduser's rename over them works; the host's files are bound over
 * the image's as Docker does, falling back to a file in the layer when
 * the image has none to bind over.  Read-only: bound, or left out. */
static int put_file(int root_fd, const char *name, const char *content, size_t len, bool writable,
		    bool in_layer, const char *files_dir)
{
	_cleanup_free_ char *path = xasprintf("/etc/%s", name);

	if (!path)
		return -ENOMEM;
	if (writable && in_layer)
		return replace_file(root_fd, path, name, content, len);
	if (image_has_file(root_fd, path))
		return bind_file(root_fd, path, name, content, len, writable, files_dir);
	if (writable)
		return replace_file(root_fd, path, name, content, len);
	log_debug("read-only image has no '%s': left out", path);
	return 0;
}

static int copy_host(int root_fd, const char *name, bool writable, const char *files_dir)
{
	_cleanup_free_ char *host = xasprintf("/etc/%s", name), *buf = NULL;
	size_t len = 0;
	int r;

	if (!host)
		return -ENOMEM;
	r = read_file(host, 4u << 20, &buf, &len);
	if (r == -ENOENT) {
		log_debug("host has no '%s'", host);
		return 0;
	}
	if (r < 0)
		return berth_fail(r, "read '%s'", host);
	/* localtime is binary: its length, not strlen */
	return put_file(root_fd, name, buf, len, writable, false, files_dir);
}

/* The image's passwd and group with the caller added: NULL where the
 * image's file has the entry already. */
static int users_content(const struct rootfs_plan *p, int root_fd, char **npw, char **ngr)
{
	_cleanup_free_ char *pw = NULL, *gr = NULL;
	char id[32];
	const char *name = p->user_name ? p->user_name : "user";
	int r;

	*npw = *ngr = NULL;
	if (p->facts && !p->upper_dir) {
		/* a fresh layer or none: the image's files are what is there */
		const char *ipw = facts_content(p->facts, "/etc/passwd"),
			   *igr = facts_content(p->facts, "/etc/group");

		pw = strdup(ipw ? ipw : "");
		gr = strdup(igr ? igr : "");
		if (!pw || !gr)
			return -ENOMEM;
	} else {
		r = read_image_file(root_fd, "/etc/passwd", &pw);
		if (r == 0)
			r = read_image_file(root_fd, "/etc/group", &gr);
		if (r < 0)
			return r;
	}
	snprintf(id, sizeof(id), "%u", (unsigned)p->uid);
	if (!has_entry(pw, 2, id)) {
		_cleanup_free_ char *line = xasprintf("%s:x:%u:%u:%s:%s:%s", name, (unsigned)p->uid,
						      (unsigned)p->gid, name, p->home ? p->home : "/",
						      p->shell ? p->shell : "/bin/sh");

		if (!line || !(*npw = with_line(pw, line)))
			return -ENOMEM;
	}
	snprintf(id, sizeof(id), "%u", (unsigned)p->gid);
	if (!has_entry(gr, 2, id)) {
		_cleanup_free_ char *line = xasprintf("%s:x:%u:", p->group_name ? p->group_name : name,
						      (unsigned)p->gid);

		if (!line || !(*ngr = with_line(gr, line))) {
			free(*npw);
			*npw = NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

static int passwd_group(const struct rootfs_plan *p, int root_fd, bool writable,
			const char *files_dir)
{
	_cleanup_free_ char *npw = NULL, *ngr = NULL;
	int r = users_content(p, root_fd, &npw, &ngr);

	if (r == 0 && npw)
		r = put_file(root_fd, "passwd", npw, strlen(npw), writable, true, files_dir);
	if (r == 0 && ngr)
		r = put_file(root_fd, "group", ngr, strlen(ngr), writable, true, files_dir);
	return r;
}

const char *const etcfiles_host[ETCFILES_HOST_N] = {"hosts", "resolv.conf", "localtime"};

int etcfiles_write_new(int dir_fd, const char *name, const char *content, size_t len)
{
	_cleanup_close_ int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
						      O_CLOEXEC, 0644);

	if (fd < 0 || write(fd, content, len) != (ssize_t)len)
		return berth_fail(-errno, "write /etc/%s into the writable layer", name);
	return 0;
}

int etcfiles_seed_users(const struct rootfs_plan *p, int lower_fd, int upper_etc_fd)
{
	_cleanup_free_ char *npw = NULL, *ngr = NULL;
	int r = users_content(p, lower_fd, &npw, &ngr);

	if (r == 0 && npw)
		r = etcfiles_write_new(upper_etc_fd, "passwd", npw, strlen(npw));
	if (r == 0 && ngr)
		r = etcfiles_write_new(upper_etc_fd, "group", ngr, strlen(ngr));
	return r;
}

/* apt drops privileges to _apt for downloads and then checks that its ids
 * changed; in a one-uid namespace the seccomp filter (seccomp.c) makes the
 * switch a no-op, so that check fails.  "root" as sandbox user skips it. */
static int apt_sandbox(int root_fd)
{
	static const char conf[] = "APT::Sandbox::User \"root\";\n";
	_cleanup_close_ int probe = safe_open(root_fd, "/etc/debian_version", O_PATH);
	_cleanup_close_ int dir = -1, fd = -1;

	if (probe < 0)
		return 0;
	dir = safe_mkpath(root_fd, "/etc/apt/apt.conf.d", false);
	if (dir < 0)
		return berth_fail(dir, "create /etc/apt/apt.conf.d in the container");
	close(dir);
	dir = safe_open(root_fd, "/etc/apt/apt.conf.d", O_RDONLY | O_DIRECTORY);
	if (dir < 0)
		return berth_fail(dir, "open /etc/apt/apt.conf.d in the container");
	if (unlinkat(dir, "99berth-remap-root", 0) < 0 && errno != ENOENT)
		return berth_fail(-errno, "replace /etc/apt/apt.conf.d/99berth-remap-root");
	fd = openat(dir, "99berth-remap-root", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0644);
	if (fd < 0 || write(fd, conf, sizeof(conf) - 1) != (ssize_t)(sizeof(conf) - 1))
		return berth_fail(-errno, "write /etc/apt/apt.conf.d/99berth-remap-root");
	return 0;
}

int etcfiles_install(const struct rootfs_plan *p, int root_fd, bool writable, unsigned seeded,
		     const char *files_dir)
{
	int r = seeded & ETCFILES_SEEDED_USERS ? 0 : passwd_group(p, root_fd, writable, files_dir);

	for (size_t i = 0; r == 0 && i < ETCFILES_HOST_N; i++)
		if (!(seeded & ETCFILES_SEEDED_HOST(i)))
			r = copy_host(root_fd, etcfiles_host[i], writable, files_dir);
	if (r == 0 && writable && p->opts->remap_root)
		r = apt_sandbox(root_fd);
	return r;
}
