/* SHA-256 of a small in-memory buffer, without libcrypto: the run path
 * (keeper keys, launcher/container.c) must not map libcrypto
 * (doc/decisions.md, "Lean run path").  Bulk hashing of layers stays on
 * libcrypto's optimised code in imgconv/digest.c. */
#ifndef BERTH_SHA256_H
#define BERTH_SHA256_H

#include <stddef.h>

#define SHA256_BYTES 32

void sha256_small(const void *buf, size_t len, unsigned char out[SHA256_BYTES]);

#endif
