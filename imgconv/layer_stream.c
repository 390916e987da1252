/* Decompressing a layer blob for libarchive.
 *
 * libarchive's own gzip filter never checks the gzip trailer (CRC-32 and
 * length: "XXX TODO" in archive_read_support_filter_gzip.c), so a layer
 * damaged inside stored blocks would convert silently.  zlib checks both
 * when it inflates in gzip mode, libzstd checks frame checksums; so berth
 * decompresses itself and gives libarchive plain tar.
 *
 * Inflating is most of a conversion's time, on one thread: where ISA-L
 * (libisal, igzip) is there at build time it inflates gzip instead of zlib,
 * ~3.5x faster on x86-64 (doc/decisions.md).  In its gzip mode
 * (crc_flag ISAL_GZIP) it parses the header and checks the trailer's
 * CRC-32 and length as zlib does; tests/unit/test_layer_stream.c holds
 * both builds to the same damaged streams. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
/* BERTH_LSTREAM_ZLIB: zlib even where ISA-L is there (the tests). */
#if defined(HAVE_ISAL) && !defined(BERTH_LSTREAM_ZLIB)
#define LS_ISAL 1
#include <isa-l/igzip_lib.h>
#endif
#include "common/error.h"
#include "imgconv/layer_stream.h"

#define LS_BUF (256 * 1024)

struct lstream {
	int fd;
	enum lstream_comp comp;
	bool eof;       /* the file is read to its end */
	bool in_frame;  /* in the middle of a gzip member / zstd frame */
	bool done;      /* all data returned */
#ifdef LS_ISAL
	struct inflate_state *is;
#else
	z_stream zs;
	bool zs_init;
#endif
	ZSTD_DStream *zd;
	unsigned char *in, *out;
	size_t in_pos, in_len;
	char err[160];
};

const char *lstream_error(const struct lstream *s) { return s->err; }

static int fail(struct lstream *s, int code, const char *what)
{
	snprintf(s->err, sizeof(s->err), "%s", what);
	return code;
}

/* Refill the input buffer; 0 at end of file. */
static ssize_t fill(struct lstream *s)
{
	ssize_t n;

	if (s->in_pos < s->in_len)
		return (ssize_t)(s->in_len - s->in_pos);
	s->in_pos = s->in_len = 0;
	if (s->eof)
		return 0;
	do
		n = read(s->fd, s->in, LS_BUF);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		snprintf(s->err, sizeof(s->err), "read: %s", strerror(errno));
		return -errno;
	}
	if (n == 0)
		s->eof = true;
	s->in_len = (size_t)n;
	return n;
}

int lstream_open(int fd, enum lstream_comp declared, struct lstream **out,
		 enum lstream_comp *found)
{
	struct lstream *s = calloc(1, sizeof(*s));
	ssize_t n;

	if (!s)
		return -ENOMEM;
	*out = s;
	s->fd = fd;
	s->in = calloc(1, LS_BUF);
	s->out = malloc(LS_BUF);
	if (!s->in || !s->out)
		return -ENOMEM;
	/* Sniff: enough bytes for the magic numbers, however read() splits. */
	while (s->in_len < 4 && !s->eof) {
		n = read(fd, s->in + s->in_len, LS_BUF - s->in_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(s, -errno, strerror(errno));
		if (n == 0)
			s->eof = true;
		s->in_len += (size_t)n;
	}
	if (s->in_len >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b)
		s->comp = LS_GZIP;
	else if (s->in_len >= 4 && !memcmp(s->in, "\x28\xb5\x2f\xfd", 4))
		s->comp = LS_ZSTD;
	else
		s->comp = LS_NONE;
	*found = s->comp;
	if (declared != LS_SNIFF && declared != s->comp)
		return BERTH_EFORMAT; /* the caller names both */
	if (s->comp == LS_GZIP) {
#ifdef LS_ISAL
		s->is = malloc(sizeof(*s->is));
		if (!s->is)
			return -ENOMEM;
		isal_inflate_init(s->is);
#else
		/* 16 + MAX_WBITS: gzip only, with trailer checks. */
		if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK)
			return -ENOMEM;
		s->zs_init = true;
#endif
	} else if (s->comp == LS_ZSTD) {
		s->zd = ZSTD_createDStream();
		if (!s->zd || ZSTD_isError(ZSTD_initDStream(s->zd)))
			return -ENOMEM;
	}
	return 0;
}

#ifdef LS_ISAL
/* RFC 1952 2.3.1: a reserved FLG bit set is an error.  zlib says so,
 * ISA-L 2.30 does not look: check the member's FLG byte here, reading on
 * when the header straddles the buffer's end.  1: reserved bits set;
 * < 0: a read error. */
static int member_flags(struct lstream *s)
{
	while (s->in_len - s->in_pos < 4 && !s->eof) {
		ssize_t n;

		memmove(s->in, s->in + s->in_pos, s->in_len - s->in_pos);
		s->in_len -= s->in_pos;
		s->in_pos = 0;
		do
			n = read(s->fd, s->in + s->in_len, LS_BUF - s->in_len);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			snprintf(s->err, sizeof(s->err), "read: %s", strerror(errno));
			return -errno;
		}
		if (n == 0)
			s->eof = true;
		s->in_len += (size_t)n;
	}
	return s->in_len - s->in_pos >= 4 && (s->in[s->in_pos + 3] & 0xe0);
}

