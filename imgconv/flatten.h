/* Flattening layers read once, from the top layer down (private to imgconv).
 *
 * Layers are read top-down so that a lower layer's file data can be
 * streamed into the squashfs as it is met: whether a member can still be
 * part of the final tree depends only on the layers above it, which are
 * read by then (flatten_want).  Every member is also recorded, without its
 * data; flatten_apply() then builds the tree from the records bottom-up
 * with tree.c's functions, exactly as reading the layers in order would,
 * so the OCI semantics (whiteouts, opaque directories, type changes,
 * symlinked parents, hard links across layers) are tree.c's alone.
 *
 * flatten_want() may say yes to a file that does not survive (a duplicate
 * earlier in the same layer, a path an upper layer reached through a
 * symlink): its data is written and unused.  It says no only when an upper
 * layer hides the path for sure; a file it refused that the tree still
 * holds (a hard link, later in its own layer, to a hidden name) has no data
 * yet, and the caller reads that layer again for it (convert.c). */
#ifndef BERTH_IMGCONV_FLATTEN_H
#define BERTH_IMGCONV_FLATTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "imgconv/layer.h"
#include "imgconv/tree.h"

enum flatten_kind {
	FLATTEN_ENTRY,    /* a file, directory, symlink, device or FIFO */
	FLATTEN_LINK,     /* a hard link to target */
	FLATTEN_WHITEOUT, /* "DIR/.wh.NAME": path is DIR/NAME */
	FLATTEN_OPAQUE,   /* "DIR/.wh..wh..opq": path is DIR */
};

struct flatten;

struct flatten *flatten_new(size_t n_layers);
/* Drops the nodes the records hold into t's grave (t may be NULL when no
 * data was fed). */
void flatten_free(struct flatten *f, struct tree *t);

/* Record member number member of layer idx.  Layers are recorded from the
 * top one down, each in tar order.  path (and a hard link's target) are
 * canonical.  For FLATTEN_ENTRY, e is copied (its symlink target too) and
 * its xattrs and node are taken over, even on failure. */
int flatten_add(struct flatten *f, size_t idx, uint32_t member, enum flatten_kind kind,
		const char *path, const char *target, struct tree_entry *e);

/* May a regular file at path in layer idx be in the final tree?  Call it
 * before recording the file. */
bool flatten_want(struct flatten *f, size_t idx, const char *path);

/* Build the tree from the records, the bottom layer first (the end of
 * flatten_add and flatten_want).  Errors name the layer and the member. */
int flatten_apply(struct flatten *f, struct tree *t, const struct layer_set *set);

#endif
