/* What imgconv writes: reproducible bytes, every compressor, image.json,
 * packing a directory, and images the standard tools read (squashfs-tools,
 * squashfs-tools-ng, squashfuse as an unprivileged user when run as root). */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <jansson.h>
#include <sqfs/io.h>
#include <sqfs/super.h>
#include "common/error.h"
#include "common/util.h"
#include "imgconv/imgconv.h"
#include "tests/tap.h"
#include "tests/unit/test_convert_helpers.h"

static const char *gz = "application/vnd.oci.image.layer.v1.tar+gzip";

static char *pseudo_random(size_t n, unsigned seed)
{
	char *b = malloc(n);

	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245 + 12345;
		b[i] = (char)(seed >> 16);
	}
	return b;
}

/* Two layers with enough variety to exercise blocks, fragments,
 * deduplication, sparse blocks and many directory entries. */
static void make_layers(void)
{
	struct tl *l = tlayer("many1");
	char name[64], *data = pseudo_random(600000, 7);
	static char zeros[300000];

	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "d%02d/f%03d", i % 17, i);
		tl_file_data(l, name, 0644, data + i * 1000, (size_t)(i * 37 % 5000));
	}
	tl_file_data(l, "big", 0755, data, 600000);
	tl_file_data(l, "big-copy", 0755, data, 600000);
	tl_file_data(l, "zeros", 0644, zeros, sizeof(zeros));
	tl_close(l);
	l = tlayer("many2");
	tl_file(l, "d03/.wh.f003", 0644, "");
	tl_file_data(l, "d04/f004", 0600, data + 5, 4000);
	tl_hardlink(l, "big-link", "big");
	tl_close(l);
	free(data);
}

static char *out_path(const char *name)
{
	return tpath(name);
}

static int super_of(const char *path, sqfs_super_t *super)
{
	sqfs_file_t *f = sqfs_open_file(path, SQFS_FILE_OPEN_READ_ONLY);
	int r = f ? sqfs_super_read(super, f) : -1;

	sqfs_destroy(f);
	return r;
}

static int same_bytes(const char *a, const char *b)
{
	size_t la, lb;
	char *x = slurp(a, &la), *y = slurp(b, &lb);
	int same = x && y && la == lb && memcmp(x, y, la) == 0;

	free(x);
	free(y);
	return same;
}

static void test_reproducible(void)
{
	struct imgconv_convert_opts o2 = { .threads = 2 }, o1 = { .threads = 1 },
				    o4 = { .threads = 4 };
	char *a = out_path("r1.sqsh"), *b = out_path("r2.sqsh"), *c = out_path("r3.sqsh");
	char *d = out_path("r4.sqsh");

	is_int(tconvert(a, &o2, gz, "many1", "many2", NULL), 0, "convert (2 threads)");
	is_int(tconvert(b, &o2, gz, "many1", "many2", NULL), 0, "convert again");
	ok(same_bytes(a, b), "same layers, same options: same bytes");
	is_int(tconvert(c, &o1, gz, "many1", "many2", NULL), 0, "convert with 1 thread");
	is_int(tconvert(d, &o4, gz, "many1", "many2", NULL), 0, "convert with 4 threads");
	ok(same_bytes(a, c) && same_bytes(a, d), "the number of threads does not change the bytes");
	free(a);
	free(b);
	free(c);
	free(d);
}

static void test_compressors(void)
{
	static const struct {
		const char *name;
		unsigned level;
		int id;
	} cases[] = {
		{ "lz4", 0, SQFS_COMP_LZ4 },   { "lz4", 1, SQFS_COMP_LZ4 },
		{ "zstd", 0, SQFS_COMP_ZSTD }, { "zstd", 19, SQFS_COMP_ZSTD },
		{ "gzip", 0, SQFS_COMP_GZIP }, { "gzip", 1, SQFS_COMP_GZIP },
		{ "xz", 0, SQFS_COMP_XZ },     { "xz", 9, SQFS_COMP_XZ },
	};
	char *ref_out = out_path("c-ref.sqsh"), *ref;

	tconvert(ref_out, NULL, gz, "many1", "many2", NULL);
	ref = sq_listing(ref_out, 1);
	ok(ref && strstr(ref, "/big-link f 0755 0:0 t=1000 s=600000") && strstr(ref, " n=2") &&
		   !strstr(ref, "/d03/f003"),
	   "reference listing has the hard link and lacks the whited-out file");
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct imgconv_convert_opts o = { .compression = cases[i].name,
						  .compression_level = cases[i].level };
		char *out = out_path("c.sqsh"), *got;
		sqfs_super_t super;
		int r = tconvert(out, &o, gz, "many1", "many2", NULL);

		got = r == 0 ? sq_listing(out, 1) : NULL;
		ok(r == 0 && super_of(out, &super) == 0 && super.compression_id == cases[i].id,
		   "%s level %u: written with that compressor", cases[i].name, cases[i].level);
		is_str(got, ref, "%s level %u: same tree and contents", cases[i].name,
		       cases[i].level);
		free(got);
		free(out);
	}
	free(ref);
	free(ref_out);
}

