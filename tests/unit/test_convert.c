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

static char *tmp;
static const char *config = "{\"architecture\":\"amd64\",\"os\":\"linux\","
			    "\"created\":\"2024-01-02T03:04:05.123456789Z\","
			    "\"config\":{\"Env\":[\"PATH=/bin\"],\"Cmd\":[\"sh\"]}}";
/* created above, in seconds */
#define CREATED "1704164645"

static char *layer_path(const char *name)
{
	return xasprintf("%s/%s", tmp, name);
}

/* Convert layers named in a NULL-terminated list (all gzip, sniffed). */
_unused_ static int convert_names(const char *out, const struct imgconv_convert_opts *opts, ...)
{
	struct imgconv_layer layers[16];
	char *paths[16];
	size_t n = 0;
	va_list ap;
	int r;

	va_start(ap, opts);
	for (const char *name; (name = va_arg(ap, const char *));) {
		paths[n] = layer_path(name);
		layers[n].path = paths[n];
		layers[n].media_type = NULL;
		n++;
	}
	va_end(ap);
	r = imgconv_convert(layers, n, config, strlen(config), out, opts);
	while (n--)
		free(paths[n]);
	return r;
}

static char *convert_list(const char *tag, ...)
{
	char *out = xasprintf("%s/%s.sqsh", tmp, tag);
	struct imgconv_layer layers[16];
	char *paths[16];
	size_t n = 0;
	va_list ap;
	char *listing = NULL;
	int r;

	va_start(ap, tag);
	for (const char *name; (name = va_arg(ap, const char *));) {
		paths[n] = layer_path(name);
		layers[n].path = paths[n];
		layers[n].media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
		n++;
	}
	va_end(ap);
	r = imgconv_convert(layers, n, config, strlen(config), out, NULL);
	if (r < 0)
		printf("# convert %s: %s\n", tag, berth_errmsg(r));
	else
		listing = sq_listing(out, 0);
	while (n--)
		free(paths[n]);
	free(out);
	return listing;
}

static struct tl *layer(const char *name)
{
	char *p = layer_path(name);
	struct tl *l = tl_new(p, TL_GZIP);

	free(p);
	return l;
}

static void test_basic_tree(void)
{
	struct tl *l = layer("basic.tar.gz");
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

	got = convert_list("basic", "basic.tar.gz", NULL);
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
	       "/dev d 0755 0:0 t=" CREATED "\n"
	       "/dev/big c 0600 0:0 t=1000 300,70000\n"
	       "/dev/null c 0666 0:0 t=1000 1,3\n"
	       "/dev/sda b 0660 0:0 t=1000 8,0\n"
	       "/hires f 0644 0:0 t=1234567890 s=0 \"\"\n"
	       "/%s d 0755 0:0 t=" CREATED "\n"
	       "/%s/file f 0600 0:0 t=1000 s=4 \"long\"\n"
	       "/run d 0755 0:0 t=" CREATED "\n"
	       "/run/fifo p 0600 0:0 t=1000\n"
	       "/tmp d 1777 0:0 t=1000\n", name, name);
	is_str(got, want,
	       "one layer: modes, owners, setuid/setgid/sticky, xattrs, links, devices, long names, "
	       "nanosecond mtimes");
	free(want);
	free(got);
}

int main(void)
{
	tmp = test_tmpdir();
	test_basic_tree();
	return tap_done();
}
