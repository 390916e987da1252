/* oci-dir://DIR[:TAG]: an OCI image layout (image-spec image-layout.md):
 * oci-layout, index.json, blobs/sha256/<hex>.  The index entry is chosen
 * by its org.opencontainers.image.ref.name annotation (TAG) or, without a
 * tag, must be the only one; a nested index is resolved by platform.
 * Every blob is checked against its digest before it is used: a layout on
 * disk is input like any other. */
#include "config.h"
#include <errno.h>
#include <string.h>
#include <jansson.h>
#include "common/error.h"
#include "common/util.h"
#include "imgconv/fetch.h"

#define SMALL_MAX (4u << 20)

/* Choose the index.json entry for tag (NULL: the only one). */
static int pick_entry(const char *what, const char *index, size_t len, const char *tag,
		      char **digest)
{
	json_t *root = json_loadb(index, len, 0, NULL), *list, *e, *found = NULL;
	size_t i, n;
	int r = 0;

	list = json_object_get(root, "manifests");
	n = json_array_size(list);
	json_array_foreach(list, i, e) {
		json_t *ann = json_object_get(e, "annotations");
		const char *name = json_string_value(json_object_get(ann,
					"org.opencontainers.image.ref.name"));
		const char *cname = json_string_value(json_object_get(ann,
					"io.containerd.image.name"));

		if (!tag || (name && streq(name, tag)) ||
		    (cname && (str_endswith(cname, tag) && cname[strlen(cname) - strlen(tag) - 1] == ':'))) {
			found = e;
			break;
		}
	}
	if (!json_is_array(list))
		r = berth_failx(BERTH_EFORMAT, "%s: index.json has no manifests array", what);
	else if (!found)
		r = berth_failx(BERTH_ENOTFOUND, "%s: no image tagged '%s' in index.json", what, tag);
	else if (!tag && n != 1)
		r = berth_failx(BERTH_EINVAL_INPUT, "%s holds %zu images: name one as %s:TAG", what,
				n, what);
	else if (!digest_valid(json_string_value(json_object_get(found, "digest"))))
		r = berth_failx(BERTH_EUNSUPPORTED, "%s: index.json entry without a sha256 digest",
				what);
	else if (!(*digest = strdup(json_string_value(json_object_get(found, "digest")))))
		r = -ENOMEM;
	json_decref(root);
	return r;
}

int layout_resolve(struct import_ctx *ctx, const char *what, const char *index, size_t len,
		   const struct layout_ops *ops, char **digest, char **index_digest,
		   char **body, size_t *body_len)
{
	_cleanup_free_ char *d = NULL;
	char got[DIGEST_LEN + 1];
	int r = pick_entry(what, index, len, ctx->ref->tag, &d);

	*digest = *index_digest = *body = NULL;
	for (int depth = 0; r == 0; depth++) {
		r = ops->read_blob(ops->data, d, SMALL_MAX, body, body_len);
		if (r < 0)
			break;
		r = sha256_buf(*body, *body_len, got);
		if (r == 0 && !streq(got, d))
			r = berth_failx(BERTH_EDIGEST, "%s: manifest %s: digest mismatch: content "
					"has digest %s", what, d, got);
		if (r < 0 || !manifest_is_index(NULL, *body, *body_len))
			break;
		if (depth > 0) {
			r = berth_failx(BERTH_EUNSUPPORTED, "%s: nested image indexes", what);
			break;
		}
		*index_digest = TAKE_PTR(d);
		r = index_select(what, *body, *body_len, ctx->platform, &d);
		free(*body);
		*body = NULL;
	}
	if (r < 0) {
		free(*body), free(*index_digest);
		*body = *index_digest = NULL;
		return r;
	}
	*digest = TAKE_PTR(d);
	return 0;
}

static char *blob_file(const char *dir, const char *digest)
{
	return xasprintf("%s/blobs/sha256/%s", dir, digest_hex(digest));
}

static int dir_read_blob(void *data, const char *digest, size_t max, char **buf, size_t *len)
{
	_cleanup_free_ char *p = blob_file(data, digest);
	int r;

	if (!p)
		return -ENOMEM;
	r = read_file(p, max, buf, len);
	return r < 0 ? berth_fail(r, "read '%s'", p) : 0;
}

static int verify(const char *path, const struct descriptor *d, const char *what)
{
	char got[DIGEST_LEN + 1];
	uint64_t size;
	int r = sha256_file(path, got, &size);

	if (r < 0)
		return r;
	if (!streq(got, d->digest))
		return berth_failx(BERTH_EDIGEST, "%s %s: digest mismatch: '%s' has digest %s",
				   what, d->digest, path, got);
	if (size != d->size)
		return berth_failx(BERTH_EDIGEST, "%s %s: '%s' has %llu bytes, the manifest says "
				   "%llu", what, d->digest, path, (unsigned long long)size,
				   (unsigned long long)d->size);
	return 0;
}

static int convert_layout(struct import_ctx *ctx, const char *dir, const char *digest,
			  const char *index_digest, const struct manifest *m)
{
	_cleanup_free_ char *config = blob_file(dir, m->config.digest);
	char **layers = calloc(m->n_layers + 1, sizeof(char *));
	int r = config && layers ? 0 : -ENOMEM;

	if (r == 0)
		r = verify(config, &m->config, "config");
	for (size_t i = 0; r == 0 && i < m->n_layers; i++) {
		char what[64];

		snprintf(what, sizeof(what), "layer %zu/%zu", i + 1, m->n_layers);
		progress_step(ctx->progress, "checking %s", what);
		layers[i] = blob_file(dir, m->layers[i].digest);
		r = layers[i] ? verify(layers[i], &m->layers[i], what) : -ENOMEM;
	}
	if (r == 0)
		r = import_finish(ctx, digest, index_digest, m, config, layers, NULL, NULL);
	strv_free(layers);
	return r;
}

int import_oci_dir(struct import_ctx *ctx)
{
	const char *dir = ctx->ref->path;
	_cleanup_free_ char *layout = NULL, *index = NULL, *ip = NULL, *lp = NULL;
	_cleanup_free_ char *digest = NULL, *index_digest = NULL, *body = NULL;
	const struct layout_ops ops = {dir_read_blob, (void *)dir};
	struct manifest m;
	size_t len, blen;
	int r;

	ip = path_join(dir, "index.json");
	lp = path_join(dir, "oci-layout");
	if (!ip || !lp)
		return -ENOMEM;
	r = read_file(lp, SMALL_MAX, &layout, &len);
	if (r < 0)
		return berth_fail(r, "'%s' is no OCI image layout: read '%s'", dir, lp);
	r = read_file(ip, SMALL_MAX, &index, &len);
	if (r < 0)
		return berth_fail(r, "read '%s'", ip);
	r = layout_resolve(ctx, dir, index, len, &ops, &digest, &index_digest, &body, &blen);
	if (r < 0)
		return r;
	r = import_begin(ctx, digest, index_digest);
	if (r != 0)
		return r < 0 ? r : 0;
	r = manifest_parse(digest, NULL, body, blen, &m);
	if (r < 0)
		return r;
	r = convert_layout(ctx, dir, digest, index_digest, &m);
	manifest_clear(&m);
	return r;
}
