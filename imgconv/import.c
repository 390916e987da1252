/* imgconv_import(): from a reference to a squashfs path (DESIGN.md "Data
 * flow" 1-5).  Resolve to a manifest digest, answer from the cache when the
 * image is there, else fetch the blobs and convert, once per image even
 * when many processes or nodes ask at the same time: the per-digest lock is
 * taken before the second cache check, so the second importer waits and
 * then finds the image. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/error.h"
#include "common/lock.h"
#include "common/log.h"
#include "common/util.h"
#include "imgconv/convert.h"
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
		  const struct manifest *m, const char *config_path, char *const *layer_paths,
		  int (*wait)(void *data, size_t i), void *wait_data)
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
	r = convert_layers(&(struct layer_set){ .layers = layers, .count = m->n_layers,
						.wait = wait, .wait_data = wait_data },
			   config, len, out, &co);
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

/* ---- fetching while converting -------------------------------------------
 *
 * The blobs download on a thread of their own, the config first, then the
 * layers in the order conversion reads them (the top one first), while the
 * main thread converts each layer as soon as its blob is complete, verified
 * and in the store: a layer's bytes are never read before their sha256 is
 * known good.  A failed download fails the conversion (its output is never
 * published); a failed conversion stops the downloads. */

struct pipeline {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool *ready; /* per entry of w */
	bool finished, stop;
	int result;
	char msg[1024];
	struct import_ctx *ctx;
	struct registry *reg;
	struct blob_want *w; /* config, then the layers from the top down */
	size_t n;
	uint64_t start;
};

static void pl_ready(void *data, size_t i)
{
	struct pipeline *pl = data;

	log_debug("%s ready after %.1f s", pl->w[i].what, (double)(now_ns() - pl->start) / 1e9);
	pthread_mutex_lock(&pl->mu);
	pl->ready[i] = true;
	pthread_cond_broadcast(&pl->cv);
	pthread_mutex_unlock(&pl->mu);
}

static bool pl_stop(void *data)
{
	struct pipeline *pl = data;
	bool stop;

	pthread_mutex_lock(&pl->mu);
	stop = pl->stop;
	pthread_mutex_unlock(&pl->mu);
	return stop;
}

static void *pl_fetch(void *data)
{
	struct pipeline *pl = data;
	struct fetch_hooks hooks = { .ready = pl_ready, .stop = pl_stop, .data = pl };
	int r = blobs_fetch(pl->reg, pl->ctx->cfg->cache_dir, pl->w, pl->n,
			    (unsigned)pl->ctx->cfg->max_connections, pl->ctx->progress, &hooks);

	progress_end(pl->ctx->progress);
	pthread_mutex_lock(&pl->mu);
	pl->finished = true;
	pl->result = r;
	/* Messages are per thread: the waiting one repeats this. */
	if (r < 0)
		snprintf(pl->msg, sizeof(pl->msg), "%s", berth_errmsg(r));
	pthread_cond_broadcast(&pl->cv);
	pthread_mutex_unlock(&pl->mu);
	return NULL;
}

/* Wait until entry i of w is in the store. */
static int pl_wait(struct pipeline *pl, size_t i)
{
	bool ok;
	int r;

	pthread_mutex_lock(&pl->mu);
	while (!pl->ready[i] && !pl->finished)
		pthread_cond_wait(&pl->cv, &pl->mu);
	ok = pl->ready[i];
	r = pl->result;
	pthread_mutex_unlock(&pl->mu);
	if (ok)
		return 0;
	if (r < 0)
		return berth_failx(r, "%s", pl->msg);
	return berth_failx(-EIO, "%s %s: not downloaded", pl->w[i].what, pl->w[i].digest);
}

/* Layer i in manifest order: w has the top layer (n_layers - 1) first. */
static int pl_wait_layer(void *data, size_t i)
{
	struct pipeline *pl = data;

	return pl_wait(pl, pl->n - 1 - i);
}

/* Fill w (config, then layers top-down) and the progress display. */
static int pl_wants(struct pipeline *pl, const struct manifest *m, char (*what)[64])
{
	size_t n = m->n_layers + 1;
	_cleanup_free_ uint64_t *sizes = calloc(n, sizeof(*sizes));
	_cleanup_free_ const char **names = calloc(n, sizeof(*names));

	if (!sizes || !names)
		return -ENOMEM;
	pl->w[0] = (struct blob_want){.digest = m->config.digest, .size = m->config.size,
				      .what = "config"};
	for (size_t k = 1; k < n; k++) {
		size_t i = m->n_layers - k; /* manifest index */

		snprintf(what[k], sizeof(what[k]), "layer %zu/%zu", i + 1, m->n_layers);
		pl->w[k] = (struct blob_want){.digest = m->layers[i].digest,
					      .size = m->layers[i].size, .what = what[k]};
	}
	for (size_t k = 0; k < n; k++) {
		sizes[k] = pl->w[k].size;
		names[k] = pl->w[k].what;
	}
	progress_layers(pl->ctx->progress, n, sizes, names);
	return 0;
}

