/* Reading a glibc ld.so.cache directly (no ldconfig -p, no dlopen).
 *
 * Formats (glibc sysdeps/generic/dl-cache.h):
 *   new     "glibc-ld.so.cache1.1" header, 24-byte entries; the default
 *           since glibc 2.32;
 *   compat  the old "ld.so-1.7.0" table followed by the new one (older
 *           glibc); the new table is read;
 *   old     "ld.so-1.7.0" alone (ldconfig -c old): 12-byte entries.
 * Every offset is checked against the buffer; a cache written for the
 * other byte order is refused. */
#ifndef BERTH_LDCACHE_H
#define BERTH_LDCACHE_H

#include <stddef.h>
#include <stdint.h>

enum ldcache_format { LDCACHE_OLD = 1, LDCACHE_NEW = 2 };

/* What an entry's flags say about the library's ABI, seen from this host. */
enum ldcache_abi {
	LDCACHE_ABI_NATIVE, /* loadable by this host's programs */
	LDCACHE_ABI_32,     /* the 32-bit sibling ABI (i386 on x86_64) */
	LDCACHE_ABI_OTHER,  /* anything else (x32, libc5, foreign) */
};

struct ldcache_entry {
	const char *key;  /* what ld.so looks up: usually the soname */
	const char *path; /* absolute path as ldconfig saw it */
	int32_t flags;
	uint64_t hwcap;
};

struct ldcache;

/* Parse a cache held in memory (copied).  BERTH_EFORMAT naming `what` for
 * anything malformed. */
int ldcache_parse(const void *data, size_t len, const char *what, struct ldcache **out);

/* Read and parse the file at path below dirfd (openat semantics). */
int ldcache_load(int dirfd, const char *path, struct ldcache **out);

enum ldcache_format ldcache_format(const struct ldcache *c);
size_t ldcache_count(const struct ldcache *c);
const struct ldcache_entry *ldcache_get(const struct ldcache *c, size_t i);
enum ldcache_abi ldcache_abi(int32_t flags);
void ldcache_free(struct ldcache *c);

#endif
