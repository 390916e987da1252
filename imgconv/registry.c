/* The registry client: distribution API v2 over libcurl (OCI distribution
 * spec, "Pulling manifests" / "Pulling blobs").
 *
 * One struct registry per import: the host spoken to (a mirror or the
 * origin), the scheme (http only for insecure_registries), the repository
 * and the auth state.  All handles share DNS, connections and TLS sessions.
 * Never set CURLOPT_VERBOSE: it prints the Authorization header. */
#include "config.h"
#include <errno.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <jansson.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "imgconv/fetch.h"

#define MANIFEST_MAX (4u << 20) /* registries cap manifests at 4 MiB */

struct registry {
	const struct berth_config *cfg;
	char *origin;     /* the reference's registry */
	char **hosts;     /* mirrors, then the origin */
	size_t host_idx;  /* the one in use */
	char *repository;
	char *user;
	struct auth *auth;
	CURLSH *share;
};

void http_resp_clear(struct http_resp *r)
{
	free(r->body);
	free(r->content_type);
	free(r->www_auth);
	free(r->retry_after);
	memset(r, 0, sizeof(*r));
}

const char *registry_host(const struct registry *reg)
{
	return reg->hosts[reg->host_idx];
}

static bool is_hub(const char *host)
{
	return streq(host, "registry-1.docker.io") || streq(host, "docker.io");
}

/* A mirror entry "ORIGIN=MIRROR" or "MIRROR" (for Docker Hub); MIRROR may
 * start with http:// or https://. */
static int add_mirrors(struct registry *reg)
{
	for (char **m = reg->cfg->registry_mirrors; m && *m; m++) {
		const char *eq = strchr(*m, '='), *mirror = eq ? eq + 1 : *m;
		_cleanup_free_ char *origin = eq ? strndup(*m, (size_t)(eq - *m)) : strdup("docker.io");

		if (!origin)
			return -ENOMEM;
		if (!(streq(origin, reg->origin) || (is_hub(origin) && is_hub(reg->origin))))
			continue;
		if (strv_push(&reg->hosts, mirror) < 0)
			return -ENOMEM;
	}
	return 0;
}

int registry_open(const struct berth_config *cfg, const struct imgconv_ref *ref,
		  struct registry **out)
{
	struct registry *reg = calloc(1, sizeof(*reg));

