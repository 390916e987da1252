/* /.berth/image.json: what berth records about an image inside its
 * squashfs, so a copied .sqsh file is self-contained.
 *
 *   {"reference": "...", "manifest_digest": "sha256:...", "config": {...}}
 *
 * Written with sorted keys and fixed formatting so the same image gives the
 * same bytes; read back with libsquashfs, without mounting. */
#include "config.h"
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <sqfs/compressor.h>
#include <sqfs/data_reader.h>
#include <sqfs/dir_reader.h>
#include <sqfs/error.h>
#include <sqfs/inode.h>
#include <sqfs/io.h>
#include <sqfs/super.h>
#include "common/error.h"
#include "imgconv/imagejson.h"
#include "imgconv/imgconv.h"
#include "imgconv/sqfs_out.h"

/* Larger than any real image config; bounds what a hostile file costs. */
#define IMAGE_JSON_MAX (16u << 20)

/* RFC 3339 ("2024-05-01T12:00:00.123456789Z", "...+02:00") to seconds. */
static bool parse_rfc3339(const char *s, int64_t *out)
{
	struct tm tm = { 0 };
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	long offset = 0;
	time_t t;

	if (!p)
		return false;
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == '+' || *p == '-') {
		int hh, mm;

		if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
			return false;
		offset = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
		p += 6;
	} else if (*p == 'Z' || *p == 'z') {
		p++;
	}
	if (*p)
		return false;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	*out = (int64_t)t - offset;
	return true;
}

int imagejson_build(const char *config_json, size_t config_len,
		    const struct imgconv_convert_opts *opts, char **out, size_t *out_len,
		    uint32_t *created)
{
	json_t *config, *root, *c;
	json_error_t jerr;
	int64_t t;
	char *text;

	config = json_loadb(config_json ? config_json : "", config_len, JSON_REJECT_DUPLICATES,
			    &jerr);
	if (!config)
		return berth_failx(BERTH_EFORMAT, "image config: bad JSON at line %d: %s",
				   jerr.line, jerr.text);
	if (!json_is_object(config)) {
		json_decref(config);
		return berth_failx(BERTH_EFORMAT, "image config: not a JSON object");
	}
	*created = 0;
	c = json_object_get(config, "created");
	if (json_is_string(c) && parse_rfc3339(json_string_value(c), &t))
		*created = t < 0 ? 0 : t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;

	root = json_object();
	if (!root || json_object_set_new(root, "reference",
					 opts && opts->reference ? json_string(opts->reference)
								 : json_null()) < 0 ||
	    json_object_set_new(root, "manifest_digest",
				opts && opts->manifest_digest ? json_string(opts->manifest_digest)
							      : json_null()) < 0 ||
	    json_object_set_new(root, "config", config) < 0) {
		json_decref(root);
		return berth_fail(-ENOMEM, "image.json");
	}
	text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(root);
	if (!text)
		return berth_failx(BERTH_EINVAL_INPUT,
				   "image.json: reference or digest is not valid UTF-8");
	*out_len = strlen(text) + 1;
	*out = realloc(text, *out_len + 1);
	if (!*out) {
		free(text);
		return berth_fail(-ENOMEM, "image.json");
	}
	(*out)[*out_len - 1] = '\n';
	(*out)[*out_len] = '\0';
	return 0;
}

struct sqreader {
	sqfs_file_t *file;
	sqfs_super_t super;
	sqfs_compressor_t *cmp;
	sqfs_dir_reader_t *dir;
	sqfs_data_reader_t *data;
	sqfs_inode_generic_t *root, *inode;
};

static void sqreader_close(struct sqreader *r)
{
	sqfs_free(r->inode);
	sqfs_free(r->root);
	sqfs_destroy(r->data);
	sqfs_destroy(r->dir);
	sqfs_destroy(r->cmp);
	sqfs_destroy(r->file);
}

static int sqreader_open(struct sqreader *r, const char *path)
{
	sqfs_compressor_config_t cfg;
	int e;

	e = imgconv_check_squashfs(path);
	if (e < 0)
		return e;
	r->file = sqfs_open_file(path, SQFS_FILE_OPEN_READ_ONLY);
	if (!r->file)
		return berth_fail(-errno, "open '%s'", path);
	e = sqfs_super_read(&r->super, r->file);
	if (e == 0)
		e = sqfs_compressor_config_init(&cfg, (SQFS_COMPRESSOR)r->super.compression_id,
						r->super.block_size, SQFS_COMP_FLAG_UNCOMPRESS);
	if (e == 0)
		e = sqfs_compressor_create(&cfg, &r->cmp);
	if (e == 0 && (r->super.flags & SQFS_FLAG_COMPRESSOR_OPTIONS))
		e = r->cmp->read_options(r->cmp, r->file);
	if (e != 0)
		return sqfs_fail(e, errno, "read '%s'", path);
	r->dir = sqfs_dir_reader_create(&r->super, r->cmp, r->file, 0);
	r->data = sqfs_data_reader_create(r->file, r->super.block_size, r->cmp, 0);
	if (!r->dir || !r->data)
		return berth_fail(-ENOMEM, "read '%s'", path);
	e = sqfs_data_reader_load_fragment_table(r->data, &r->super);
	if (e == 0)
		e = sqfs_dir_reader_get_root_inode(r->dir, &r->root);
	if (e != 0)
		return sqfs_fail(e, errno, "read '%s'", path);
	return 0;
}

