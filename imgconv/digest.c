/* sha256 digests through libcrypto's EVP interface (the digest syntax,
 * digest_valid, is in ref.c: the run path checks it without libcrypto). */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "common/error.h"
#include "imgconv/fetch.h"

struct sha256 {
	EVP_MD_CTX *ctx;
};

struct sha256 *sha256_new(void)
{
	struct sha256 *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || sha256_reset(h) < 0) {
		sha256_free(h);
		return NULL;
	}
	return h;
}

void sha256_free(struct sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int sha256_reset(struct sha256 *h)
{
	return EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
}

int sha256_update(struct sha256 *h, const void *buf, size_t len)
{
	return EVP_DigestUpdate(h->ctx, buf, len) == 1 ? 0 : -EIO;
}

int sha256_final(struct sha256 *h, char out[DIGEST_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	static const char hex[] = "0123456789abcdef";

	if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1 || n != 32)
		return -EIO;
	memcpy(out, "sha256:", 7);
	for (unsigned i = 0; i < n; i++) {
		out[7 + 2 * i] = hex[md[i] >> 4];
		out[8 + 2 * i] = hex[md[i] & 15];
	}
	out[DIGEST_LEN] = '\0';
	return sha256_reset(h);
}

int sha256_buf(const void *buf, size_t len, char out[DIGEST_LEN + 1])
{
	struct sha256 *h = sha256_new();
	int r;

	if (!h)
		return -ENOMEM;
	r = sha256_update(h, buf, len);
	if (r == 0)
		r = sha256_final(h, out);
	sha256_free(h);
	return r;
}

int sha256_file(const char *path, char out[DIGEST_LEN + 1], uint64_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct sha256 *h;
	uint64_t total = 0;
	char *buf;
	int r = 0;

	if (fd < 0)
		return berth_fail(-errno, "open '%s'", path);
	h = sha256_new();
	buf = malloc(1 << 20);
	if (!h || !buf) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, 1 << 20);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = berth_fail(-errno, "read '%s'", path);
			goto out;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
		r = sha256_update(h, buf, (size_t)n);
		if (r < 0)
			goto out;
	}
	r = sha256_final(h, out);
	if (size)
		*size = total;
out:
	free(buf);
	sha256_free(h);
	close(fd);
	return r;
}
