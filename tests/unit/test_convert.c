/* imgconv_convert(): layer tarballs in, squashfs out, read back with
 * libsquashfs and compared with the tree the OCI image spec says. */
#include "config.h"
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/util.h"
#include "imgconv/imgconv.h"
#include "tests/tap.h"
#include "tests/unit/test_convert_helpers.h"

static void test_basic_tree(void)
{
	struct tl *l = tlayer("basic.tar.gz");
	char name[300], *got, *want;
	static const unsigned char cap[] = { 0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00,
					     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };

	tl_dir(l, "./", 0755);
	tl_dir(l, "./bin/", 0755);
	tl_owner(l, 1000, 1001);
	tl_file(l, "./bin/suid", 04755, "#!/bin/sh\n");
	tl_file(l, "./bin/sgid", 02711, "x");
	tl_owner(l, 0, 0);
	tl_dir(l, "tmp", 01777);
	tl_xattr(l, "security.capability", cap, sizeof(cap));
	tl_xattr(l, "user.note", "hi", 2);
	tl_file(l, "bin/ping", 0755, "ping");
	tl_symlink(l, "bin/sh", "busybox");
	tl_hardlink(l, "bin/suid2", "bin/suid");
	tl_dev(l, "dev/null", 'c', 0666, 1, 3);
	tl_dev(l, "dev/sda", 'b', 0660, 8, 0);
	tl_dev(l, "dev/big", 'c', 0600, 300, 70000);
	tl_fifo(l, "run/fifo", 0600);
	tl_mtime(l, 1234567890, 987654321);
	tl_file(l, "hires", 0644, "");
	memset(name, 'n', sizeof(name));
	strcpy(name + 250, "/file");
	tl_mtime(l, 1000, 0);
	tl_file(l, name, 0600, "long");
	tl_close(l);

	got = tconvert_list("basic", "basic.tar.gz", NULL);
	name[250] = '\0';
	want = xasprintf(
	       "/ d 0755 0:0 t=1000\n"
	       "/bin d 0755 0:0 t=1000\n"
	       "/bin/ping f 0755 0:0 t=1000 s=4 \"ping\" "
	       "x{security.capability=0100000200200000000000000000000000000000,user.note=6869}\n"
	       "/bin/sgid f 2711 1000:1001 t=1000 s=1 \"x\"\n"
	       "/bin/sh l 0777 0:0 t=1000 -> busybox\n"
	       "/bin/suid f 4755 1000:1001 t=1000 s=10 h=1db7827ced1e7bbd n=2\n"
	       "/bin/suid2 f 4755 1000:1001 t=1000 s=10 h=1db7827ced1e7bbd n=2\n"
	       "/dev d 0755 0:0 t=" TEST_CREATED "\n"
	       "/dev/big c 0600 0:0 t=1000 300,70000\n"
	       "/dev/null c 0666 0:0 t=1000 1,3\n"
	       "/dev/sda b 0660 0:0 t=1000 8,0\n"
	       "/hires f 0644 0:0 t=1234567890 s=0 \"\"\n"
	       "/%s d 0755 0:0 t=" TEST_CREATED "\n"
	       "/%s/file f 0600 0:0 t=1000 s=4 \"long\"\n"
	       "/run d 0755 0:0 t=" TEST_CREATED "\n"
	       "/run/fifo p 0600 0:0 t=1000\n"
	       "/tmp d 1777 0:0 t=1000\n", name, name);
	is_str(got, want,
	       "one layer: modes, owners, setuid/setgid/sticky, xattrs, links, devices, long names, "
	       "nanosecond mtimes");
	free(want);
	free(got);
}

#define R "/ d 0755 0:0 t=" TEST_CREATED "\n"
#define IMPLICIT " d 0755 0:0 t=" TEST_CREATED "\n"

