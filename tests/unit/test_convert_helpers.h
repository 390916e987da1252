/* Helpers for the conversion tests: write layer tarballs with libarchive,
 * list a squashfs with libsquashfs. */
#ifndef BERTH_TEST_CONVERT_HELPERS_H
#define BERTH_TEST_CONVERT_HELPERS_H

#include <stddef.h>
#include <stdint.h>

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

/* A fresh directory under $TMPDIR (or /tmp). */
char *test_tmpdir(void);
/* Number of entries in dir (excluding . and ..). */
int dir_count(const char *dir);
/* Read a whole file; NULL on failure. */
char *slurp(const char *path, size_t *len);

#endif
