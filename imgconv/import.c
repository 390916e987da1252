/* imgconv_import(): from a reference to a squashfs path (DESIGN.md "Data
 * flow" 1-5).  Resolve to a manifest digest, answer from the cache when the
 * image is there, else fetch the blobs and convert, once per image even
 * when many processes or nodes ask at the same time: the per-digest lock is
 * taken before the second cache check, so the second importer waits and
 * then finds the image. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/error.h"
#include "common/lock.h"
#include "common/log.h"
#include "common/util.h"
#include "imgconv/fetch.h"

/* Copy src to dst through a temporary name: --output of a cached image. */
static int copy_file(const char *src, const char *dst)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", dst, (int)getpid());
	_cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int out = -1;
	char buf[1 << 16];
	ssize_t n;

	if (!tmp)
		return -ENOMEM;
	if (in < 0)
		return berth_fail(-errno, "open '%s'", src);
	out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0)
		return berth_fail(-errno, "create '%s'", tmp);
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || write(out, buf, (size_t)n) != n) {
			int e = n < 0 ? -errno : (errno ? -errno : -EIO);

			unlink(tmp);
			return berth_fail(e, "copy '%s' to '%s'", src, dst);
		}
	}
	if (fsync(out) < 0 || rename(tmp, dst) < 0) {
		int e = -errno;

		unlink(tmp);
		return berth_fail(e, "write '%s'", dst);
	}
	return 0;
}

/* Make name this image's reference: added to its record, taken from any
 * other record (a tag moved to a new digest). */
static int claim_reference(const struct berth_config *cfg, const char *digest, const char *name)
{
	struct image_record *recs;
	size_t n;
	int r = cache_records(cfg, &recs, &n);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct image_record *c = &recs[i];
		bool mine = streq(c->digest, digest), has = strv_contains(c->references, name);

		if (mine && !has)
			r = strv_push(&c->references, name);
		else if (!mine && has) {
			size_t k = 0;

			for (size_t j = 0; c->references[j]; j++) {
				if (streq(c->references[j], name))
					free(c->references[j]);
				else
					c->references[k++] = c->references[j];
			}
			c->references[k] = NULL;
		}
		if (r == 0 && mine != has)
			r = cache_record_write(cfg, c);
	}
	for (size_t i = 0; i < n; i++)
		image_record_clear(&recs[i]);
	free(recs);
	return r;
}

static int hit(struct import_ctx *ctx, const char *sqsh, const char *digest)
{
	progress_step(ctx->progress, "%s is in the cache", digest);
	if (ctx->opts->output) {
		int r = copy_file(sqsh, ctx->opts->output);

		if (r < 0)
			return r;
		ctx->out_path = strdup(ctx->opts->output);
	} else {
		/* Best effort: the image is good even if its label is stale. */
		if (claim_reference(ctx->cfg, digest, ctx->name) < 0)
			log_debug("update references of %s: %s", digest, berth_errmsg(-1));
		ctx->out_path = strdup(sqsh);
	}
	return ctx->out_path ? 1 : -ENOMEM;
}

int import_begin(struct import_ctx *ctx, const char *digest, const char *index_digest)
{
	_cleanup_free_ char *sqsh = cache_path(ctx->cfg, "images", digest, ".sqsh");
	_cleanup_free_ char *lock = cache_path(ctx->cfg, "locks", digest, ".lock");
	int fd;

	(void)index_digest;
	if (!sqsh || !lock)
		return -ENOMEM;
	if (access(sqsh, F_OK) == 0)
		return hit(ctx, sqsh, digest);
	fd = lock_path(lock, false, false);
	if (fd == -EWOULDBLOCK) {
		progress_step(ctx->progress, "waiting for another import of %s", digest);
		fd = lock_path(lock, false, true);
	}
	if (fd < 0)
		return berth_fail(fd, "lock '%s'", lock);
	ctx->lock_fd = fd;
	/* The holder we waited for may have published it. */
	if (access(sqsh, F_OK) == 0)
		return hit(ctx, sqsh, digest);
	return 0;
}