	*out = NULL;
	if (!reg)
		return -ENOMEM;
	reg->cfg = cfg;
	reg->origin = strdup(ref->registry);
	reg->repository = strdup(ref->repository);
	reg->user = ref->user ? strdup(ref->user) : NULL;
	reg->share = curl_share_init();
	if (!reg->origin || !reg->repository || (ref->user && !reg->user) || !reg->share ||
	    add_mirrors(reg) < 0 || strv_push(&reg->hosts, reg->origin) < 0) {
		registry_free(reg);
		return -ENOMEM;
	}
	curl_share_setopt(reg->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(reg->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(reg->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	reg->auth = auth_new(cfg, registry_host(reg), reg->user, reg->repository);
	if (!reg->auth) {
		registry_free(reg);
		return -ENOMEM;
	}
	*out = reg;
	return 0;
}

void registry_free(struct registry *reg)
{
	if (!reg)
		return;
	auth_free(reg->auth);
	if (reg->share)
		curl_share_cleanup(reg->share);
	strv_free(reg->hosts);
	free(reg->origin);
	free(reg->repository);
	free(reg->user);
	free(reg);
}

/* "https://HOST" unless the host is listed in insecure_registries or the
 * mirror entry names its scheme. */
static char *base_url(const struct registry *reg)
{
	const char *h = registry_host(reg);

	if (str_startswith(h, "http://") || str_startswith(h, "https://"))
		return strdup(h);
	return xasprintf("%s://%s", strv_contains(reg->cfg->insecure_registries, h) ? "http" : "https",
			 h);
}

char *registry_blob_url(const struct registry *reg, const char *digest)
{
	_cleanup_free_ char *base = base_url(reg);

	return base ? xasprintf("%s/v2/%s/blobs/%s", base, reg->repository, digest) : NULL;
}

struct auth *registry_auth(struct registry *reg)
{
	return reg->auth;
}

void *registry_easy(struct registry *reg, const char *url)
{
	CURL *e = curl_easy_init();

	if (!e)
		return NULL;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_SHARE, reg->share);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "berth/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	/* The default, spelled out: blob GETs redirect to object storage on
	 * another host, and libcurl (>= 7.58, and >= 7.83 also for another port
	 * or scheme) then drops the Authorization header we set. */
	curl_easy_setopt(e, CURLOPT_UNRESTRICTED_AUTH, 0L);
	curl_easy_setopt(e, CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 30L);
	/* A stalled transfer (under 1 KiB/s for a minute) is a timeout. */
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
	return e;
}

/* Sets the Authorization header (if any) plus extra on e; *slist keeps the
 * list alive until the transfer ends and is freed by the caller. */
static int set_headers(struct registry *reg, CURL *e, const char *extra, struct curl_slist **slist)
{
	const char *auth = auth_header(reg->auth);
	struct curl_slist *l = NULL, *t;

	if (auth) {
		if (!(t = curl_slist_append(l, auth)))
			goto oom;
		l = t;
	}
	if (extra) {
		if (!(t = curl_slist_append(l, extra)))
			goto oom;
		l = t;
	}
	curl_slist_free_all(*slist);
	*slist = l;
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
	return 0;
oom:
	curl_slist_free_all(l);
	return -ENOMEM;
}

int registry_set_auth(struct registry *reg, void *easy, void **slist)
{
	return set_headers(reg, easy, NULL, (struct curl_slist **)slist);
}

struct sink {
	struct http_resp *resp;
	size_t max;
	bool too_big;
};

static char *header_value(const char *line, size_t n, const char *name)
{
	size_t k = strlen(name);
	const char *v, *end = line + n;

	if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return NULL;
	for (v = line + k + 1; v < end && (*v == ' ' || *v == '\t'); v++)
		;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	return strndup(v, (size_t)(end - v));
}

/* Keeps the headers of the last response only (redirects come first). */
static size_t on_header(char *buf, size_t size, size_t n, void *data)
{
	struct http_resp *r = data;
	size_t len = size * n;
	char *v;

	if (len > 5 && strncmp(buf, "HTTP/", 5) == 0) {
		free(r->content_type), free(r->www_auth), free(r->retry_after);
		r->content_type = r->www_auth = r->retry_after = NULL;
	} else if ((v = header_value(buf, len, "content-type"))) {
		free(r->content_type), r->content_type = v;
	} else if ((v = header_value(buf, len, "www-authenticate"))) {
		free(r->www_auth), r->www_auth = v;
	} else if ((v = header_value(buf, len, "retry-after"))) {
		free(r->retry_after), r->retry_after = v;
	}
	return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *data)
{
	struct sink *s = data;
	size_t len = size * n;
	char *nb;

	if (s->resp->len + len > s->max) {
		s->too_big = true;
		return 0;
	}
	nb = realloc(s->resp->body, s->resp->len + len + 1);
	if (!nb)
		return 0;
	memcpy(nb + s->resp->len, buf, len);
	s->resp->body = nb;
	s->resp->len += len;
	nb[s->resp->len] = '\0';
	return len;
}

static bool retryable(CURLcode c)
{
	return c == CURLE_OPERATION_TIMEDOUT || c == CURLE_PARTIAL_FILE || c == CURLE_RECV_ERROR ||
	       c == CURLE_SEND_ERROR || c == CURLE_GOT_NOTHING || c == CURLE_HTTP2 ||
	       c == CURLE_HTTP2_STREAM;
}

uint64_t retry_delay_ms(unsigned attempt, const char *retry_after)
{
	uint64_t ms = 500ull << (attempt > 5 ? 5 : attempt - 1);

	/* Retry-After: delay-seconds or an HTTP-date (RFC 9110 10.2.3); capped
	 * so a hostile value cannot park the import for a day. */
	if (retry_after && *retry_after) {
		uint64_t s;
		time_t t;

		if (parse_u64(retry_after, UINT32_MAX, &s) == 0)
			ms = s * 1000;
		else if ((t = curl_getdate(retry_after, NULL)) > 0)
			ms = t > time(NULL) ? (uint64_t)(t - time(NULL)) * 1000 : 0;
	}
	return ms > 60000 ? 60000 : ms;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* One GET; a transport failure returns a negative code with a message. */
static int perform(struct registry *reg, const char *url, const char *extra, size_t max,
		   struct http_resp *resp, CURLcode *cc)
{
	struct curl_slist *hdrs = NULL;
	struct sink s = {resp, max, false};
	CURL *e = registry_easy(reg, url);
	int r = 0;

	*cc = CURLE_OK;
	http_resp_clear(resp);
	if (!e || set_headers(reg, e, extra, &hdrs) < 0) {
		curl_easy_cleanup(e);
		return -ENOMEM;
	}
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, resp);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
	*cc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
	if (s.too_big)
		r = berth_failx(BERTH_EFORMAT, "%s: response larger than %zu bytes", url, max);
	else if (*cc != CURLE_OK)
		r = berth_failx(BERTH_EREGISTRY, "%s: %s", registry_host(reg), curl_easy_strerror(*cc));
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(e);
	return r;
}

/* GET with retries (429, 5xx, broken transfers) and one auth round per
 * 401.  Returns 0 with resp->status set for any HTTP answer. */
static int request(struct registry *reg, const char *url, const char *extra, size_t max,
		   struct http_resp *resp, unsigned *attempts)
{
	unsigned gen, reauths = 0;
	CURLcode cc = CURLE_OK;
	int r;

	for (*attempts = 1;; (*attempts)++) {
		gen = auth_generation(reg->auth);
		r = perform(reg, url, extra, max, resp, &cc);
		if (r < 0 && !(retryable(cc) && *attempts < FETCH_ATTEMPTS))
			return r;
		if (r == 0 && resp->status == 401 && reauths++ < 3) {
			r = auth_challenge(reg->auth, reg, resp->www_auth, gen);
			if (r < 0)
				return r;
			(*attempts)--;
			continue;
		}
		if (r == 0 && resp->status / 100 == 2)
			auth_worked(reg->auth, gen);
		if (r == 0 && resp->status != 429 && resp->status < 500)
			return 0;
		if (*attempts >= FETCH_ATTEMPTS)
			return 0;
		log_debug("%s: %s, retrying", url, r < 0 ? berth_errmsg(r) : "server busy");
		sleep_ms(retry_delay_ms(*attempts, resp->retry_after));
	}
}

int registry_get_token(struct registry *reg, const char *url, const char *basic_header,
		       struct http_resp *resp)
{
	struct curl_slist *hdrs = NULL, *t;
	struct sink s = {resp, 1 << 20, false};
	CURL *e = registry_easy(reg, url);
	CURLcode cc;
	int r = 0;

	http_resp_clear(resp);
	if (!e)
		return -ENOMEM;
	if (basic_header) {
		if (!(t = curl_slist_append(NULL, basic_header))) {
			curl_easy_cleanup(e);
			return -ENOMEM;
		}
		hdrs = t;
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, resp);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
	cc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
	if (cc != CURLE_OK)
		r = berth_failx(BERTH_EAUTH, "token server for %s: %s", registry_host(reg),
				s.too_big ? "answer too large" : curl_easy_strerror(cc));
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(e);
	return r;
}

/* The first registry error in the body ({"errors":[{"code","message"}]}),
 * sanitised to printable ASCII. */
static void registry_error_code(const struct http_resp *resp, char *buf, size_t size)
{
	json_t *root = resp->body ? json_loadb(resp->body, resp->len, 0, NULL) : NULL;
	json_t *e0 = json_array_get(json_object_get(root, "errors"), 0);
	const char *code = json_string_value(json_object_get(e0, "code"));

	buf[0] = '\0';
	if (code)
		snprintf(buf, size, " %s", code);
	for (char *p = buf; *p; p++)
		if (*p < ' ' || *p > '~')
			*p = '?';
	json_decref(root);
}

int registry_status_error(const struct registry *reg, const char *what,
			  const struct http_resp *resp, unsigned attempts)
{
	const char *host = registry_host(reg);
	char code[64];

	registry_error_code(resp, code, sizeof(code));
	switch (resp->status) {
	case 404:
		return berth_failx(BERTH_ENOTFOUND, "%s: not found on %s (HTTP 404%s): no such "
				   "image, tag or blob", what, host, code);
	case 401:
	case 403:
		return berth_failx(BERTH_EAUTH, "%s: access denied by %s (HTTP %ld%s); if the image "
				   "is private, add 'machine %s login USER password SECRET' to %s "
				   "(mode 0600)", what, host, resp->status, code, host,
				   auth_credentials_file(reg->auth));
	case 429:
		if (resp->retry_after)
			return berth_failx(BERTH_EREGISTRY, "%s: rate limited by %s (HTTP 429) after "
					   "%u attempts; the registry asks to retry after %.40s%s",
					   what, host, attempts, resp->retry_after,
					   strspn(resp->retry_after, "0123456789") ==
							   strlen(resp->retry_after) ? " s" : "");
		return berth_failx(BERTH_EREGISTRY, "%s: rate limited by %s (HTTP 429) after %u "
				   "attempts", what, host, attempts);
	default:
		return berth_failx(BERTH_EREGISTRY, "%s: %s answered HTTP %ld%s%s", what, host,
				   resp->status, code,
				   resp->status >= 500 ? (attempts > 1 ? " (retries exhausted)" : "")
						       : "");
	}
}

int registry_get_manifest(struct registry *reg, const char *what, const char *reference,
			  struct http_resp *resp, char **digest)
{
	_cleanup_free_ char *accept = xasprintf("Accept: %s", manifest_accept);
	char got[DIGEST_LEN + 1];
	unsigned attempts = 0;
	int r;

	*digest = NULL;
	if (!accept)
		return -ENOMEM;
	for (;;) {
		_cleanup_free_ char *base = base_url(reg), *url = NULL;
		bool last = reg->hosts[reg->host_idx + 1] == NULL;

		if (!base || !(url = xasprintf("%s/v2/%s/manifests/%s", base, reg->repository,
					       reference)))
			return -ENOMEM;
		log_debug("GET %s", url);
		r = request(reg, url, accept, MANIFEST_MAX, resp, &attempts);
		if (r == 0 && resp->status == 200)
			break;
		if (last)
			return r < 0 ? berth_fail_context(r, "%s", what)
				     : registry_status_error(reg, what, resp, attempts);
		/* A mirror that fails or lacks the image: on to the next. */
		log_debug("mirror %s: %s; trying the next", registry_host(reg),
			  r < 0 ? berth_errmsg(r) : "no answer");
		reg->host_idx++;
		auth_free(reg->auth);
		reg->auth = auth_new(reg->cfg, registry_host(reg), reg->user, reg->repository);
		if (!reg->auth)
			return -ENOMEM;
	}
	r = sha256_buf(resp->body ? resp->body : "", resp->len, got);
	if (r < 0)
		return r;
	if (digest_valid(reference) && !streq(reference, got))
		return berth_failx(BERTH_EDIGEST, "%s: manifest digest mismatch: asked for %s, "
				   "%s served content with digest %s", what, reference,
				   registry_host(reg), got);
	*digest = strdup(got);
	return *digest ? 0 : -ENOMEM;
}
