/* Registry authentication: anonymous first; on 401 the WWW-Authenticate
 * challenge decides (RFC 6750 / Docker "token authentication"):
 *   Bearer realm=...,service=...,scope=...  -> GET a token from the realm,
 *       with Basic credentials from the credentials file when it has some;
 *   Basic realm=...  -> send the credentials file's login and password.
 * Tokens are reused by every request of the import and fetched again when a
 * request with a token that used to work gets 401 (expiry).  Secrets stay
 * in this file's buffers: no message or log line carries one. */
#include "config.h"
#include <errno.h>
#include <string.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "imgconv/fetch.h"

struct auth {
	const struct berth_config *cfg;
	char *host, *user, *repository;
	char *header;  /* current "Authorization: ..." (secret) */
	char *basic;   /* "Authorization: Basic ..." from the credentials (secret) */
	bool creds_loaded;
	unsigned gen;    /* bumped with every new header */
	unsigned gen_ok; /* newest generation that worked (0: none) */
};

static void wipe(char **s)
{
	if (*s) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

struct auth *auth_new(const struct berth_config *cfg, const char *host, const char *user,
		      const char *repository)
{
	struct auth *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->cfg = cfg;
	a->host = strdup(host);
	a->user = user ? strdup(user) : NULL;
	a->repository = strdup(repository);
	if (!a->host || !a->repository || (user && !a->user)) {
		auth_free(a);
		return NULL;
	}
	return a;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	wipe(&a->header);
	wipe(&a->basic);
	free(a->host);
	free(a->user);
	free(a->repository);
	free(a);
}

const char *auth_header(const struct auth *a)
{
	return a->header;
}

unsigned auth_generation(const struct auth *a)
{
	return a->gen;
}

void auth_worked(struct auth *a, unsigned gen)
{
	if (gen > a->gen_ok)
		a->gen_ok = gen;
}

const char *auth_credentials_file(const struct auth *a)
{
	return a->cfg->credentials_file ? a->cfg->credentials_file : "the credentials file";
}

static void set_header(struct auth *a, char *h)
{
	wipe(&a->header);
	a->header = h;
	a->gen++;
}

/* Load "Authorization: Basic base64(login:password)" once.  A missing
 * file or entry is not an error (anonymous); a world-readable one is. */
static int load_basic(struct auth *a)
{
	char *login = NULL, *password = NULL, *pair = NULL;
	unsigned char *b64 = NULL;
	size_t n;
	int r;

	if (a->creds_loaded)
		return 0;
	a->creds_loaded = true;
	r = creds_lookup(a->cfg->credentials_file, a->host, a->user, &login, &password);
	if (r == -ENOENT && streq(a->host, "registry-1.docker.io"))
		r = creds_lookup(a->cfg->credentials_file, "docker.io", a->user, &login, &password);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	pair = xasprintf("%s:%s", login, password);
	n = pair ? strlen(pair) : 0;
	b64 = pair ? malloc(4 * ((n + 2) / 3) + 1) : NULL;
	if (b64) {
		EVP_EncodeBlock(b64, (const unsigned char *)pair, (int)n);
		a->basic = xasprintf("Authorization: Basic %s", b64);
		explicit_bzero(b64, strlen((char *)b64));
	}
	wipe(&login);
	wipe(&password);
	wipe(&pair);
	free(b64);
	log_debug("using credentials for %s from %s", a->host, a->cfg->credentials_file);
	return a->basic ? 0 : -ENOMEM;
}

/* Parse 'Scheme k="v", k2=v2' into scheme and the three parameters. */
static int parse_challenge(const char *h, char **scheme, char **realm, char **service,
			   char **scope)
{
	const char *p = h + strcspn(h, " \t");

	*scheme = strndup(h, (size_t)(p - h));
	*realm = *service = *scope = NULL;
	while (*scheme && *p) {
		const char *k, *eq;
		char *v, *o;

		p += strspn(p, " \t,");
		k = p;
		eq = strchr(p, '=');
		if (!eq)
			break;
		p = eq + 1;
		v = o = malloc(strlen(p) + 1);
		if (!v)
			return -ENOMEM;
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				*o++ = *p;
			}
			if (*p)
				p++;
		} else {
			while (*p && *p != ',')
				*o++ = *p++;
		}
		*o = '\0';
		if (eq - k == 5 && strncasecmp(k, "realm", 5) == 0 && !*realm)
			*realm = v;
		else if (eq - k == 7 && strncasecmp(k, "service", 7) == 0 && !*service)
			*service = v;
		else if (eq - k == 5 && strncasecmp(k, "scope", 5) == 0 && !*scope)
			*scope = v;
		else
			free(v);
	}
	return *scheme ? 0 : -ENOMEM;
}