static void check(const char *tag, const char *want, const char *what, ...)
{
	char *got;
	va_list ap;
	const char *names[8];
	size_t n = 0;

	va_start(ap, what);
	while (n < 8 && (names[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	got = tconvert_list(tag, n > 0 ? names[0] : NULL, n > 1 ? names[1] : NULL,
			    n > 2 ? names[2] : NULL, n > 3 ? names[3] : NULL, NULL);
	is_str(got, want, "%s", what);
	free(got);
}

static void test_whiteouts(void)
{
	struct tl *l = tlayer("wo1");

	tl_dir(l, "a", 0755);
	tl_file(l, "a/x", 0644, "x1");
	tl_file(l, "a/y", 0644, "y1");
	tl_file(l, "c", 0644, "c1");
	tl_dir(l, "d", 0700);
	tl_file(l, "d/e", 0644, "e1");
	tl_file(l, "keep", 0644, "k");
	tl_close(l);
	l = tlayer("wo2");
	tl_file(l, "a/.wh.x", 0644, "");
	tl_file(l, ".wh.c", 0644, "");
	tl_file(l, ".wh.d", 0644, "");
	tl_file(l, ".wh.nothing", 0644, "");
	tl_file(l, "gone/.wh.nothing", 0644, "");
	tl_close(l);
	check("wo", R "/a d 0755 0:0 t=1000\n"
		      "/a/y f 0644 0:0 t=1000 s=2 \"y1\"\n"
		      "/gone" IMPLICIT
		      "/keep f 0644 0:0 t=1000 s=1 \"k\"\n",
	      "whiteouts remove files and whole directories of lower layers", "wo1", "wo2", NULL);

	/* Same-layer entries survive their layer's whiteouts, in any order. */
	l = tlayer("ws1");
	tl_file(l, "c", 0644, "old");
	tl_file(l, "c2", 0644, "old2");
	tl_file(l, "dd/lower", 0644, "l");
	tl_close(l);
	l = tlayer("ws2");
	tl_file(l, ".wh.c", 0644, "");
	tl_file(l, "c", 0600, "new");
	tl_file(l, "c2", 0600, "new2");
	tl_file(l, ".wh.c2", 0644, "");
	tl_file(l, "dd/upper", 0644, "u");
	tl_file(l, ".wh.dd", 0644, "");
	tl_close(l);
	check("ws", R "/c f 0600 0:0 t=1000 s=3 \"new\"\n"
		      "/c2 f 0600 0:0 t=1000 s=4 \"new2\"\n"
		      "/dd" IMPLICIT
		      "/dd/upper f 0644 0:0 t=1000 s=1 \"u\"\n",
	      "a whiteout only hides lower layers, before or after its sibling", "ws1", "ws2",
	      NULL);
}

static void test_opaque(void)
{
	struct tl *l = tlayer("op1");

	tl_file(l, "o/p", 0644, "p");
	tl_file(l, "o/q", 0644, "q");
	tl_file(l, "o/sub/r", 0644, "r");
	tl_file(l, "other/z", 0644, "z");
	tl_close(l);
	l = tlayer("op2");
	tl_file(l, "o/new1", 0644, "n1");
	tl_file(l, "o/.wh..wh..opq", 0644, "");
	tl_file(l, "o/sub/s", 0644, "s");
	tl_file(l, "o/new2", 0644, "n2");
	tl_close(l);
	check("op", R "/o" IMPLICIT
		      "/o/new1 f 0644 0:0 t=1000 s=2 \"n1\"\n"
		      "/o/new2 f 0644 0:0 t=1000 s=2 \"n2\"\n"
		      "/o/sub" IMPLICIT
		      "/o/sub/s f 0644 0:0 t=1000 s=1 \"s\"\n"
		      "/other" IMPLICIT
		      "/other/z f 0644 0:0 t=1000 s=1 \"z\"\n",
	      "an opaque directory hides lower content, keeps its own layer's wherever listed",
	      "op1", "op2", NULL);
}

static void test_replace(void)
{
	struct tl *l = tlayer("rp1");

	tl_dir(l, "r", 0755);
	tl_file(l, "r/x", 0644, "x");
	tl_file(l, "f", 0644, "f");
	tl_symlink(l, "s", "r");
	tl_close(l);
	l = tlayer("rp2");
	tl_file(l, "r", 0600, "now a file");
	tl_dir(l, "f", 0711);
	tl_file(l, "f/y", 0644, "y");
	tl_dir(l, "s", 0750);
	tl_file(l, "s/w", 0644, "w");
	tl_close(l);
	check("rp", R "/f d 0711 0:0 t=1000\n"
		      "/f/y f 0644 0:0 t=1000 s=1 \"y\"\n"
		      "/r f 0600 0:0 t=1000 s=10 \"now a file\"\n"
		      "/s d 0750 0:0 t=1000\n"
		      "/s/w f 0644 0:0 t=1000 s=1 \"w\"\n",
	      "directory replaced by a file, file and symlink replaced by directories", "rp1",
	      "rp2", NULL);
}

static void test_hardlinks(void)
{
	struct tl *l = tlayer("hl1");

	tl_owner(l, 5, 6);
	tl_file(l, "h1", 0640, "data1");
	tl_owner(l, 0, 0);
	tl_file(l, "g1", 0644, "g");
	tl_symlink(l, "sl", "target");
	tl_file(l, "t1", 0644, "t");
	tl_hardlink(l, "t2", "t1");
	tl_file(l, "t1", 0644, "t-new");
	tl_close(l);
	l = tlayer("hl2");
	tl_hardlink(l, "h2", "h1");
	tl_hardlink(l, "sub/h3", "h1");
	tl_hardlink(l, "h4", "./h1");
	tl_hardlink(l, "g2", "g1");
	tl_hardlink(l, "sl2", "sl");
	tl_close(l);
	l = tlayer("hl3");
	tl_file(l, ".wh.h2", 0644, "");
	tl_file(l, "h1", 0644, "new");
	tl_file(l, ".wh.g1", 0644, "");
	tl_file(l, "u1", 0644, "u");
	tl_hardlink(l, "u2", "u1");
	tl_file(l, "u1", 0644, "u-new");
	tl_file(l, "v", 0644, "v-old");
	tl_file(l, "v", 0644, "v-new");
	tl_close(l);
	check("hl", R "/g2 f 0644 0:0 t=1000 s=1 \"g\"\n"
		      "/h1 f 0644 0:0 t=1000 s=3 \"new\"\n"
		      "/h4 f 0640 5:6 t=1000 s=5 \"data1\" n=2\n"
		      "/sl l 0777 0:0 t=1000 -> target n=2\n"
		      "/sl2 l 0777 0:0 t=1000 -> target n=2\n"
		      "/sub" IMPLICIT
		      "/sub/h3 f 0640 5:6 t=1000 s=5 \"data1\" n=2\n"
		      "/t1 f 0644 0:0 t=1000 s=5 \"t-new\"\n"
		      "/t2 f 0644 0:0 t=1000 s=1 \"t\"\n"
		      "/u1 f 0644 0:0 t=1000 s=5 \"u-new\"\n"
		      "/u2 f 0644 0:0 t=1000 s=1 \"u\"\n"
		      "/v f 0644 0:0 t=1000 s=5 \"v-new\"\n",
	      "hard links across layers keep their file when the target is removed or replaced",
	      "hl1", "hl2", "hl3", NULL);
}

static void test_symlink_parents(void)
{
	struct tl *l = tlayer("sp1");

	tl_dir(l, "usr/", 0755);
	tl_dir(l, "usr/lib/", 0755);
	tl_symlink(l, "lib", "usr/lib");
	tl_dir(l, "tmp", 01777);
	tl_symlink(l, "esc", "../../../../tmp");
	tl_symlink(l, "abs", "/usr/lib");
	tl_close(l);
	l = tlayer("sp2");
	tl_file(l, "lib/foo", 0644, "foo");
	tl_file(l, "esc/x", 0644, "x");
	tl_file(l, "abs/bar", 0644, "bar");
	tl_close(l);
	check("sp", R "/abs l 0777 0:0 t=1000 -> /usr/lib\n"
		      "/esc l 0777 0:0 t=1000 -> ../../../../tmp\n"
		      "/lib l 0777 0:0 t=1000 -> usr/lib\n"
		      "/tmp d 1777 0:0 t=1000\n"
		      "/tmp/x f 0644 0:0 t=1000 s=1 \"x\"\n"
		      "/usr d 0755 0:0 t=1000\n"
		      "/usr/lib d 0755 0:0 t=1000\n"
		      "/usr/lib/bar f 0644 0:0 t=1000 s=3 \"bar\"\n"
		      "/usr/lib/foo f 0644 0:0 t=1000 s=3 \"foo\"\n",
	      "parents that are symlinks are followed inside the image, never out", "sp1", "sp2",
	      NULL);
}

/* Layers are read once, top-down; data for files an upper layer hides is
 * skipped unless a hard link still needs it. */
static void test_hidden_and_linked(void)
{
	struct tl *l = tlayer("hd1");

	tl_file(l, "a", 0644, "a-lower");
	tl_hardlink(l, "b", "a"); /* a is hidden from above, b is not */
	tl_file(l, "t", 0644, "t1");
	tl_file(l, "d", 0644, "d-first");
	tl_file(l, "d", 0600, "d-last");
	tl_file(l, "w/x", 0644, "x");
	tl_close(l);
	l = tlayer("hd2");
	tl_file(l, "a", 0644, "a-upper");
	tl_file(l, "t", 0644, "t2");
	tl_dir(l, "w", 0700);
	tl_file(l, "w/.wh..wh..opq", 0644, "");
	tl_close(l);
	l = tlayer("hd3");
	tl_hardlink(l, "u", "t"); /* the layer-2 t, whatever comes later */
	tl_file(l, "hidden/.wh.none", 0644, "");
	tl_close(l);
	l = tlayer("hd4");
	tl_file(l, "t", 0644, "t4");
	tl_file(l, ".wh.hidden", 0644, "");
	tl_close(l);
	check("hd", R "/a f 0644 0:0 t=1000 s=7 \"a-upper\"\n"
		      "/b f 0644 0:0 t=1000 s=7 \"a-lower\"\n"
		      "/d f 0600 0:0 t=1000 s=6 \"d-last\"\n"
		      "/t f 0644 0:0 t=1000 s=2 \"t4\"\n"
		      "/u f 0644 0:0 t=1000 s=2 \"t2\"\n"
		      "/w d 0700 0:0 t=1000\n",
	      "a link to a hidden file of its own layer, to a file an upper layer replaces, "
	      "duplicates in a lower layer, an opaque directory over lower files",
	      "hd1", "hd2", "hd3", "hd4", NULL);
}

int main(void)
{
	test_init();
	test_basic_tree();
	test_whiteouts();
	test_opaque();
	test_replace();
	test_hardlinks();
	test_symlink_parents();
	test_hidden_and_linked();
	return tap_done();
}
