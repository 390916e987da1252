/* The cache seen as a list of images: `berth images`, `berth rmi`,
 * `berth inspect REF` (cache lookups without network) and `berth cache
 * prune`.  Layout in cache.c and doc/cache.md. */
#include "config.h"
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/util.h"
#include "imgconv/fetch.h"

int imgconv_list_images(const struct berth_config *cfg, struct imgconv_image **out, size_t *n)
{
	struct image_record *recs;
	struct imgconv_image *imgs;
	int r = cache_records(cfg, &recs, n);

	*out = NULL;
	if (r < 0)
		return r;
	imgs = calloc(*n + 1, sizeof(*imgs));
	for (size_t i = 0; i < *n; i++) {
		if (imgs)
			imgs[i] = (struct imgconv_image){
				.digest = TAKE_PTR(recs[i].digest),
				.references = TAKE_PTR(recs[i].references),
				.size = recs[i].size,
				.created = recs[i].created,
				.path = TAKE_PTR(recs[i].sqsh),
			};
		image_record_clear(&recs[i]);
	}
	free(recs);
	if (!imgs)
		return -ENOMEM;
	*out = imgs;
	return 0;
}

void imgconv_free_images(struct imgconv_image *images, size_t n)
{
	for (size_t i = 0; images && i < n; i++) {
		free(images[i].digest);
		strv_free(images[i].references);
		free(images[i].path);
	}
	free(images);
}

/* "sha256:<hex>", "<hex>" or a hex prefix of 12+ digits. */
static bool digest_like(const char *s, const char **hex)
{
	size_t n;

	if (str_startswith(s, "sha256:"))
		s += 7;
	n = strspn(s, "0123456789abcdef");
	*hex = s;
	return n >= 12 && n <= 64 && s[n] == '\0';
}

static int find_by_digest(const struct berth_config *cfg, const char *text, const char *hex,
			  struct image_record *out)
{
	struct image_record *recs;
	size_t n, hit = SIZE_MAX, hits = 0;
	int r = cache_records(cfg, &recs, &n);

	memset(out, 0, sizeof(*out));
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (str_startswith(digest_hex(recs[i].digest), hex)) {
			hit = i;
			hits++;
		}
	for (size_t i = 0; i < n; i++) {
		if (i == hit && hits == 1)
			*out = recs[i];
		else
			image_record_clear(&recs[i]);
	}
	free(recs);
	if (hits > 1)
		return berth_failx(BERTH_EINVAL_INPUT, "'%s' matches %zu cached images; give more "
				   "digits", text, hits);
	return hits ? 0 : berth_failx(-ENOENT, "no cached image has digest '%s'", text);
}

static int find(const struct berth_config *cfg, const char *text, struct image_record *rec)
{
	struct imgconv_ref ref;
	_cleanup_free_ char *name = NULL;
	_cleanup_free_ char *platform = NULL;
	const char *hex;
	int r;

	if (digest_like(text, &hex))
		return find_by_digest(cfg, text, hex, rec);
	r = imgconv_ref_parse(text, cfg->default_registry, &ref);
	if (r < 0)
		return r;
	if (ref.kind != IMGCONV_REF_REGISTRY && ref.kind != IMGCONV_REF_DOCKER_ARCHIVE &&
	    ref.kind != IMGCONV_REF_OCI_DIR) {
		imgconv_ref_clear(&ref);
		return berth_failx(BERTH_EINVAL_INPUT, "'%s' is a file, not a cached image", text);
	}
	name = imgconv_ref_format(&ref);
	r = name ? platform_for(NULL, &platform) : -ENOMEM;
	if (r == 0)
		r = cache_find(cfg, ref.digest, platform, ref.digest ? NULL : name, rec);
	imgconv_ref_clear(&ref);
	if (r == -ENOENT)
		return berth_failx(-ENOENT, "image '%s' is not in the cache (import it with "
				   "'berth import %s')", text, text);
	return r;
}

int imgconv_find_cached(const struct berth_config *cfg, const char *text, char **path,
			char **digest)
{
	struct image_record rec;
	int r = find(cfg, text, &rec);

	if (r < 0)
		return r;
	*path = TAKE_PTR(rec.sqsh);
	if (digest)
		*digest = TAKE_PTR(rec.digest);
	image_record_clear(&rec);
	return 0;
}

