/* Internals shared by sqfs_out.c and sqfs_tree.c. */
#ifndef BERTH_IMGCONV_SQFS_OUT_PRIVATE_H
#define BERTH_IMGCONV_SQFS_OUT_PRIVATE_H

#include <stdbool.h>
#include <sqfs/io.h>
#include <sqfs/super.h>
#include "imgconv/sqfs_out.h"

/* Defaults when the caller names none (see bench/RESULTS.md for why). */
#define IMGCONV_DEFAULT_COMPRESSION "lz4"
#define IMGCONV_DEFAULT_ZSTD_LEVEL 3

struct ofile {
	sqfs_file_t base;
	int fd;
	sqfs_u64 size;
	int err; /* errno of the first failed write, for the message */
};

struct sqfs_out {
	char *path, *tmp_path;
	int fd;
	bool anonymous;   /* O_TMPFILE, not yet linked */
	bool tmp_created; /* tmp_path exists and is ours */
	bool committed;
	bool in_file;  /* between sqfs_out_file_begin and _end */
	bool finished; /* the block processor has no block in flight */
	struct ofile *file;
	sqfs_super_t super;
	sqfs_compressor_t *cmp, *uncmp;
	sqfs_block_writer_t *blkwr;
	sqfs_frag_table_t *fragtbl;
	sqfs_block_processor_t *proc;
	sqfs_id_table_t *idtbl;
	sqfs_xattr_writer_t *xwr;
	sqfs_meta_writer_t *im, *dm;
	sqfs_dir_writer_t *dirwr;
};

#endif
