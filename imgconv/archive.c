/* docker-archive://FILE.tar: the output of `docker save` or `skopeo copy
 * ... docker-archive:`.  Two layouts exist inside such a tar:
 *   - Docker's: manifest.json = [{"Config": "...", "RepoTags": [...],
 *     "Layers": ["<id>/layer.tar", ...]}], layers uncompressed;
 *   - OCI (Docker >= 25 writes both): index.json + blobs/sha256/<hex>.
 * The tar is read as a stream with libarchive, never unpacked: members are
 * looked up by the names the manifest gives (never used as host paths), and
 * only the layers are copied, into CACHE/tmp and then the blob store, each
 * verified against its digest (OCI) or its diff_id (Docker). */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include "common/error.h"
#include "common/util.h"
#include "imgconv/fetch.h"

#define SMALL_MAX (4u << 20)
#define DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"

/* Member names as written by the tools: "x", "./x". */
static const char *member_name(struct archive_entry *e)
{
	const char *n = archive_entry_pathname(e);

	while (n && n[0] == '.' && n[1] == '/')
		n += 2;
	return n ? n : "";
}

/* Call fn for every regular member until it returns non-zero. */
typedef int (*member_fn)(struct archive *a, const char *name, int64_t size, void *data);

static int tar_scan(const char *path, member_fn fn, void *data)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	int r = 0, ar;

	if (!a)
		return -ENOMEM;
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	archive_read_support_filter_all(a);
	if (archive_read_open_filename(a, path, 1 << 20) != ARCHIVE_OK) {
		r = berth_failx(archive_errno(a) > 0 ? -archive_errno(a) : BERTH_EFORMAT,
				"read '%s': %s", path, archive_error_string(a));
		goto out;
	}
	while ((ar = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		if (archive_entry_filetype(e) != AE_IFREG)
			continue;
		r = fn(a, member_name(e), archive_entry_size(e), data);
		if (r != 0)
			break;
	}
	if (r == 0 && ar != ARCHIVE_EOF)
		r = berth_failx(BERTH_EFORMAT, "read '%s': %s", path, archive_error_string(a));
out:
	archive_read_free(a);
	return r < 0 ? r : 0;
}

static int read_member(struct archive *a, int64_t size, size_t max, char **buf, size_t *len)
{
	char *b;
	la_ssize_t n;

	if (size < 0 || (uint64_t)size > max)
		return berth_failx(BERTH_EFORMAT, "archive member of %lld bytes is too large",
				   (long long)size);
	b = malloc((size_t)size + 1);
	if (!b)
		return -ENOMEM;
	*len = 0;
	while ((n = archive_read_data(a, b + *len, (size_t)size - *len)) > 0)
		*len += (size_t)n;
	if (n < 0) {
		free(b);
		return berth_failx(BERTH_EFORMAT, "archive: %s", archive_error_string(a));
	}
	b[*len] = '\0';
	*buf = b;
	return 0;
}

struct small {
	const char *name;
	char *buf;
	size_t len;
};

static int want_small(struct archive *a, const char *name, int64_t size, void *data)
{
	struct small *s = data;

	for (; s->name; s++)
		if (!s->buf && streq(name, s->name)) {
			int r = read_member(a, size, SMALL_MAX, &s->buf, &s->len);

			return r;
		}
	return 0;
}

static int tar_read_blob(void *data, const char *digest, size_t max, char **buf, size_t *len)
{
	_cleanup_free_ char *name = xasprintf("blobs/sha256/%s", digest_hex(digest));
	struct small s[2] = {{name, NULL, 0}, {NULL, NULL, 0}};
	int r;

	(void)max;
	if (!name)
		return -ENOMEM;
	r = tar_scan(data, want_small, s);
	if (r == 0 && !s[0].buf)
		r = berth_failx(BERTH_EFORMAT, "'%s' has no member %s", (char *)data, name);
	if (r < 0) {
		free(s[0].buf);
		return r;
	}
	*buf = s[0].buf;
	*len = s[0].len;
	return 0;
}

