/* The blob store: parallel downloads into CACHE/tmp/, each hashed while it
 * streams, fsync'd and renamed to CACHE/blobs/sha256/<hex> only when the
 * sha256 matches.  A file under blobs/ is therefore always verified, and a
 * killed import leaves only tmp files nobody trusts.
 *
 * A broken transfer resumes with a Range request from the bytes already
 * written (the hash state carries on); 429 and 5xx answers and timeouts are
 * retried with backoff, honouring Retry-After; 401 refreshes the token. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "imgconv/fetch.h"

struct xfer {
	struct blob_want *want;
	size_t idx;
	struct registry *reg;
	struct progress *progress;
	CURL *easy;
	struct curl_slist *hdrs;
	char *tmp;
	int fd;
	struct sha256 *hash;
	uint64_t have;       /* bytes written and hashed */
	unsigned attempts;
	unsigned auth_gen;   /* generation of the header this attempt sent */
	uint64_t not_before; /* now_ns() before which it must not start */
	long status;         /* of the last response's status line */
	long range_start;    /* of a 206 answer, -1 if none */
	char *retry_after;
	char *www_auth;
	bool started_body;   /* first body byte of this attempt seen */
	bool too_big;
	int write_err;
	bool running, done;
	bool dup; /* an earlier entry has the same digest */
};

static size_t x_header(char *buf, size_t size, size_t n, void *data)
{
	struct xfer *x = data;
	size_t len = size * n;

	if (len > 5 && strncmp(buf, "HTTP/", 5) == 0) {
		const char *sp = memchr(buf, ' ', len);

		x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		x->range_start = -1;
		free(x->retry_after), x->retry_after = NULL;
		free(x->www_auth), x->www_auth = NULL;
	} else if (len > 20 && strncasecmp(buf, "content-range: bytes ", 21) == 0) {
		x->range_start = strtol(buf + 21, NULL, 10);
	} else if (len > 12 && strncasecmp(buf, "retry-after:", 12) == 0) {
		free(x->retry_after);
		x->retry_after = strndup(buf + 12 + strspn(buf + 12, " "),
					 strcspn(buf + 12 + strspn(buf + 12, " "), "\r\n"));
	} else if (len > 17 && strncasecmp(buf, "www-authenticate:", 17) == 0) {
		free(x->www_auth);
		x->www_auth = strndup(buf + 17 + strspn(buf + 17, " "),
				      strcspn(buf + 17 + strspn(buf + 17, " "), "\r\n"));
	}
	return len;
}

/* The first body byte of an attempt: a 200 to a Range request restarts
 * the blob, a 206 must start exactly where we are. */
static int start_body(struct xfer *x)
{
	x->started_body = true;
	if (x->status == 200 && x->have > 0) {
		if (ftruncate(x->fd, 0) < 0 || lseek(x->fd, 0, SEEK_SET) < 0)
			return -errno;
		x->have = 0;
		return sha256_reset(x->hash);
	}
	if (x->status == 206 && x->range_start != (long)x->have)
		return -EPROTO;
	return 0;
}

static size_t x_body(char *buf, size_t size, size_t n, void *data)
{
	struct xfer *x = data;
	size_t len = size * n, off = 0;

	if (x->status != 200 && x->status != 206)
		return len; /* an error page: status decides, body ignored */
	if (!x->started_body && (x->write_err = start_body(x)) < 0)
		return 0;
	if (x->have + len > x->want->size) {
		x->too_big = true;
		return 0;
	}
	while (off < len) {
		ssize_t w = write(x->fd, buf + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			x->write_err = -errno;
			return 0;
		}
		off += (size_t)w;
	}
	if (sha256_update(x->hash, buf, len) < 0) {
		x->write_err = -EIO;
		return 0;
	}
	x->have += len;
	progress_layer_bytes(x->progress, x->idx, x->have);
	return len;
}

static int x_start(struct xfer *x)
{
	_cleanup_free_ char *url = registry_blob_url(x->reg, x->want->digest);
	char range[64];

	if (!url || !(x->easy = registry_easy(x->reg, url)))
		return -ENOMEM;
	x->auth_gen = auth_generation(registry_auth(x->reg));
	if (registry_set_auth(x->reg, x->easy, (void **)&x->hdrs) < 0)
		return -ENOMEM;
	curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, x_header);
	curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, x_body);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	if (x->have > 0) {
		snprintf(range, sizeof(range), "%llu-", (unsigned long long)x->have);
		curl_easy_setopt(x->easy, CURLOPT_RANGE, range);
	}
	x->status = 0;
	x->started_body = false;
	x->attempts++;
	x->running = true;
	log_debug("GET %s%s%s", url, x->have ? " from byte " : "", x->have ? range : "");
	return 0;
}

