/* Writing one squashfs file: output file, compressor, block processor,
 * commit and cleanup.  The tree serialisation is in sqfs_tree.c. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqfs/block.h>
#include <sqfs/block_processor.h>
#include <sqfs/block_writer.h>
#include <sqfs/compressor.h>
#include <sqfs/dir_writer.h>
#include <sqfs/error.h>
#include <sqfs/frag_table.h>
#include <sqfs/id_table.h>
#include <sqfs/io.h>
#include <sqfs/meta_writer.h>
#include <sqfs/super.h>
#include <sqfs/xattr_writer.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "imgconv/sqfs_out_private.h"

int sqfs_fail(int sqfs_err, int saved_errno, const char *fmt, ...)
{
	char what[512];
	const char *text;
	int code = BERTH_EFORMAT;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	switch (sqfs_err) {
	case SQFS_ERROR_ALLOC:
		code = -ENOMEM;
		text = strerror(ENOMEM);
		break;
	case SQFS_ERROR_IO:
		code = saved_errno > 0 ? -saved_errno : -EIO;
		text = strerror(-code);
		break;
	case SQFS_ERROR_COMPRESSOR: text = "compressor failed or data corrupt"; break;
	case SQFS_ERROR_CORRUPTED: text = "corrupted squashfs"; break;
	case SQFS_ERROR_UNSUPPORTED:
		code = BERTH_EUNSUPPORTED;
		text = "not supported by squashfs";
		break;
	case SQFS_ERROR_OVERFLOW: text = "too large for squashfs"; break;
	case SQFS_ERROR_OUT_OF_BOUNDS: text = "offset out of bounds"; break;
	case SQFS_ERROR_SUPER_BLOCK_SIZE: text = "bad superblock block size"; break;
	case SQFS_ERROR_NOT_DIR: text = "not a directory"; break;
	case SQFS_ERROR_NO_ENTRY:
		code = -ENOENT;
		text = strerror(ENOENT);
		break;
	case SQFS_ERROR_LINK_LOOP: text = "directory loop"; break;
	case SQFS_ERROR_NOT_FILE: text = "not a regular file"; break;
	default: text = "internal libsquashfs error"; break;
	}
	return berth_failx(code, "%s: %s", what, text);
}

unsigned sqfs_out_cpus(void)
{
	cpu_set_t set;
	long n;

	/* Respect the cpuset a batch system gave this job. */
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/* ---- the output file: pread/pwrite on our own fd, remembering errno ---- */

static void ofile_destroy(sqfs_object_t *obj) { free(obj); }

static int ofile_read_at(sqfs_file_t *base, sqfs_u64 offset, void *buf, size_t size)
{
	struct ofile *f = (struct ofile *)base;

	while (size > 0) {
		ssize_t n = pread(f->fd, buf, size, (off_t)offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			f->err = n < 0 ? errno : EIO;
			return SQFS_ERROR_IO;
		}
		buf = (char *)buf + n;
		size -= (size_t)n;
		offset += (sqfs_u64)n;
	}
	return 0;
}

static int ofile_write_at(sqfs_file_t *base, sqfs_u64 offset, const void *buf, size_t size)
{
	struct ofile *f = (struct ofile *)base;
	sqfs_u64 end = offset + size;

	while (size > 0) {
		ssize_t n = pwrite(f->fd, buf, size, (off_t)offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!f->err)
				f->err = n < 0 ? errno : ENOSPC;
			return SQFS_ERROR_IO;
		}
		buf = (const char *)buf + n;
		size -= (size_t)n;
		offset += (sqfs_u64)n;
	}
	if (end > f->size)
		f->size = end;
	return 0;
}

static sqfs_u64 ofile_get_size(const sqfs_file_t *base)
{
	return ((const struct ofile *)base)->size;
}

static int ofile_truncate(sqfs_file_t *base, sqfs_u64 size)
{
	struct ofile *f = (struct ofile *)base;

	if (ftruncate(f->fd, (off_t)size) < 0) {
		f->err = errno;
		return SQFS_ERROR_IO;
	}
	f->size = size;
	return 0;
}

static struct ofile *ofile_new(int fd)
{
	struct ofile *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->base.base.destroy = ofile_destroy;
	f->base.read_at = ofile_read_at;
	f->base.write_at = ofile_write_at;
	f->base.get_size = ofile_get_size;
	f->base.truncate = ofile_truncate;
	f->fd = fd;
	return f;
}

/* ---- options ------------------------------------------------------------ */

