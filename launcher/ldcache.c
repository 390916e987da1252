#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/ldcache.h"

#define MAGIC_OLD "ld.so-1.7.0"
#define MAGIC_NEW "glibc-ld.so.cache1.1"
#define OLD_HEADER 16 /* magic[11], pad, uint32 nlibs */
#define OLD_ENTRY 12  /* int32 flags, uint32 key, value */
#define NEW_HEADER 48 /* magic+version[20], nlibs, len_strings, flags, pad, ext, unused */
#define NEW_ENTRY 24  /* int32 flags, uint32 key, value, osversion, uint64 hwcap */
#define MAX_CACHE (256u << 20)

/* dl-cache.h: the low byte is the type (1 ELF, 3 ELF + libc6), the next
 * the ABI of that type. */
#define FLAG_TYPE_MASK 0x00ff
#define FLAG_ELF_LIBC6 0x0003
#define FLAG_REQ_MASK 0xff00
#define FLAG_X8664_LIB64 0x0300
#define FLAG_AARCH64_LIB64 0x0a00

/* Header byte 28 of the new format records the writer's byte order. */
enum { ENDIAN_UNSET = 0, ENDIAN_LITTLE = 2, ENDIAN_BIG = 3 };

struct ldcache {
	char *data;
	size_t len;
	enum ldcache_format format;
	struct ldcache_entry *v;
	size_t n;
};

static uint32_t get32(const char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t get64(const char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* A NUL-terminated string at base+off inside the buffer, or NULL. */
static const char *string_at(const struct ldcache *c, size_t base, uint32_t off)
{
	size_t at = base + off;

	if (at < base || at >= c->len || !memchr(c->data + at, '\0', c->len - at))
		return NULL;
	return c->data + at;
}

static int bad(const char *what, const char *why)
{
	return berth_failx(BERTH_EFORMAT, "ld.so.cache '%s': %s", what, why);
}

static int read_entries(struct ldcache *c, size_t table, size_t strings, uint32_t n,
			size_t entsize, const char *what)
{
	if (n > (c->len - table) / entsize)
		return bad(what, "entry table runs past the end of the file");
	c->v = calloc(n ? n : 1, sizeof(*c->v));
	if (!c->v)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const char *e = c->data + table + (size_t)i * entsize;
		struct ldcache_entry *out = &c->v[i];

		out->flags = (int32_t)get32(e);
		out->key = string_at(c, strings, get32(e + 4));
		out->path = string_at(c, strings, get32(e + 8));
		out->hwcap = entsize == NEW_ENTRY ? get64(e + 16) : 0;
		if (!out->key || !out->path)
			return bad(what, "string offset outside the file");
		if (out->path[0] != '/')
			return bad(what, "library path is not absolute");
	}
	c->n = n;
	return 0;
}

static int parse_new(struct ldcache *c, size_t at, const char *what)
{
	const char *h = c->data + at;
	uint8_t endian;
	uint16_t probe = 1;
	bool little = *(const uint8_t *)&probe == 1;

	if (c->len - at < NEW_HEADER)
		return bad(what, "truncated header");
	endian = (uint8_t)h[28];
	if ((endian == ENDIAN_LITTLE && !little) || (endian == ENDIAN_BIG && little))
		return bad(what, "written for the other byte order");
	if (endian != ENDIAN_UNSET && endian != ENDIAN_LITTLE && endian != ENDIAN_BIG)
		return bad(what, "invalid byte-order mark");
	c->format = LDCACHE_NEW;
	/* Offsets count from the new header, which is the file start in the
	 * new format and follows the old table in the compat format. */
	return read_entries(c, at + NEW_HEADER, at, get32(h + 20), NEW_ENTRY, what);
}

static int parse_old(struct ldcache *c, const char *what)
{
	uint32_t n;
	size_t strings, next;

	if (c->len < OLD_HEADER)
		return bad(what, "truncated header");
	n = get32(c->data + 12);
	if (n > (c->len - OLD_HEADER) / OLD_ENTRY)
		return bad(what, "entry table runs past the end of the file");
	strings = OLD_HEADER + (size_t)n * OLD_ENTRY;
	/* Compat format: the new table starts at the next 8-byte boundary. */
	next = (strings + 7) & ~(size_t)7;
	if (next + strlen(MAGIC_NEW) <= c->len &&
	    memcmp(c->data + next, MAGIC_NEW, strlen(MAGIC_NEW)) == 0)
		return parse_new(c, next, what);
	c->format = LDCACHE_OLD;
	return read_entries(c, OLD_HEADER, strings, n, OLD_ENTRY, what);
}

int ldcache_parse(const void *data, size_t len, const char *what, struct ldcache **out)
{
	struct ldcache *c = calloc(1, sizeof(*c));
	int r;

	if (!c || !(c->data = malloc(len + 1))) {
		free(c);
		return -ENOMEM;
	}
	memcpy(c->data, data, len);
	c->data[len] = '\0';
	c->len = len;
	if (len >= strlen(MAGIC_NEW) && memcmp(data, MAGIC_NEW, strlen(MAGIC_NEW)) == 0)
		r = parse_new(c, 0, what);
	else if (len >= sizeof(MAGIC_OLD) && memcmp(data, MAGIC_OLD, sizeof(MAGIC_OLD)) == 0)
		r = parse_old(c, what);
	else if (len >= 17 && memcmp(data, MAGIC_NEW, 17) == 0)
		r = bad(what, "unsupported format version (berth reads 1.1)");
	else
		r = bad(what, "not an ld.so.cache (unknown magic)");
	if (r < 0) {
		ldcache_free(c);
		return r;
	}
	*out = c;
	return 0;
}

int ldcache_load(int dirfd, const char *path, struct ldcache **out)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t got = 0;

	if (fd < 0)
		return berth_fail(-errno, "open ld.so.cache '%s'", path);
	if (fstat(fd, &st) < 0)
		return berth_fail(-errno, "stat '%s'", path);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_CACHE)
		return bad(path, "not a regular file of sane size");
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return berth_fail(-errno, "read '%s'", path);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return ldcache_parse(buf, got, path, out);
}

enum ldcache_format ldcache_format(const struct ldcache *c)
{
	return c->format;
}

size_t ldcache_count(const struct ldcache *c)
{
	return c->n;
}

const struct ldcache_entry *ldcache_get(const struct ldcache *c, size_t i)
{
	return i < c->n ? &c->v[i] : NULL;
}

enum ldcache_abi ldcache_abi(int32_t flags)
{
	int type = flags & FLAG_TYPE_MASK, req = flags & FLAG_REQ_MASK;

	if (type != FLAG_ELF_LIBC6)
		return LDCACHE_ABI_OTHER;
#if defined(__x86_64__)
	if (req == FLAG_X8664_LIB64)
		return LDCACHE_ABI_NATIVE;
	if (req == 0)
		return LDCACHE_ABI_32;
#elif defined(__aarch64__)
	if (req == FLAG_AARCH64_LIB64)
		return LDCACHE_ABI_NATIVE;
#else
	if (req == 0)
		return LDCACHE_ABI_NATIVE;
#endif
	return LDCACHE_ABI_OTHER;
}

void ldcache_free(struct ldcache *c)
{
	if (!c)
		return;
	free(c->v);
	free(c->data);
	free(c);
}
