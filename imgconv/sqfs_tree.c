/* Writing the final tree: inodes in tree_number() order (everything a
 * directory lists is written before the directory), directory listings,
 * then the fragment, id and xattr tables and the superblock. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqfs/block_processor.h>
#include <sqfs/dir_writer.h>
#include <sqfs/error.h>
#include <sqfs/frag_table.h>
#include <sqfs/id_table.h>
#include <sqfs/inode.h>
#include <sqfs/meta_writer.h>
#include <sqfs/xattr_writer.h>
#include "common/error.h"
#include "imgconv/sqfs_out_private.h"

static int xattr_index(struct sqfs_out *o, const struct tnode *n, sqfs_u32 *idx)
{
	const char *key;
	const void *value;
	uint32_t size, pos = 0;
	int r;

	*idx = 0xFFFFFFFF;
	if (!n->xattrs || n->xattrs->count == 0)
		return 0;
	r = sqfs_xattr_writer_begin(o->xwr, 0);
	while (r == 0 && txattrs_next(n->xattrs, &pos, &key, &value, &size))
		r = sqfs_xattr_writer_add(o->xwr, key, value, size);
	if (r == 0)
		r = sqfs_xattr_writer_end(o->xwr, idx);
	return r;
}

static sqfs_inode_generic_t *dir_inode(struct sqfs_out *o, struct tnode *n, int *err)
{
	sqfs_inode_generic_t *inode;
	size_t subdirs = 0;
	sqfs_u32 parent;

	*err = sqfs_dir_writer_begin(o->dirwr, 0);
	for (uint32_t i = 0; *err == 0 && i < n->u.dir.n; i++) {
		const struct tdent *d = n->u.dir.ents[i];

		if (S_ISDIR(d->node->mode))
			subdirs++;
		*err = sqfs_dir_writer_add_entry(o->dirwr, d->name, d->node->ino, d->node->ref,
						 (sqfs_u16)d->node->mode);
	}
	if (*err == 0)
		*err = sqfs_dir_writer_end(o->dirwr);
	if (*err != 0)
		return NULL;
	/* As mksquashfs: the root's parent is one past the last inode. */
	parent = n->u.dir.parent ? n->u.dir.parent->ino : o->super.inode_count + 1;
	inode = sqfs_dir_writer_create_inode(o->dirwr, 2 + subdirs, 0xFFFFFFFF, parent);
	if (!inode) {
		*err = SQFS_ERROR_ALLOC;
		return NULL;
	}
	if (inode->base.type == SQFS_INODE_DIR)
		inode->data.dir.nlink = (sqfs_u32)(2 + subdirs);
	else
		inode->data.dir_ext.nlink = (sqfs_u32)(2 + subdirs);
	return inode;
}

static sqfs_inode_generic_t *other_inode(const struct tnode *n, int *err)
{
	size_t extra = S_ISLNK(n->mode) ? strlen(n->u.target) : 0;
	sqfs_inode_generic_t *inode = calloc(1, sizeof(*inode) + extra);

	if (!inode) {
		*err = SQFS_ERROR_ALLOC;
		return NULL;
	}
	switch (n->mode & S_IFMT) {
	case S_IFLNK:
		inode->base.type = SQFS_INODE_SLINK;
		inode->data.slink.nlink = n->nlink;
		inode->data.slink.target_size = (sqfs_u32)extra;
		inode->payload_bytes_available = inode->payload_bytes_used = (sqfs_u32)extra;
		memcpy(inode->extra, n->u.target, extra);
		break;
	case S_IFBLK:
	case S_IFCHR:
		inode->base.type = S_ISBLK(n->mode) ? SQFS_INODE_BDEV : SQFS_INODE_CDEV;
		inode->data.dev.nlink = n->nlink;
		inode->data.dev.devno = n->u.devno;
		break;
	case S_IFIFO:
	case S_IFSOCK:
		inode->base.type = S_ISFIFO(n->mode) ? SQFS_INODE_FIFO : SQFS_INODE_SOCKET;
		inode->data.ipc.nlink = n->nlink;
		break;
	default:
		free(inode);
		*err = SQFS_ERROR_INTERNAL;
		return NULL;
	}
	return inode;
}

