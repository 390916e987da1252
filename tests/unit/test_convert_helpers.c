/* Helpers for the conversion tests.  See test_convert_helpers.h. */
#include "config.h"
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <archive.h>
#include <archive_entry.h>
#include <sqfs/compressor.h>
#include <sqfs/data_reader.h>
#include <sqfs/dir_reader.h>
#include <sqfs/id_table.h>
#include <sqfs/inode.h>
#include <sqfs/io.h>
#include <sqfs/super.h>
#include <sqfs/xattr.h>
#include <sqfs/xattr_reader.h>
#include "common/error.h"
#include "common/util.h"
#include "tests/unit/test_convert_helpers.h"

char *test_dir;
const char *test_config = "{\"architecture\":\"amd64\",\"os\":\"linux\","
			  "\"created\":\"2024-01-02T03:04:05.123456789Z\","
			  "\"config\":{\"Env\":[\"PATH=/bin\"],\"Cmd\":[\"sh\"]}}";

void test_init(void)
{
	test_dir = test_tmpdir();
}

char *tpath(const char *name)
{
	return xasprintf("%s/%s", test_dir, name);
}

struct tl *tlayer(const char *name)
{
	char *p = tpath(name);
	struct tl *l = tl_new(p, TL_GZIP);

	free(p);
	return l;
}

static int vconvert(const char *out, const struct imgconv_convert_opts *opts, const char *mt,
		    va_list ap)
{
	struct imgconv_layer layers[32];
	char *paths[32];
	size_t n = 0;
	int r;

	for (const char *name; n < 32 && (name = va_arg(ap, const char *));) {
		paths[n] = tpath(name);
		layers[n].path = paths[n];
		layers[n].media_type = mt;
		n++;
	}
	r = imgconv_convert(layers, n, test_config, strlen(test_config), out, opts);
	while (n--)
		free(paths[n]);
	return r;
}

int tconvert(const char *out, const struct imgconv_convert_opts *opts, const char *mt, ...)
{
	va_list ap;
	int r;

	va_start(ap, mt);
	r = vconvert(out, opts, mt, ap);
	va_end(ap);
	return r;
}

char *tconvert_list(const char *tag, ...)
{
	char *out = xasprintf("%s/%s.sqsh", test_dir, tag);
	char *listing = NULL;
	va_list ap;
	int r;

	va_start(ap, tag);
	r = vconvert(out, NULL, "application/vnd.oci.image.layer.v1.tar+gzip", ap);
	va_end(ap);
	if (r < 0)
		printf("# convert %s: %s\n", tag, berth_errmsg(r));
	else
		listing = sq_listing(out, 0);
	free(out);
	return listing;
}

struct tl {
	struct archive *a;
	unsigned uid, gid;
	long sec, nsec;
	char xkey[8][64];
	char xval[8][64];
	size_t xlen[8], nx;
};

static void die(const char *what, struct archive *a)
{
	fprintf(stderr, "test helper: %s: %s\n", what, a ? archive_error_string(a) : "");
	exit(99);
}

struct tl *tl_new(const char *path, enum tl_comp comp)
{
	struct tl *l = calloc(1, sizeof(*l));

	l->a = archive_write_new();
	l->sec = 1000;
	archive_write_set_format_pax(l->a);
	if (comp == TL_GZIP)
		archive_write_add_filter_gzip(l->a);
	else if (comp == TL_ZSTD)
		archive_write_add_filter_zstd(l->a);
	if (archive_write_open_filename(l->a, path) != ARCHIVE_OK)
		die("open layer", l->a);
	return l;
}

void tl_owner(struct tl *l, unsigned uid, unsigned gid)
{
	l->uid = uid;
	l->gid = gid;
}

void tl_mtime(struct tl *l, long sec, long nsec)
{
	l->sec = sec;
	l->nsec = nsec;
}

void tl_xattr(struct tl *l, const char *key, const void *value, size_t size)
{
	snprintf(l->xkey[l->nx], sizeof(l->xkey[0]), "%s", key);
	memcpy(l->xval[l->nx], value, size);
	l->xlen[l->nx++] = size;
}

static struct archive_entry *entry(struct tl *l, const char *path, unsigned type, unsigned perm)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm);
	archive_entry_set_uid(e, l->uid);
	archive_entry_set_gid(e, l->gid);
	archive_entry_set_mtime(e, l->sec, l->nsec);
	for (size_t i = 0; i < l->nx; i++)
		archive_entry_xattr_add_entry(e, l->xkey[i], l->xval[i], l->xlen[i]);
	l->nx = 0;
	return e;
}

static void put(struct tl *l, struct archive_entry *e, const void *data, size_t len)
{
	if (archive_write_header(l->a, e) < ARCHIVE_WARN)
		die("write header", l->a);
	if (len && archive_write_data(l->a, data, len) != (la_ssize_t)len)
		die("write data", l->a);
	archive_entry_free(e);
}

