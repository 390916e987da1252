/* The in-memory image tree that layers are flattened into (private to imgconv).
 *
 * Names live in dentries, everything else in nodes, so hard links are several
 * dentries sharing one node.  File content is never held here: a regular file
 * records where its data is (layer index and member number in that layer's
 * tar stream) and the squashfs writer streams it later.
 *
 * Layers are applied in order, each with a stamp (its index + 1; 0 is
 * "created by berth").  A dentry remembers the last layer that created or
 * passed through it; whiteouts and opaque markers only remove what lower
 * layers put there (OCI image spec, layer.md "Whiteouts"), so the stamp
 * decides what an opaque directory keeps, whatever the order of the tar.
 *
 * All functions return 0 or a negative code with a one-line message recorded
 * (common/error.h); the caller adds which layer and member. */
#ifndef BERTH_IMGCONV_TREE_H
#define BERTH_IMGCONV_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sqfs/predef.h>

/* Extended attributes of a node: `count` records of "key\0" + u32 value
 * length + value, sorted by key. */
struct txattrs {
	uint32_t count;
	uint32_t size; /* bytes used in data */
	char data[];
};

struct tdent;

struct tnode {
	uint32_t mode; /* type and permission bits, as in st_mode */
	uint32_t uid, gid;
	uint32_t mtime;
	uint32_t nlink; /* dentries pointing here */
	uint32_t ino;   /* squashfs inode number, 0 until tree_number() */
	uint64_t ref;   /* squashfs inode reference, set by the writer */
	struct txattrs *xattrs;
	union {
		struct {
			struct tdent **ents; /* sorted by name (memcmp order) */
			uint32_t n, cap;
			struct tnode *parent;
			bool purge; /* drop lower-layer descendants at end of layer */
		} dir;
		struct {
			uint64_t size;
			uint32_t layer;  /* index of the layer holding the data */
			uint32_t member; /* header number in that layer's tar */
			bool fed;        /* data already handed to the writer */
			sqfs_inode_generic_t *sq; /* filled in by the block processor */
			struct tnode *next_dead;  /* in tree.grave */
		} file;
		char *target; /* symlink */
		uint32_t devno; /* device nodes, Linux new_encode_dev() form */
	} u;
};

struct tdent {
	struct tnode *node;
	uint32_t stamp;
	uint16_t len;
	char name[];
};

struct tree {
	struct tnode *root;
	uint32_t default_mtime; /* for implicit directories */
	size_t purges;          /* purge marks set during the current layer */
	/* Removed nodes whose inode the block processor may still update:
	 * freed only by tree_free(), after the writer is done. */
	struct tnode *grave;
};

/* What a tar member (or a file on disk) describes. */
struct tree_entry {
	uint32_t mode, uid, gid, mtime;
	uint64_t size;          /* regular files */
	uint32_t layer, member; /* regular files: where the data is */
	const char *target;     /* symlinks */
	uint32_t devno;         /* block and character devices */
	struct txattrs *xattrs; /* taken over by the tree (even on failure) */
	/* Regular files: a node from tree_node_new() (its data possibly fed
	 * already) that tree_add() links instead of making a new one; the
	 * caller keeps its own reference.  Only path and mode matter then. */
	struct tnode *node;
};

#define TREE_NAME_MAX 255
#define TREE_PATH_MAX 4095

struct tree *tree_new(uint32_t default_mtime);
void tree_free(struct tree *t);

/* A node not (yet) in any tree, with one reference held by the caller:
 * for file data fed before the tree is complete.  Takes e->xattrs. */
struct tnode *tree_node_new(struct tree_entry *e);
/* Drop the caller's reference; a fed node whose last reference goes waits
 * in t's grave for tree_free() (the block processor may still write it). */
void tree_node_put(struct tree *t, struct tnode *n);

/* Canonicalise a member name in place: drop "./" and "." components,
 * collapse "//", drop a trailing '/'.  The root becomes "".  Rejects absolute
 * names, ".." anywhere, components over 255 bytes and names over 4095 bytes
 * with BERTH_EFORMAT (message: why, without the name). */
int tree_canon_path(char *path);

/* Create or replace `path` (canonical).  Missing parents are created as
 * 0755 root directories; parents that are symlinks are followed inside the
 * tree, never out of it.  A directory over a directory merges (the new
 * attributes win, children stay); anything else replaces what was there.
 * *out (optional) gets the node. */
int tree_add(struct tree *t, const char *path, struct tree_entry *e, uint32_t stamp,
	     struct tnode **out);

/* Hard link `path` to the node currently at `target` (both canonical).  The
 * link keeps that node even if `target` is later removed or replaced. */
int tree_link(struct tree *t, const char *path, const char *target, uint32_t stamp);

/* ".wh.NAME" in directory `dir`: remove NAME if a lower layer made it; if
 * this layer made it and it is a directory, drop its lower-layer content at
 * tree_end_layer(). */
int tree_whiteout(struct tree *t, const char *dir, const char *name, uint32_t stamp);

/* ".wh..wh..opq" in `dir`: at tree_end_layer(), everything lower layers put
 * below `dir` goes; what this layer put there stays. */
int tree_opaque(struct tree *t, const char *dir, uint32_t stamp);

/* Apply the opaque and whiteout marks of the layer with this stamp. */
void tree_end_layer(struct tree *t, uint32_t stamp);

/* Remove the top-level entry `name` whatever it is (no-op when absent). */
void tree_remove_top(struct tree *t, const char *name);

/* Look up a canonical path without following symlinks; NULL when absent. */
struct tnode *tree_lookup(struct tree *t, const char *path);

/* Number the nodes for squashfs: post-order (a directory after everything
 * in it, the root last), children in name order, hard links once.  *nodes
 * (malloc'd) lists the unique nodes in inode-number order. */
int tree_number(struct tree *t, struct tnode ***nodes, size_t *count);

/* Extended attributes: build a sorted set from (key, value) pairs. */
struct txattrs *txattrs_new(void);
int txattrs_add(struct txattrs **x, const char *key, const void *value, uint32_t size);
/* Iterate: pos starts at 0; returns false at the end. */
bool txattrs_next(const struct txattrs *x, uint32_t *pos, const char **key,
		  const void **value, uint32_t *size);

/* s for a one-line message: control characters as '?', cut at size - 1
 * bytes (image paths may hold newlines).  Returns buf. */
const char *tree_printable(const char *s, char *buf, size_t size);
#define TREE_PRINTABLE_MAX 512

/* Linux new_encode_dev(): what squashfs stores for a device number. */
static inline uint32_t tree_devno(uint32_t major, uint32_t minor)
{
	return (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xffu) << 12);
}

#endif
