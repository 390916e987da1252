/* The cache directory (doc/cache.md):
 *   blobs/sha256/<hex>        verified blobs
 *   images/sha256-<hex>.sqsh  one squashfs per manifest digest
 *   images/sha256-<hex>.json  its record: references, digest, blobs, size, date
 *   tmp/                      partial downloads and conversions
 *   locks/                    flock files: cache.lock, sha256-<hex>.lock
 * The record is written before the .sqsh is renamed into place, so every
 * .sqsh has one; a .sqsh is only ever created by rename, so it is whole. */
#include "config.h"
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <jansson.h>
#include "common/error.h"
#include "common/lock.h"
#include "common/util.h"
#include "imgconv/fetch.h"

char *cache_path_blob(const char *cache_dir, const char *digest)
{
	return xasprintf("%s/blobs/sha256/%s", cache_dir, digest_hex(digest));
}

char *cache_path(const struct berth_config *cfg, const char *sub, const char *digest,
		 const char *ext)
{
	return xasprintf("%s/%s/sha256-%s%s", cfg->cache_dir, sub, digest_hex(digest), ext);
}

int cache_prepare(const struct berth_config *cfg)
{
	static const char *const subs[] = {"blobs/sha256", "images", "tmp", "locks"};

	if (!cfg->cache_dir || !*cfg->cache_dir)
		return berth_failx(BERTH_ECONFIG, "cache_dir is not set");
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		_cleanup_free_ char *d = path_join(cfg->cache_dir, subs[i]);
		int r;

		if (!d)
			return -ENOMEM;
		r = mkdir_p(d, 0700);
		if (r < 0)
			return berth_fail(r, "create cache directory '%s'", d);
	}
	return 0;
}

int cache_lock(const struct berth_config *cfg, bool exclusive, bool wait)
{
	_cleanup_free_ char *p = xasprintf("%s/locks/cache.lock", cfg->cache_dir);
	int fd;

	if (!p)
		return -ENOMEM;
	fd = lock_path(p, !exclusive, wait);
	if (fd == -EWOULDBLOCK)
		return berth_failx(-EBUSY, "cache '%s' is in use by an import; try again when it "
				   "is done", cfg->cache_dir);
	return fd < 0 ? berth_fail(fd, "lock '%s'", p) : fd;
}

int cache_lock_image(const struct berth_config *cfg, const char *digest)
{
	_cleanup_free_ char *p = cache_path(cfg, "locks", digest, ".lock");
	int fd;

	if (!p)
		return -ENOMEM;
	fd = lock_path(p, false, true);
	return fd < 0 ? berth_fail(fd, "lock '%s'", p) : fd;
}

void image_record_clear(struct image_record *r)
{
	free(r->digest);
	free(r->index_digest);
	free(r->platform);
	strv_free(r->references);
	strv_free(r->blobs);
	free(r->sqsh);
	memset(r, 0, sizeof(*r));
}

