/* lstream (imgconv/layer_stream.c) on good and damaged gzip and zstd blobs.
 * Built twice where ISA-L is there: test_layer_stream inflates gzip with
 * ISA-L, test_layer_stream_zlib with zlib; both must refuse the same
 * damage, the trailer's CRC-32 and length included. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include "common/error.h"
#include "imgconv/layer_stream.h"
#include "tests/tap.h"

#define DATA_LEN (3u * 1024 * 1024 + 12345)

static unsigned char *data;
static char tmpl[] = "/tmp/berth-lstream-XXXXXX";

/* Text-like, so it compresses, with enough noise for real Huffman blocks. */
static void make_data(void)
{
	uint32_t x = 12345;

	data = malloc(DATA_LEN);
	for (size_t i = 0; i < DATA_LEN; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (unsigned char)("etaoin shrdlu\n/usr/lib"[(x >> 16) % 23] ^
					  ((x >> 29) == 0 ? (x >> 8) : 0));
	}
}

static unsigned char *gz(const unsigned char *in, size_t len, size_t *out_len)
{
	z_stream zs = { 0 };
	size_t cap = compressBound((uLong)len) + 64;
	unsigned char *out = malloc(cap);

	deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	zs.next_in = (unsigned char *)in;
	zs.avail_in = (uInt)len;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	deflate(&zs, Z_FINISH);
	*out_len = cap - zs.avail_out;
	deflateEnd(&zs);
	return out;
}

/* Read buf through lstream: 0 and *got = the bytes, or the error code. */
static int run(const void *buf, size_t len, enum lstream_comp declared, unsigned char **got,
	       size_t *got_len, char *err, size_t err_size)
{
	int fd = mkstemp(tmpl);
	struct lstream *s = NULL;
	enum lstream_comp found;
	size_t cap = DATA_LEN * 2 + 16, n = 0;
	int r;

	*got = malloc(cap);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) != 0)
		return -EIO;
	unlink(tmpl);
	memcpy(tmpl + strlen(tmpl) - 6, "XXXXXX", 6);
	r = lstream_open(fd, declared, &s, &found);
	while (r == 0) {
		const void *chunk;
		ssize_t k = lstream_read(s, &chunk);

		if (k <= 0) {
			r = (int)k;
			break;
		}
		if (n + (size_t)k <= cap)
			memcpy(*got + n, chunk, (size_t)k);
		n += (size_t)k;
	}
	snprintf(err, err_size, "%s", s ? lstream_error(s) : "");
	lstream_free(s);
	close(fd);
	*got_len = n;
	return r;
}

static void expect_good(const void *buf, size_t len, enum lstream_comp comp,
			const unsigned char *want, size_t want_len, const char *what)
{
	unsigned char *got;
	size_t got_len;
	char err[200];
	int r = run(buf, len, comp, &got, &got_len, err, sizeof(err));

	is_int(r, 0, "%s: read to the end (%s)", what, err);
	ok(got_len == want_len && !memcmp(got, want, want_len), "%s: the bytes that went in",
	   what);
	free(got);
}

static void expect_bad(const void *buf, size_t len, const char *needle, const char *what)
{
	unsigned char *got;
	size_t got_len;
	char err[200];
	int r = run(buf, len, LS_GZIP, &got, &got_len, err, sizeof(err));

	is_int(r, BERTH_EFORMAT, "%s: refused", what);
	ok(strncmp(err, "gzip: ", 6) == 0 && (!needle || strstr(err, needle)),
	   "%s: says why: %s", what, err);
	free(got);
}

static void test_gzip(void)
{
	size_t a_len, b_len, len;
	unsigned char *a = gz(data, DATA_LEN, &a_len);
	unsigned char *b = gz(data, 1000, &b_len);
	unsigned char *both = malloc(a_len + b_len), *bad = malloc(a_len + 8);
	unsigned char *want = malloc(DATA_LEN + 1000);

	expect_good(a, a_len, LS_GZIP, data, DATA_LEN, "gzip");
	memcpy(both, a, a_len);
	memcpy(both + a_len, b, b_len);
	memcpy(want, data, DATA_LEN);
	memcpy(want + DATA_LEN, data, 1000);
	expect_good(both, a_len + b_len, LS_GZIP, want, DATA_LEN + 1000,
		    "two gzip members one after the other");

	free(b);
	/* Output ending exactly at lstream's 256 KiB buffer. */
	b = gz(data, 1024 * 1024, &b_len);
	expect_good(b, b_len, LS_GZIP, data, 1024 * 1024, "gzip of exactly 1 MiB");
	free(b);
	b = gz(data, 1000, &b_len);

	expect_bad(a, a_len / 2, "truncated", "cut in the middle");
	expect_bad(a, a_len - 4, "truncated", "the length field missing");
	memcpy(bad, a, a_len);
	bad[a_len - 8] ^= 0x01;
	expect_bad(bad, a_len, NULL, "one bit of the trailer's CRC-32 flipped");
	memcpy(bad, a, a_len);
	bad[a_len - 1] ^= 0x01;
	expect_bad(bad, a_len, NULL, "one bit of the trailer's length flipped");
	memcpy(bad, a, a_len);
	for (size_t i = a_len / 2; i < a_len / 2 + 64; i++)
		bad[i] ^= 0x5a;
	expect_bad(bad, a_len, NULL, "64 bytes in the middle damaged");
	memcpy(bad, a, a_len);
	bad[3] = 0xe0; /* reserved flag bits */
	expect_bad(bad, a_len, NULL, "a header with reserved flags");
	memcpy(bad, a, a_len);
	memcpy(bad + a_len, "garbage!", 8);
	len = a_len + 8;
	expect_bad(bad, len, "trailing garbage", "garbage after the last member");
	free(a);
	free(b);
	free(both);
	free(bad);
	free(want);
}

static void test_zstd_and_plain(void)
{
	size_t cap = ZSTD_compressBound(DATA_LEN), len;
	unsigned char *z = malloc(cap), *got;
	char err[200];
	size_t got_len;
	int r;

	len = ZSTD_compress(z, cap, data, DATA_LEN, 3);
	expect_good(z, len, LS_ZSTD, data, DATA_LEN, "zstd");
	r = run(z, len / 2, LS_ZSTD, &got, &got_len, err, sizeof(err));
	ok(r == BERTH_EFORMAT && strstr(err, "truncated"), "zstd cut in the middle: %s", err);
	free(got);
	expect_good(data, DATA_LEN, LS_NONE, data, DATA_LEN, "not compressed");
	r = run(data, DATA_LEN, LS_GZIP, &got, &got_len, err, sizeof(err));
	is_int(r, BERTH_EFORMAT, "declared gzip, plain data: refused");
	free(got);
	free(z);
}

int main(void)
{
	make_data();
	test_gzip();
	test_zstd_and_plain();
	free(data);
	return tap_done();
}
