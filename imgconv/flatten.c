/* Layers recorded top-down, applied bottom-up.  See flatten.h. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/error.h"
#include "imgconv/flatten.h"

/* Names live in chunks freed all at once: ~90k members make ~90k small
 * strings that all live until the end. */
#define CHUNK_SIZE (256 * 1024)

struct chunk {
	struct chunk *next;
	size_t used, cap;
	char data[];
};

struct rec {
	struct tree_entry e; /* FLATTEN_ENTRY */
	const char *path, *target;
	uint32_t member;
	enum flatten_kind kind;
};

struct layer_recs {
	struct rec *v;
	size_t n, cap;
};

/* What the layers read so far (all above the one being read) put at one
 * path.  Layer numbers are idx + 1; 0 is "none".  Top-down, the first
 * layer to set a field is the highest one, so a field, once set, stays. */
struct mark {
	const char *path; /* NULL: free slot */
	uint32_t hash, len;
	uint32_t entry;    /* highest layer with a member (file, dir, link) here */
	bool nondir;       /* that layer's (last) member here is no directory */
	uint32_t whiteout; /* highest layer with DIR/.wh.NAME for this path */
	uint32_t opaque;   /* highest layer marking this directory opaque */
	uint32_t need;     /* layer whose hard link wants the file below it */
	uint32_t served;   /* layer whose file was fed for need */
};

struct flatten {
	size_t n_layers;
	struct layer_recs *layers;
	struct chunk *chunks;
	struct mark *marks;
	size_t n_marks, cap_marks; /* cap: a power of two */
};

struct flatten *flatten_new(size_t n_layers)
{
	struct flatten *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->n_layers = n_layers;
	f->layers = calloc(n_layers ? n_layers : 1, sizeof(*f->layers));
	f->cap_marks = 1024;
	f->marks = calloc(f->cap_marks, sizeof(*f->marks));
	if (!f->layers || !f->marks) {
		flatten_free(f, NULL);
		return NULL;
	}
	return f;
}

void flatten_free(struct flatten *f, struct tree *t)
{
	if (!f)
		return;
	for (size_t i = 0; f->layers && i < f->n_layers; i++) {
		struct layer_recs *l = &f->layers[i];

		for (size_t j = 0; j < l->n; j++) {
			free(l->v[j].e.xattrs);
			tree_node_put(t, l->v[j].e.node);
		}
		free(l->v);
	}
	while (f->chunks) {
		struct chunk *c = f->chunks;

		f->chunks = c->next;
		free(c);
	}
	free(f->layers);
	free(f->marks);
	free(f);
}

static const char *save(struct flatten *f, const char *s, size_t len)
{
	struct chunk *c = f->chunks;
	char *p;

	if (!c || c->cap - c->used < len + 1) {
		size_t cap = len + 1 > CHUNK_SIZE ? len + 1 : CHUNK_SIZE;

		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->used = 0;
		c->cap = cap;
		c->next = f->chunks;
		f->chunks = c;
	}
	p = c->data + c->used;
	memcpy(p, s, len);
	p[len] = '\0';
	c->used += len + 1;
	return p;
}

/* FNV-1a. */
static uint32_t hash_of(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

static struct mark *slot(struct mark *v, size_t cap, const char *path, size_t len, uint32_t h)
{
	for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
		struct mark *m = &v[i];

		if (!m->path || (m->hash == h && m->len == len && !memcmp(m->path, path, len)))
			return m;
	}
}

/* The first len bytes of path; NULL when nothing is marked there. */
static struct mark *mark_find(struct flatten *f, const char *path, size_t len)
{
	struct mark *m = slot(f->marks, f->cap_marks, path, len, hash_of(path, len));

	return m->path ? m : NULL;
}

static int grow(struct flatten *f)
{
	size_t cap = f->cap_marks * 2;
	struct mark *v = calloc(cap, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < f->cap_marks; i++)
		if (f->marks[i].path)
			*slot(v, cap, f->marks[i].path, f->marks[i].len, f->marks[i].hash) =
				f->marks[i];
	free(f->marks);
	f->marks = v;
	f->cap_marks = cap;
	return 0;
}

/* The mark of path (a string that lives as long as f), made if needed. */
static struct mark *mark_get(struct flatten *f, const char *path)
{
	size_t len = strlen(path);
	uint32_t h = hash_of(path, len);
	struct mark *m;

	if (f->n_marks + 1 > f->cap_marks / 2 && grow(f) < 0)
		return NULL;
	m = slot(f->marks, f->cap_marks, path, len, h);
	if (!m->path) {
		*m = (struct mark){ .path = path, .hash = h, .len = (uint32_t)len };
		f->n_marks++;
	}
	return m;
}

bool flatten_want(struct flatten *f, size_t idx, const char *path)
{
	uint32_t layer = (uint32_t)idx + 1;
	size_t len = strlen(path), k = 0;
	struct mark *m = mark_find(f, path, len);

	/* An upper layer linked to this path before having a file there: it
	 * gets the highest file below it, hidden or not. */
	if (m && m->need > layer && (!m->served || m->served == layer)) {
		m->served = layer;
		return true;
	}
	for (;;) {
		/* k: length of an ancestor ("" is the root). */
		struct mark *a = mark_find(f, path, k);
		const char *slash;

		if (a && (a->whiteout > layer || a->opaque > layer ||
			  (a->entry > layer && a->nondir)))
			return false;
		slash = k < len ? strchr(path + k + (k ? 1 : 0), '/') : NULL;
		if (!slash)
			break;
		k = (size_t)(slash - path);
	}
	return !(m && (m->whiteout > layer || m->entry > layer));
}