int sqfs_out_check_opts(const struct imgconv_convert_opts *opts, int *id, unsigned *level)
{
	static const struct {
		const char *name;
		int id;
		unsigned min, max;
	} comps[] = {
		{ "lz4", SQFS_COMP_LZ4, 0, 1 }, /* 1: LZ4-HC */
		{ "zstd", SQFS_COMP_ZSTD, SQFS_ZSTD_MIN_LEVEL, SQFS_ZSTD_MAX_LEVEL },
		{ "gzip", SQFS_COMP_GZIP, SQFS_GZIP_MIN_LEVEL, SQFS_GZIP_MAX_LEVEL },
		{ "xz", SQFS_COMP_XZ, 1, SQFS_XZ_MAX_LEVEL },
	};
	const char *name = opts && opts->compression ? opts->compression : IMGCONV_DEFAULT_COMPRESSION;
	unsigned lvl = opts ? opts->compression_level : 0;

	for (size_t i = 0; i < ARRAY_SIZE(comps); i++) {
		if (!streq(name, comps[i].name))
			continue;
		if (lvl != 0 && (lvl < comps[i].min || lvl > comps[i].max))
			return berth_failx(BERTH_EINVAL_INPUT,
					   "compression level %u out of range for %s (%u-%u)", lvl,
					   name, comps[i].min ? comps[i].min : 1, comps[i].max);
		if (lvl == 0 && comps[i].id == SQFS_COMP_ZSTD)
			lvl = IMGCONV_DEFAULT_ZSTD_LEVEL;
		*id = comps[i].id;
		*level = lvl;
		return 0;
	}
	return berth_failx(BERTH_EINVAL_INPUT, "unknown compression '%s' (lz4, zstd, gzip or xz)",
			   name);
}

/* libsquashfs 1.2's LZ4 compressor returns output larger than its input
 * (e.g. 5 bytes for a 4-byte id table), which the meta data writer then
 * stores "compressed"; the kernel and squashfuse cope, but unsquashfs
 * rejects such a table as corrupt.  This shim reports "does not compress"
 * instead, so such blocks are stored uncompressed as squashfs intends. */
struct cmp_shim {
	sqfs_compressor_t base;
	sqfs_compressor_t *inner;
};

static sqfs_s32 shim_do_block(sqfs_compressor_t *base, const sqfs_u8 *in, sqfs_u32 size,
			      sqfs_u8 *out, sqfs_u32 outsize)
{
	struct cmp_shim *s = (struct cmp_shim *)base;
	sqfs_s32 r = s->inner->do_block(s->inner, in, size, out, outsize);

	return r > 0 && (sqfs_u32)r >= size ? 0 : r;
}

static void shim_get_configuration(const sqfs_compressor_t *base, sqfs_compressor_config_t *cfg)
{
	const struct cmp_shim *s = (const struct cmp_shim *)base;

	s->inner->get_configuration(s->inner, cfg);
}

static int shim_write_options(sqfs_compressor_t *base, sqfs_file_t *file)
{
	struct cmp_shim *s = (struct cmp_shim *)base;

	return s->inner->write_options(s->inner, file);
}

static int shim_read_options(sqfs_compressor_t *base, sqfs_file_t *file)
{
	struct cmp_shim *s = (struct cmp_shim *)base;

	return s->inner->read_options(s->inner, file);
}

static void shim_destroy(sqfs_object_t *base)
{
	sqfs_destroy(((struct cmp_shim *)base)->inner);
	free(base);
}

static sqfs_compressor_t *shim_new(sqfs_compressor_t *inner);

/* Worker threads each get a copy of the compressor. */
static sqfs_object_t *shim_copy(const sqfs_object_t *base)
{
	sqfs_compressor_t *inner = sqfs_copy(((const struct cmp_shim *)base)->inner);
	sqfs_compressor_t *s = inner ? shim_new(inner) : NULL;

	if (!s)
		sqfs_destroy(inner);
	return (sqfs_object_t *)s;
}

static sqfs_compressor_t *shim_new(sqfs_compressor_t *inner)
{
	struct cmp_shim *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->base.base.destroy = shim_destroy;
	s->base.base.copy = shim_copy;
	s->base.get_configuration = shim_get_configuration;
	s->base.write_options = shim_write_options;
	s->base.read_options = shim_read_options;
	s->base.do_block = shim_do_block;
	s->inner = inner;
	return &s->base;
}