static void test_image_json(void)
{
	struct imgconv_convert_opts o = { .reference = "registry.example/team/app:1",
					  .manifest_digest = "sha256:0123abcd" };
	struct tl *l = tlayer("berthdir");
	char *out = out_path("ij.sqsh"), *json = NULL, *listing;
	const char *env;
	sqfs_super_t super;
	json_t *root;
	size_t len = 0;
	int r;

	tl_file(l, ".berth/image.json", 0666, "{\"fake\":true}");
	tl_file(l, ".berth/other", 0644, "x");
	tl_file(l, "app", 0755, "app");
	tl_close(l);
	is_int(tconvert(out, &o, gz, "berthdir", NULL), 0, "convert an image that has /.berth");
	r = imgconv_read_image_json(out, &json, &len);
	is_int(r, 0, "read /.berth/image.json back without mounting");
	root = json ? json_loadb(json, len, 0, NULL) : NULL;
	is_str(json_string_value(json_object_get(root, "reference")), o.reference, "reference");
	is_str(json_string_value(json_object_get(root, "manifest_digest")), o.manifest_digest,
	       "manifest digest");
	env = json_string_value(json_array_get(
		json_object_get(json_object_get(json_object_get(root, "config"), "config"), "Env"), 0));
	is_str(env, "PATH=/bin", "the image config, stored as an object");
	ok(!json_object_get(root, "fake"), "the image's own image.json lost");
	json_decref(root);
	free(json);
	listing = sq_listing(out, 1);
	/* Pinned bytes: image.json's formatting is part of reproducibility. */
	is_str(listing,
	       "/ d 0755 0:0 t=" TEST_CREATED "\n"
	       "/.berth d 0755 0:0 t=" TEST_CREATED "\n"
	       "/.berth/image.json f 0644 0:0 t=" TEST_CREATED " s=307 h=6e51e1d35c1ab8a0\n"
	       "/app f 0755 0:0 t=1000 s=3 \"app\"\n",
	       "/.berth is berth's: root 0755 directory, 0644 file, nothing else from the image");
	free(listing);
	ok(super_of(out, &super) == 0 && super.modification_time == atol(TEST_CREATED),
	   "superblock time is the config's created time");

	r = imgconv_read_image_json("/etc/passwd", &json, &len);
	ok(r == BERTH_EFORMAT && strstr(berth_errmsg(r), "/etc/passwd"),
	   "reading image.json from a non-squashfs file: %s", berth_errmsg(r));
	free(out);
}

static void touch(const char *dir, const char *name)
{
	struct timespec ts[2] = { { 1000, 0 }, { 1000, 0 } };
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);

	utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW);
	close(dfd);
}

static void write_text(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		exit(99);
	fchmod(fd, mode);
	close(fd);
}

