/* imgconv_convert(): layers -> one squashfs file.
 *
 * Pass 1 reads every layer's headers, in order, into the in-memory tree
 * (tree.c), so the final tree is known before any data is written; the top
 * layer's file data is streamed during pass 1 already, since nothing can
 * replace it afterwards.  Pass 2 reads the lower layers again and streams
 * only the data of files that survived into the squashfs writer, in (layer,
 * member) order, so the output does not depend on timing.  Memory holds
 * the tree's metadata only, never file content. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "imgconv/convert.h"
#include "imgconv/imagejson.h"
#include "imgconv/imgconv.h"
#include "imgconv/layer.h"
#include "imgconv/sqfs_out.h"
#include "imgconv/tree.h"

int convert_install_image_json(struct tree *t, struct sqfs_out *o, const char *json,
			       size_t len, uint32_t mtime)
{
	struct tree_entry dir = { .mode = S_IFDIR | 0755, .mtime = mtime };
	struct tree_entry file = { .mode = S_IFREG | 0644, .mtime = mtime, .size = len };
	struct tnode *n;
	int r;

	/* /.berth belongs to berth.  If a layer brought its own, the image's
	 * entry loses and all of it goes: the launcher and `berth inspect`
	 * trust /.berth/image.json to describe the image that was really
	 * converted, so an image must not be able to supply (or shadow part
	 * of) it, e.g. to smuggle in another Env or Entrypoint. */
	if (tree_lookup(t, IMAGE_JSON_DIR)) {
		log_warn("the image's own /%s is replaced by berth's", IMAGE_JSON_DIR);
		tree_remove_top(t, IMAGE_JSON_DIR);
	}
	r = tree_add(t, IMAGE_JSON_DIR, &dir, UINT32_MAX, NULL);
	if (r == 0)
		r = tree_add(t, IMAGE_JSON_PATH, &file, UINT32_MAX, &n);
	if (r == 0)
		r = sqfs_out_file_begin(o, n);
	if (r == 0)
		r = sqfs_out_file_data(o, json, len);
	if (r == 0)
		r = sqfs_out_file_end(o);
	return r;
}

struct files {
	struct tnode **v;
	size_t n, cap;
};

static int collect(struct files *f, struct tnode *dir)
{
	for (uint32_t i = 0; i < dir->u.dir.n; i++) {
		struct tnode *n = dir->u.dir.ents[i]->node;

		if (S_ISDIR(n->mode)) {
			int r = collect(f, n);

			if (r < 0)
				return r;
			continue;
		}
		if (!S_ISREG(n->mode) || n->u.file.fed)
			continue;
		if (f->n == f->cap) {
			size_t cap = f->cap ? f->cap * 2 : 1024;
			struct tnode **v = realloc(f->v, cap * sizeof(*v));

			if (!v)
				return berth_fail(-ENOMEM, "image tree");
			f->v = v;
			f->cap = cap;
		}
		f->v[f->n++] = n;
	}
	return 0;
}

static int by_location(const void *a, const void *b)
{
	const struct tnode *x = *(struct tnode *const *)a, *y = *(struct tnode *const *)b;

	if (x->u.file.layer != y->u.file.layer)
		return x->u.file.layer < y->u.file.layer ? -1 : 1;
	if (x->u.file.member != y->u.file.member)
		return x->u.file.member < y->u.file.member ? -1 : 1;
	return 0;
}

/* Pass 2: the surviving files of the lower layers, layer by layer.  Empty
 * files need no reading; a layer left with none to read is skipped. */
static int feed_lower(const struct layer_set *set, struct tree *t, struct sqfs_out *o)
{
	struct files f = { 0 };
	size_t i = 0, kept = 0;
	int r;

	r = collect(&f, t->root);
	if (r < 0)
		goto out;
	if (f.n)
		qsort(f.v, f.n, sizeof(*f.v), by_location);
	/* Hard links put one node in the list several times: keep one. */
	for (size_t j = 0; j < f.n; j++) {
		if (kept && f.v[kept - 1] == f.v[j])
			continue;
		if (f.v[j]->u.file.size == 0) {
			r = sqfs_out_file_begin(o, f.v[j]);
			if (r == 0)
				r = sqfs_out_file_end(o);
			if (r < 0)
				goto out;
			continue;
		}
		f.v[kept++] = f.v[j];
	}
	while (i < kept) {
		size_t layer = f.v[i]->u.file.layer, end = i;

		while (end < kept && f.v[end]->u.file.layer == layer)
			end++;
		log_debug("layer %zu of %zu: reading %zu files' data", layer + 1, set->count,
			  end - i);
		r = layer_feed(set, layer, f.v + i, end - i, o);
		if (r < 0)
			goto out;
		i = end;
	}
out:
	free(f.v);
	return r;
}

static int convert(const struct layer_set *set, const char *json, size_t json_len,
		   uint32_t mtime, const char *out_path, const struct imgconv_convert_opts *opts)
{
	_cleanup_(sqfs_out_freep) struct sqfs_out *o = NULL;
	struct tree *t;
	uint64_t t0 = now_ns();
	int r;

	t = tree_new(mtime);
	if (!t)
		return berth_fail(-ENOMEM, "image tree");
	r = sqfs_out_open(out_path, opts, mtime, &o);
	for (size_t i = 0; r == 0 && i < set->count; i++)
		r = layer_scan(set, i, t, i + 1 == set->count ? o : NULL);
	if (r == 0)
		log_debug("layers read in %.1f s", (double)(now_ns() - t0) / 1e9);
	if (r == 0)
		r = convert_install_image_json(t, o, json, json_len, mtime);
	if (r == 0)
		r = feed_lower(set, t, o);
	if (r == 0)
		r = sqfs_out_finish(o, t);
	if (r == 0)
		r = sqfs_out_commit(o);
	/* The writer goes first: its threads may still touch tree nodes. */
	sqfs_out_free(TAKE_PTR(o));
	tree_free(t);
	if (r == 0)
		log_debug("'%s' written in %.1f s", out_path, (double)(now_ns() - t0) / 1e9);
	return r;
}

int imgconv_convert(const struct imgconv_layer *layers, size_t n_layers,
		    const char *config_json, size_t config_len, const char *out_path,
		    const struct imgconv_convert_opts *opts)
{
	struct layer_set set = { .layers = layers, .count = n_layers };
	_cleanup_free_ char *json = NULL;
	size_t json_len;
	uint32_t mtime;
	unsigned level;
	int id, r;

	if (!out_path || (n_layers && !layers))
		return berth_failx(-EINVAL, "convert: no output or no layers given");
	if (n_layers >= UINT32_MAX - 1)
		return berth_failx(BERTH_EFORMAT, "convert: too many layers");
	/* Everything that can be refused cheaply, before any work. */
	r = sqfs_out_check_opts(opts, &id, &level);
	for (size_t i = 0; r == 0 && i < n_layers; i++)
		r = layer_check_media_type(&set, i);
	if (r == 0)
		r = imagejson_build(config_json, config_len, opts, &json, &json_len, &mtime);
	if (r < 0)
		return r;
	return convert(&set, json, json_len, mtime, out_path, opts);
}