/* Layer extraction: members by name -> verified blobs in the store. */
struct extract {
	const struct berth_config *cfg;
	char **names;          /* member names, in manifest order */
	char **expect;         /* digest each must have, or NULL (recorded) */
	char **digests;        /* out: sha256 of each */
	uint64_t *sizes;       /* out */
	char **paths;          /* out: blob store paths */
	size_t n, left;
	struct progress *progress;
};

static int copy_member(struct archive *a, const struct berth_config *cfg, char *digest,
		       uint64_t *size, char **tmp_out)
{
	_cleanup_free_ char *tmp = xasprintf("%s/tmp/layer-XXXXXX", cfg->cache_dir);
	struct sha256 *h = sha256_new();
	char *buf = malloc(1 << 20);
	int fd = -1, r = 0;
	la_ssize_t n;

	*size = 0;
	if (!tmp || !h || !buf) {
		r = -ENOMEM;
		goto out;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = berth_fail(-errno, "create '%s'", tmp);
		goto out;
	}
	while (r == 0 && (n = archive_read_data(a, buf, 1 << 20)) > 0) {
		if (write(fd, buf, (size_t)n) != n)
			r = berth_fail(-errno ? -errno : -EIO, "write '%s'", tmp);
		else
			r = sha256_update(h, buf, (size_t)n);
		*size += (uint64_t)n;
	}
	if (r == 0 && n < 0)
		r = berth_failx(BERTH_EFORMAT, "archive: %s", archive_error_string(a));
	if (r == 0 && fsync(fd) < 0)
		r = berth_fail(-errno, "fsync '%s'", tmp);
	if (r == 0)
		r = sha256_final(h, digest);
out:
	if (fd >= 0)
		close(fd);
	if (r < 0 && fd >= 0)
		unlink(tmp);
	if (r == 0)
		*tmp_out = TAKE_PTR(tmp);
	free(buf);
	sha256_free(h);
	return r;
}

static int want_layer(struct archive *a, const char *name, int64_t size, void *data)
{
	struct extract *x = data;
	_cleanup_free_ char *tmp = NULL;
	char digest[DIGEST_LEN + 1];
	size_t i;
	int r;

	(void)size;
	for (i = 0; i < x->n; i++)
		if (!x->paths[i] && streq(x->names[i], name))
			break;
	if (i == x->n)
		return 0;
	progress_step(x->progress, "reading layer %zu/%zu", i + 1, x->n);
	r = copy_member(a, x->cfg, digest, &x->sizes[i], &tmp);
	if (r < 0)
		return r;
	if (x->expect[i] && !streq(x->expect[i], digest)) {
		unlink(tmp);
		return berth_failx(BERTH_EDIGEST, "layer %zu/%zu ('%s'): digest mismatch: expected "
				   "%s, the archive has %s", i + 1, x->n, name, x->expect[i], digest);
	}
	r = blob_publish(x->cfg->cache_dir, tmp, digest, &x->paths[i]);
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	x->digests[i] = strdup(digest);
	/* The same member named twice: share the blob. */
	for (size_t j = i + 1; j < x->n; j++)
		if (streq(x->names[j], name) && !x->paths[j]) {
			x->paths[j] = strdup(x->paths[i]);
			x->digests[j] = strdup(digest);
			x->sizes[j] = x->sizes[i];
			x->left--;
		}
	return --x->left == 0 ? 1 : 0;
}

static int extract_layers(struct import_ctx *ctx, struct extract *x)
{
	int r;

	x->cfg = ctx->cfg;
	x->progress = ctx->progress;
	x->left = x->n;
	x->digests = calloc(x->n + 1, sizeof(char *));
	x->paths = calloc(x->n + 1, sizeof(char *));
	x->sizes = calloc(x->n + 1, sizeof(uint64_t));
	if (!x->digests || !x->paths || !x->sizes)
		return -ENOMEM;
	r = tar_scan(ctx->ref->path, want_layer, x);
	for (size_t i = 0; r == 0 && i < x->n; i++)
		if (!x->paths[i])
			r = berth_failx(BERTH_EFORMAT, "'%s' has no member '%s' (layer %zu)",
					ctx->ref->path, x->names[i], i + 1);
	return r;
}

