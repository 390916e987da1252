/* Reading layer tarballs with libarchive.  See layer.h. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <archive.h>
#include <archive_entry.h>
#include <sqfs/xattr.h>
#include "common/error.h"
#include "common/log.h"
#include "imgconv/flatten.h"
#include "imgconv/layer.h"
#include "imgconv/layer_stream.h"

/* Media type to compression: LS_* from layer_stream.h, -1 for foreign. */
#define LC_SNIFF LS_SNIFF
#define LC_NONE LS_NONE
#define LC_GZIP LS_GZIP
#define LC_ZSTD LS_ZSTD

/* OCI image-spec media-types.md and the Docker schema 2 spec. */
static const struct {
	const char *type;
	int compression; /* -1: foreign / non-distributable */
} media_types[] = {
	{ "application/vnd.oci.image.layer.v1.tar", LC_NONE },
	{ "application/vnd.oci.image.layer.v1.tar+gzip", LC_GZIP },
	{ "application/vnd.oci.image.layer.v1.tar+zstd", LC_ZSTD },
	{ "application/vnd.docker.image.rootfs.diff.tar", LC_NONE },
	{ "application/vnd.docker.image.rootfs.diff.tar.gzip", LC_GZIP },
	{ "application/vnd.oci.image.layer.nondistributable.v1.tar", -1 },
	{ "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", -1 },
	{ "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", -1 },
	{ "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", -1 },
};

static int media_compression(const struct layer_set *set, size_t idx, int *comp)
{
	const char *mt = set->layers[idx].media_type;
	char pbuf[TREE_PRINTABLE_MAX];

	*comp = LC_SNIFF;
	if (!mt)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(media_types); i++) {
		if (!streq(mt, media_types[i].type))
			continue;
		if (media_types[i].compression < 0)
			return berth_failx(BERTH_EUNSUPPORTED,
					   LAYER_FMT ": foreign (non-distributable) layer '%s' "
					   "is not supported",
					   LAYER_ARGS(set, idx), tree_printable(mt, pbuf, sizeof(pbuf)));
		*comp = media_types[i].compression;
		return 0;
	}
	return berth_failx(BERTH_EUNSUPPORTED, LAYER_FMT ": unsupported media type '%s'",
			   LAYER_ARGS(set, idx), tree_printable(mt, pbuf, sizeof(pbuf)));
}

int layer_check_media_type(const struct layer_set *set, size_t idx)
{
	int comp;

	return media_compression(set, idx, &comp);
}

struct lreader {
	struct archive *a;
	struct lstream *ls;
	int fd;
	uint32_t member; /* number of the current header */
};

static void lreader_close(struct lreader *lr)
{
	if (lr->a)
		archive_read_free(lr->a);
	lstream_free(lr->ls);
	if (lr->fd >= 0)
		close(lr->fd);
}

static int archive_fail(const struct layer_set *set, size_t idx, struct archive *a,
			const char *member)
{
	const char *msg = archive_error_string(a);
	int e = archive_errno(a);

	if (!msg)
		msg = "read error";
	/* libarchive reports a damaged stream with an errno of its own;
	 * only a real I/O error is passed on as such. */
	if (e == EIO || e == ENOMEM)
		return berth_failx(-e, LAYER_FMT "%s%s%s: %s", LAYER_ARGS(set, idx),
				   member ? ": member '" : "", member ? member : "",
				   member ? "'" : "", msg);
	return berth_failx(BERTH_EFORMAT, LAYER_FMT "%s%s%s: %s", LAYER_ARGS(set, idx),
			   member ? ": member '" : "", member ? member : "", member ? "'" : "",
			   msg);
}

static la_ssize_t read_cb(struct archive *a, void *data, const void **buf)
{
	struct lreader *lr = data;
	ssize_t n = lstream_read(lr->ls, buf);

	if (n < 0) {
		archive_set_error(a, n == BERTH_EFORMAT ? EILSEQ : (int)-n, "%s",
				  lstream_error(lr->ls));
		return -1;
	}
	return n;
}

static const char *comp_name(int comp)
{
	return comp == LC_GZIP ? "gzip-compressed" : comp == LC_ZSTD ? "zstd-compressed"
								     : "not compressed";
}