static int make_compressors(struct sqfs_out *o, int id, unsigned level)
{
	sqfs_compressor_config_t cfg;
	sqfs_compressor_t *inner;
	sqfs_u16 flags = 0;
	int r;

	if (id == SQFS_COMP_LZ4 && level > 0)
		flags |= SQFS_COMP_FLAG_LZ4_HC;
	r = sqfs_compressor_config_init(&cfg, (SQFS_COMPRESSOR)id, SQFS_DEFAULT_BLOCK_SIZE, flags);
	if (r == 0 && id != SQFS_COMP_LZ4 && level > 0)
		cfg.level = level;
	if (r == 0)
		r = sqfs_compressor_create(&cfg, &inner);
	if (r != 0)
		return sqfs_fail(r, 0, "compressor %s", sqfs_compressor_name_from_id(id));
	o->cmp = shim_new(inner);
	if (!o->cmp) {
		sqfs_destroy(inner);
		return berth_fail(-ENOMEM, "compressor");
	}
	/* A second instance that decompresses: the block processor reads
	 * fragments back to compare them byte for byte before deduplicating,
	 * instead of trusting a 32-bit hash. */
	cfg.flags |= SQFS_COMP_FLAG_UNCOMPRESS;
	r = sqfs_compressor_create(&cfg, &o->uncmp);
	if (r != 0)
		return sqfs_fail(r, 0, "decompressor %s", sqfs_compressor_name_from_id(id));
	return 0;
}

/* ---- opening ------------------------------------------------------------ */

