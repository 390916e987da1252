/* imgconv_pack_dir(): a directory tree on disk -> one squashfs file (for
 * `berth export` of a container's merged root).
 *
 * Everything is reached from dirfd through openat()/fstatat() with
 * O_NOFOLLOW / AT_SYMLINK_NOFOLLOW, one name at a time: a symlink in the
 * tree is stored as a symlink and never followed, so a container cannot
 * make the export read files from outside its root.  Directories are read
 * in name order and file data is fed as it is met, so the same tree gives
 * the same bytes.  Sockets are left out (nothing without their process);
 * the tree's own /.berth is replaced by berth's. */
#include "config.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <sqfs/xattr.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "imgconv/convert.h"
#include "imgconv/imagejson.h"
#include "imgconv/imgconv.h"
#include "imgconv/sqfs_out.h"
#include "imgconv/tree.h"

struct inode_key {
	dev_t dev;
	ino_t ino;
	char *path; /* first path seen, for tree_link() */
};

struct pack {
	struct tree *t;
	struct sqfs_out *o;
	char path[TREE_PATH_MAX + 2]; /* relative path being visited */
	size_t path_len;
	struct inode_key *links; /* open addressing on (dev, ino) */
	size_t n_links, cap_links;
	char *buf;
	char target[PATH_MAX]; /* symlink target (kept off the recursion's stack) */
};

static size_t key_hash(dev_t dev, ino_t ino, size_t cap)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) ^ dev) & (cap - 1);
}

/* The path of an earlier name of this inode, or NULL (and remember this
 * one). */
static int seen_inode(struct pack *p, const struct stat *st, const char **first)
{
	size_t i;

	*first = NULL;
	if (p->n_links * 2 >= p->cap_links) {
		size_t cap = p->cap_links ? p->cap_links * 2 : 64;
		struct inode_key *v = calloc(cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		for (size_t j = 0; j < p->cap_links; j++) {
			if (!p->links[j].path)
				continue;
			i = key_hash(p->links[j].dev, p->links[j].ino, cap);
			while (v[i].path)
				i = (i + 1) & (cap - 1);
			v[i] = p->links[j];
		}
		free(p->links);
		p->links = v;
		p->cap_links = cap;
	}
	i = key_hash(st->st_dev, st->st_ino, p->cap_links);
	for (; p->links[i].path; i = (i + 1) & (p->cap_links - 1)) {
		if (p->links[i].dev == st->st_dev && p->links[i].ino == st->st_ino) {
			*first = p->links[i].path;
			return 0;
		}
	}
	p->links[i].path = strdup(p->path);
	if (!p->links[i].path)
		return -ENOMEM;
	p->links[i].dev = st->st_dev;
	p->links[i].ino = st->st_ino;
	p->n_links++;
	return 0;
}

/* Extended attributes through fd, or (for what cannot be opened safely:
 * symlinks, devices, FIFOs) by name below the parent's fd. */
static int read_xattrs(int fd, int dfd, const char *name, struct txattrs **out)
{
	char names[65536], value[65536], proc[PATH_MAX];
	ssize_t len, vlen;
	int r;

	*out = NULL;
	if (fd < 0)
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d/%s", dfd, name);
	len = fd >= 0 ? flistxattr(fd, names, sizeof(names)) : llistxattr(proc, names, sizeof(names));
	if (len < 0)
		return errno == ENOTSUP || errno == ENOENT ? 0 : -errno;
	for (ssize_t off = 0; off < len; off += (ssize_t)strlen(names + off) + 1) {
		const char *key = names + off;

		if (sqfs_get_xattr_prefix_id(key) < 0)
			continue; /* not storable in squashfs (e.g. system.*) */
		vlen = fd >= 0 ? fgetxattr(fd, key, value, sizeof(value))
			       : lgetxattr(proc, key, value, sizeof(value));
		if (vlen < 0)
			continue; /* removed meanwhile, or not readable by us */
		if (!*out && !(*out = txattrs_new()))
			return -ENOMEM;
		r = txattrs_add(out, key, value, (uint32_t)vlen);
		if (r < 0)
			return r;
	}
	return 0;
}

static void entry_from_stat(const struct stat *st, struct tree_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->mode = st->st_mode & (S_IFMT | 07777);
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->mtime = st->st_mtim.tv_sec < 0 ? 0
		   : (unsigned long long)st->st_mtim.tv_sec > UINT32_MAX ? UINT32_MAX
									 : (uint32_t)st->st_mtim.tv_sec;
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode))
		e->devno = tree_devno(major(st->st_rdev), minor(st->st_rdev));
}

static int pack_tree(struct pack *p, int dfd, int depth);