static void mark_entry(struct mark *m, uint32_t layer, bool nondir)
{
	if (m->entry && m->entry != layer)
		return; /* an upper layer decided this path */
	m->entry = layer;
	m->nondir = nondir;
}

static int mark(struct flatten *f, struct rec *r, uint32_t layer)
{
	struct mark *m = mark_get(f, r->path), *tm;

	if (!m)
		return -ENOMEM;
	switch (r->kind) {
	case FLATTEN_ENTRY:
		mark_entry(m, layer, !S_ISDIR(r->e.mode));
		break;
	case FLATTEN_LINK:
		mark_entry(m, layer, true);
		tm = mark_get(f, r->target);
		if (!tm)
			return -ENOMEM;
		/* Not yet in this layer: the link takes a lower layer's file. */
		if (tm->entry != layer) {
			tm->need = layer;
			tm->served = 0;
		}
		break;
	case FLATTEN_WHITEOUT:
		if (!m->whiteout)
			m->whiteout = layer;
		break;
	case FLATTEN_OPAQUE:
		if (!m->opaque)
			m->opaque = layer;
		break;
	}
	return 0;
}

int flatten_add(struct flatten *f, size_t idx, uint32_t member, enum flatten_kind kind,
		const char *path, const char *target, struct tree_entry *e)
{
	struct layer_recs *l = &f->layers[idx];
	struct rec *r;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct rec *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			goto nomem;
		l->v = v;
		l->cap = cap;
	}
	r = &l->v[l->n];
	*r = (struct rec){ .member = member, .kind = kind };
	if (!(r->path = save(f, path, strlen(path))))
		goto nomem;
	if (target && !(r->target = save(f, target, strlen(target))))
		goto nomem;
	if (kind == FLATTEN_ENTRY) {
		r->e = *e;
		e->xattrs = NULL;
		e->node = NULL;
		if (e->target && !(r->e.target = save(f, e->target, strlen(e->target)))) {
			r->e.target = NULL;
			l->n++; /* freed with the others */
			return berth_fail(-ENOMEM, "image tree");
		}
	}
	l->n++;
	/* Marks speak to the layers below: the bottom layer needs none. */
	if (idx == 0)
		return 0;
	return mark(f, r, (uint32_t)idx + 1) < 0 ? berth_fail(-ENOMEM, "image tree") : 0;

nomem:
	if (e) {
		free(e->xattrs);
		e->xattrs = NULL;
		tree_node_put(NULL, e->node);
		e->node = NULL;
	}
	return berth_fail(-ENOMEM, "image tree");
}

static int apply_rec(struct tree *t, struct rec *r, uint32_t stamp)
{
	char buf[TREE_PATH_MAX + 1];
	char *name;

	int ret;

	switch (r->kind) {
	case FLATTEN_ENTRY:
		ret = tree_add(t, r->path, &r->e, stamp, NULL);
		r->e.xattrs = NULL; /* the tree's now, even on failure */
		return ret;
	case FLATTEN_LINK:
		return tree_link(t, r->path, r->target, stamp);
	case FLATTEN_OPAQUE:
		return tree_opaque(t, r->path, stamp);
	case FLATTEN_WHITEOUT:
		snprintf(buf, sizeof(buf), "%s", r->path);
		name = strrchr(buf, '/');
		if (!name)
			return tree_whiteout(t, "", buf, stamp);
		*name++ = '\0';
		return tree_whiteout(t, buf, name, stamp);
	}
	return 0;
}

/* The member's name as the layer had it, near enough for a message. */
static const char *member_name(const struct rec *r, char *buf, size_t size)
{
	const char *slash = strrchr(r->path, '/');

	if (r->kind == FLATTEN_WHITEOUT)
		snprintf(buf, size, "%.*s%s.wh.%s", slash ? (int)(slash - r->path) : 0, r->path,
			 slash ? "/" : "", slash ? slash + 1 : r->path);
	else if (r->kind == FLATTEN_OPAQUE)
		snprintf(buf, size, "%s%s.wh..wh..opq", r->path, *r->path ? "/" : "");
	else
		snprintf(buf, size, "%s", r->path);
	return tree_printable(buf, buf, size);
}

int flatten_apply(struct flatten *f, struct tree *t, const struct layer_set *set)
{
	char pbuf[TREE_PRINTABLE_MAX];

	/* Reading is over: the marks go before the tree grows. */
	free(f->marks);
	f->marks = NULL;
	f->n_marks = f->cap_marks = 0;

	for (size_t i = 0; i < f->n_layers; i++) {
		struct layer_recs *l = &f->layers[i];
		uint32_t stamp = (uint32_t)i + 1;

		for (size_t j = 0; j < l->n; j++) {
			int r = apply_rec(t, &l->v[j], stamp);

			if (r < 0)
				return berth_fail_context(r, LAYER_FMT ": member '%s'",
							  LAYER_ARGS(set, i),
							  member_name(&l->v[j], pbuf, sizeof(pbuf)));
		}
		tree_end_layer(t, stamp);
	}
	/* The tree holds what it kept; nlink must count its links only. */
	for (size_t i = 0; i < f->n_layers; i++)
		for (size_t j = 0; j < f->layers[i].n; j++)
			tree_node_put(t, TAKE_PTR(f->layers[i].v[j].e.node));
	return 0;
}