static ssize_t read_gzip(struct lstream *s, const void **buf)
{
	for (;;) {
		ssize_t n = fill(s);
		int z;

		if (n < 0)
			return n;
		if (n == 0 && !s->in_frame) {
			s->done = true;
			return 0;
		}
		if (!s->in_frame) {
			/* A further member (gzip allows concatenation), or junk. */
			if (s->in[s->in_pos] != 0x1f)
				return fail(s, BERTH_EFORMAT, "gzip: trailing garbage after the data");
			z = member_flags(s);
			if (z < 0)
				return z;
			if (z > 0)
				return fail(s, BERTH_EFORMAT, "gzip: unknown header flags set");
			isal_inflate_reset(s->is);
			s->is->crc_flag = ISAL_GZIP; /* header parsed, CRC and length checked */
			s->in_frame = true;
		}
		/* At the end of the file, one more call with no input: ISA-L may
		 * still hold output it could not place before. */
		s->is->next_in = s->in + s->in_pos;
		s->is->avail_in = (uint32_t)(s->in_len - s->in_pos);
		s->is->next_out = s->out;
		s->is->avail_out = LS_BUF;
		z = isal_inflate(s->is);
		s->in_pos = s->in_len - s->is->avail_in;
		if (z < 0) {
			snprintf(s->err, sizeof(s->err), "gzip: %s",
				 z == ISAL_INCORRECT_CHECKSUM ? "incorrect data check"
				 : z == ISAL_INVALID_WRAPPER ? "incorrect header"
							     : "invalid compressed data");
			return BERTH_EFORMAT;
		}
		if (s->is->block_state == ISAL_BLOCK_FINISH)
			s->in_frame = false;
		if (s->is->avail_out < LS_BUF) {
			*buf = s->out;
			return (ssize_t)(LS_BUF - s->is->avail_out);
		}
		if (n == 0 && s->in_frame)
			return fail(s, BERTH_EFORMAT, "gzip: unexpected end of data (truncated)");
	}
}
#else
static ssize_t read_gzip(struct lstream *s, const void **buf)
{
	for (;;) {
		ssize_t n = fill(s);
		int z;

		if (n < 0)
			return n;
		if (n == 0) {
			if (s->in_frame)
				return fail(s, BERTH_EFORMAT, "gzip: unexpected end of data (truncated)");
			s->done = true;
			return 0;
		}
		if (!s->in_frame) {
			/* A further member (gzip allows concatenation), or junk. */
			if (s->in[s->in_pos] != 0x1f)
				return fail(s, BERTH_EFORMAT, "gzip: trailing garbage after the data");
			inflateReset(&s->zs);
			s->in_frame = true;
		}
		s->zs.next_in = s->in + s->in_pos;
		s->zs.avail_in = (uInt)(s->in_len - s->in_pos);
		s->zs.next_out = s->out;
		s->zs.avail_out = LS_BUF;
		z = inflate(&s->zs, Z_NO_FLUSH);
		s->in_pos = s->in_len - s->zs.avail_in;
		if (z == Z_STREAM_END)
			s->in_frame = false;
		else if (z != Z_OK && z != Z_BUF_ERROR) {
			snprintf(s->err, sizeof(s->err), "gzip: %s",
				 s->zs.msg ? s->zs.msg : "corrupt data");
			return BERTH_EFORMAT;
		}
		if (s->zs.avail_out < LS_BUF) {
			*buf = s->out;
			return (ssize_t)(LS_BUF - s->zs.avail_out);
		}
	}
}
#endif

static ssize_t read_zstd(struct lstream *s, const void **buf)
{
	for (;;) {
		ssize_t n = fill(s);
		ZSTD_inBuffer in;
		ZSTD_outBuffer out = { s->out, LS_BUF, 0 };
		size_t z;

		if (n < 0)
			return n;
		if (n == 0) {
			if (s->in_frame)
				return fail(s, BERTH_EFORMAT, "zstd: unexpected end of data (truncated)");
			s->done = true;
			return 0;
		}
		in.src = s->in + s->in_pos;
		in.size = s->in_len - s->in_pos;
		in.pos = 0;
		z = ZSTD_decompressStream(s->zd, &out, &in);
		s->in_pos += in.pos;
		if (ZSTD_isError(z)) {
			snprintf(s->err, sizeof(s->err), "zstd: %s", ZSTD_getErrorName(z));
			return BERTH_EFORMAT;
		}
		/* 0: a frame is complete and flushed. */
		s->in_frame = z != 0;
		if (out.pos > 0) {
			*buf = s->out;
			return (ssize_t)out.pos;
		}
	}
}

ssize_t lstream_read(struct lstream *s, const void **buf)
{
	ssize_t n;

	if (s->done)
		return 0;
	switch (s->comp) {
	case LS_GZIP:
		return read_gzip(s, buf);
	case LS_ZSTD:
		return read_zstd(s, buf);
	default:
		n = fill(s);
		if (n > 0) {
			*buf = s->in + s->in_pos;
			s->in_pos = s->in_len;
		}
		return n;
	}
}

int lstream_drain(struct lstream *s)
{
	const void *buf;
	ssize_t n;

	while ((n = lstream_read(s, &buf)) > 0)
		;
	return (int)n;
}

void lstream_free(struct lstream *s)
{
	if (!s)
		return;
#ifdef LS_ISAL
	free(s->is);
#else
	if (s->zs_init)
		inflateEnd(&s->zs);
#endif
	ZSTD_freeDStream(s->zd);
	free(s->in);
	free(s->out);
	free(s);
}
