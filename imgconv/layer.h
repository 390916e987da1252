/* Reading layer tarballs with libarchive (private to imgconv).
 *
 * A layer is read as a stream, never extracted, once (layer_read): its
 * members are recorded for the tree and the data of the files that may
 * survive goes straight to the squashfs writer.  layer_feed reads a layer
 * again for files that had to wait (flatten.h).  Errors name the layer
 * ("layer 2 of 5 ('PATH')") and, where there is one, the member. */
#ifndef BERTH_IMGCONV_LAYER_H
#define BERTH_IMGCONV_LAYER_H

#include <stddef.h>
#include "imgconv/imgconv.h"
#include "imgconv/sqfs_out.h"
#include "imgconv/tree.h"

struct layer_set {
	const struct imgconv_layer *layers;
	size_t count;
	/* Optional: called before layer idx is opened; returns when its blob
	 * is complete and verified (0), or why it never will be (< 0). */
	int (*wait)(void *data, size_t idx);
	void *wait_data;
};

/* Messages name a layer as "layer 2 of 5 ('PATH')". */
#define LAYER_FMT "layer %zu of %zu ('%s')"
#define LAYER_ARGS(set, idx) (idx) + 1, (set)->count, (set)->layers[idx].path

/* Check a layer's media type: 0, or BERTH_EUNSUPPORTED naming the layer
 * (foreign / non-distributable layers, unknown types). */
int layer_check_media_type(const struct layer_set *set, size_t idx);

struct flatten;

/* Read layer idx once: record its members in f (layers from the top one
 * down) and stream the data of the regular files flatten_want() keeps. */
int layer_read(const struct layer_set *set, size_t idx, struct flatten *f, struct sqfs_out *o);

/* Stream the data of files (sorted by member, all from layer idx). */
int layer_feed(const struct layer_set *set, size_t idx, struct tnode **files, size_t count,
	       struct sqfs_out *o);

#endif