static int lreader_open(const struct layer_set *set, size_t idx, struct lreader *lr)
{
	enum lstream_comp found;
	int comp, r;

	lr->a = NULL;
	lr->ls = NULL;
	lr->member = 0;
	r = media_compression(set, idx, &comp);
	if (r == 0 && set->wait)
		r = set->wait(set->wait_data, idx);
	if (r < 0)
		return r;
	lr->fd = open(set->layers[idx].path, O_RDONLY | O_CLOEXEC);
	if (lr->fd < 0)
		return berth_fail(-errno, LAYER_FMT, LAYER_ARGS(set, idx));
	r = lstream_open(lr->fd, (enum lstream_comp)comp, &lr->ls, &found);
	if (r == BERTH_EFORMAT)
		return berth_failx(r, LAYER_FMT ": media type '%s' but the data is %s",
				   LAYER_ARGS(set, idx), set->layers[idx].media_type,
				   comp_name(found));
	if (r < 0)
		return berth_fail(r, LAYER_FMT, LAYER_ARGS(set, idx));
	lr->a = archive_read_new();
	if (!lr->a)
		return berth_fail(-ENOMEM, LAYER_FMT, LAYER_ARGS(set, idx));
	/* Only what a layer may hold: tar (ustar, pax, GNU); decompression is
	 * ours (layer_stream.c), and no libarchive filter is enabled, so a
	 * hostile blob cannot make it run an external program either. */
	archive_read_support_format_tar(lr->a);
	archive_read_support_format_empty(lr->a);
	if (archive_read_open(lr->a, lr, NULL, read_cb, NULL) != ARCHIVE_OK)
		return archive_fail(set, idx, lr->a, NULL);
	return 0;
}

/* Next header; 1 with an entry, 0 at the end. */
static int lreader_next(const struct layer_set *set, size_t idx, struct lreader *lr,
			struct archive_entry **e)
{
	int r = archive_read_next_header(lr->a, e);

	if (r == ARCHIVE_EOF)
		return 0;
	if (r < ARCHIVE_WARN)
		return archive_fail(set, idx, lr->a, NULL);
	if (r == ARCHIVE_WARN)
		log_debug(LAYER_FMT ": %s", LAYER_ARGS(set, idx), archive_error_string(lr->a));
	lr->member++;
	return 1;
}

static const char *entry_name(struct archive_entry *e)
{
	const char *p = archive_entry_pathname(e);

	return p ? p : archive_entry_pathname_utf8(e);
}

/* ---- the one read: headers recorded, data fed -------------------------- */

struct scan {
	const struct layer_set *set;
	size_t idx;
	struct flatten *f;
	size_t dropped_xattrs;
	char dropped_example[128];
	char pbuf[TREE_PRINTABLE_MAX];
};

static int read_xattrs(struct scan *s, struct archive_entry *e, struct txattrs **out)
{
	const char *key;
	const void *value;
	size_t size;
	int r;

	*out = NULL;
	if (archive_entry_xattr_reset(e) == 0)
		return 0;
	*out = txattrs_new();
	if (!*out)
		return berth_fail(-ENOMEM, "extended attributes");
	while (archive_entry_xattr_next(e, &key, &value, &size) == ARCHIVE_OK) {
		/* squashfs stores the user., trusted. and security. namespaces
		 * only (security.capability among them). */
		if (sqfs_get_xattr_prefix_id(key) < 0) {
			if (s->dropped_xattrs++ == 0)
				tree_printable(key, s->dropped_example, sizeof(s->dropped_example));
			continue;
		}
		if (size > UINT16_MAX * 16u)
			return berth_failx(BERTH_EFORMAT, "extended attribute '%s' too large",
					   tree_printable(key, s->pbuf, sizeof(s->pbuf)));
		r = txattrs_add(out, key, value ? value : "", (uint32_t)size);
		if (r < 0)
			return r;
	}
	return 0;
}

static int entry_attrs(struct archive_entry *e, struct tree_entry *te)
{
	int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
	int64_t mtime = archive_entry_mtime_is_set(e) ? archive_entry_mtime(e) : 0;

	if (uid < 0 || uid > UINT32_MAX || gid < 0 || gid > UINT32_MAX)
		return berth_failx(BERTH_EFORMAT, "owner %lld:%lld out of range", (long long)uid,
				   (long long)gid);
	te->mode = archive_entry_mode(e) & (S_IFMT | 07777);
	te->uid = (uint32_t)uid;
	te->gid = (uint32_t)gid;
	/* squashfs keeps whole seconds from 1970 to 2106. */
	te->mtime = mtime < 0 ? 0 : mtime > UINT32_MAX ? UINT32_MAX : (uint32_t)mtime;
	return 0;
}