static void x_stop(struct xfer *x, CURLM *multi)
{
	if (x->easy) {
		curl_multi_remove_handle(multi, x->easy);
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
	}
	curl_slist_free_all(x->hdrs);
	x->hdrs = NULL;
	x->running = false;
}

static void x_free(struct xfer *x)
{
	if (x->fd >= 0)
		close(x->fd);
	if (x->tmp) {
		unlink(x->tmp);
		free(x->tmp);
	}
	sha256_free(x->hash);
	free(x->retry_after);
	free(x->www_auth);
}

int blob_publish(const char *cache_dir, const char *tmp, const char *digest, char **path)
{
	_cleanup_free_ char *dst = cache_path_blob(cache_dir, digest);

	if (!dst)
		return -ENOMEM;
	if (rename(tmp, dst) < 0)
		return berth_fail(-errno, "rename '%s' to '%s'", tmp, dst);
	if (path)
		*path = TAKE_PTR(dst);
	return 0;
}

/* The blob is complete: check it, make it durable, move it in place. */
static int x_finish(struct xfer *x, const char *cache_dir)
{
	char got[DIGEST_LEN + 1];
	int r = sha256_final(x->hash, got);

	if (r < 0)
		return r;
	if (!streq(got, x->want->digest))
		return berth_failx(BERTH_EDIGEST, "%s %s: digest mismatch: %s served content with "
				   "digest %s", x->want->what, x->want->digest,
				   registry_host(x->reg), got);
	if (fsync(x->fd) < 0)
		return berth_fail(-errno, "fsync '%s'", x->tmp);
	r = blob_publish(cache_dir, x->tmp, x->want->digest, &x->want->path);
	if (r < 0)
		return r;
	free(x->tmp);
	x->tmp = NULL;
	close(x->fd);
	x->fd = -1;
	x->done = true;
	progress_layer_done(x->progress, x->idx, false);
	return 0;
}

/* A transfer ended: finish, retry later, or fail the whole fetch. */
static int x_done(struct xfer *x, CURLcode cc, const char *cache_dir)
{
	struct http_resp resp = {.status = x->status, .retry_after = x->retry_after};
	const char *what = x->want->what;

	if (x->write_err)
		return x->write_err == -EPROTO
		       ? berth_failx(BERTH_EREGISTRY, "%s %s: %s answered a Range request from the "
				     "wrong offset", what, x->want->digest, registry_host(x->reg))
		       : berth_fail(x->write_err, "write '%s'", x->tmp);
	if (x->too_big)
		return berth_failx(BERTH_EDIGEST, "%s %s: %s served more than the %llu bytes the "
				   "manifest announces", what, x->want->digest,
				   registry_host(x->reg), (unsigned long long)x->want->size);
	if (cc == CURLE_OK && (x->status == 200 || x->status == 206)) {
		if (x->have == x->want->size)
			return x_finish(x, cache_dir);
		cc = CURLE_PARTIAL_FILE; /* a short body: resume */
	}
	if (cc == CURLE_OK && x->status == 401) {
		int r = auth_challenge(registry_auth(x->reg), x->reg, x->www_auth, x->auth_gen);

		if (r < 0)
			return berth_fail_context(r, "%s %s", what, x->want->digest);
		x->attempts--;
		return 0;
	}
	if (x->attempts >= FETCH_ATTEMPTS ||
	    (cc == CURLE_OK && x->status != 429 && x->status < 500) ||
	    (cc != CURLE_OK && !curl_transient(cc))) {
		char w[160];

		snprintf(w, sizeof(w), "%s %s", what, x->want->digest);
		if (cc != CURLE_OK)
			return berth_failx(BERTH_EREGISTRY, "%s: %s: %s%s", w, registry_host(x->reg),
					   curl_easy_strerror(cc),
					   x->attempts > 1 ? " (retries exhausted)" : "");
		return registry_status_error(x->reg, w, &resp, x->attempts);
	}
	x->not_before = now_ns() + retry_delay_ms(x->attempts, x->retry_after) * 1000000ull;
	log_debug("%s: %s, retrying from byte %llu", what,
		  cc != CURLE_OK ? curl_easy_strerror(cc) : "server busy",
		  (unsigned long long)x->have);
	return 0;
}

static int x_prepare(struct xfer *x, const char *cache_dir)
{
	_cleanup_free_ char *tmpl = xasprintf("%s/tmp/blob-%.16s-XXXXXX", cache_dir,
					      digest_hex(x->want->digest));

	if (!tmpl || !(x->hash = sha256_new()))
		return -ENOMEM;
	x->fd = mkostemp(tmpl, O_CLOEXEC);
	if (x->fd < 0)
		return berth_fail(-errno, "create '%s'", tmpl);
	x->tmp = TAKE_PTR(tmpl);
	return 0;
}