static json_t *strv_json(char *const *v)
{
	json_t *a = json_array();

	for (; a && v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

static char **json_strv(json_t *a)
{
	char **v = NULL;
	size_t i;
	json_t *e;

	json_array_foreach(a, i, e)
		if (json_is_string(e) && strv_push(&v, json_string_value(e)) < 0)
			break;
	return v;
}

int cache_record_write(const struct berth_config *cfg, const struct image_record *rec)
{
	_cleanup_free_ char *path = cache_path(cfg, "images", rec->digest, ".json");
	char when[32];
	struct tm tm;
	time_t t = (time_t)rec->created;
	json_t *o;
	char *text;
	int r;

	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	o = json_pack("{s:s, s:s?, s:s?, s:o, s:o, s:I, s:s}", "digest", rec->digest,
		      "index_digest", rec->index_digest, "platform", rec->platform,
		      "references", strv_json(rec->references), "blobs", strv_json(rec->blobs),
		      "size", (json_int_t)rec->size, "created", when);
	text = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	if (!path || !text) {
		free(text);
		return -ENOMEM;
	}
	r = write_file_atomic(path, text, strlen(text), 0600);
	free(text);
	return r < 0 ? berth_fail(r, "write '%s'", path) : 0;
}

static int record_read(const char *path, struct image_record *rec)
{
	json_t *o = json_load_file(path, 0, NULL);
	const char *digest = json_string_value(json_object_get(o, "digest"));
	const char *idx = json_string_value(json_object_get(o, "index_digest"));
	const char *plat = json_string_value(json_object_get(o, "platform"));
	const char *when = json_string_value(json_object_get(o, "created"));
	struct tm tm = {0};

	memset(rec, 0, sizeof(*rec));
	if (!digest_valid(digest)) {
		json_decref(o);
		return BERTH_EFORMAT;
	}
	rec->digest = strdup(digest);
	rec->index_digest = digest_valid(idx) ? strdup(idx) : NULL;
	rec->platform = plat ? strdup(plat) : NULL;
	rec->references = json_strv(json_object_get(o, "references"));
	rec->blobs = json_strv(json_object_get(o, "blobs"));
	rec->size = (uint64_t)json_integer_value(json_object_get(o, "size"));
	if (when && strptime(when, "%Y-%m-%dT%H:%M:%SZ", &tm))
		rec->created = (int64_t)timegm(&tm);
	json_decref(o);
	return rec->digest ? 0 : -ENOMEM;
}

/* Every record whose .sqsh exists, sorted newest first. */
int cache_records(const struct berth_config *cfg, struct image_record **out, size_t *n)
{
	_cleanup_free_ char *dir = path_join(cfg->cache_dir, "images");
	_cleanup_closedir_ DIR *d = dir ? opendir(dir) : NULL;
	struct image_record *recs = NULL;
	struct dirent *de;
	size_t cnt = 0;

	*out = NULL;
	*n = 0;
	if (!dir)
		return -ENOMEM;
	if (!d)
		return errno == ENOENT ? 0 : berth_fail(-errno, "open '%s'", dir);
	while ((de = readdir(d))) {
		_cleanup_free_ char *p = NULL, *sq = NULL;
		struct image_record rec, *nr;

		if (!str_startswith(de->d_name, "sha256-") || !str_endswith(de->d_name, ".json"))
			continue;
		p = path_join(dir, de->d_name);
		if (!p || record_read(p, &rec) < 0)
			continue;
		sq = cache_path(cfg, "images", rec.digest, ".sqsh");
		if (!sq || access(sq, F_OK) < 0 || !(nr = realloc(recs, (cnt + 1) * sizeof(*recs)))) {
			image_record_clear(&rec);
			continue;
		}
		rec.sqsh = TAKE_PTR(sq);
		recs = nr;
		recs[cnt++] = rec;
	}
	for (size_t i = 1; i < cnt; i++) /* insertion sort: a handful of images */
		for (size_t j = i; j > 0 && recs[j].created > recs[j - 1].created; j--) {
			struct image_record t = recs[j];

			recs[j] = recs[j - 1];
			recs[j - 1] = t;
		}
	*out = recs;
	*n = cnt;
	return 0;
}

int cache_find(const struct berth_config *cfg, const char *digest, const char *platform,
	       const char *reference, struct image_record *rec)
{
	struct image_record *recs;
	size_t n, hit = SIZE_MAX;
	int r = cache_records(cfg, &recs, &n);

	memset(rec, 0, sizeof(*rec));
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && hit == SIZE_MAX; i++) {
		const struct image_record *c = &recs[i];

		if (digest && (streq(c->digest, digest) ||
			       (c->index_digest && streq(c->index_digest, digest) &&
				(!platform || (c->platform && streq(c->platform, platform))))))
			hit = i;
		else if (reference && strv_contains(c->references, reference))
			hit = i;
	}
	for (size_t i = 0; i < n; i++) {
		if (i == hit)
			*rec = recs[i];
		else
			image_record_clear(&recs[i]);
	}
	free(recs);
	return hit == SIZE_MAX ? -ENOENT : 0;
}