/* The blobs of m, fetched (or found in the cache) while converting. */
static int fetch_and_convert(struct import_ctx *ctx, struct registry *reg, const char *digest,
			     const char *index_digest, const struct manifest *m)
{
	size_t n = m->n_layers + 1;
	struct pipeline pl = { .ctx = ctx, .reg = reg, .n = n, .start = now_ns() };
	char (*what)[64] = calloc(n, sizeof(*what));
	_cleanup_free_ char *config_path = cache_path_blob(ctx->cfg->cache_dir, m->config.digest);
	char **paths = calloc(n, sizeof(*paths));
	pthread_t thread;
	int r = -ENOMEM;

	pl.w = calloc(n, sizeof(*pl.w));
	pl.ready = calloc(n, sizeof(*pl.ready));
	if (!what || !config_path || !paths || !pl.w || !pl.ready)
		goto out;
	/* Where each verified blob will be (blob_publish's path). */
	for (size_t i = 0; i < m->n_layers; i++)
		if (!(paths[i] = cache_path_blob(ctx->cfg->cache_dir, m->layers[i].digest)))
			goto out;
	r = pl_wants(&pl, m, what);
	if (r < 0)
		goto out;
	pthread_mutex_init(&pl.mu, NULL);
	pthread_cond_init(&pl.cv, NULL);
	r = -pthread_create(&thread, NULL, pl_fetch, &pl);
	if (r < 0) {
		r = berth_fail(r, "start the download thread");
		goto destroy;
	}
	r = pl_wait(&pl, 0);
	if (r == 0)
		r = import_finish(ctx, digest, index_digest, m, config_path, paths, pl_wait_layer,
				  &pl);
	pthread_mutex_lock(&pl.mu);
	pl.stop = true;
	pthread_mutex_unlock(&pl.mu);
	pthread_join(thread, NULL);
	/* Converted, yet a blob nobody read failed (a layer listed twice). */
	if (r == 0 && pl.result < 0)
		r = berth_failx(pl.result, "%s", pl.msg);
destroy:
	pthread_cond_destroy(&pl.cv);
	pthread_mutex_destroy(&pl.mu);
out:
	for (size_t i = 0; pl.w && i < n; i++)
		free(pl.w[i].path);
	for (size_t i = 0; paths && i < n; i++)
		free(paths[i]);
	free(paths);
	free(pl.w);
	free(pl.ready);
	free(what);
	return r;
}

static int import_registry_resolved(struct import_ctx *ctx, struct registry *reg,
				    const char *digest, const char *index_digest,
				    const struct http_resp *resp)
{
	struct manifest m;
	int r = import_begin(ctx, digest, index_digest);

	if (r != 0)
		return r < 0 ? r : 0;
	r = manifest_parse("manifest", resp->content_type, resp->body, resp->len, &m);
	if (r < 0)
		return r;
	r = fetch_and_convert(ctx, reg, digest, index_digest, &m);
	manifest_clear(&m);
	return r;
}

static int import_registry(struct import_ctx *ctx)
{
	const struct imgconv_ref *ref = ctx->ref;
	_cleanup_free_ char *digest = NULL, *index_digest = NULL, *what = NULL;
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
	what = ref->digest ? xasprintf("manifest %s", ref->digest)
			   : xasprintf("manifest of tag '%s'", ref->tag);
	if (!what) {
		registry_free(reg);
		return -ENOMEM;
	}
	progress_step(ctx->progress, "resolving %s", ref->digest ? ref->digest : ref->tag);
	r = registry_get_manifest(reg, what, ref->digest ? ref->digest : ref->tag, &resp, &digest);
	if (r == 0 && manifest_is_index(resp.content_type, resp.body, resp.len)) {
		_cleanup_free_ char *child = NULL;

		index_digest = TAKE_PTR(digest);
		r = index_select("image index", resp.body, resp.len, ctx->platform, &child);
		if (r == 0)
			r = registry_get_manifest(reg, "platform manifest", child, &resp, &digest);
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
