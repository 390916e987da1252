/* imgconv_convert(): layers -> one squashfs file.
 *
 * Each layer is read once, the top layer first (layer_read, flatten.h):
 * the data of every file no upper layer hides goes to the squashfs writer
 * as it is met, and every member is recorded.  The records then build the
 * tree bottom-up, in layer order as the OCI spec applies them.  Files the
 * tree holds whose data was not fed during the read (rare: see flatten.h)
 * are fed by reading their layer again, in (layer, member) order.  Data is
 * fed in an order that depends on the layers only, so the output does not
 * depend on timing.  Memory holds metadata only, never file content. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "imgconv/convert.h"
#include "imgconv/flatten.h"
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

/* The surviving files whose data was not fed during the read, layer by
 * layer.  Empty files need no reading; a layer with none is not read. */
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
		log_debug("layer %zu of %zu: reading again for %zu files' data", layer + 1,
			  set->count, end - i);
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
	struct flatten *f = flatten_new(set->count);
	struct tree *t = tree_new(mtime);
	uint64_t t0 = now_ns();
	int r = 0;

	if (!t || !f)
		r = berth_fail(-ENOMEM, "image tree");
	if (r == 0)
		r = sqfs_out_open(out_path, opts, mtime, &o);
	for (size_t i = set->count; r == 0 && i-- > 0;) {
		uint64_t t1 = now_ns();

		r = layer_read(set, i, f, o);
		if (r == 0)
			log_debug("layer %zu of %zu read in %.1f s", i + 1, set->count,
				  (double)(now_ns() - t1) / 1e9);
	}
	if (r == 0)
		r = flatten_apply(f, t, set);
	if (r == 0)
		log_debug("layers read and flattened in %.1f s", (double)(now_ns() - t0) / 1e9);
	if (r == 0)
		r = convert_install_image_json(t, o, json, json_len, mtime);
	if (r == 0)
		r = feed_lower(set, t, o);
	if (r == 0)
		r = sqfs_out_finish(o, t);
	if (r == 0)
		r = sqfs_out_commit(o);
	/* The records' nodes go to the tree's grave, the writer goes next
	 * (its threads may still touch nodes), the tree last. */
	flatten_free(f, t);
	sqfs_out_free(TAKE_PTR(o));
	tree_free(t);
	if (r == 0)
		log_debug("'%s' written in %.1f s", out_path, (double)(now_ns() - t0) / 1e9);
	return r;
}

int convert_layers(const struct layer_set *set, const char *config_json, size_t config_len,
		   const char *out_path, const struct imgconv_convert_opts *opts)
{
	_cleanup_free_ char *json = NULL;
	size_t json_len;
	uint32_t mtime;
	unsigned level;
	int id, r;

	if (!out_path || (set->count && !set->layers))
		return berth_failx(-EINVAL, "convert: no output or no layers given");
	if (set->count >= UINT32_MAX - 1)
		return berth_failx(BERTH_EFORMAT, "convert: too many layers");
	/* Everything that can be refused cheaply, before any work. */
	r = sqfs_out_check_opts(opts, &id, &level);
	for (size_t i = 0; r == 0 && i < set->count; i++)
		r = layer_check_media_type(set, i);
	if (r == 0)
		r = imagejson_build(config_json, config_len, opts, &json, &json_len, &mtime);
	if (r < 0)
		return r;
	return convert(set, json, json_len, mtime, out_path, opts);
}

int imgconv_convert(const struct imgconv_layer *layers, size_t n_layers,
		    const char *config_json, size_t config_len, const char *out_path,
		    const struct imgconv_convert_opts *opts)
{
	struct layer_set set = { .layers = layers, .count = n_layers };

	return convert_layers(&set, config_json, config_len, out_path, opts);
}
