/* imgconv_convert() on bad input: one clear line naming the layer and the
 * member, a non-zero code, and nothing at the output path (no temporary
 * file left either). */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <archive.h>
#include <archive_entry.h>
#include "common/error.h"
#include "common/util.h"
#include "imgconv/imgconv.h"
#include "tests/tap.h"
#include "tests/unit/test_convert_helpers.h"

static const char *gz = "application/vnd.oci.image.layer.v1.tar+gzip";

/* For --enable-sanitizers builds: after a failed write, libsquashfs 1.2
 * loses the blocks that were in flight (its error path drops them; there is
 * no API to get them back).  That is bounded and happens once per failed
 * conversion, so LeakSanitizer is told about it here, in this test only. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libsquashfs.so\n";
}

/* A tar with one member named exactly `name` (libarchive's writer keeps
 * names as given). */
static void raw_layer(const char *file, const char *name)
{
	struct tl *l = tlayer(file);

	tl_file(l, "ok", 0644, "fine");
	tl_file(l, name, 0644, "evil");
	tl_close(l);
}

static char *random_data(size_t n)
{
	char *b = malloc(n);
	unsigned x = 12345;

	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245 + 12345;
		b[i] = (char)(x >> 16);
	}
	return b;
}

/* The output must not exist and the directory must hold only what it held
 * before (the layers): no partial image, no temporary file. */
static void expect_failure(int r, int code, const char *out, int files_before,
			   const char *needle1, const char *needle2, const char *what)
{
	const char *msg = berth_errmsg(r);
	struct stat st;

	is_int(r, code, "%s: error code", what);
	ok(strstr(msg, needle1) && (!needle2 || strstr(msg, needle2)) && !strchr(msg, '\n'),
	   "%s: one line naming the cause: %s", what, msg);
	ok(stat(out, &st) < 0 && errno == ENOENT, "%s: nothing at the output path", what);
	is_int(dir_count(test_dir), files_before, "%s: no temporary file left", what);
}

static void test_dotdot_and_absolute(void)
{
	char *out = tpath("bad.sqsh"), *lp;
	struct tl *l;
	int n, r;

	raw_layer("dotdot", "a/../../etc/cron.d/x");
	raw_layer("absolute", "/etc/passwd");
	raw_layer("newline", "x\n/../y");
	n = dir_count(test_dir);
	lp = tpath("dotdot");
	r = tconvert(out, NULL, gz, "dotdot", NULL);
	expect_failure(r, BERTH_EFORMAT, out, n, "member 'a/../../etc/cron.d/x'", "'..'",
		       "'..' in a member name");
	ok(strstr(berth_errmsg(r), "layer 1 of 1") && strstr(berth_errmsg(r), lp),
	   "the message names the layer by index and path");
	free(lp);
	r = tconvert(out, NULL, gz, "absolute", NULL);
	expect_failure(r, BERTH_EFORMAT, out, n, "member '/etc/passwd'", "absolute path",
		       "absolute member name");
	r = tconvert(out, NULL, gz, "newline", NULL);
	expect_failure(r, BERTH_EFORMAT, out, n, "member 'x?/../y'", "'..'",
		       "a newline in a bad name stays out of the one-line message");
	/* Also as the lower layer of two, read after the good top layer. */
	l = tlayer("goodtop");
	tl_file(l, "fine", 0644, "x");
	tl_close(l);
	n = dir_count(test_dir);
	r = tconvert(out, NULL, gz, "dotdot", "goodtop", NULL);
	expect_failure(r, BERTH_EFORMAT, out, n, "layer 1 of 2", "'..'", "'..' in a lower layer");
	free(out);
}

