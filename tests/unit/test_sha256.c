/* common/sha256.c (keeper keys without libcrypto) against the published
 * "abc" vector and libcrypto for every length across the padding edges. */
#include "config.h"
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include "common/sha256.h"
#include "tests/tap.h"

static void hex(const unsigned char *md, char out[2 * SHA256_BYTES + 1])
{
	for (unsigned i = 0; i < SHA256_BYTES; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int main(void)
{
	unsigned char buf[300], md[SHA256_BYTES], ref[EVP_MAX_MD_SIZE];
	char got[2 * SHA256_BYTES + 1], want[2 * SHA256_BYTES + 1];
	unsigned int n = 0, bad = 0;

	sha256_small("abc", 3, md);
	hex(md, got);
	is_str(got, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	       "FIPS 180-2 'abc'");
	sha256_small("", 0, md);
	hex(md, got);
	is_str(got, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	       "empty input");
	for (unsigned i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 7 + 1);
	for (size_t len = 0; len <= sizeof(buf); len++) {
		sha256_small(buf, len, md);
		EVP_Digest(buf, len, ref, &n, EVP_sha256(), NULL);
		hex(md, got);
		hex(ref, want);
		if (strcmp(got, want) != 0) {
			printf("# length %zu: %s, libcrypto %s\n", len, got, want);
			bad++;
		}
	}
	is_int(bad, 0, "same digest as libcrypto for lengths 0..300");
	return tap_done();
}