static int publish(struct import_ctx *ctx, const char *digest, const char *index_digest,
		   const struct manifest *m, const char *tmp)
{
	_cleanup_free_ char *dst = cache_path(ctx->cfg, "images", digest, ".sqsh");
	struct image_record rec = {0};
	struct stat st;
	int r = 0;

	rec.digest = (char *)digest;
	rec.index_digest = (char *)index_digest;
	rec.platform = index_digest ? ctx->platform : NULL;
	rec.created = (int64_t)time(NULL);
	if (!dst || strv_push(&rec.references, ctx->name) < 0 ||
	    strv_push(&rec.blobs, m->config.digest) < 0)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < m->n_layers; i++)
		if (!strv_contains(rec.blobs, m->layers[i].digest))
			r = strv_push(&rec.blobs, m->layers[i].digest);
	if (r == 0 && stat(tmp, &st) < 0)
		r = berth_fail(-errno, "stat '%s'", tmp);
	rec.size = r == 0 ? (uint64_t)st.st_size : 0;
	/* Record first, then the image: a .sqsh without a record never shows. */
	if (r == 0)
		r = cache_record_write(ctx->cfg, &rec);
	if (r == 0 && rename(tmp, dst) < 0)
		r = berth_fail(-errno, "rename '%s' to '%s'", tmp, dst);
	if (r == 0 && claim_reference(ctx->cfg, digest, ctx->name) < 0)
		log_debug("update references of %s: %s", digest, berth_errmsg(-1));
	strv_free(rec.references);
	strv_free(rec.blobs);
	if (r == 0)
		ctx->out_path = TAKE_PTR(dst);
	return r;
}

int import_finish(struct import_ctx *ctx, const char *digest, const char *index_digest,
		  const struct manifest *m, const char *config_path, char *const *layer_paths)
{
	_cleanup_free_ char *tmp = cache_path(ctx->cfg, "tmp", digest, ".sqsh");
	_cleanup_free_ char *config = NULL;
	_cleanup_free_ struct imgconv_layer *layers = calloc(m->n_layers + 1, sizeof(*layers));
	struct imgconv_convert_opts co = {
		.compression = ctx->cfg->compression,
		.compression_level = (unsigned)ctx->cfg->compression_level,
		.reference = ctx->name,
		.manifest_digest = digest,
	};
	const char *out;
	size_t len;
	int r;

	if (!tmp || !layers)
		return -ENOMEM;
	r = read_file(config_path, 0, &config, &len);
	if (r < 0)
		return berth_fail(r, "read image config '%s'", config_path);
	for (size_t i = 0; i < m->n_layers; i++)
		layers[i] = (struct imgconv_layer){layer_paths[i], m->layers[i].media_type};
	out = ctx->opts->output ? ctx->opts->output : tmp;
	progress_step(ctx->progress, "converting %zu layer%s to squashfs (%s)", m->n_layers,
		      m->n_layers == 1 ? "" : "s", co.compression);
	r = imgconv_convert(layers, m->n_layers, config, len, out, &co);
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	if (ctx->opts->output) {
		ctx->out_path = strdup(out);
		return ctx->out_path ? 0 : -ENOMEM;
	}
	r = publish(ctx, digest, index_digest, m, tmp);
	if (r < 0)
		unlink(tmp);
	return r;
}

/* The blobs of m, fetched or found in the cache. */
static int fetch_blobs(struct import_ctx *ctx, struct registry *reg, const struct manifest *m,
		       char **config_path, char ***layer_paths)
{
	size_t n = m->n_layers + 1;
	_cleanup_free_ struct blob_want *w = calloc(n, sizeof(*w));
	_cleanup_free_ uint64_t *sizes = calloc(n, sizeof(*sizes));
	char (*what)[64] = calloc(n, sizeof(*what));
	int r = -ENOMEM;

	if (!w || !sizes || !what)
		goto out;
	w[0] = (struct blob_want){.digest = m->config.digest, .size = m->config.size,
				  .what = "config"};
	for (size_t i = 0; i < m->n_layers; i++) {
		snprintf(what[i + 1], sizeof(what[i + 1]), "layer %zu/%zu", i + 1, m->n_layers);
		w[i + 1] = (struct blob_want){.digest = m->layers[i].digest,
					      .size = m->layers[i].size, .what = what[i + 1]};
	}
	for (size_t i = 0; i < n; i++)
		sizes[i] = w[i].size;
	progress_layers(ctx->progress, n, sizes);
	r = blobs_fetch(reg, ctx->cfg->cache_dir, w, n, (unsigned)ctx->cfg->max_connections,
			ctx->progress);
	progress_end(ctx->progress);
	if (r == 0) {
		*layer_paths = calloc(n, sizeof(char *));
		if (!*layer_paths)
			r = -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (r == 0 && i == 0)
			*config_path = TAKE_PTR(w[0].path);
		else if (r == 0)
			(*layer_paths)[i - 1] = TAKE_PTR(w[i].path);
		free(w[i].path);
	}
out:
	free(what);
	return r;
}

static int import_registry_resolved(struct import_ctx *ctx, struct registry *reg,
				    const char *digest, const char *index_digest,
				    const struct http_resp *resp)
{
	_cleanup_free_ char *config_path = NULL;
	struct manifest m;
	char **layer_paths = NULL;
	int r = import_begin(ctx, digest, index_digest);

	if (r != 0)
		return r < 0 ? r : 0;
	r = manifest_parse(digest, resp->content_type, resp->body, resp->len, &m);
	if (r < 0)
		return r;
	r = fetch_blobs(ctx, reg, &m, &config_path, &layer_paths);
	if (r == 0)
		r = import_finish(ctx, digest, index_digest, &m, config_path, layer_paths);
	for (size_t i = 0; layer_paths && i < m.n_layers; i++)
		free(layer_paths[i]);
	free(layer_paths);
	manifest_clear(&m);
	return r;
}