int imgconv_remove_image(const struct berth_config *cfg, const char *text, char **digest)
{
	_cleanup_free_ char *json = NULL;
	struct image_record rec;
	int r = find(cfg, text, &rec), lock;

	if (r < 0)
		return r;
	/* Not while another process converts or publishes the same image. */
	lock = cache_lock_image(cfg, rec.digest);
	json = cache_path(cfg, "images", rec.digest, ".json");
	if (lock < 0)
		r = lock;
	else if (!json)
		r = -ENOMEM;
	else if (unlink(rec.sqsh) < 0 && errno != ENOENT)
		r = berth_fail(-errno, "remove '%s'", rec.sqsh);
	else if (unlink(json) < 0 && errno != ENOENT)
		r = berth_fail(-errno, "remove '%s'", json);
	if (lock >= 0)
		close(lock);
	if (r == 0 && digest)
		*digest = TAKE_PTR(rec.digest);
	image_record_clear(&rec);
	return r;
}

struct prune {
	size_t files;
	uint64_t bytes;
};

static int remove_file(struct prune *p, const char *dir, const char *name)
{
	_cleanup_free_ char *path = path_join(dir, name);
	struct stat st;

	if (!path)
		return -ENOMEM;
	if (lstat(path, &st) < 0)
		return 0;
	if (S_ISDIR(st.st_mode) ? rm_rf(path) < 0 : unlink(path) < 0)
		return berth_fail(-errno, "remove '%s'", path);
	p->files++;
	p->bytes += (uint64_t)st.st_size;
	return 0;
}

/* Remove every entry of sub/ for which keep() says no. */
static int sweep(const struct berth_config *cfg, const char *sub, struct prune *p,
		 bool (*keep)(const struct berth_config *, const char *, char **), char **live)
{
	_cleanup_free_ char *dir = path_join(cfg->cache_dir, sub);
	_cleanup_closedir_ DIR *d = dir ? opendir(dir) : NULL;
	struct dirent *de;
	int r = 0;

	if (!dir)
		return -ENOMEM;
	if (!d)
		return errno == ENOENT ? 0 : berth_fail(-errno, "open '%s'", dir);
	while (r == 0 && (de = readdir(d)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, "..") &&
		    !(keep && keep(cfg, de->d_name, live)))
			r = remove_file(p, dir, de->d_name);
	return r;
}

static bool keep_blob(const struct berth_config *cfg, const char *name, char **live)
{
	for (char **l = live; l && *l; l++)
		if (streq(digest_hex(*l), name))
			return true;
	return false;
}

/* images/: a .sqsh and its .json together, nothing else. */
static bool keep_image(const struct berth_config *cfg, const char *name, char **live)
{
	_cleanup_free_ char *other = NULL;
	size_t n = strlen(name);

	if (!str_startswith(name, "sha256-"))
		return false;
	if (str_endswith(name, ".sqsh"))
		other = xasprintf("%s/images/%.*s.json", cfg->cache_dir, (int)(n - 5), name);
	else if (str_endswith(name, ".json"))
		other = xasprintf("%s/images/%.*s.sqsh", cfg->cache_dir, (int)(n - 5), name);
	return other && access(other, F_OK) == 0;
}

static bool keep_lock(const struct berth_config *cfg, const char *name, char **live)
{
	return streq(name, "cache.lock");
}

int imgconv_prune(const struct berth_config *cfg, size_t *files, uint64_t *bytes)
{
	struct image_record *recs = NULL;
	struct prune p = {0};
	char **live = NULL;
	size_t n = 0;
	int r, fd;

	*files = 0;
	*bytes = 0;
	r = cache_prepare(cfg);
	if (r < 0)
		return r;
	/* Exclusive: no import is downloading or converting meanwhile. */
	fd = cache_lock(cfg, true, false);
	if (fd < 0)
		return fd;
	r = sweep(cfg, "images", &p, keep_image, NULL);
	if (r == 0)
		r = cache_records(cfg, &recs, &n);
	for (size_t i = 0; r == 0 && i < n; i++)
		for (char **b = recs[i].blobs; r == 0 && b && *b; b++)
			r = strv_push(&live, *b);
	if (r == 0)
		r = sweep(cfg, "blobs/sha256", &p, keep_blob, live);
	if (r == 0)
		r = sweep(cfg, "tmp", &p, NULL, NULL);
	if (r == 0)
		r = sweep(cfg, "locks", &p, keep_lock, NULL);
	for (size_t i = 0; i < n; i++)
		image_record_clear(&recs[i]);
	free(recs);
	strv_free(live);
	close(fd);
	*files = p.files;
	*bytes = p.bytes;
	return r;
}