static char *token_url(const struct auth *a, const char *realm,
		       const char *service, const char *scope)
{
	CURL *e = curl_easy_init();
	_cleanup_free_ char *defscope = xasprintf("repository:%s:pull", a->repository);
	char *s = NULL, *sc = NULL, *url = NULL;

	if (e && defscope) {
		s = service ? curl_easy_escape(e, service, 0) : NULL;
		sc = curl_easy_escape(e, scope ? scope : defscope, 0);
		if (sc && (s || !service))
			url = xasprintf("%s%s%s%s&scope=%s", realm, strchr(realm, '?') ? "&" : "?",
					s ? "service=" : "", s ? s : "", sc);
	}
	curl_free(s);
	curl_free(sc);
	curl_easy_cleanup(e);
	return url;
}

static int fetch_token(struct auth *a, struct registry *reg, const char *realm,
		       const char *service, const char *scope)
{
	_cleanup_free_ char *url = NULL;
	struct http_resp resp = {0};
	json_t *root = NULL;
	const char *tok;
	int r;

	if (!str_startswith(realm, "https://") && !str_startswith(realm, "http://"))
		return berth_failx(BERTH_EAUTH, "%s: token realm '%.100s' is not an http(s) URL",
				   a->host, realm);
	r = load_basic(a);
	if (r < 0)
		return r;
	url = token_url(a, realm, service, scope);
	if (!url)
		return -ENOMEM;
	log_debug("token from %s", realm);
	r = registry_get_token(reg, url, a->basic, &resp);
	if (r < 0)
		goto out;
	if (resp.status == 401 || resp.status == 403) {
		r = a->basic ? berth_failx(BERTH_EAUTH, "%s: the token server refused the "
					   "credentials in %s (HTTP %ld)", a->host,
					   auth_credentials_file(a), resp.status)
			     : berth_failx(BERTH_EAUTH, "%s: the token server wants credentials "
					   "(HTTP %ld); add 'machine %s login USER password SECRET' "
					   "to %s (mode 0600)", a->host, resp.status, a->host,
					   auth_credentials_file(a));
		goto out;
	}
	root = resp.status == 200 ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
	tok = json_string_value(json_object_get(root, "token"));
	if (!tok)
		tok = json_string_value(json_object_get(root, "access_token"));
	if (!tok || !*tok || strpbrk(tok, "\r\n")) {
		r = berth_failx(BERTH_EAUTH, "%s: the token server answered HTTP %ld without a "
				"usable token", a->host, resp.status);
		goto out;
	}
	set_header(a, xasprintf("Authorization: Bearer %s", tok));
	r = a->header ? 0 : -ENOMEM;
out:
	json_decref(root);
	if (resp.body)
		explicit_bzero(resp.body, resp.len);
	http_resp_clear(&resp);
	return r;
}

static int denied(const struct auth *a)
{
	if (a->basic)
		return berth_failx(BERTH_EAUTH, "access denied by %s with the credentials from %s "
				   "(wrong login or password, or no access to '%s')", a->host,
				   auth_credentials_file(a), a->repository);
	return berth_failx(BERTH_EAUTH, "access denied by %s: authentication required; add "
			   "'machine %s login USER password SECRET' to %s (mode 0600)", a->host,
			   a->host, auth_credentials_file(a));
}

int auth_challenge(struct auth *a, struct registry *reg, const char *www, unsigned gen)
{
	char *scheme = NULL, *realm = NULL, *service = NULL, *scope = NULL;
	int r;

	/* Another request already replaced the header this one was sent with. */
	if (gen < a->gen)
		return 0;
	/* A header that never worked got a 401: refreshing would not help. */
	if (a->header && a->gen_ok < a->gen)
		return denied(a);
	if (!www || !*www)
		return berth_failx(BERTH_EAUTH, "%s answered 401 without a WWW-Authenticate "
				   "challenge", a->host);
	r = parse_challenge(www, &scheme, &realm, &service, &scope);
	if (r < 0)
		goto out;
	if (strcasecmp(scheme, "Bearer") == 0 && realm) {
		r = fetch_token(a, reg, realm, service, scope);
	} else if (strcasecmp(scheme, "Basic") == 0) {
		r = load_basic(a);
		if (r == 0 && !a->basic)
			r = denied(a);
		else if (r == 0)
			set_header(a, strdup(a->basic));
		if (r == 0 && !a->header)
			r = -ENOMEM;
	} else {
		r = berth_failx(BERTH_EAUTH, "%s asks for authentication scheme '%.20s', which "
				"berth does not support", a->host, scheme);
	}
out:
	free(scheme);
	free(realm);
	free(service);
	free(scope);
	return r;
}
