/* The in-memory image tree: dentries, nodes, whiteouts.  See tree.h. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/error.h"
#include "imgconv/tree.h"

/* Symlinks followed while resolving one parent path, as the kernel's
 * MAXSYMLINKS. */
#define TREE_MAX_HOPS 40
/* Directory nesting.  One member's path cannot nest deeper than about 2048,
 * but members placed through symlinks could stack without limit, and the
 * walks over the tree recurse. */
#define TREE_MAX_DEPTH 2048

static struct tnode *node_new(uint32_t mode, uint32_t mtime)
{
	struct tnode *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->mode = mode;
	n->mtime = mtime;
	return n;
}

static void node_unref(struct tree *t, struct tnode *n);

static void dent_free(struct tree *t, struct tdent *d)
{
	node_unref(t, d->node);
	free(d);
}

static void node_destroy(struct tree *t, struct tnode *n)
{
	switch (n->mode & S_IFMT) {
	case S_IFDIR:
		for (uint32_t i = 0; i < n->u.dir.n; i++)
			dent_free(t, n->u.dir.ents[i]);
		free(n->u.dir.ents);
		break;
	case S_IFLNK:
		free(n->u.target);
		break;
	case S_IFREG:
		/* The block processor may still write into u.file.sq. */
		if (n->u.file.fed && t) {
			free(n->xattrs);
			n->xattrs = NULL;
			n->u.file.next_dead = t->grave;
			t->grave = n;
			return;
		}
		free(n->u.file.sq);
		break;
	}
	free(n->xattrs);
	free(n);
}

static void node_unref(struct tree *t, struct tnode *n)
{
	if (--n->nlink == 0)
		node_destroy(t, n);
}

struct tree *tree_new(uint32_t default_mtime)
{
	struct tree *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->default_mtime = default_mtime;
	t->root = node_new(S_IFDIR | 0755, default_mtime);
	if (!t->root) {
		free(t);
		return NULL;
	}
	t->root->nlink = 1;
	return t;
}

void tree_free(struct tree *t)
{
	if (!t)
		return;
	node_unref(NULL, t->root);
	while (t->grave) {
		struct tnode *n = t->grave;

		t->grave = n->u.file.next_dead;
		free(n->u.file.sq);
		free(n);
	}
	free(t);
}