/* path (canonical) ends in ".wh.*". */
static int scan_whiteout(struct scan *s, uint32_t member, char *path)
{
	char *slash = strrchr(path, '/');
	char *name = slash ? slash + 1 : path;

	if (streq(name, ".wh..wh..opq")) {
		*name = '\0';
		if (slash)
			*slash = '\0';
		return flatten_add(s->f, s->idx, member, FLATTEN_OPAQUE, path, NULL, NULL);
	}
	if (strncmp(name, ".wh..wh.", 8) == 0)
		return 0; /* other AUFS bookkeeping: not part of the image */
	if (!name[4] || streq(name + 4, ".") || streq(name + 4, ".."))
		return berth_failx(BERTH_EFORMAT, "bad whiteout name");
	/* "DIR/.wh.NAME" -> "DIR/NAME" */
	memmove(name, name + 4, strlen(name + 4) + 1);
	return flatten_add(s->f, s->idx, member, FLATTEN_WHITEOUT, path, NULL, NULL);
}

static int feed_data(struct archive *a, struct sqfs_out *o, uint64_t size);

/* A regular file the final tree may hold: its node is made now and its
 * data streamed at once, the only time this layer is read. */
static int scan_file(struct scan *s, struct lreader *lr, const char *path,
		     struct tree_entry *te, struct sqfs_out *o)
{
	struct tnode *n = tree_node_new(te);
	int r;

	if (!n)
		return berth_fail(-ENOMEM, "image tree");
	te->node = n;
	r = flatten_add(s->f, s->idx, lr->member, FLATTEN_ENTRY, path, NULL, te);
	if (r == 0)
		r = sqfs_out_file_begin(o, n);
	if (r == 0)
		r = feed_data(lr->a, o, n->u.file.size);
	if (r == 0)
		r = sqfs_out_file_end(o);
	return r;
}

static int scan_entry(struct scan *s, struct lreader *lr, struct archive_entry *e,
		      char *path, struct sqfs_out *o)
{
	struct tree_entry te = { 0 };
	const char *base = strrchr(path, '/');
	const char *link = archive_entry_hardlink(e);
	int r;

	base = base ? base + 1 : path;
	if (strncmp(base, ".wh.", 4) == 0)
		return scan_whiteout(s, lr->member, path);
	if (link) {
		_cleanup_free_ char *target = strdup(link);

		if (!target)
			return -ENOMEM;
		r = tree_canon_path(target);
		if (r < 0)
			return berth_fail_context(r, "hard link target '%s'",
						  tree_printable(link, s->pbuf, sizeof(s->pbuf)));
		return flatten_add(s->f, s->idx, lr->member, FLATTEN_LINK, path, target, NULL);
	}
	r = entry_attrs(e, &te);
	if (r < 0)
		return r;
	switch (te.mode & S_IFMT) {
	case S_IFREG:
		te.size = archive_entry_size_is_set(e) && archive_entry_size(e) > 0
				  ? (uint64_t)archive_entry_size(e) : 0;
		te.layer = (uint32_t)s->idx;
		te.member = lr->member;
		break;
	case S_IFLNK:
		te.target = archive_entry_symlink(e);
		if (!te.target)
			te.target = archive_entry_symlink_utf8(e);
		if (!te.target || !*te.target || strlen(te.target) > TREE_PATH_MAX)
			return berth_failx(BERTH_EFORMAT, "bad symlink target");
		break;
	case S_IFCHR:
	case S_IFBLK:
		te.devno = tree_devno((uint32_t)archive_entry_rdevmajor(e),
				      (uint32_t)archive_entry_rdevminor(e));
		break;
	case S_IFDIR:
	case S_IFIFO:
		break;
	case S_IFSOCK:
		return 0; /* a socket is nothing without its process */
	default:
		return berth_failx(BERTH_EFORMAT, "unknown file type 0%o", te.mode & S_IFMT);
	}
	r = read_xattrs(s, e, &te.xattrs);
	if (r < 0) {
		free(te.xattrs);
		return r;
	}
	if (S_ISREG(te.mode) && flatten_want(s->f, s->idx, path))
		return scan_file(s, lr, path, &te, o);
	/* Not wanted: the data is skipped, libarchive still inflates it. */
	return flatten_add(s->f, s->idx, lr->member, FLATTEN_ENTRY, path, NULL, &te);
}