static int open_output(struct sqfs_out *o)
{
	_cleanup_free_ char *dir = strdup(o->path);
	char *slash;
	int fd;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
	if (fd >= 0) {
		o->fd = fd;
		o->anonymous = true;
		return 0;
	}
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return berth_fail(-errno, "create output in '%s'", dir);
	/* No O_TMPFILE here (NFS, old kernels): a named temporary file. */
	for (int attempt = 0; attempt < 2; attempt++) {
		fd = open(o->tmp_path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
		if (fd >= 0) {
			o->fd = fd;
			o->tmp_created = true;
			return 0;
		}
		if (errno != EEXIST)
			break;
		/* Left by a killed process that had our pid. */
		unlink(o->tmp_path);
	}
	return berth_fail(-errno, "create '%s'", o->tmp_path);
}

static int make_writers(struct sqfs_out *o, int id, unsigned level, unsigned threads)
{
	sqfs_block_processor_desc_t desc;
	int r;

	r = make_compressors(o, id, level);
	if (r < 0)
		return r;
	o->blkwr = sqfs_block_writer_create(&o->file->base, SQFS_DEVBLK_SIZE, 0);
	o->fragtbl = sqfs_frag_table_create(0);
	o->idtbl = sqfs_id_table_create(0);
	o->xwr = sqfs_xattr_writer_create(0);
	o->im = sqfs_meta_writer_create(&o->file->base, o->cmp, 0);
	o->dm = sqfs_meta_writer_create(&o->file->base, o->cmp, SQFS_META_WRITER_KEEP_IN_MEMORY);
	o->dirwr = o->dm ? sqfs_dir_writer_create(o->dm, 0) : NULL;
	if (!o->blkwr || !o->fragtbl || !o->idtbl || !o->xwr || !o->im || !o->dm || !o->dirwr)
		return berth_fail(-ENOMEM, "squashfs writer");

	memset(&desc, 0, sizeof(desc));
	desc.size = sizeof(desc);
	desc.max_block_size = SQFS_DEFAULT_BLOCK_SIZE;
	desc.num_workers = threads;
	/* Bounded so memory stays flat whatever the image size: a few blocks
	 * per worker in flight. */
	desc.max_backlog = threads * 8 < 16 ? 16 : threads * 8;
	desc.cmp = o->cmp;
	desc.wr = o->blkwr;
	desc.tbl = o->fragtbl;
	desc.file = &o->file->base;
	desc.uncmp = o->uncmp;
	r = sqfs_block_processor_create_ex(&desc, &o->proc);
	if (r != 0)
		return sqfs_fail(r, 0, "start %u compression threads", threads);
	return 0;
}

int sqfs_out_open(const char *path, const struct imgconv_convert_opts *opts, uint32_t mtime,
		  struct sqfs_out **out)
{
	_cleanup_(sqfs_out_freep) struct sqfs_out *o = NULL;
	unsigned level, threads;
	int id, r;

	r = sqfs_out_check_opts(opts, &id, &level);
	if (r < 0)
		return r;
	threads = opts && opts->threads ? opts->threads : sqfs_out_cpus();
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->fd = -1;
	o->path = strdup(path);
	o->tmp_path = xasprintf("%s.tmp.%ld", path, (long)getpid());
	if (!o->path || !o->tmp_path)
		return berth_fail(-ENOMEM, "output '%s'", path);
	r = open_output(o);
	if (r < 0)
		return r;
	o->file = ofile_new(o->fd);
	if (!o->file)
		return berth_fail(-ENOMEM, "output '%s'", path);
	r = make_writers(o, id, level, threads);
	if (r < 0)
		return r;

	r = sqfs_super_init(&o->super, SQFS_DEFAULT_BLOCK_SIZE, mtime, (SQFS_COMPRESSOR)id);
	if (r == 0)
		r = sqfs_super_write(&o->super, &o->file->base);
	if (r != 0)
		return sqfs_fail(r, o->file->err, "write '%s'", path);
	r = o->cmp->write_options(o->cmp, &o->file->base);
	if (r < 0)
		return sqfs_fail(r, o->file->err, "write '%s'", path);
	if (r > 0)
		o->super.flags |= SQFS_FLAG_COMPRESSOR_OPTIONS;
	log_debug("writing '%s': %s level %u, %u threads", path,
		  sqfs_compressor_name_from_id(id), level, threads);
	*out = TAKE_PTR(o);
	return 0;
}

/* ---- file data ---------------------------------------------------------- */

int sqfs_out_file_begin(struct sqfs_out *o, struct tnode *n)
{
	/* The tail of a file of a block or more gets a short block of its own,
	 * as with mksquashfs: packed into a shared fragment block instead,
	 * every read of such a file would also decompress a fragment block of
	 * unrelated data (measurably slower through squashfuse). */
	sqfs_u32 flags = n->u.file.size >= SQFS_DEFAULT_BLOCK_SIZE ? SQFS_BLK_DONT_FRAGMENT : 0;
	int r = sqfs_block_processor_begin_file(o->proc, &n->u.file.sq, NULL, flags);

	if (r != 0)
		return sqfs_fail(r, o->file->err, "write '%s'", o->path);
	n->u.file.fed = true;
	o->in_file = true;
	return 0;
}

int sqfs_out_file_data(struct sqfs_out *o, const void *data, size_t size)
{
	int r = sqfs_block_processor_append(o->proc, data, size);

	return r ? sqfs_fail(r, o->file->err, "write '%s'", o->path) : 0;
}

int sqfs_out_file_end(struct sqfs_out *o)
{
	int r = sqfs_block_processor_end_file(o->proc);

	o->in_file = false;
	return r ? sqfs_fail(r, o->file->err, "write '%s'", o->path) : 0;
}

/* ---- commit and cleanup ------------------------------------------------- */

static void sync_parent_dir(const char *path)
{
	_cleanup_free_ char *dir = strdup(path);
	_cleanup_close_ int fd = -1;
	char *slash;

	if (!dir)
		return;
	slash = strrchr(dir, '/');
	if (slash)
		slash[slash == dir] = '\0';
	fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		(void)fsync(fd);
}

/* Give the anonymous file its temporary name. */
static int link_anonymous(struct sqfs_out *o)
{
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", o->fd);
	for (int attempt = 0; attempt < 2; attempt++) {
		if (linkat(AT_FDCWD, proc, AT_FDCWD, o->tmp_path, AT_SYMLINK_FOLLOW) == 0 ||
		    linkat(o->fd, "", AT_FDCWD, o->tmp_path, AT_EMPTY_PATH) == 0) {
			o->tmp_created = true;
			return 0;
		}
		if (errno != EEXIST)
			break;
		unlink(o->tmp_path);
	}
	return berth_fail(-errno, "create '%s'", o->tmp_path);
}

int sqfs_out_commit(struct sqfs_out *o)
{
	int r;

	if (o->anonymous) {
		r = link_anonymous(o);
		if (r < 0)
			return r;
	}
	if (rename(o->tmp_path, o->path) < 0)
		return berth_fail(-errno, "rename '%s' to '%s'", o->tmp_path, o->path);
	o->tmp_created = false;
	o->committed = true;
	sync_parent_dir(o->path);
	return 0;
}

void sqfs_out_free(struct sqfs_out *o)
{
	if (!o)
		return;
	/* libsquashfs 1.2 frees the blocks still in its queues only by
	 * finishing: flush them (into a file about to be removed) so an aborted
	 * conversion does not leak them.  Then the block processor goes first:
	 * its threads use everything else. */
	if (o->proc && !o->finished) {
		if (o->in_file)
			sqfs_block_processor_end_file(o->proc);
		sqfs_block_processor_finish(o->proc);
	}
	sqfs_destroy(o->proc);
	sqfs_destroy(o->dirwr);
	sqfs_destroy(o->dm);
	sqfs_destroy(o->im);
	sqfs_destroy(o->xwr);
	sqfs_destroy(o->idtbl);
	sqfs_destroy(o->fragtbl);
	sqfs_destroy(o->blkwr);
	sqfs_destroy(o->uncmp);
	sqfs_destroy(o->cmp);
	sqfs_destroy(o->file);
	if (o->fd >= 0)
		close(o->fd);
	if (o->tmp_created && !o->committed)
		unlink(o->tmp_path);
	free(o->tmp_path);
	free(o->path);
	free(o);
}