static int write_node(struct sqfs_out *o, struct tnode *n)
{
	sqfs_inode_generic_t *inode;
	sqfs_u32 xidx, offset;
	sqfs_u64 block;
	int r = 0;

	if (S_ISDIR(n->mode)) {
		inode = dir_inode(o, n, &r);
	} else if (S_ISREG(n->mode)) {
		inode = TAKE_PTR(n->u.file.sq);
		if (!inode)
			return SQFS_ERROR_INTERNAL;
		if (n->nlink > 1) {
			sqfs_inode_make_extended(inode);
			inode->data.file_ext.nlink = n->nlink;
		}
	} else {
		inode = other_inode(n, &r);
	}
	if (!inode)
		return r ? r : SQFS_ERROR_INTERNAL;
	inode->base.mode = (sqfs_u16)n->mode;
	inode->base.mod_time = n->mtime;
	inode->base.inode_number = n->ino;
	r = xattr_index(o, n, &xidx);
	if (r == 0)
		r = sqfs_inode_set_xattr_index(inode, xidx);
	if (r == 0)
		r = sqfs_id_table_id_to_index(o->idtbl, n->uid, &inode->base.uid_idx);
	if (r == 0)
		r = sqfs_id_table_id_to_index(o->idtbl, n->gid, &inode->base.gid_idx);
	if (r == 0) {
		sqfs_meta_writer_get_position(o->im, &block, &offset);
		n->ref = (block << 16) | offset;
		r = sqfs_meta_writer_write_inode(o->im, inode);
	}
	free(inode);
	return r;
}

static int write_inodes(struct sqfs_out *o, struct tree *t)
{
	struct tnode **nodes = NULL;
	size_t count;
	int r;

	r = tree_number(t, &nodes, &count);
	if (r < 0)
		return r;
	o->super.inode_count = (sqfs_u32)count;
	o->super.inode_table_start = o->file->size;
	for (size_t i = 0; i < count; i++) {
		r = write_node(o, nodes[i]);
		if (r != 0)
			break;
	}
	free(nodes);
	if (r == 0)
		r = sqfs_meta_writer_flush(o->im);
	if (r == 0)
		r = sqfs_meta_writer_flush(o->dm);
	if (r != 0)
		return sqfs_fail(r, o->file->err, "write inodes to '%s'", o->path);
	o->super.root_inode_ref = t->root->ref;
	o->super.directory_table_start = o->file->size;
	r = sqfs_meta_write_write_to_file(o->dm);
	if (r != 0)
		return sqfs_fail(r, o->file->err, "write directories to '%s'", o->path);
	return 0;
}

/* Pad to a multiple of 4 KiB, as loop devices want. */
static int pad(struct sqfs_out *o)
{
	static const char zeros[SQFS_DEVBLK_SIZE];
	size_t rest = o->file->size % SQFS_DEVBLK_SIZE;

	if (rest == 0)
		return 0;
	return o->file->base.write_at(&o->file->base, o->file->size, zeros,
				      SQFS_DEVBLK_SIZE - rest);
}

int sqfs_out_finish(struct sqfs_out *o, struct tree *t)
{
	int r;

	r = sqfs_block_processor_finish(o->proc);
	o->finished = true;
	if (r != 0)
		return sqfs_fail(r, o->file->err, "write '%s'", o->path);
	r = write_inodes(o, t);
	if (r < 0)
		return r;
	r = sqfs_frag_table_write(o->fragtbl, &o->file->base, &o->super, o->cmp);
	if (r == 0)
		r = sqfs_id_table_write(o->idtbl, &o->file->base, &o->super, o->cmp);
	if (r == 0)
		r = sqfs_xattr_writer_flush(o->xwr, &o->file->base, &o->super, o->cmp);
	if (r == 0) {
		/* Only files smaller than a block are packed into fragments. */
		o->super.flags &= (sqfs_u16)~SQFS_FLAG_ALWAYS_FRAGMENTS;
		o->super.bytes_used = o->file->size;
		r = sqfs_super_write(&o->super, &o->file->base);
	}
	if (r == 0)
		r = pad(o);
	if (r != 0)
		return sqfs_fail(r, o->file->err, "write tables to '%s'", o->path);
	if (fsync(o->fd) < 0)
		return berth_fail(-errno, "sync '%s'", o->path);
	return 0;
}