/* A blob already in the store (and of the announced size) is reused. */
static bool cached(const char *cache_dir, struct blob_want *w)
{
	_cleanup_free_ char *p = cache_path_blob(cache_dir, w->digest);
	struct stat st;

	if (!p || stat(p, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != w->size)
		return false;
	w->path = TAKE_PTR(p);
	return true;
}

/* Start what may start now; the time until the next one may, in ms. */
static int start_ready(struct xfer *xs, size_t n, CURLM *multi, unsigned max_conn,
		       unsigned *running, long *wait_ms)
{
	uint64_t now = now_ns();

	*wait_ms = 1000;
	for (size_t i = 0; i < n && *running < max_conn; i++) {
		struct xfer *x = &xs[i];
		int r;

		if (x->done || x->running)
			continue;
		if (x->not_before > now) {
			long ms = (long)((x->not_before - now) / 1000000) + 1;

			if (ms < *wait_ms)
				*wait_ms = ms;
			continue;
		}
		r = x_start(x);
		if (r < 0)
			return r;
		if (curl_multi_add_handle(multi, x->easy) != CURLM_OK)
			return -ENOMEM;
		(*running)++;
	}
	return 0;
}

/* Blob i is in the store: so are the later entries with its digest. */
static int ready(struct xfer *xs, size_t n, size_t i, const struct fetch_hooks *hooks)
{
	for (size_t j = i + 1; j < n; j++) {
		if (!streq(xs[j].want->digest, xs[i].want->digest) || xs[j].want->path)
			continue;
		xs[j].want->path = strdup(xs[i].want->path);
		if (!xs[j].want->path)
			return -ENOMEM;
		if (hooks && hooks->ready)
			hooks->ready(hooks->data, j);
	}
	if (hooks && hooks->ready)
		hooks->ready(hooks->data, i);
	return 0;
}

static int run(struct xfer *xs, size_t n, const char *cache_dir, unsigned max_conn,
	       const struct fetch_hooks *hooks)
{
	CURLM *multi = curl_multi_init();
	unsigned running = 0;
	size_t left = 0;
	int r = 0;

	if (!multi)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		left += !xs[i].done;
	while (left > 0 && r == 0) {
		long wait_ms;
		int still, msgs;
		CURLMsg *m;

		if (hooks && hooks->stop && hooks->stop(hooks->data)) {
			r = -ECANCELED;
			break;
		}
		r = start_ready(xs, n, multi, max_conn, &running, &wait_ms);
		if (r < 0)
			break;
		if (hooks && wait_ms > 100)
			wait_ms = 100;
		if (curl_multi_perform(multi, &still) != CURLM_OK ||
		    curl_multi_poll(multi, NULL, 0, (int)wait_ms, NULL) != CURLM_OK) {
			r = berth_failx(BERTH_EREGISTRY, "download: libcurl multi interface failed");
			break;
		}
		while (r == 0 && (m = curl_multi_info_read(multi, &msgs))) {
			struct xfer *x;
			CURLcode result;

			if (m->msg != CURLMSG_DONE)
				continue;
			/* m belongs to the handle: read it before the handle goes. */
			result = m->data.result;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			x_stop(x, multi);
			running--;
			r = x_done(x, result, cache_dir);
			left -= x->done;
			if (r == 0 && x->done)
				r = ready(xs, n, x->idx, hooks);
		}
	}
	for (size_t i = 0; i < n; i++)
		x_stop(&xs[i], multi);
	curl_multi_cleanup(multi);
	return r;
}

int blobs_fetch(struct registry *reg, const char *cache_dir, struct blob_want *w, size_t n,
		unsigned max_conn, struct progress *p, const struct fetch_hooks *hooks)
{
	struct xfer *xs = calloc(n ? n : 1, sizeof(*xs));
	int r = 0;

	if (!xs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		xs[i] = (struct xfer){.want = &w[i], .idx = i, .reg = reg, .progress = p, .fd = -1};
		/* The same blob twice in one manifest is fetched once. */
		for (size_t j = 0; j < i; j++)
			if (streq(w[j].digest, w[i].digest))
				xs[i].done = xs[i].dup = true;
		if (!xs[i].done && cached(cache_dir, &w[i])) {
			xs[i].done = true;
			progress_layer_done(p, i, true);
		} else if (!xs[i].done && r == 0) {
			r = x_prepare(&xs[i], cache_dir);
		}
	}
	for (size_t i = 0; r == 0 && i < n; i++)
		if (w[i].path && !xs[i].dup)
			r = ready(xs, n, i, hooks);
	if (r == 0)
		r = run(xs, n, cache_dir, max_conn ? max_conn : 1, hooks);
	for (size_t i = 0; i < n; i++)
		x_free(&xs[i]);
	free(xs);
	return r;
}