static void test_pack_dir(void)
{
	char *src = tpath("packsrc"), *out = tpath("pack.sqsh"), *p, *got, *want;
	const char *names[] = { "a", "bin/tool", "bin/tool2", "bin", "escape", "up", "sub/f", "sub",
				"p", ".berth/evil", ".berth", "" };
	int is_root = geteuid() == 0, xattr_ok, dfd, r;
	unsigned uid = geteuid(), gid = getegid();

	mkdir(src, 0755);
	p = xasprintf("%s/a", src);
	write_text(p, "a", 0644);
	xattr_ok = setxattr(p, "user.k", "v", 1, 0) == 0;
	if (is_root && chown(p, 1234, 5678) < 0)
		exit(99);
	free(p);
	p = xasprintf("%s/bin", src), mkdir(p, 0755), free(p);
	p = xasprintf("%s/bin/tool", src), write_text(p, "tool", 04755), free(p);
	p = xasprintf("%s/bin/tool", src);
	want = xasprintf("%s/bin/tool2", src);
	if (link(p, want) < 0)
		exit(99);
	free(p);
	free(want);
	p = xasprintf("%s/escape", src), symlink("/etc", p), free(p);
	p = xasprintf("%s/up", src), symlink("../../..", p), free(p);
	p = xasprintf("%s/sub", src), mkdir(p, 0700), free(p);
	p = xasprintf("%s/sub/f", src), write_text(p, "secret", 0600), free(p);
	p = xasprintf("%s/p", src), mkfifo(p, 0600), free(p);
	p = xasprintf("%s/.berth", src), mkdir(p, 0777), free(p);
	p = xasprintf("%s/.berth/evil", src), write_text(p, "evil", 0644), free(p);
	if (is_root) {
		p = xasprintf("%s/null", src);
		mknod(p, S_IFCHR | 0666, makedev(1, 3));
		chmod(p, 0666);
		free(p);
		touch(src, "null");
	}
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		touch(src, names[i][0] ? names[i] : ".");

	dfd = open(src, O_RDONLY | O_DIRECTORY);
	r = imgconv_pack_dir(dfd, test_config, strlen(test_config), out, NULL);
	close(dfd);
	is_int(r, 0, "pack a directory: %s", r ? berth_errmsg(r) : "ok");
	got = sq_listing(out, 0);
	want = xasprintf("/ d 0755 %u:%u t=1000\n"
			 "/a f 0644 %u:%u t=1000 s=1 \"a\"%s\n"
			 "/bin d 0755 %u:%u t=1000\n"
			 "/bin/tool f 4755 %u:%u t=1000 s=4 \"tool\" n=2\n"
			 "/bin/tool2 f 4755 %u:%u t=1000 s=4 \"tool\" n=2\n"
			 "/escape l 0777 %u:%u t=1000 -> /etc\n"
			 "%s"
			 "/p p 0600 %u:%u t=1000\n"
			 "/sub d 0700 %u:%u t=1000\n"
			 "/sub/f f 0600 %u:%u t=1000 s=6 \"secret\"\n"
			 "/up l 0777 %u:%u t=1000 -> ../../..\n",
			 uid, gid, is_root ? 1234 : uid, is_root ? 5678 : gid,
			 xattr_ok ? " x{user.k=76}" : "", uid, gid, uid, gid, uid, gid, uid, gid,
			 is_root ? "/null c 0666 0:0 t=1000 1,3\n" : "", uid, gid, uid, gid, uid, gid,
			 uid, gid);
	is_str(got, want,
	       "packed tree: owners, modes, setuid, hard links, xattrs, symlinks stored not "
	       "followed, FIFOs, devices; the tree's /.berth replaced");
	free(got);
	free(want);
	got = sq_listing(out, 1);
	ok(got && strstr(got, "/.berth/image.json f 0644 0:0") && !strstr(got, "evil"),
	   "packed image has berth's /.berth/image.json only");
	free(got);
	free(src);
	free(out);
}

/* imgconv_probe(): what paths are in an image, read without mounting it,
 * never through a symlink. */
static void test_probe(void)
{
	char *src = tpath("probesrc"), *out = tpath("probe.sqsh"), *p;
	struct imgconv_entry v[] = {
		{ .path = "/f", .max = 64 },   { .path = "/f", .max = 2 },
		{ .path = "/emptyd" },         { .path = "/full" },
		{ .path = "/full/x", .max = 8 }, { .path = "/ln" },
		{ .path = "/ln/passwd", .max = 64 }, { .path = "/f/under" },
		{ .path = "/nope" },
	};
	int dfd, r;

	mkdir(src, 0755);
	p = xasprintf("%s/f", src), write_text(p, "hello", 0640), free(p);
	p = xasprintf("%s/emptyd", src), mkdir(p, 0750), free(p);
	p = xasprintf("%s/full", src), mkdir(p, 0755), free(p);
	p = xasprintf("%s/full/x", src), write_text(p, "x", 0644), free(p);
	p = xasprintf("%s/ln", src), symlink("/etc", p), free(p);
	dfd = open(src, O_RDONLY | O_DIRECTORY);
	r = imgconv_pack_dir(dfd, test_config, strlen(test_config), out, NULL);
	close(dfd);
	is_int(r, 0, "pack the probe tree");
	r = imgconv_probe(out, v, ARRAY_SIZE(v));
	is_int(r, 0, "probe it");
	ok(S_ISREG(v[0].mode) && (v[0].mode & 07777) == 0640 && v[0].content &&
	   strcmp(v[0].content, "hello") == 0, "a file: its mode and content");
	ok(S_ISREG(v[1].mode) && !v[1].content, "a file larger than max: no content");
	ok(S_ISDIR(v[2].mode) && (v[2].mode & 07777) == 0750 && v[2].empty, "an empty directory");
	ok(S_ISDIR(v[3].mode) && !v[3].empty, "a directory with an entry is not empty");
	ok(S_ISREG(v[4].mode) && v[4].content && strcmp(v[4].content, "x") == 0, "a file below");
	ok(S_ISLNK(v[5].mode), "a symlink is a symlink, not its target");
	ok(v[6].mode == 0 && !v[6].content, "nothing is read through a symlink (host /etc)");
	ok(v[7].mode == 0, "a path below a file: missing");
	ok(v[8].mode == 0, "a missing path");
	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		free(v[i].content);
	r = imgconv_probe("/etc/passwd", v, 1);
	ok(r == BERTH_EFORMAT && strstr(berth_errmsg(r), "/etc/passwd") && !v[0].content,
	   "probing a non-squashfs file fails naming it: %s", berth_errmsg(r));
	free(src);
	free(out);
}

