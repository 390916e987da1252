/* ld.so.cache parsing: the three formats built byte by byte, the host's
 * own cache, and malformed files. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "launcher/ldcache.h"
#include "tests/tap.h"

#define X8664 0x0303
#define I386 0x0003

struct buf {
	char d[4096];
	size_t n;
};

static size_t put(struct buf *b, const void *p, size_t n)
{
	size_t at = b->n;

	memcpy(b->d + b->n, p, n);
	b->n += n;
	return at;
}

static void put32(struct buf *b, uint32_t v)
{
	put(b, &v, 4);
}

static void put64(struct buf *b, uint64_t v)
{
	put(b, &v, 8);
}

static void set32(struct buf *b, size_t at, uint32_t v)
{
	memcpy(b->d + at, &v, 4);
}

static const struct {
	int32_t flags;
	const char *key, *path;
} libs[] = {
	{X8664, "libcuda.so.1", "/usr/lib/x86_64-linux-gnu/libcuda.so.1"},
	{I386, "libcuda.so.1", "/usr/lib/i386-linux-gnu/libcuda.so.1"},
	{X8664, "libnvidia-ml.so.1", "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"},
};
#define NLIBS (sizeof(libs) / sizeof(libs[0]))

/* The new format at b's current end (offsets relative to its header). */
static void new_table(struct buf *b, uint8_t endian)
{
	size_t base = b->n, ent, strs;

	put(b, "glibc-ld.so.cache1.1", 20);
	put32(b, NLIBS);
	put32(b, 0);
	put(b, &endian, 1);
	put(b, "\0\0\0", 3);
	put32(b, 0);
	for (int i = 0; i < 3; i++)
		put32(b, 0);
	ent = b->n;
	for (size_t i = 0; i < NLIBS; i++) {
		put32(b, (uint32_t)libs[i].flags);
		put32(b, 0);
		put32(b, 0);
		put32(b, 0);
		put64(b, 0);
	}
	strs = b->n;
	for (size_t i = 0; i < NLIBS; i++) {
		set32(b, ent + i * 24 + 4, (uint32_t)(put(b, libs[i].key, strlen(libs[i].key) + 1) - base));
		set32(b, ent + i * 24 + 8,
		      (uint32_t)(put(b, libs[i].path, strlen(libs[i].path) + 1) - base));
	}
	set32(b, base + 24, (uint32_t)(b->n - strs));
}

/* The old table; compat appends the new one at the next 8-byte boundary. */
static void old_file(struct buf *b, bool compat)
{
	size_t ent, strs;

	put(b, "ld.so-1.7.0\0", 12);
	put32(b, NLIBS);
	ent = b->n;
	for (size_t i = 0; i < NLIBS; i++) {
		put32(b, (uint32_t)libs[i].flags);
		put32(b, 0);
		put32(b, 0);
	}
	strs = b->n;
	if (compat) {
		while (b->n % 8)
			put(b, "", 1);
		new_table(b, 2);
		return;
	}
	for (size_t i = 0; i < NLIBS; i++) {
		set32(b, ent + i * 12 + 4, (uint32_t)(put(b, libs[i].key, strlen(libs[i].key) + 1) - strs));
		set32(b, ent + i * 12 + 8, (uint32_t)(put(b, libs[i].path, strlen(libs[i].path) + 1) - strs));
	}
}

static void check_all(struct ldcache *c, const char *what)
{
	is_int(ldcache_count(c), NLIBS, "%s: every entry", what);
	for (size_t i = 0; i < NLIBS && i < ldcache_count(c); i++) {
		is_str(ldcache_get(c, i)->key, libs[i].key, "%s: key %zu", what, i);
		is_str(ldcache_get(c, i)->path, libs[i].path, "%s: path %zu", what, i);
	}
	ok(ldcache_get(c, NLIBS) == NULL, "%s: past the end is NULL", what);
}