static void test_bad_links_and_parents(void)
{
	char *out = tpath("bad.sqsh");
	struct tl *l;
	int n, r;

	l = tlayer("nolink");
	tl_hardlink(l, "a", "missing");
	tl_close(l);
	l = tlayer("linkup");
	tl_file(l, "x", 0644, "x");
	tl_hardlink(l, "y", "../x");
	tl_close(l);
	l = tlayer("file1");
	tl_file(l, "f", 0644, "f");
	tl_close(l);
	l = tlayer("under_file");
	tl_file(l, "f/x", 0644, "x");
	tl_close(l);
	n = dir_count(test_dir);
	r = tconvert(out, NULL, gz, "nolink", NULL);
	expect_failure(r, BERTH_EFORMAT, out, n, "member 'a'", "'missing' does not exist",
		       "hard link to nothing");
	r = tconvert(out, NULL, gz, "linkup", NULL);
	expect_failure(r, BERTH_EFORMAT, out, n, "hard link target '../x'", "'..'",
		       "hard link target with '..'");
	r = tconvert(out, NULL, gz, "file1", "under_file", NULL);
	expect_failure(r, BERTH_EFORMAT, out, n, "layer 2 of 2", "'f' is not a directory",
		       "member below a file");
	free(out);
}

static void corrupt(const char *src, const char *dst, long cut, long flip)
{
	size_t len;
	char *data = slurp(src, &len);
	FILE *f = fopen(dst, "wb");

	if (flip >= 0)
		for (long i = flip; i < flip + 64 && (size_t)i < len; i++)
			data[i] ^= 0x5a;
	fwrite(data, 1, cut >= 0 ? (size_t)cut : len, f);
	fclose(f);
	free(data);
}

static void test_corrupt_streams(void)
{
	char *out = tpath("bad.sqsh"), *good = tpath("good"), *p;
	char *data = random_data(300000);
	struct tl *l = tlayer("good");
	int n, r;
	size_t len;

	tl_file(l, "a", 0644, "a");
	tl_file_data(l, "big", 0644, data, 300000);
	tl_file(l, "z", 0644, "z");
	tl_close(l);
	free(slurp(good, &len));
	p = tpath("truncated");
	corrupt(good, p, (long)len / 2, -1);
	free(p);
	p = tpath("flipped");
	corrupt(good, p, -1, (long)len / 2);
	free(p);
	p = tpath("notgzip");
	corrupt(good, p, -1, 0);
	free(p);
	n = dir_count(test_dir);

	r = tconvert(out, NULL, gz, "truncated", NULL);
	expect_failure(r, BERTH_EFORMAT, out, n, "layer 1 of 1", "member 'big'",
		       "truncated gzip (top layer, data streamed at once)");
	r = tconvert(out, NULL, gz, "truncated", "good", NULL);
	expect_failure(r, BERTH_EFORMAT, out, n, "layer 1 of 2", NULL, "truncated gzip (lower layer)");
	r = tconvert(out, NULL, gz, "flipped", NULL);
	expect_failure(r, BERTH_EFORMAT, out, n, "layer 1 of 1", NULL, "corrupt gzip data");
	r = tconvert(out, NULL, gz, "notgzip", NULL);
	expect_failure(r, BERTH_EFORMAT, out, n, "layer 1 of 1", NULL, "damaged gzip header");
	free(data);
	free(good);
	free(out);
}

