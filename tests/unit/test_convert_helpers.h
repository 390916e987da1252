/* Helpers for the conversion tests: write layer tarballs with libarchive,
 * list a squashfs with libsquashfs. */
#ifndef BERTH_TEST_CONVERT_HELPERS_H
#define BERTH_TEST_CONVERT_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include "imgconv/imgconv.h"

enum tl_comp { TL_NONE, TL_GZIP, TL_ZSTD };

struct tl;

/* Start a layer tarball at path. */
struct tl *tl_new(const char *path, enum tl_comp comp);
/* Attributes for the following entries (defaults 0:0, mtime 1000). */
void tl_owner(struct tl *l, unsigned uid, unsigned gid);
void tl_mtime(struct tl *l, long sec, long nsec);
/* An xattr for the next entry only. */
void tl_xattr(struct tl *l, const char *key, const void *value, size_t size);
void tl_file(struct tl *l, const char *path, unsigned perm, const char *content);
void tl_file_data(struct tl *l, const char *path, unsigned perm, const void *data, size_t len);
void tl_dir(struct tl *l, const char *path, unsigned perm);
void tl_symlink(struct tl *l, const char *path, const char *target);
void tl_hardlink(struct tl *l, const char *path, const char *target);
void tl_dev(struct tl *l, const char *path, char type, unsigned perm, unsigned maj, unsigned min);
void tl_fifo(struct tl *l, const char *path, unsigned perm);
void tl_close(struct tl *l);

/* One line per entry below the root (the root itself first as "/"):
 *   PATH TYPE PERM UID:GID t=MTIME [s=SIZE "DATA"|h=HASH] [-> TARGET]
 *   [MAJ,MIN] [n=NLINK] [x{KEY=HEX,...}]
 * with /.berth left out unless with_berth.  NULL on failure. */
char *sq_listing(const char *sqsh, int with_berth);

/* The test's scratch directory (test_init makes it) and the image config
 * every conversion gets; its "created" is TEST_CREATED seconds. */
extern char *test_dir;
extern const char *test_config;
#define TEST_CREATED "1704164645"
void test_init(void);
/* test_dir/name, malloc'd. */
char *tpath(const char *name);
/* Start a gzip layer test_dir/name. */
struct tl *tlayer(const char *name);
/* Convert the layers test_dir/NAME... (NULL-terminated; media type mt for
 * all, NULL: sniff) to out. */
int tconvert(const char *out, const struct imgconv_convert_opts *opts, const char *mt, ...);
/* Convert the gzip layers to test_dir/TAG.sqsh and list it (NULL and a
 * diagnostic on failure). */
char *tconvert_list(const char *tag, ...);

/* A fresh directory under $TMPDIR (or /tmp). */
char *test_tmpdir(void);
/* Number of entries in dir (excluding . and ..). */
int dir_count(const char *dir);
/* Read a whole file; NULL on failure. */
char *slurp(const char *path, size_t *len);

#endif