static void expect_bad(const struct buf *b, const char *what, const char *msg_part)
{
	struct ldcache *c = NULL;
	int r = ldcache_parse(b->d, b->n, "x", &c);

	is_int(r, BERTH_EFORMAT, "%s: refused", what);
	ok(c == NULL, "%s: nothing returned", what);
	ok(strstr(berth_errmsg(r), msg_part) != NULL, "%s: message '%s' names it", what,
	   berth_errmsg(r));
}

int main(void)
{
	struct buf b = {0};
	struct ldcache *c = NULL;

	new_table(&b, 2);
	is_int(ldcache_parse(b.d, b.n, "new", &c), 0, "new format parses");
	is_int(ldcache_format(c), LDCACHE_NEW, "new format recognised");
	check_all(c, "new");
	is_int(ldcache_abi(ldcache_get(c, 0)->flags), LDCACHE_ABI_NATIVE, "x86-64 entry is native");
	is_int(ldcache_abi(ldcache_get(c, 1)->flags), LDCACHE_ABI_32, "i386 entry is the 32-bit ABI");
	is_int(ldcache_abi(0x0001), LDCACHE_ABI_OTHER, "libc5 entry is other");
	is_int(ldcache_abi(0x0803), LDCACHE_ABI_OTHER, "x32 entry is other");
	ldcache_free(c);

	b.n = 0;
	old_file(&b, true);
	is_int(ldcache_parse(b.d, b.n, "compat", &c), 0, "compat format parses");
	is_int(ldcache_format(c), LDCACHE_NEW, "compat: the new table is read");
	check_all(c, "compat");
	ldcache_free(c);

	b.n = 0;
	old_file(&b, false);
	is_int(ldcache_parse(b.d, b.n, "old", &c), 0, "old format parses");
	is_int(ldcache_format(c), LDCACHE_OLD, "old format recognised");
	check_all(c, "old");
	ldcache_free(c);

	/* The host's own cache (every Debian system has one). */
	if (ldcache_load(AT_FDCWD, "/etc/ld.so.cache", &c) == 0) {
		bool libc = false;

		for (size_t i = 0; i < ldcache_count(c); i++)
			libc = libc || (strcmp(ldcache_get(c, i)->key, "libc.so.6") == 0 &&
					ldcache_abi(ldcache_get(c, i)->flags) == LDCACHE_ABI_NATIVE);
		ok(libc, "host /etc/ld.so.cache lists a native libc.so.6");
		ldcache_free(c);
	} else {
		ok(1, "# SKIP no /etc/ld.so.cache on this host");
	}

	/* Malformed. */
	b.n = 0;
	put(&b, "GARBAGE-not-a-cache-at-all", 26);
	expect_bad(&b, "unknown magic", "unknown magic");
	b.n = 0;
	new_table(&b, 2);
	b.n = 40;
	expect_bad(&b, "truncated header", "truncated");
	b.n = 0;
	new_table(&b, 2);
	set32(&b, 20, 100000);
	expect_bad(&b, "entry count past the end", "past the end");
	b.n = 0;
	new_table(&b, 2);
	set32(&b, 48 + 4, 1u << 30);
	expect_bad(&b, "string offset outside", "outside");
	b.n = 0;
	new_table(&b, 3);
	expect_bad(&b, "big-endian cache", "byte order");
	b.n = 0;
	new_table(&b, 2);
	memcpy(b.d + 17, "2.0", 3);
	expect_bad(&b, "future version", "version");
	b.n = 0;
	new_table(&b, 2);
	b.d[b.n - 1] = 'x'; /* last string loses its NUL */
	expect_bad(&b, "unterminated string", "outside");
	b.n = 0;
	old_file(&b, false);
	set32(&b, 12, 1000);
	expect_bad(&b, "old: entry count past the end", "past the end");
	is_int(ldcache_load(AT_FDCWD, "/nonexistent/ld.so.cache", &c), -ENOENT, "missing file");
	return tap_done();
}