static void test_media_types(void)
{
	char *out = tpath("mt.sqsh"), *p;
	struct tl *l;
	int n, r;

	p = tpath("plain");
	l = tl_new(p, TL_NONE);
	tl_file(l, "plain", 0644, "p");
	tl_close(l);
	free(p);
	p = tpath("zst");
	l = tl_new(p, TL_ZSTD);
	tl_file(l, "zst", 0644, "z");
	tl_close(l);
	free(p);
	r = tconvert(out, NULL, "application/vnd.oci.image.layer.v1.tar+zstd", "zst", NULL);
	is_int(r, 0, "OCI zstd layer");
	r = tconvert(out, NULL, "application/vnd.docker.image.rootfs.diff.tar", "plain", NULL);
	is_int(r, 0, "uncompressed layer");
	r = tconvert(out, NULL, NULL, "plain", "zst", NULL);
	is_int(r, 0, "no media type: compression sniffed");
	p = sq_listing(out, 0);
	is_str(p,
	       "/ d 0755 0:0 t=" TEST_CREATED "\n"
	       "/plain f 0644 0:0 t=1000 s=1 \"p\"\n"
	       "/zst f 0644 0:0 t=1000 s=1 \"z\"\n",
	       "sniffed layers flattened");
	free(p);
	unlink(out);
	n = dir_count(test_dir);
	r = tconvert(out, NULL, gz, "plain", NULL);
	expect_failure(r, BERTH_EFORMAT, out, n, "layer 1 of 1", "but the data is not compressed",
		       "media type says gzip, data is plain tar");
	r = tconvert(out, NULL, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "plain",
		     NULL);
	expect_failure(r, BERTH_EUNSUPPORTED, out, n, "layer 1 of 1", "foreign",
		       "foreign layer refused");
	r = tconvert(out, NULL, "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		     "plain", NULL);
	expect_failure(r, BERTH_EUNSUPPORTED, out, n, "layer 1 of 1", "non-distributable",
		       "non-distributable layer refused");
	r = tconvert(out, NULL, "application/x-rar", "plain", NULL);
	expect_failure(r, BERTH_EUNSUPPORTED, out, n, "'application/x-rar'", NULL,
		       "unknown media type refused");
	free(out);
}

static void test_disk_full(void)
{
	char *out = tpath("full.sqsh");
	char *data = random_data(4 << 20);
	struct imgconv_convert_opts opts = { .compression = "lz4" };
	struct rlimit old, lim;
	struct tl *l = tlayer("large");
	int n, r;

	tl_file_data(l, "large", 0644, data, 4 << 20);
	tl_close(l);
	n = dir_count(test_dir);
	/* Files may not grow beyond 1 MiB: writes fail as on a full disk. */
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = 1 << 20;
	setrlimit(RLIMIT_FSIZE, &lim);
	r = tconvert(out, &opts, gz, "large", NULL);
	setrlimit(RLIMIT_FSIZE, &old);
	expect_failure(r, -EFBIG, out, n, "full.sqsh", "File too large",
		       "write error (disk full) mid-way");
	free(data);
	free(out);
}

static void test_bad_options(void)
{
	struct imgconv_convert_opts opts = { .compression = "brotli" };
	struct imgconv_layer layer = { .path = "/nonexistent", .media_type = gz };
	char *out = tpath("opt.sqsh"), *nodir = tpath("no/such/dir/x.sqsh");
	int n = dir_count(test_dir), r;

	r = imgconv_convert(&layer, 1, test_config, strlen(test_config), out, &opts);
	expect_failure(r, BERTH_EINVAL_INPUT, out, n, "unknown compression 'brotli'", NULL,
		       "unknown compressor");
	opts.compression = "zstd";
	opts.compression_level = 23;
	r = imgconv_convert(&layer, 1, test_config, strlen(test_config), out, &opts);
	expect_failure(r, BERTH_EINVAL_INPUT, out, n, "level 23 out of range for zstd", NULL,
		       "zstd level out of range");
	r = imgconv_convert(&layer, 1, "{\"a\":", 5, out, NULL);
	expect_failure(r, BERTH_EFORMAT, out, n, "image config", NULL, "config is not JSON");
	r = imgconv_convert(&layer, 1, "[1]", 3, out, NULL);
	expect_failure(r, BERTH_EFORMAT, out, n, "not a JSON object", NULL, "config not an object");
	r = imgconv_convert(&layer, 1, test_config, strlen(test_config), out, NULL);
	expect_failure(r, -ENOENT, out, n, "layer 1 of 1 ('/nonexistent')", NULL,
		       "missing layer blob");
	r = imgconv_convert(&layer, 0, test_config, strlen(test_config), nodir, NULL);
	expect_failure(r, -ENOENT, nodir, n, "no/such/dir", NULL, "output directory missing");
	free(out);
	free(nodir);
}

int main(void)
{
	test_init();
	test_dotdot_and_absolute();
	test_bad_links_and_parents();
	test_corrupt_streams();
	test_media_types();
	test_disk_full();
	test_bad_options();
	return tap_done();
}