/* Read the regular file at r->inode, of at most max bytes, into *buf
 * (NUL-terminated).  SQFS_ERROR_NOT_FILE when it is something else or too
 * large. */
static int read_inode(struct sqreader *r, sqfs_u64 max, char **buf, sqfs_u64 *size)
{
	sqfs_s32 got;

	*buf = NULL;
	if (sqfs_inode_get_file_size(r->inode, size) != 0 || *size > max)
		return SQFS_ERROR_NOT_FILE;
	*buf = malloc(*size + 1);
	if (!*buf)
		return SQFS_ERROR_ALLOC;
	got = *size ? sqfs_data_reader_read(r->data, r->inode, 0, *buf, (sqfs_u32)*size) : 0;
	if (got < 0 || (sqfs_u64)got != *size) {
		free(*buf);
		*buf = NULL;
		return got < 0 ? got : SQFS_ERROR_CORRUPTED;
	}
	(*buf)[*size] = '\0';
	return 0;
}

/* The same for the file at path (no symlink followed); SQFS_ERROR_NO_ENTRY
 * when missing. */
static int read_small(struct sqreader *r, const char *path, sqfs_u64 max, char **buf,
		      sqfs_u64 *size)
{
	int e;

	sqfs_free(r->inode);
	r->inode = NULL;
	*buf = NULL;
	e = sqfs_dir_reader_find_by_path(r->dir, r->root, path, &r->inode);
	return e != 0 ? e : read_inode(r, max, buf, size);
}

/* Does the directory inode list no entries? */
static bool dir_empty(struct sqreader *r, const sqfs_inode_generic_t *inode)
{
	sqfs_dir_entry_t *ent = NULL;
	int e = sqfs_dir_reader_open_dir(r->dir, inode, 0);

	if (e == 0)
		e = sqfs_dir_reader_read(r->dir, &ent);
	sqfs_free(ent);
	return e > 0;
}

int imgconv_probe(const char *sqsh_path, struct imgconv_entry *v, size_t n)
{
	struct sqreader r = { 0 };
	int e = sqreader_open(&r, sqsh_path);

	for (size_t i = 0; i < n; i++) {
		v[i].mode = 0;
		v[i].empty = false;
		v[i].content = NULL;
	}
	for (size_t i = 0; e == 0 && i < n; i++) {
		sqfs_u64 size;
		int g;

		sqfs_free(r.inode);
		r.inode = NULL;
		if (sqfs_dir_reader_find_by_path(r.dir, r.root, v[i].path, &r.inode) != 0)
			continue;
		v[i].mode = r.inode->base.mode;
		if (S_ISDIR(v[i].mode))
			v[i].empty = dir_empty(&r, r.inode);
		if (!S_ISREG(v[i].mode) || !v[i].max)
			continue;
		g = read_inode(&r, v[i].max, &v[i].content, &size);
		if (g == SQFS_ERROR_ALLOC)
			e = berth_fail(-ENOMEM, "image '%s'", sqsh_path);
	}
	sqreader_close(&r);
	if (e < 0)
		for (size_t i = 0; i < n; i++) {
			free(v[i].content);
			v[i].content = NULL;
		}
	return e;
}

int imgconv_read_image_json(const char *sqsh_path, char **json, size_t *len)
{
	struct sqreader r = { 0 };
	sqfs_u64 size = 0;
	json_t *parsed;
	json_error_t jerr;
	char *buf = NULL;
	int e;

	e = sqreader_open(&r, sqsh_path);
	if (e < 0)
		goto out;
	e = read_small(&r, IMAGE_JSON_PATH, IMAGE_JSON_MAX, &buf, &size);
	if (e == SQFS_ERROR_NO_ENTRY) {
		e = berth_failx(BERTH_EFORMAT, "image '%s': no /%s (not made by berth?)", sqsh_path,
				IMAGE_JSON_PATH);
		goto out;
	}
	if (e == SQFS_ERROR_NOT_FILE) {
		e = berth_failx(BERTH_EFORMAT, "image '%s': /%s is not a regular file of sane size",
				sqsh_path, IMAGE_JSON_PATH);
		goto out;
	}
	if (e != 0) {
		e = sqfs_fail(e, errno, "image '%s': read /%s", sqsh_path, IMAGE_JSON_PATH);
		goto out;
	}
	parsed = json_loadb(buf, size, 0, &jerr);
	if (!json_is_object(parsed)) {
		json_decref(parsed);
		e = berth_failx(BERTH_EFORMAT, "image '%s': /%s is not a JSON object", sqsh_path,
				IMAGE_JSON_PATH);
		goto out;
	}
	json_decref(parsed);
	*json = buf;
	*len = size;
	buf = NULL;
	e = 0;
out:
	free(buf);
	sqreader_close(&r);
	return e;
}
