/* /.berth/image.json (private to imgconv). */
#ifndef BERTH_IMGCONV_IMAGEJSON_H
#define BERTH_IMGCONV_IMAGEJSON_H

#include <stddef.h>
#include <stdint.h>
#include "imgconv/imgconv.h"

#define IMAGE_JSON_DIR ".berth"
#define IMAGE_JSON_PATH ".berth/image.json"

/* The file's content for this config blob and opts: *out malloc'd (with a
 * trailing newline, NUL-terminated, *out_len without the NUL).  *created:
 * the config's "created" time in seconds, or 0, for a reproducible
 * superblock time.  BERTH_EFORMAT when the config is not a JSON object. */
int imagejson_build(const char *config_json, size_t config_len,
		    const struct imgconv_convert_opts *opts, char **out, size_t *out_len,
		    uint32_t *created);

#endif
