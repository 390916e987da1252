/* A layer blob as a stream of tar bytes: sniffed, decompressed (gzip with
 * its CRC and length checked, zstd with its checksums), private to imgconv. */
#ifndef BERTH_IMGCONV_LAYER_STREAM_H
#define BERTH_IMGCONV_LAYER_STREAM_H

#include <stdbool.h>
#include <sys/types.h>

enum lstream_comp { LS_SNIFF, LS_NONE, LS_GZIP, LS_ZSTD };

struct lstream;

/* Start reading fd (kept open by the caller).  *found: what the data is.
 * When declared is not LS_SNIFF and the data differs, BERTH_EFORMAT.
 * *out must be freed with lstream_free() even on failure. */
int lstream_open(int fd, enum lstream_comp declared, struct lstream **out,
		 enum lstream_comp *found);

/* Next chunk of tar bytes: > 0 with *buf set, 0 at the end, < 0 on error
 * (-errno, BERTH_EFORMAT) with lstream_error() describing it. */
ssize_t lstream_read(struct lstream *s, const void **buf);

/* Read to the end, so that the trailer is checked. */
int lstream_drain(struct lstream *s);

const char *lstream_error(const struct lstream *s);
void lstream_free(struct lstream *s);

#endif
