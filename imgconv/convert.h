/* Shared by convert.c and pack.c (private to imgconv). */
#ifndef BERTH_IMGCONV_CONVERT_H
#define BERTH_IMGCONV_CONVERT_H

#include <stddef.h>
#include <stdint.h>
#include "imgconv/layer.h"
#include "imgconv/sqfs_out.h"
#include "imgconv/tree.h"

/* Put berth's /.berth (root 0755) with image.json (root 0644, content
 * json) into the tree, replacing whatever the image had there, and stream
 * the file's data. */
int convert_install_image_json(struct tree *t, struct sqfs_out *o, const char *json,
			       size_t len, uint32_t mtime);

/* imgconv_convert() for a layer set (whose blobs may still be arriving:
 * set->wait). */
int convert_layers(const struct layer_set *set, const char *config_json, size_t config_len,
		   const char *out_path, const struct imgconv_convert_opts *opts);

#endif