static void extract_clear(struct extract *x)
{
	strv_free(x->names);
	for (size_t i = 0; i < x->n; i++) {
		free(x->expect ? x->expect[i] : NULL);
		free(x->digests ? x->digests[i] : NULL);
		free(x->paths ? x->paths[i] : NULL);
	}
	free(x->expect);
	free(x->digests);
	free(x->paths);
	free(x->sizes);
}

/* The OCI layout inside the tar. */
static int import_oci(struct import_ctx *ctx, const char *index, size_t len)
{
	const struct layout_ops ops = {tar_read_blob, ctx->ref->path};
	_cleanup_free_ char *digest = NULL, *index_digest = NULL, *body = NULL, *cfgp = NULL;
	struct extract x = {0};
	struct manifest m = {0};
	size_t blen;
	int r = layout_resolve(ctx, ctx->ref->path, index, len, &ops, &digest, &index_digest,
			       &body, &blen);

	if (r < 0)
		return r;
	r = import_begin(ctx, digest, index_digest);
	if (r != 0)
		return r < 0 ? r : 0;
	r = manifest_parse(digest, NULL, body, blen, &m);
	x.n = m.n_layers + 1;
	x.names = r == 0 ? calloc(x.n + 1, sizeof(char *)) : NULL;
	x.expect = x.names ? calloc(x.n + 1, sizeof(char *)) : NULL;
	if (r == 0 && !x.expect)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < x.n; i++) {
		const char *d = i == 0 ? m.config.digest : m.layers[i - 1].digest;

		x.names[i] = xasprintf("blobs/sha256/%s", digest_hex(d));
		x.expect[i] = strdup(d);
		if (!x.names[i] || !x.expect[i])
			r = -ENOMEM;
	}
	if (r == 0)
		r = extract_layers(ctx, &x);
	if (r == 0)
		r = import_finish(ctx, digest, index_digest, &m, x.paths[0], x.paths + 1, NULL, NULL);
	extract_clear(&x);
	manifest_clear(&m);
	return r;
}

/* Docker's manifest.json: one image (the archive's only one). */
static int docker_entry(const char *path, const char *text, size_t len, char **config,
			char ***layers)
{
	json_t *root = json_loadb(text, len, 0, NULL), *e, *l;
	size_t i;
	int r = 0;

	e = json_array_get(root, 0);
	if (!json_is_array(root) || json_array_size(root) == 0 ||
	    !json_string_value(json_object_get(e, "Config")) ||
	    !json_is_array(json_object_get(e, "Layers")))
		r = berth_failx(BERTH_EFORMAT, "'%s': manifest.json is not a docker save manifest",
				path);
	else if (json_array_size(root) > 1)
		r = berth_failx(BERTH_EUNSUPPORTED, "'%s' holds %zu images; save one image per "
				"archive", path, json_array_size(root));
	if (r < 0)
		goto out;
	*config = strdup(json_string_value(json_object_get(e, "Config")));
	json_array_foreach(json_object_get(e, "Layers"), i, l)
		if (!json_is_string(l) || strv_push(layers, json_string_value(l)) < 0)
			r = json_is_string(l) ? -ENOMEM
					      : berth_failx(BERTH_EFORMAT, "'%s': bad Layers", path);
	if (r == 0 && !*config)
		r = -ENOMEM;
out:
	json_decref(root);
	return r;
}