int layer_read(const struct layer_set *set, size_t idx, struct flatten *f, struct sqfs_out *o)
{
	struct scan s = { .set = set, .idx = idx, .f = f };
	struct lreader lr = { .fd = -1 };
	struct archive_entry *e;
	int r;

	r = lreader_open(set, idx, &lr);
	while (r == 0 && (r = lreader_next(set, idx, &lr, &e)) > 0) {
		const char *raw = entry_name(e);
		_cleanup_free_ char *path = strdup(raw ? raw : "");

		if (!path) {
			r = berth_fail(-ENOMEM, LAYER_FMT, LAYER_ARGS(set, idx));
			break;
		}
		if (!raw || !*raw)
			r = berth_failx(BERTH_EFORMAT, "member without a name");
		else
			r = tree_canon_path(path);
		if (r == 0)
			r = scan_entry(&s, &lr, e, path, o);
		if (r < 0)
			r = berth_fail_context(r, LAYER_FMT ": member '%s'", LAYER_ARGS(set, idx),
					       tree_printable(raw, s.pbuf, sizeof(s.pbuf)));
	}
	if (r == 0) {
		/* Check the compressed stream's trailer past the tar's end. */
		r = lstream_drain(lr.ls);
		if (r < 0)
			r = berth_failx(r, LAYER_FMT ": %s",
					LAYER_ARGS(set, idx), lstream_error(lr.ls));
	}
	lreader_close(&lr);
	if (r < 0)
		return r;
	if (s.dropped_xattrs)
		log_warn(LAYER_FMT ": %zu extended attributes squashfs cannot store were "
			 "dropped (e.g. '%s')",
			 LAYER_ARGS(set, idx), s.dropped_xattrs, s.dropped_example);
	return 0;
}

/* ---- data of files read again (see convert.c)  ------------------------------------------------------- */

static int feed_zeros(struct sqfs_out *o, uint64_t n)
{
	static const char zeros[64 * 1024];

	while (n > 0) {
		size_t chunk = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
		int r = sqfs_out_file_data(o, zeros, chunk);

		if (r < 0)
			return r;
		n -= chunk;
	}
	return 0;
}

/* Copy the current member's data (holes of sparse members as zeros).
 * A stream that ends early or overruns fails with BERTH_EFORMAT. */
static int feed_data(struct archive *a, struct sqfs_out *o, uint64_t size)
{
	uint64_t pos = 0;

	for (;;) {
		const void *buf;
		size_t len;
		la_int64_t off;
		int r = archive_read_data_block(a, &buf, &len, &off);

		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN)
			return berth_failx(BERTH_EFORMAT, "%s",
					   archive_error_string(a) ? archive_error_string(a)
								   : "bad data");
		if (off < 0 || (uint64_t)off < pos || (uint64_t)off + len > size)
			return berth_failx(BERTH_EFORMAT, "data does not match the member's size");
		r = feed_zeros(o, (uint64_t)off - pos);
		if (r == 0 && len > 0)
			r = sqfs_out_file_data(o, buf, len);
		if (r < 0)
			return r;
		pos = (uint64_t)off + len;
	}
	return feed_zeros(o, size - pos);
}

int layer_feed(const struct layer_set *set, size_t idx, struct tnode **files, size_t count,
	       struct sqfs_out *o)
{
	struct lreader lr = { .fd = -1 };
	struct archive_entry *e;
	char pbuf[TREE_PRINTABLE_MAX];
	size_t next = 0;
	int r;

	r = lreader_open(set, idx, &lr);
	while (r == 0 && next < count && (r = lreader_next(set, idx, &lr, &e)) > 0) {
		struct tnode *n = files[next];

		r = 0;
		if (lr.member != n->u.file.member)
			continue;
		next++;
		/* The blob is read twice; it must not have changed in between. */
		if (!S_ISREG(archive_entry_filetype(e)) || archive_entry_hardlink(e) ||
		    (uint64_t)archive_entry_size(e) != n->u.file.size) {
			r = berth_failx(BERTH_EFORMAT, LAYER_FMT ": member '%s' changed while reading",
					LAYER_ARGS(set, idx), tree_printable(entry_name(e), pbuf, sizeof(pbuf)));
			break;
		}
		r = sqfs_out_file_begin(o, n);
		if (r == 0)
			r = feed_data(lr.a, o, n->u.file.size);
		if (r == 0)
			r = sqfs_out_file_end(o);
		if (r < 0)
			r = berth_fail_context(r, LAYER_FMT ": member '%s'", LAYER_ARGS(set, idx),
					       tree_printable(entry_name(e), pbuf, sizeof(pbuf)));
	}
	if (r == 0 && next < count)
		r = berth_failx(BERTH_EFORMAT, LAYER_FMT ": ended early (changed while reading?)",
				LAYER_ARGS(set, idx));
	lreader_close(&lr);
	return r;
}