void tl_file_data(struct tl *l, const char *path, unsigned perm, const void *data, size_t len)
{
	struct archive_entry *e = entry(l, path, AE_IFREG, perm);

	archive_entry_set_size(e, (la_int64_t)len);
	put(l, e, data, len);
}

void tl_file(struct tl *l, const char *path, unsigned perm, const char *content)
{
	tl_file_data(l, path, perm, content, strlen(content));
}

void tl_dir(struct tl *l, const char *path, unsigned perm)
{
	put(l, entry(l, path, AE_IFDIR, perm), NULL, 0);
}

void tl_symlink(struct tl *l, const char *path, const char *target)
{
	struct archive_entry *e = entry(l, path, AE_IFLNK, 0777);

	archive_entry_set_symlink(e, target);
	put(l, e, NULL, 0);
}

void tl_hardlink(struct tl *l, const char *path, const char *target)
{
	struct archive_entry *e = entry(l, path, AE_IFREG, 0644);

	archive_entry_set_hardlink(e, target);
	archive_entry_set_size(e, 0);
	put(l, e, NULL, 0);
}

void tl_dev(struct tl *l, const char *path, char type, unsigned perm, unsigned maj, unsigned min)
{
	struct archive_entry *e = entry(l, path, type == 'b' ? AE_IFBLK : AE_IFCHR, perm);

	archive_entry_set_rdevmajor(e, maj);
	archive_entry_set_rdevminor(e, min);
	put(l, e, NULL, 0);
}

void tl_fifo(struct tl *l, const char *path, unsigned perm)
{
	put(l, entry(l, path, AE_IFIFO, perm), NULL, 0);
}

void tl_close(struct tl *l)
{
	if (archive_write_close(l->a) != ARCHIVE_OK)
		die("close layer", l->a);
	archive_write_free(l->a);
	free(l);
}

/* ---- listing ------------------------------------------------------------ */

struct buf {
	char *s;
	size_t len, cap;
};

static void bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (b->s && (size_t)n < b->cap - b->len)
			break;
		b->cap = b->cap * 2 + (size_t)n + 256;
		b->s = realloc(b->s, b->cap);
	}
	b->len += (size_t)n;
}

struct lister {
	sqfs_file_t *file;
	sqfs_super_t super;
	sqfs_compressor_t *cmp;
	sqfs_data_reader_t *data;
	sqfs_xattr_reader_t *xr;
	struct buf out;
	int with_berth;
	int failed;
};

static void list_data(struct lister *ls, const sqfs_inode_generic_t *inode)
{
	sqfs_u64 size = 0, hash = 1469598103934665603ULL;
	char *buf;
	int printable = 1;

	sqfs_inode_get_file_size(inode, &size);
	buf = malloc(size + 1);
	if (size && sqfs_data_reader_read(ls->data, inode, 0, buf, (sqfs_u32)size) != (sqfs_s32)size)
		ls->failed = 1;
	for (sqfs_u64 i = 0; i < size; i++) {
		hash = (hash ^ (unsigned char)buf[i]) * 1099511628211ULL;
		if (buf[i] < 32 || buf[i] > 126 || buf[i] == '"')
			printable = 0;
	}
	if (size <= 40 && printable)
		bprintf(&ls->out, " s=%llu \"%.*s\"", (unsigned long long)size, (int)size, buf);
	else
		bprintf(&ls->out, " s=%llu h=%016llx", (unsigned long long)size,
			(unsigned long long)hash);
	free(buf);
}

static void list_xattrs(struct lister *ls, const sqfs_inode_generic_t *inode)
{
	sqfs_xattr_id_t desc;
	sqfs_u32 idx;

	if (sqfs_inode_get_xattr_index(inode, &idx) || idx == 0xFFFFFFFF)
		return;
	if (sqfs_xattr_reader_get_desc(ls->xr, idx, &desc) ||
	    sqfs_xattr_reader_seek_kv(ls->xr, &desc)) {
		ls->failed = 1;
		return;
	}
	bprintf(&ls->out, " x{");
	for (sqfs_u32 i = 0; i < desc.count; i++) {
		sqfs_xattr_entry_t *key = NULL;
		sqfs_xattr_value_t *val = NULL;

		if (sqfs_xattr_reader_read_key(ls->xr, &key) ||
		    sqfs_xattr_reader_read_value(ls->xr, key, &val)) {
			ls->failed = 1;
			break;
		}
		/* libsquashfs hands back the whole key, prefix included */
		bprintf(&ls->out, "%s%s=", i ? "," : "", (const char *)key->key);
		for (sqfs_u32 j = 0; j < val->size; j++)
			bprintf(&ls->out, "%02x", val->value[j]);
		sqfs_free(key);
		sqfs_free(val);
	}
	bprintf(&ls->out, "}");
}

