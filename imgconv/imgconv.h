/* imgconv: from an image reference to one squashfs file.
 *
 * The only door into imgconv/.  Everything here returns 0 or a negative
 * code (see common/error.h) with a one-line message recorded by
 * berth_fail(); nothing exits.
 *
 * Cache layout under cfg->cache_dir (see doc/cache.md):
 *   blobs/sha256/<hex>          verified blobs (configs, layers)
 *   images/<algo>-<hex>.sqsh    one squashfs per manifest digest
 *   images/<algo>-<hex>.json    record: references, digest, blobs, size, created
 *   tmp/                        partial downloads and outputs (same filesystem)
 *   locks/                      flock files: cache.lock, <algo>-<hex>.lock
 */
#ifndef BERTH_IMGCONV_H
#define BERTH_IMGCONV_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "common/conf.h"

/* ---- references ------------------------------------------------------- */

enum imgconv_ref_kind {
	IMGCONV_REF_REGISTRY,       /* docker://..., IMAGE[:TAG], REG/IMAGE@sha256:... */
	IMGCONV_REF_SQUASHFS,       /* a path to an existing .sqsh / .squashfs file */
	IMGCONV_REF_DOCKER_ARCHIVE, /* docker-archive://FILE.tar */
	IMGCONV_REF_OCI_DIR,        /* oci-dir://DIR[:TAG] */
};

struct imgconv_ref {
	enum imgconv_ref_kind kind;
	char *user;       /* USER@ in enroot form, or NULL */
	char *registry;   /* "registry-1.docker.io", "127.0.0.1:5000" */
	char *repository; /* "library/ubuntu" */
	char *tag;        /* "latest" when neither tag nor digest given */
	char *digest;     /* "sha256:<64 hex>" or NULL */
	char *path;       /* file or directory for the local kinds */
};

/* Parse any reference form berth accepts (DESIGN.md "Data flow" 1).
 * default_registry: used for short names (Docker Hub gets "library/"). */
int imgconv_ref_parse(const char *text, const char *default_registry,
		      struct imgconv_ref *out);
void imgconv_ref_clear(struct imgconv_ref *ref);
/* Canonical text: "registry/repo:tag", "registry/repo@sha256:..." */
char *imgconv_ref_format(const struct imgconv_ref *ref);

/* ---- import ----------------------------------------------------------- */

enum imgconv_import_flags {
	IMGCONV_QUIET = 1 << 0,    /* no progress output */
	IMGCONV_PROGRESS = 1 << 1, /* redraw progress on a terminal */
	IMGCONV_ALL_FLAGS = (1 << 2) - 1,
};

struct imgconv_import_opts {
	const char *output; /* write here instead of the cache (NULL: cache) */
	const char *arch;   /* NULL: the host's */
	unsigned flags;
};

/* Resolve text to a squashfs path, importing into the cache when needed.
 * A .sqsh path is returned as is (checked to be a squashfs).  *out_path is
 * malloc'd.  Concurrent imports of one image do the work once. */
int imgconv_import(const struct berth_config *cfg, const char *text,
		   const struct imgconv_import_opts *opts, char **out_path);

/* ---- the image cache (`berth images`, `rmi`, `cache prune`, `inspect`) - */

struct imgconv_image {
	char *digest;      /* manifest digest (config digest for docker-archive) */
	char **references; /* canonical references that resolved to it */
	uint64_t size;     /* bytes of the .sqsh */
	int64_t created;   /* import time, seconds since the epoch */
	char *path;        /* the .sqsh */
};

/* Cached images, newest first. */
int imgconv_list_images(const struct berth_config *cfg, struct imgconv_image **out, size_t *n);
void imgconv_free_images(struct imgconv_image *images, size_t n);

/* The cached squashfs for a reference or digest (full, or a unique hex
 * prefix of at least 12 digits), without network: -ENOENT when absent. */
int imgconv_find_cached(const struct berth_config *cfg, const char *text, char **path,
			char **digest);

/* Remove the cached image named by text (as imgconv_find_cached);
 * *digest gets its digest.  Its blobs stay until imgconv_prune. */
int imgconv_remove_image(const struct berth_config *cfg, const char *text, char **digest);

/* Remove blobs no cached image uses and what killed imports left behind.
 * -EBUSY while an import runs. */
int imgconv_prune(const struct berth_config *cfg, size_t *files, uint64_t *bytes);

/* ---- conversion (layers -> squashfs) ---------------------------------- */

struct imgconv_layer {
	const char *path;       /* blob file on disk */
	const char *media_type; /* OCI / Docker media type; NULL: sniff */
};

struct imgconv_convert_opts {
	const char *compression;    /* lz4 | zstd | gzip | xz (NULL: lz4) */
	unsigned compression_level; /* 0: default; lz4: 1 selects LZ4-HC */
	unsigned threads;           /* 0: all cores */
	const char *reference;      /* recorded in /.berth/image.json */
	const char *manifest_digest;
};

/* Flatten layers (in order, whiteouts applied) into a squashfs at out_path,
 * with config_json (the image config blob) stored as /.berth/image.json.
 * Writes to a temporary name beside out_path and renames on success; on
 * failure nothing is left at out_path. */
int imgconv_convert(const struct imgconv_layer *layers, size_t n_layers,
		    const char *config_json, size_t config_len, const char *out_path,
		    const struct imgconv_convert_opts *opts);

/* Write a squashfs of the directory tree below dirfd (for `berth export`),
 * owners, modes and xattrs kept, with config_json as /.berth/image.json.
 * Everything is opened relative to dirfd without following symlinks;
 * sockets are left out.  Same atomic output rules as imgconv_convert(). */
int imgconv_pack_dir(int dirfd, const char *config_json, size_t len, const char *out_path,
		     const struct imgconv_convert_opts *opts);

/* ---- reading images back ---------------------------------------------- */

/* Read /.berth/image.json from a squashfs file; *json is malloc'd. */
int imgconv_read_image_json(const char *sqsh_path, char **json, size_t *len);


/* What a path in an image is, without following any symlink (not even on
 * the way): in one opening of the squashfs, for each v[i].path, its type
 * and permissions (mode 0: missing, or behind something that is not a
 * directory), whether a directory is empty, and the content of a regular
 * file of at most max bytes (max 0: not read).  Fails only when the image
 * cannot be read (nothing is returned then). */
struct imgconv_entry {
	const char *path; /* in: absolute, inside the image */
	size_t max;       /* in */
	unsigned mode;    /* out: st_mode, or 0 */
	bool empty;       /* out: a directory without entries */
	char *content;    /* out: malloc'd, NUL-terminated, or NULL */
};
int imgconv_probe(const char *sqsh_path, struct imgconv_entry *v, size_t n);

/* Is path a readable squashfs file? 0, or BERTH_EFORMAT / -errno. */
int imgconv_check_squashfs(const char *path);

#endif