const char *tree_printable(const char *s, char *buf, size_t size)
{
	size_t i = 0;

	for (; s && s[i] && i + 1 < size; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	buf[i] = '\0';
	return buf;
}

/* The next component of a path at *p (slashes skipped): false at the end. */
static bool next_component(const char **p, const char **start, size_t *len)
{
	while (**p == '/')
		(*p)++;
	if (!**p)
		return false;
	*start = *p;
	while (**p && **p != '/')
		(*p)++;
	*len = (size_t)(*p - *start);
	return true;
}

int tree_canon_path(char *path)
{
	char *out = path;
	const char *p = path, *start;
	size_t len;

	if (*p == '/')
		return berth_failx(BERTH_EFORMAT, "absolute path");
	while (next_component(&p, &start, &len)) {
		if (len == 1 && start[0] == '.')
			continue;
		if (len == 2 && start[0] == '.' && start[1] == '.')
			return berth_failx(BERTH_EFORMAT, "'..' in path");
		if (len > TREE_NAME_MAX)
			return berth_failx(BERTH_EFORMAT, "name longer than %d bytes", TREE_NAME_MAX);
		if (out != path)
			*out++ = '/';
		memmove(out, start, len);
		out += len;
	}
	*out = '\0';
	if (out - path > TREE_PATH_MAX)
		return berth_failx(BERTH_EFORMAT, "path longer than %d bytes", TREE_PATH_MAX);
	return 0;
}

/* Binary search; returns the index of name, or -(insertion point) - 1. */
static long dir_find(const struct tnode *dir, const char *name, size_t len)
{
	long lo = 0, hi = (long)dir->u.dir.n - 1;

	while (lo <= hi) {
		long mid = lo + (hi - lo) / 2;
		const struct tdent *d = dir->u.dir.ents[mid];
		size_t m = d->len < len ? d->len : len;
		int c = memcmp(d->name, name, m);

		if (c == 0)
			c = d->len < len ? -1 : d->len > len;
		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -lo - 1;
}

static unsigned dir_depth(const struct tnode *dir)
{
	unsigned depth = 0;

	for (; dir && depth <= TREE_MAX_DEPTH; dir = dir->u.dir.parent)
		depth++;
	return depth;
}

static int dir_insert(struct tnode *dir, long pos, const char *name, size_t len,
		      struct tnode *child, uint32_t stamp)
{
	struct tdent *d;

	if (S_ISDIR(child->mode) && dir_depth(dir) >= TREE_MAX_DEPTH)
		return berth_failx(BERTH_EFORMAT, "directories nested deeper than %d",
				   TREE_MAX_DEPTH);

	if (dir->u.dir.n == UINT32_MAX)
		return berth_failx(BERTH_EFORMAT, "too many entries in one directory");
	if (dir->u.dir.n == dir->u.dir.cap) {
		uint32_t cap = dir->u.dir.cap ? dir->u.dir.cap * 2 : 4;
		struct tdent **e = realloc(dir->u.dir.ents, (size_t)cap * sizeof(*e));

		if (!e)
			return berth_fail(-ENOMEM, "image tree");
		dir->u.dir.ents = e;
		dir->u.dir.cap = cap;
	}
	d = malloc(sizeof(*d) + len + 1);
	if (!d)
		return berth_fail(-ENOMEM, "image tree");
	d->node = child;
	d->stamp = stamp;
	d->len = (uint16_t)len;
	memcpy(d->name, name, len);
	d->name[len] = '\0';
	memmove(dir->u.dir.ents + pos + 1, dir->u.dir.ents + pos,
		(dir->u.dir.n - (size_t)pos) * sizeof(d));
	dir->u.dir.ents[pos] = d;
	dir->u.dir.n++;
	child->nlink++;
	if (S_ISDIR(child->mode))
		child->u.dir.parent = dir;
	return 0;
}

static void dir_remove_at(struct tree *t, struct tnode *dir, long pos)
{
	struct tdent *d = dir->u.dir.ents[pos];

	memmove(dir->u.dir.ents + pos, dir->u.dir.ents + pos + 1,
		(dir->u.dir.n - (size_t)pos - 1) * sizeof(d));
	dir->u.dir.n--;
	dent_free(t, d);
}

static int resolve_dir(struct tree *t, struct tnode *start, const char *path, size_t plen,
		       bool create, uint32_t stamp, int *hops, struct tnode **out);

/* Where a symlink found in `dir` leads, resolved inside the tree: an
 * absolute target starts at the image root and ".." stops at it, as
 * openat2(RESOLVE_IN_ROOT) does. */
static int follow_link(struct tree *t, struct tnode *dir, const char *target, int *hops,
		       struct tnode **out)
{
	char pbuf[TREE_PRINTABLE_MAX];
	const char *p = target, *start;
	size_t len;

	if (++*hops > TREE_MAX_HOPS)
		return berth_failx(BERTH_EFORMAT, "too many levels of symbolic links");
	if (*p == '/')
		dir = t->root;
	while (next_component(&p, &start, &len)) {
		struct tnode *next;
		long i;
		int r;

		if (len == 1 && start[0] == '.')
			continue;
		if (len == 2 && start[0] == '.' && start[1] == '.') {
			if (dir->u.dir.parent)
				dir = dir->u.dir.parent;
			continue;
		}
		i = dir_find(dir, start, len);
		if (i < 0)
			return berth_failx(BERTH_EFORMAT, "symlink target '%s' does not exist",
					   tree_printable(target, pbuf, sizeof(pbuf)));
		next = dir->u.dir.ents[i]->node;
		if (S_ISLNK(next->mode)) {
			r = follow_link(t, dir, next->u.target, hops, &next);
			if (r < 0)
				return r;
		} else if (!S_ISDIR(next->mode)) {
			return berth_failx(BERTH_EFORMAT, "symlink target '%s' is not a directory",
					   tree_printable(target, pbuf, sizeof(pbuf)));
		}
		dir = next;
	}
	*out = dir;
	return 0;
}

/* Walk `path` (plen bytes, canonical) from start to a directory.  With
 * create, missing directories are made and the ones walked through are
 * stamped as present in this layer. */
static int resolve_dir(struct tree *t, struct tnode *start, const char *path, size_t plen,
		       bool create, uint32_t stamp, int *hops, struct tnode **out)
{
	struct tnode *dir = start;
	size_t off = 0;

	while (off < plen) {
		const char *name = path + off;
		const char *slash = memchr(name, '/', plen - off);
		size_t len = slash ? (size_t)(slash - name) : plen - off;
		long i = dir_find(dir, name, len);
		struct tnode *next;
		int r;

		off += len + (slash ? 1 : 0);
		if (i < 0) {
			if (!create)
				return -ENOENT;
			next = node_new(S_IFDIR | 0755, t->default_mtime);
			if (!next)
				return berth_fail(-ENOMEM, "image tree");
			r = dir_insert(dir, -i - 1, name, len, next, stamp);
			if (r < 0) {
				free(next);
				return r;
			}
			dir = next;
			continue;
		}
		next = dir->u.dir.ents[i]->node;
		if (S_ISLNK(next->mode)) {
			r = follow_link(t, dir, next->u.target, hops, &next);
			if (r < 0)
				return r;
		} else if (!S_ISDIR(next->mode)) {
			char pbuf[TREE_PRINTABLE_MAX];

			pbuf[0] = '\0';
			if ((size_t)(name - path) + len < sizeof(pbuf))
				snprintf(pbuf, (size_t)(name - path) + len + 1, "%s", path);
			return berth_failx(BERTH_EFORMAT, "'%s' is not a directory",
					   tree_printable(pbuf, pbuf, sizeof(pbuf)));
		} else if (create && dir->u.dir.ents[i]->stamp < stamp) {
			dir->u.dir.ents[i]->stamp = stamp;
		}
		dir = next;
	}
	*out = dir;
	return 0;
}

/* Split a canonical path into its parent's length and its last name. */
static const char *split_last(const char *path, size_t *parent_len)
{
	const char *slash = strrchr(path, '/');

	*parent_len = slash ? (size_t)(slash - path) : 0;
	return slash ? slash + 1 : path;
}

static int parent_of(struct tree *t, const char *path, bool create, uint32_t stamp,
		     struct tnode **dir, const char **name)
{
	size_t plen;
	int hops = 0;

	*name = split_last(path, &plen);
	return resolve_dir(t, t->root, path, plen, create, stamp, &hops, dir);
}

static int merge_xattrs(struct txattrs **into, const struct txattrs *from)
{
	const char *key;
	const void *value;
	uint32_t size, pos = 0;
	int r;

	while (txattrs_next(from, &pos, &key, &value, &size)) {
		r = txattrs_add(into, key, value, size);
		if (r < 0)
			return r;
	}
	return 0;
}

static void set_attrs(struct tnode *n, const struct tree_entry *e)
{
	n->mode = e->mode;
	n->uid = e->uid;
	n->gid = e->gid;
	n->mtime = e->mtime;
}

static struct tnode *node_from_entry(struct tree_entry *e)
{
	struct tnode *n = node_new(e->mode, e->mtime);

	if (!n)
		return NULL;
	set_attrs(n, e);
	switch (e->mode & S_IFMT) {
	case S_IFREG:
		n->u.file.size = e->size;
		n->u.file.layer = e->layer;
		n->u.file.member = e->member;
		break;
	case S_IFLNK:
		n->u.target = strdup(e->target ? e->target : "");
		if (!n->u.target) {
			free(n);
			return NULL;
		}
		break;
	case S_IFBLK:
	case S_IFCHR:
		n->u.devno = e->devno;
		break;
	}
	n->xattrs = e->xattrs;
	e->xattrs = NULL;
	return n;
}

struct tnode *tree_node_new(struct tree_entry *e)
{
	struct tnode *n = node_from_entry(e);

	if (!n) {
		free(e->xattrs);
		e->xattrs = NULL;
		return NULL;
	}
	n->nlink = 1;
	return n;
}

void tree_node_put(struct tree *t, struct tnode *n)
{
	if (n)
		node_unref(t, n);
}

int tree_add(struct tree *t, const char *path, struct tree_entry *e, uint32_t stamp,
	     struct tnode **out)
{
	struct tnode *dir, *n;
	const char *name;
	long i;
	int r;

	if (!*path) { /* the root itself: only its attributes can change */
		if (!S_ISDIR(e->mode)) {
			free(e->xattrs);
			return berth_failx(BERTH_EFORMAT, "the root is not a directory");
		}
		n = t->root;
		goto merge_dir;
	}
	r = parent_of(t, path, true, stamp, &dir, &name);
	if (r < 0) {
		free(e->xattrs);
		return r;
	}
	i = dir_find(dir, name, strlen(name));
	if (i >= 0) {
		struct tdent *d = dir->u.dir.ents[i];

		if (S_ISDIR(d->node->mode) && S_ISDIR(e->mode)) {
			/* As Docker and containerd extract: the directory stays,
			 * its attributes are set again. */
			n = d->node;
			if (d->stamp < stamp)
				d->stamp = stamp;
			goto merge_dir;
		}
		dir_remove_at(t, dir, i);
		i = dir_find(dir, name, strlen(name));
	}
	n = e->node ? e->node : node_from_entry(e);
	if (!n) {
		free(e->xattrs);
		return berth_fail(-ENOMEM, "image tree");
	}
	r = dir_insert(dir, -i - 1, name, strlen(name), n, stamp);
	if (r < 0) {
		if (!e->node)
			node_destroy(NULL, n);
		return r;
	}
	if (out)
		*out = n;
	return 0;

merge_dir:
	set_attrs(n, e);
	if (e->xattrs && !n->xattrs) {
		n->xattrs = TAKE_PTR(e->xattrs);
	} else if (e->xattrs) {
		r = merge_xattrs(&n->xattrs, e->xattrs);
		free(e->xattrs);
		e->xattrs = NULL;
		if (r < 0)
			return r;
	}
	if (out)
		*out = n;
	return 0;
}

int tree_link(struct tree *t, const char *path, const char *target, uint32_t stamp)
{
	char pbuf[TREE_PRINTABLE_MAX];
	struct tnode *tdir, *dir, *n;
	const char *tname, *name;
	long i;
	int r;

	if (!*path || !*target)
		return berth_failx(BERTH_EFORMAT, "hard link to or from the root");
	r = parent_of(t, target, false, stamp, &tdir, &tname);
	if (r == -ENOENT)
		return berth_failx(BERTH_EFORMAT, "hard link target '%s' does not exist",
				   tree_printable(target, pbuf, sizeof(pbuf)));
	if (r < 0)
		return r;
	i = dir_find(tdir, tname, strlen(tname));
	if (i < 0)
		return berth_failx(BERTH_EFORMAT, "hard link target '%s' does not exist",
				   tree_printable(target, pbuf, sizeof(pbuf)));
	n = tdir->u.dir.ents[i]->node;
	if (S_ISDIR(n->mode))
		return berth_failx(BERTH_EFORMAT, "hard link target '%s' is a directory",
				   tree_printable(target, pbuf, sizeof(pbuf)));

	/* Hold the node while the link's own path is cleared: linking a name
	 * to itself must not free it. */
	n->nlink++;
	r = parent_of(t, path, true, stamp, &dir, &name);
	if (r < 0)
		goto out;
	i = dir_find(dir, name, strlen(name));
	if (i >= 0 && dir->u.dir.ents[i]->node == n) {
		dir->u.dir.ents[i]->stamp = stamp;
		goto out;
	}
	if (i >= 0) {
		dir_remove_at(t, dir, i);
		i = dir_find(dir, name, strlen(name));
	}
	r = dir_insert(dir, -i - 1, name, strlen(name), n, stamp);
out:
	node_unref(t, n);
	return r;
}

int tree_whiteout(struct tree *t, const char *dirpath, const char *name, uint32_t stamp)
{
	struct tnode *dir;
	int hops = 0;
	long i;
	int r;

	r = resolve_dir(t, t->root, dirpath, strlen(dirpath), true, stamp, &hops, &dir);
	if (r < 0)
		return r;
	i = dir_find(dir, name, strlen(name));
	if (i < 0)
		return 0;
	if (dir->u.dir.ents[i]->stamp < stamp) {
		dir_remove_at(t, dir, i);
	} else if (S_ISDIR(dir->u.dir.ents[i]->node->mode)) {
		/* This layer has the name too: keep its entries, drop the rest. */
		dir->u.dir.ents[i]->node->u.dir.purge = true;
		t->purges++;
	}
	return 0;
}

int tree_opaque(struct tree *t, const char *dirpath, uint32_t stamp)
{
	struct tnode *dir;
	int hops = 0;
	int r;

	r = resolve_dir(t, t->root, dirpath, strlen(dirpath), true, stamp, &hops, &dir);
	if (r < 0)
		return r;
	dir->u.dir.purge = true;
	t->purges++;
	return 0;
}

/* Remove what lower layers left below dir; recurse into what this layer
 * kept. */
static void purge_lower(struct tree *t, struct tnode *dir, uint32_t stamp)
{
	for (uint32_t i = dir->u.dir.n; i-- > 0;) {
		struct tdent *d = dir->u.dir.ents[i];

		if (d->stamp < stamp)
			dir_remove_at(t, dir, i);
		else if (S_ISDIR(d->node->mode))
			purge_lower(t, d->node, stamp);
	}
}

/* Find the purge marks (anywhere: marked directories may have been moved
 * or replaced since) and apply them. */
static void apply_purges(struct tree *t, struct tnode *dir, uint32_t stamp)
{
	if (dir->u.dir.purge) {
		dir->u.dir.purge = false;
		purge_lower(t, dir, stamp);
	}
	for (uint32_t i = 0; i < dir->u.dir.n; i++) {
		struct tnode *n = dir->u.dir.ents[i]->node;

		if (S_ISDIR(n->mode))
			apply_purges(t, n, stamp);
	}
}

void tree_end_layer(struct tree *t, uint32_t stamp)
{
	if (t->purges == 0)
		return;
	apply_purges(t, t->root, stamp);
	t->purges = 0;
}

void tree_remove_top(struct tree *t, const char *name)
{
	long i = dir_find(t->root, name, strlen(name));

	if (i >= 0)
		dir_remove_at(t, t->root, i);
}

struct tnode *tree_lookup(struct tree *t, const char *path)
{
	struct tnode *dir = t->root;
	const char *p = path;

	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		long i;

		if (!S_ISDIR(dir->mode))
			return NULL;
		i = dir_find(dir, p, len);
		if (i < 0)
			return NULL;
		dir = dir->u.dir.ents[i]->node;
		p += len + (slash ? 1 : 0);
	}
	return dir;
}

struct numbering {
	struct tnode **nodes;
	size_t n, cap;
};

static int number_node(struct numbering *nb, struct tnode *n)
{
	if (n->ino)
		return 0; /* a hard link seen before */
	if (S_ISDIR(n->mode)) {
		for (uint32_t i = 0; i < n->u.dir.n; i++) {
			int r = number_node(nb, n->u.dir.ents[i]->node);

			if (r < 0)
				return r;
		}
	}
	if (nb->n == nb->cap) {
		size_t cap = nb->cap ? nb->cap * 2 : 1024;
		struct tnode **v = realloc(nb->nodes, cap * sizeof(*v));

		if (!v)
			return berth_fail(-ENOMEM, "image tree");
		nb->nodes = v;
		nb->cap = cap;
	}
	if (nb->n >= UINT32_MAX - 2)
		return berth_failx(BERTH_EFORMAT, "too many files for squashfs");
	nb->nodes[nb->n++] = n;
	n->ino = (uint32_t)nb->n;
	return 0;
}

int tree_number(struct tree *t, struct tnode ***nodes, size_t *count)
{
	struct numbering nb = { 0 };
	int r = number_node(&nb, t->root);

	if (r < 0) {
		free(nb.nodes);
		return r;
	}
	*nodes = nb.nodes;
	*count = nb.n;
	return 0;
}

struct txattrs *txattrs_new(void)
{
	return calloc(1, sizeof(struct txattrs));
}

bool txattrs_next(const struct txattrs *x, uint32_t *pos, const char **key,
		  const void **value, uint32_t *size)
{
	uint32_t len;

	if (!x || *pos >= x->size)
		return false;
	*key = x->data + *pos;
	*pos += (uint32_t)strlen(*key) + 1;
	memcpy(&len, x->data + *pos, sizeof(len));
	*pos += sizeof(len);
	*value = x->data + *pos;
	*size = len;
	*pos += len;
	return true;
}

/* Insert keeping keys sorted; an existing key gets the new value. */
int txattrs_add(struct txattrs **xp, const char *key, const void *value, uint32_t size)
{
	struct txattrs *x = *xp, *nx;
	size_t klen = strlen(key) + 1, rec = klen + sizeof(uint32_t) + size;
	uint32_t pos = 0, at, end;
	const char *k;
	const void *v;
	uint32_t vs;

	for (;;) {
		at = pos;
		if (!txattrs_next(x, &pos, &k, &v, &vs))
			break;
		if (strcmp(k, key) == 0) {
			end = pos;
			memmove(x->data + at, x->data + end, x->size - end);
			x->size -= end - at;
			x->count--;
			pos = at;
			continue;
		}
		if (strcmp(k, key) > 0)
			break;
	}
	if ((size_t)x->size + rec > UINT32_MAX / 2)
		return berth_failx(BERTH_EFORMAT, "extended attributes too large");
	nx = realloc(x, sizeof(*x) + x->size + rec);
	if (!nx)
		return berth_fail(-ENOMEM, "extended attributes");
	x = nx;
	*xp = x;
	memmove(x->data + at + rec, x->data + at, x->size - at);
	memcpy(x->data + at, key, klen);
	memcpy(x->data + at + klen, &size, sizeof(size));
	memcpy(x->data + at + klen + sizeof(size), value, size);
	x->size += (uint32_t)rec;
	x->count++;
	return 0;
}