static int pack_file(struct pack *p, int fd, struct tree_entry *e)
{
	struct tnode *n;
	ssize_t got;
	int r;

	r = tree_add(p->t, p->path, e, 1, &n);
	if (r == 0)
		r = sqfs_out_file_begin(p->o, n);
	while (r == 0 && (got = read(fd, p->buf, 256 * 1024)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return berth_fail(-errno, "read '/%s'", p->path);
		r = sqfs_out_file_data(p->o, p->buf, (size_t)got);
	}
	if (r == 0)
		r = sqfs_out_file_end(p->o);
	return r;
}

/* One name in directory dfd; p->path is its relative path. */
static int pack_one(struct pack *p, int dfd, const char *name, int depth)
{
	_cleanup_close_ int fd = -1;
	struct tree_entry e;
	struct stat st, st2;
	const char *first;
	ssize_t tl;
	int r;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : berth_fail(-errno, "stat '/%s'", p->path);
	if (S_ISSOCK(st.st_mode))
		return 0;
	entry_from_stat(&st, &e);
	if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
		r = seen_inode(p, &st, &first);
		if (r < 0)
			return berth_fail(r, "pack '/%s'", p->path);
		if (first)
			return tree_link(p->t, p->path, first, 1);
	}
	if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
		/* O_NONBLOCK: if the name became a FIFO since fstatat, do not
		 * hang; the fstat below then refuses it. */
		fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
				       (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
		if (fd < 0)
			return berth_fail(-errno, "open '/%s'", p->path);
		if (fstat(fd, &st2) < 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino)
			return berth_failx(-EAGAIN, "'/%s' changed while packing", p->path);
	}
	r = read_xattrs(fd, dfd, name, &e.xattrs);
	if (r < 0) {
		free(e.xattrs);
		return berth_fail(r, "extended attributes of '/%s'", p->path);
	}
	if (S_ISREG(st.st_mode)) {
		e.size = (uint64_t)st.st_size;
		return pack_file(p, fd, &e);
	}
	if (S_ISLNK(st.st_mode)) {
		tl = readlinkat(dfd, name, p->target, sizeof(p->target) - 1);
		if (tl < 0) {
			free(e.xattrs);
			return berth_fail(-errno, "readlink '/%s'", p->path);
		}
		p->target[tl] = '\0';
		e.target = p->target;
	}
	r = tree_add(p->t, p->path, &e, 1, NULL);
	if (r == 0 && S_ISDIR(st.st_mode))
		r = pack_tree(p, fd, depth + 1);
	return r;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of directory dfd, in strcmp order (as squashfs lists them),
 * so data is fed in an order that depends on the names only. */
static int pack_tree(struct pack *p, int dfd, int depth)
{
	_cleanup_strv_ char **names = NULL;
	DIR *d;
	struct dirent *de;
	size_t saved = p->path_len;
	int fd2, r = 0;

	fd2 = dup(dfd);
	if (fd2 < 0 || !(d = fdopendir(fd2))) {
		if (fd2 >= 0)
			close(fd2);
		return berth_fail(-errno, "read directory '/%s'", p->path);
	}
	rewinddir(d);
	errno = 0;
	while ((de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (depth == 0 && streq(de->d_name, IMAGE_JSON_DIR))
			continue; /* berth's own, replaced below */
		if (strv_push(&names, de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
	}
	closedir(d);
	if (r < 0)
		return berth_fail(r, "read directory '/%s'", p->path);
	if (names)
		qsort(names, strv_length(names), sizeof(*names), cmp_names);
	for (size_t i = 0; r == 0 && names && names[i]; i++) {
		size_t len = strlen(names[i]);

		if (saved + 1 + len > TREE_PATH_MAX)
			return berth_failx(BERTH_EFORMAT, "path '/%s/%s' too long", p->path, names[i]);
		p->path_len = saved + (saved ? 1 : 0) + len;
		snprintf(p->path + saved, sizeof(p->path) - saved, "%s%s", saved ? "/" : "",
			 names[i]);
		r = pack_one(p, dfd, names[i], depth);
		p->path[saved] = '\0';
		p->path_len = saved;
	}
	return r;
}

static int pack_root(struct pack *p, int dirfd)
{
	struct tree_entry e;
	struct stat st;
	int r;

	if (fstat(dirfd, &st) < 0)
		return berth_fail(-errno, "pack: stat directory");
	if (!S_ISDIR(st.st_mode))
		return berth_failx(-ENOTDIR, "pack: not a directory");
	entry_from_stat(&st, &e);
	r = read_xattrs(dirfd, -1, NULL, &e.xattrs);
	if (r < 0) {
		free(e.xattrs);
		return berth_fail(r, "extended attributes of '/'");
	}
	r = tree_add(p->t, "", &e, 1, NULL);
	return r < 0 ? r : pack_tree(p, dirfd, 0);
}

int imgconv_pack_dir(int dirfd, const char *config_json, size_t len, const char *out_path,
		     const struct imgconv_convert_opts *opts)
{
	struct pack p = { 0 };
	_cleanup_free_ char *json = NULL;
	size_t json_len;
	uint32_t mtime;
	int r;

	r = imagejson_build(config_json, len, opts, &json, &json_len, &mtime);
	if (r < 0)
		return r;
	p.t = tree_new(mtime);
	p.buf = malloc(256 * 1024);
	if (!p.t || !p.buf) {
		r = berth_fail(-ENOMEM, "pack");
		goto out;
	}
	r = sqfs_out_open(out_path, opts, mtime, &p.o);
	if (r == 0)
		r = pack_root(&p, dirfd);
	if (r == 0)
		r = convert_install_image_json(p.t, p.o, json, json_len, mtime);
	if (r == 0)
		r = sqfs_out_finish(p.o, p.t);
	if (r == 0)
		r = sqfs_out_commit(p.o);
out:
	sqfs_out_free(p.o);
	tree_free(p.t);
	for (size_t i = 0; i < p.cap_links; i++)
		free(p.links[i].path);
	free(p.links);
	free(p.buf);
	return r;
}
