/* Writing one squashfs file with libsquashfs (private to imgconv).
 *
 * The output goes to an anonymous O_TMPFILE in the target's directory (or
 * "<path>.tmp.<pid>" where the filesystem has none), is named
 * "<path>.tmp.<pid>" only once complete and synced, then renamed over path:
 * a reader never sees a partial image, and a killed writer leaves nothing
 * behind on filesystems with O_TMPFILE.
 *
 * File data is fed in the order callers choose (sqfs_out_file_*); it is cut
 * into blocks and compressed on worker threads, but written in feeding
 * order, so the bytes depend on the input only.  sqfs_out_finish() then
 * writes inodes, directories and tables for the final tree. */
#ifndef BERTH_IMGCONV_SQFS_OUT_H
#define BERTH_IMGCONV_SQFS_OUT_H

#include <stddef.h>
#include <stdint.h>
#include "imgconv/imgconv.h"
#include "imgconv/tree.h"

struct sqfs_out;

/* Check compression name and level and pick defaults (no I/O).  *id gets
 * the SQFS_COMPRESSOR. */
int sqfs_out_check_opts(const struct imgconv_convert_opts *opts, int *id, unsigned *level);

/* Start writing path.  mtime goes into the superblock. */
int sqfs_out_open(const char *path, const struct imgconv_convert_opts *opts, uint32_t mtime,
		  struct sqfs_out **out);

/* Stream the content of regular file n (its inode lands in n->u.file.sq). */
int sqfs_out_file_begin(struct sqfs_out *o, struct tnode *n);
int sqfs_out_file_data(struct sqfs_out *o, const void *data, size_t size);
int sqfs_out_file_end(struct sqfs_out *o);

/* Wait for the data, write the tree's inodes, directories, fragment, id and
 * xattr tables and the superblock, and sync. */
int sqfs_out_finish(struct sqfs_out *o, struct tree *t);

/* Put the finished file at its path. */
int sqfs_out_commit(struct sqfs_out *o);

/* Release everything; an uncommitted output is removed. */
void sqfs_out_free(struct sqfs_out *o);
static inline void sqfs_out_freep(struct sqfs_out **o) { sqfs_out_free(*o); }

/* Record "<fmt ...>: <text for a libsquashfs error>" and return the berth
 * code for it (-ENOMEM, -errno for I/O when known, BERTH_EFORMAT ...). */
int sqfs_fail(int sqfs_err, int saved_errno, const char *fmt, ...) _printf_(3, 4);

/* CPUs this process may run on (sched_getaffinity), at least 1. */
unsigned sqfs_out_cpus(void);

#endif