/* rootfs.diff_ids of the config: the sha256 of each uncompressed layer. */
static int diff_ids(const char *path, const char *config, size_t len, size_t n, char **expect)
{
	json_t *root = json_loadb(config, len, 0, NULL);
	json_t *ids = json_object_get(json_object_get(root, "rootfs"), "diff_ids");
	int r = 0;

	if (json_array_size(ids) != n)
		r = berth_failx(BERTH_EFORMAT, "'%s': the config lists %zu diff_ids for %zu layers",
				path, json_array_size(ids), n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		const char *d = json_string_value(json_array_get(ids, i));

		if (!digest_valid(d))
			r = berth_failx(BERTH_EFORMAT, "'%s': diff_id %zu is no sha256 digest",
					path, i + 1);
		else if (!(expect[i] = strdup(d)))
			r = -ENOMEM;
	}
	json_decref(root);
	return r;
}

static int import_docker(struct import_ctx *ctx, const char *mtext, size_t mlen)
{
	const char *path = ctx->ref->path;
	_cleanup_free_ char *config_name = NULL;
	char config_digest[DIGEST_LEN + 1];
	struct small cfg[2] = {{NULL, NULL, 0}, {NULL, NULL, 0}};
	struct extract x = {0};
	struct manifest m = {0};
	int r = docker_entry(path, mtext, mlen, &config_name, &x.names);

	if (r == 0) {
		cfg[0].name = config_name;
		r = tar_scan(path, want_small, cfg);
	}
	if (r == 0 && !cfg[0].buf)
		r = berth_failx(BERTH_EFORMAT, "'%s' has no member '%s' (the config)", path,
				config_name);
	/* No manifest digest here: the config digest names the image. */
	if (r == 0)
		r = sha256_buf(cfg[0].buf, cfg[0].len, config_digest);
	if (r == 0)
		r = import_begin(ctx, config_digest, NULL);
	if (r != 0)
		goto out;
	x.n = strv_length(x.names);
	x.expect = calloc(x.n + 1, sizeof(char *));
	r = x.expect ? diff_ids(path, cfg[0].buf, cfg[0].len, x.n, x.expect) : -ENOMEM;
	if (r == 0)
		r = extract_layers(ctx, &x);
	if (r == 0) {
		_cleanup_free_ char *cfg_tmp = xasprintf("%s/tmp/config-%d", ctx->cfg->cache_dir,
							 (int)getpid());
		_cleanup_free_ char *cfg_path = NULL;

		m.config = (struct descriptor){(char *)DOCKER_CONFIG, config_digest, cfg[0].len};
		m.layers = calloc(x.n + 1, sizeof(*m.layers));
		m.n_layers = x.n;
		r = cfg_tmp && m.layers ? write_file_atomic(cfg_tmp, cfg[0].buf, cfg[0].len, 0600)
					: -ENOMEM;
		if (r == 0)
			r = blob_publish(ctx->cfg->cache_dir, cfg_tmp, config_digest, &cfg_path);
		for (size_t i = 0; r == 0 && i < x.n; i++)
			m.layers[i] = (struct descriptor){NULL, x.digests[i], x.sizes[i]};
		if (r == 0)
			r = import_finish(ctx, config_digest, NULL, &m, cfg_path, x.paths, NULL, NULL);
		free(m.layers);
	}
out:
	extract_clear(&x);
	free(cfg[0].buf);
	return r;
}

int import_docker_archive(struct import_ctx *ctx)
{
	struct small s[3] = {{"index.json", NULL, 0}, {"manifest.json", NULL, 0}, {NULL, NULL, 0}};
	int r = tar_scan(ctx->ref->path, want_small, s);

	if (r < 0)
		;
	else if (s[0].buf)
		r = import_oci(ctx, s[0].buf, s[0].len);
	else if (s[1].buf)
		r = import_docker(ctx, s[1].buf, s[1].len);
	else
		r = berth_failx(BERTH_EFORMAT, "'%s' is no docker-archive: it has neither "
				"manifest.json nor index.json", ctx->ref->path);
	free(s[0].buf);
	free(s[1].buf);
	return r;
}
