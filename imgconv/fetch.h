/* Internals of imgconv's fetching side: digests, credentials, the registry
 * client, the blob store, the cache layout, the local sources and the
 * progress display.  Private to imgconv/: other rooms use imgconv.h. */
#ifndef BERTH_IMGCONV_FETCH_H
#define BERTH_IMGCONV_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/conf.h"
#include "imgconv/imgconv.h"

/* ---- digests (digest.c) ------------------------------------------------- */

#define DIGEST_LEN 71 /* "sha256:" + 64 hex */

/* "sha256:" followed by exactly 64 lowercase hex digits. */
bool digest_valid(const char *digest);
/* The hex part of a valid digest. */
static inline const char *digest_hex(const char *digest) { return digest + 7; }

struct sha256;
struct sha256 *sha256_new(void);
void sha256_free(struct sha256 *h);
int sha256_reset(struct sha256 *h);
int sha256_update(struct sha256 *h, const void *buf, size_t len);
/* out gets "sha256:<hex>"; the context is reset afterwards. */
int sha256_final(struct sha256 *h, char out[DIGEST_LEN + 1]);
int sha256_buf(const void *buf, size_t len, char out[DIGEST_LEN + 1]);
/* Hash a file; *size gets its length when size is not NULL. */
int sha256_file(const char *path, char out[DIGEST_LEN + 1], uint64_t *size);

/* ---- credentials (netrc.c) ---------------------------------------------- */

/* Look up login/password for host (tried as "host:port", then "host") in
 * the netrc-format file.  user: wanted login or NULL.  Returns 0 and fills
 * both (malloc'd; the caller wipes the password), -ENOENT when no entry or
 * no file, BERTH_EAUTH when the file is readable by group or others. */
int creds_lookup(const char *file, const char *host, const char *user, char **login,
		 char **password);

/* ---- manifests (manifest.c) --------------------------------------------- */

struct descriptor {
	char *media_type;
	char *digest;
	uint64_t size;
};

struct manifest {
	struct descriptor config;
	struct descriptor *layers;
	size_t n_layers;
};

/* The Accept header value for manifest GETs: all four types berth reads. */
extern const char manifest_accept[];

/* Is body (served as media_type, may be NULL) an index / manifest list? */
bool manifest_is_index(const char *media_type, const char *body, size_t len);
/* Parse an image manifest; what names the image in messages.  Rejects
 * schema 1, artifacts, foreign and non-distributable layers. */
int manifest_parse(const char *what, const char *media_type, const char *body, size_t len,
		   struct manifest *out);
void manifest_clear(struct manifest *m);
/* Pick the entry of an index for platform "os/arch[/variant]". */
int index_select(const char *what, const char *body, size_t len, const char *platform,
		 char **digest);
/* The platform to pull: from --arch (ARCH[/VARIANT] or OS/ARCH[/VARIANT])
 * or the host's. */
int platform_for(const char *arch_opt, char **out);

/* ---- registry client (registry.c, auth.c) ------------------------------- */

struct registry;
struct http_resp {
	long status;
	char *body;
	size_t len;
	char *content_type;
	char *www_auth;
	char *retry_after;
};
void http_resp_clear(struct http_resp *r);

/* Attempts per request (first try included) and the backoff between them. */
#define FETCH_ATTEMPTS 4
uint64_t retry_delay_ms(unsigned attempt, const char *retry_after);
/* Is this CURLcode a broken or stalled transfer worth another attempt?
 * (Refused connections and unknown hosts are not: they fail at once.) */
bool curl_transient(int code);

int registry_open(const struct berth_config *cfg, const struct imgconv_ref *ref,
		  struct registry **out);
void registry_free(struct registry *reg);
/* GET a manifest by tag or digest; *digest gets the body's sha256 (and is
 * checked against reference when that is a digest). */
int registry_get_manifest(struct registry *reg, const char *what, const char *reference,
			  struct http_resp *resp, char **digest);
/* A new easy handle for GET url with the session's options and auth. */
void *registry_easy(struct registry *reg, const char *url);
char *registry_blob_url(const struct registry *reg, const char *digest);
struct auth *registry_auth(struct registry *reg);
/* Message for a failed HTTP status, naming what; returns the code. */
int registry_status_error(const struct registry *reg, const char *what,
			  const struct http_resp *resp, unsigned attempts);
const char *registry_host(const struct registry *reg);
/* Set the current Authorization header on an easy handle; *slist (a
 * struct curl_slist *) lives until the transfer ends. */
int registry_set_auth(struct registry *reg, void *easy, void **slist);

/* auth.c */
struct auth;
struct auth *auth_new(const struct berth_config *cfg, const char *host, const char *user,
		      const char *repository);
void auth_free(struct auth *a);
/* "Authorization: ..." header line or NULL (anonymous). */
const char *auth_header(const struct auth *a);
/* Each new header gets a new generation; a request remembers the one it
 * was sent with. */
unsigned auth_generation(const struct auth *a);
/* A request sent with generation gen succeeded. */
void auth_worked(struct auth *a, unsigned gen);
/* A request sent with generation gen got 401 with this challenge: get a
 * (new) token or load Basic credentials.  0: retry the request with the
 * current header; < 0: give up (message names host and the remedy). */