/* Run a shell command; its exit status. */
static int sh(const char *fmt, ...) _printf_(1, 2);
static int sh(const char *fmt, ...)
{
	char *cmd;
	va_list ap;
	int r;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		exit(99);
	va_end(ap);
	r = system(cmd);
	free(cmd);
	return WIFEXITED(r) ? WEXITSTATUS(r) : 128;
}

static void test_real_tools(void)
{
	char *img = tpath("r1.sqsh");

	if (sh("command -v unsquashfs rdsquashfs sqfs2tar >/dev/null") != 0) {
		printf("ok %d # SKIP squashfs-tools / squashfs-tools-ng not installed\n", ++tap_n);
		free(img);
		return;
	}
	is_int(sh("unsquashfs -lln '%s' | grep -q '^-rwxr-xr-x 0/0 *600000 .* "
		  "squashfs-root/big-link$'", img),
	       0, "unsquashfs -lln lists the image");
	is_int(sh("unsquashfs -d '%s/unsq' '%s' >/dev/null && cmp -s '%s/unsq/big' "
		  "'%s/unsq/big-copy' && ! test -e '%s/unsq/d03/f003'",
		  test_dir, img, test_dir, test_dir, test_dir),
	       0, "unsquashfs extracts it (identical contents, whiteout applied)");
	is_int(sh("rdsquashfs -l /d04 '%s' | grep -q 'f004'", img), 0, "rdsquashfs -l reads it");
	is_int(sh("sqfs2tar '%s' | tar -tvf - | grep -q 'big-copy'", img), 0,
	       "sqfs2tar converts it back to a tar");
	free(img);
}

/* squashfuse as the unprivileged test user (as root only: runuser). */
static void test_squashfuse_user(void)
{
	char *img = tpath("ij.sqsh");

	if (geteuid() != 0 || sh("id berthtest >/dev/null 2>&1 && command -v squashfuse runuser "
				 ">/dev/null && test -c /dev/fuse") != 0) {
		printf("ok %d # SKIP needs root, user berthtest, squashfuse and /dev/fuse\n", ++tap_n);
		free(img);
		return;
	}
	sh("chmod 0666 /dev/fuse; chmod 0755 '%s'; mkdir -p '%s/mnt' && chown berthtest '%s/mnt'",
	   test_dir, test_dir, test_dir);
	is_int(sh("runuser -u berthtest -- squashfuse '%s' '%s/mnt'", img, test_dir), 0,
	       "squashfuse mounts the image as an unprivileged user");
	is_int(sh("runuser -u berthtest -- sh -c 'test \"$(cat %s/mnt/app)\" = app && "
		  "grep -q registry.example/team/app:1 %s/mnt/.berth/image.json && "
		  "test \"$(stat -c %%u:%%g:%%a %s/mnt/.berth/image.json)\" = 0:0:644'",
		  test_dir, test_dir, test_dir),
	       0, "files readable through the mount, with their owners and modes");
	sh("fusermount3 -u '%s/mnt' 2>/dev/null || fusermount -u '%s/mnt'", test_dir, test_dir);
	free(img);
}

int main(void)
{
	test_init();
	make_layers();
	test_reproducible();
	test_compressors();
	test_image_json();
	test_pack_dir();
	test_probe();
	test_real_tools();
	test_squashfuse_user();
	return tap_done();
}