static void list_node(struct lister *ls, const sqfs_tree_node_t *n)
{
	const sqfs_inode_generic_t *in = n->inode;
	char *path = NULL;
	sqfs_u32 nlink = 1;
	char type = '?';

	sqfs_tree_node_get_path(n, &path);
	if (!ls->with_berth && strncmp(path, "/.berth", 7) == 0 &&
	    (path[7] == '\0' || path[7] == '/')) {
		sqfs_free(path);
		return;
	}
	switch (in->base.mode & S_IFMT) {
	case S_IFDIR: type = 'd'; break;
	case S_IFREG: type = 'f'; break;
	case S_IFLNK: type = 'l'; break;
	case S_IFCHR: type = 'c'; break;
	case S_IFBLK: type = 'b'; break;
	case S_IFIFO: type = 'p'; break;
	case S_IFSOCK: type = 's'; break;
	}
	bprintf(&ls->out, "%s %c %04o %u:%u t=%u", path, type, in->base.mode & 07777, n->uid, n->gid,
		in->base.mod_time);
	switch (in->base.type) {
	case SQFS_INODE_FILE:
	case SQFS_INODE_EXT_FILE:
		list_data(ls, in);
		if (in->base.type == SQFS_INODE_EXT_FILE)
			nlink = in->data.file_ext.nlink;
		break;
	case SQFS_INODE_SLINK:
	case SQFS_INODE_EXT_SLINK:
		bprintf(&ls->out, " -> %.*s", (int)in->data.slink.target_size,
			(const char *)in->extra);
		nlink = in->data.slink.nlink;
		break;
	case SQFS_INODE_BDEV:
	case SQFS_INODE_CDEV:
	case SQFS_INODE_EXT_BDEV:
	case SQFS_INODE_EXT_CDEV: {
		sqfs_u32 d = in->data.dev.devno;

		bprintf(&ls->out, " %u,%u", (d & 0xfff00) >> 8, (d & 0xff) | ((d >> 12) & 0xfff00));
		nlink = in->data.dev.nlink;
		break;
	}
	case SQFS_INODE_FIFO:
	case SQFS_INODE_EXT_FIFO:
		nlink = in->data.ipc.nlink;
		break;
	}
	if (nlink > 1 && type != 'd')
		bprintf(&ls->out, " n=%u", nlink);
	list_xattrs(ls, in);
	bprintf(&ls->out, "\n");
	sqfs_free(path);
	for (const sqfs_tree_node_t *c = n->children; c; c = c->next)
		list_node(ls, c);
}

char *sq_listing(const char *sqsh, int with_berth)
{
	struct lister ls = { .with_berth = with_berth };
	sqfs_compressor_config_t cfg;
	sqfs_dir_reader_t *dr = NULL;
	sqfs_id_table_t *ids = NULL;
	sqfs_tree_node_t *root = NULL;

	ls.file = sqfs_open_file(sqsh, SQFS_FILE_OPEN_READ_ONLY);
	if (!ls.file || sqfs_super_read(&ls.super, ls.file))
		goto fail;
	sqfs_compressor_config_init(&cfg, ls.super.compression_id, ls.super.block_size,
				    SQFS_COMP_FLAG_UNCOMPRESS);
	if (sqfs_compressor_create(&cfg, &ls.cmp))
		goto fail;
	if ((ls.super.flags & SQFS_FLAG_COMPRESSOR_OPTIONS) &&
	    ls.cmp->read_options(ls.cmp, ls.file))
		goto fail;
	ids = sqfs_id_table_create(0);
	dr = sqfs_dir_reader_create(&ls.super, ls.cmp, ls.file, 0);
	ls.data = sqfs_data_reader_create(ls.file, ls.super.block_size, ls.cmp, 0);
	ls.xr = sqfs_xattr_reader_create(0);
	if (!ids || !dr || !ls.data || !ls.xr || sqfs_id_table_read(ids, ls.file, &ls.super, ls.cmp) ||
	    sqfs_data_reader_load_fragment_table(ls.data, &ls.super) ||
	    sqfs_xattr_reader_load(ls.xr, &ls.super, ls.file, ls.cmp) ||
	    sqfs_dir_reader_get_full_hierarchy(dr, ids, NULL, 0, &root))
		goto fail;
	list_node(&ls, root);
	if (ls.failed)
		goto fail;
	goto out;
fail:
	free(ls.out.s);
	ls.out.s = NULL;
out:
	sqfs_dir_tree_destroy(root);
	sqfs_destroy(ls.xr);
	sqfs_destroy(ls.data);
	sqfs_destroy(dr);
	sqfs_destroy(ids);
	sqfs_destroy(ls.cmp);
	sqfs_destroy(ls.file);
	return ls.out.s;
}

char *test_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *d = malloc(4096);

	snprintf(d, 4096, "%s/berth-test-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(d)) {
		perror("mkdtemp");
		exit(99);
	}
	return d;
}

int dir_count(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *b;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)n + 1);
	if (fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	} else {
		b[n] = '\0';
		*len = (size_t)n;
	}
	fclose(f);
	return b;
}