int auth_challenge(struct auth *a, struct registry *reg, const char *www_authenticate,
		   unsigned gen);
/* For error messages: where credentials would go. */
const char *auth_credentials_file(const struct auth *a);
int registry_get_token(struct registry *reg, const char *url, const char *basic_header,
		       struct http_resp *resp);

/* ---- progress (progress.c) ---------------------------------------------- */

struct progress;
struct progress *progress_new(unsigned flags, const char *what);
void progress_free(struct progress *p);
void progress_step(struct progress *p, const char *fmt, ...) _printf_(2, 3);
/* n blobs to fetch, with their sizes and names ("config", "layer 1/3"). */
void progress_layers(struct progress *p, size_t n, const uint64_t *sizes,
		     const char *const *names);
void progress_layer_bytes(struct progress *p, size_t i, uint64_t have);
void progress_layer_done(struct progress *p, size_t i, bool cached);
void progress_end(struct progress *p);

/* ---- blob store (blobs.c) ----------------------------------------------- */

struct blob_want {
	const char *digest;
	uint64_t size;
	const char *what; /* "config", "layer 2/5" */
	char *path;       /* out: verified file in the cache */
};

/* For a caller that uses blobs while others still download (import.c). */
struct fetch_hooks {
	/* Blob i is verified and in the store, w[i].path set (called on the
	 * fetching thread, once per blob). */
	void (*ready)(void *data, size_t i);
	/* Polled at least every 100 ms: true stops the fetch (-ECANCELED). */
	bool (*stop)(void *data);
	void *data;
};

/* Download the blobs not yet in CACHE/blobs, max_conn at a time, started
 * in the order of w, each verified against its digest and renamed into
 * place.  hooks may be NULL. */
int blobs_fetch(struct registry *reg, const char *cache_dir, struct blob_want *w, size_t n,
		unsigned max_conn, struct progress *p, const struct fetch_hooks *hooks);
/* Move a verified temporary file into the blob store. */
int blob_publish(const char *cache_dir, const char *tmp, const char *digest, char **path);

/* ---- cache (cache.c) ---------------------------------------------------- */

struct image_record {
	char *digest;       /* manifest digest: the image's key */
	char *index_digest; /* index it was chosen from, or NULL */
	char *platform;
	char **references;
	char **blobs;       /* config, layers: kept by `cache prune` */
	uint64_t size;      /* of the .sqsh */
	int64_t created;    /* import time, seconds since the epoch */
	char *sqsh;         /* path (not stored) */
};
void image_record_clear(struct image_record *r);

char *cache_path_blob(const char *cache_dir, const char *digest);
char *cache_path(const struct berth_config *cfg, const char *sub, const char *digest,
		 const char *ext);
int cache_prepare(const struct berth_config *cfg);
/* Shared lock every import holds; `cache prune` takes it exclusively. */
int cache_lock(const struct berth_config *cfg, bool exclusive, bool wait);
int cache_lock_image(const struct berth_config *cfg, const char *digest);
/* Find a cached image whose digest or index digest (for platform) is
 * digest, or that has reference; 0 and *rec, or -ENOENT. */
int cache_find(const struct berth_config *cfg, const char *digest, const char *platform,
	       const char *reference, struct image_record *rec);
int cache_record_write(const struct berth_config *cfg, const struct image_record *rec);
int cache_records(const struct berth_config *cfg, struct image_record **out, size_t *n);

/* ---- import internals (import.c, archive.c, ocidir.c) -------------------- */

struct import_ctx {
	const struct berth_config *cfg;
	const struct imgconv_import_opts *opts;
	const struct imgconv_ref *ref;
	char *name;     /* canonical reference, for messages and the record */
	char *platform; /* wanted os/arch[/variant] */
	struct progress *progress;
	int lock_fd;    /* the image lock while converting */
	char *out_path; /* result */
};

/* After resolving to digest: a cache hit sets ctx->out_path and returns 1;
 * else the image lock is taken and 0 returned. */
int import_begin(struct import_ctx *ctx, const char *digest, const char *index_digest);
/* Convert the verified blobs and publish the image.  wait (optional) is
 * called before layer i (manifest order) is read and returns once its blob
 * is verified in place, or fails. */
int import_finish(struct import_ctx *ctx, const char *digest, const char *index_digest,
		  const struct manifest *m, const char *config_path, char *const *layer_paths,
		  int (*wait)(void *data, size_t i), void *wait_data);
int import_docker_archive(struct import_ctx *ctx);

/* An OCI layout's blobs, wherever they are (directory, tar). */
struct layout_ops {
	int (*read_blob)(void *data, const char *digest, size_t max, char **buf, size_t *len);
	void *data;
};
/* From index.json to the verified manifest of the wanted image. */
int layout_resolve(struct import_ctx *ctx, const char *what, const char *index, size_t len,
		   const struct layout_ops *ops, char **digest, char **index_digest,
		   char **body, size_t *body_len);
int import_oci_dir(struct import_ctx *ctx);

#endif