static int import_registry(struct import_ctx *ctx)
{
	const struct imgconv_ref *ref = ctx->ref;
	_cleanup_free_ char *digest = NULL, *index_digest = NULL;
	struct http_resp resp = {0};
	struct registry *reg = NULL;
	struct image_record rec;
	int r;

	/* A digest names the content: no registry round trip when cached. */
	if (ref->digest && !ctx->opts->output &&
	    cache_find(ctx->cfg, ref->digest, ctx->platform, NULL, &rec) == 0) {
		r = hit(ctx, rec.sqsh, rec.digest);
		image_record_clear(&rec);
		return r < 0 ? r : 0;
	}
	r = registry_open(ctx->cfg, ref, &reg);
	if (r < 0)
		return r;
	progress_step(ctx->progress, "resolving %s", ref->digest ? ref->digest : ref->tag);
	r = registry_get_manifest(reg, "manifest", ref->digest ? ref->digest : ref->tag, &resp,
				  &digest);
	if (r == 0 && manifest_is_index(resp.content_type, resp.body, resp.len)) {
		_cleanup_free_ char *child = NULL;

		index_digest = TAKE_PTR(digest);
		r = index_select(index_digest, resp.body, resp.len, ctx->platform, &child);
		if (r == 0)
			r = registry_get_manifest(reg, "manifest", child, &resp, &digest);
	}
	if (r == 0)
		r = import_registry_resolved(ctx, reg, digest, index_digest, &resp);
	http_resp_clear(&resp);
	registry_free(reg);
	return r;
}

static int import_squashfs(struct import_ctx *ctx)
{
	const char *path = ctx->ref->path;
	int r = imgconv_check_squashfs(path);

	if (r < 0)
		return r;
	if (ctx->opts->output) {
		r = copy_file(path, ctx->opts->output);
		if (r < 0)
			return r;
		path = ctx->opts->output;
	}
	ctx->out_path = strdup(path);
	return ctx->out_path ? 0 : -ENOMEM;
}

static int run(struct import_ctx *ctx)
{
	int r, cache_fd;

	if (ctx->ref->kind == IMGCONV_REF_SQUASHFS)
		return import_squashfs(ctx);
	r = cache_prepare(ctx->cfg);
	if (r < 0)
		return r;
	/* Shared: imports run side by side; `cache prune` excludes them. */
	cache_fd = cache_lock(ctx->cfg, false, true);
	if (cache_fd < 0)
		return cache_fd;
	r = platform_for(ctx->opts->arch, &ctx->platform);
	if (r == 0 && !(ctx->name = imgconv_ref_format(ctx->ref)))
		r = -ENOMEM;
	if (r == 0 && !(ctx->progress = progress_new(ctx->opts->flags, ctx->name)))
		r = -ENOMEM;
	if (r == 0) {
		switch (ctx->ref->kind) {
		case IMGCONV_REF_DOCKER_ARCHIVE:
			r = import_docker_archive(ctx);
			break;
		case IMGCONV_REF_OCI_DIR:
			r = import_oci_dir(ctx);
			break;
		default:
			r = import_registry(ctx);
			break;
		}
	}
	if (r == 0)
		progress_step(ctx->progress, "done: %s", ctx->out_path);
	close(cache_fd);
	return r;
}

int imgconv_import(const struct berth_config *cfg, const char *text,
		   const struct imgconv_import_opts *opts, char **out_path)
{
	static const struct imgconv_import_opts defaults = {0};
	struct imgconv_ref ref;
	struct import_ctx ctx = {.cfg = cfg, .opts = opts ? opts : &defaults, .ref = &ref,
				 .lock_fd = -1};
	int r;

	*out_path = NULL;
	if (ctx.opts->flags & ~(unsigned)IMGCONV_ALL_FLAGS)
		return berth_failx(-EINVAL, "imgconv_import: unknown flags 0x%x", ctx.opts->flags);
	r = imgconv_ref_parse(text, cfg->default_registry, &ref);
	if (r < 0)
		return r;
	r = run(&ctx);
	if (r < 0)
		berth_fail_context(r, "import '%s'", text);
	else
		*out_path = TAKE_PTR(ctx.out_path);
	if (ctx.lock_fd >= 0)
		close(ctx.lock_fd);
	progress_free(ctx.progress);
	free(ctx.out_path);
	free(ctx.name);
	free(ctx.platform);
	imgconv_ref_clear(&ref);
	return r;
}
