/* Reading layer tarballs with libarchive (private to imgconv).
 *
 * A layer is read as a stream, never extracted: once for its headers
 * (layer_scan, which applies them to the tree), and once more, when its
 * files survive into the final tree, for their data (layer_feed).  Errors
 * name the layer ("layer 2 of 5 ('PATH')") and, where there is one, the
 * member. */
#ifndef BERTH_IMGCONV_LAYER_H
#define BERTH_IMGCONV_LAYER_H

#include <stddef.h>
#include "imgconv/imgconv.h"
#include "imgconv/sqfs_out.h"
#include "imgconv/tree.h"

struct layer_set {
	const struct imgconv_layer *layers;
	size_t count;
};

/* Check a layer's media type: 0, or BERTH_EUNSUPPORTED naming the layer
 * (foreign / non-distributable layers, unknown types). */
int layer_check_media_type(const struct layer_set *set, size_t idx);

/* Apply layer idx's members to the tree (stamp idx + 1).  With feed, the
 * data of regular files is streamed into it right away (only right for the
 * top layer, whose files nothing later can replace). */
int layer_scan(const struct layer_set *set, size_t idx, struct tree *t, struct sqfs_out *feed);

/* Stream the data of files (sorted by member, all from layer idx). */
int layer_feed(const struct layer_set *set, size_t idx, struct tnode **files, size_t count,
	       struct sqfs_out *o);

#endif
