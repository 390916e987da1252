/* The image tree's path rules and extended-attribute sets (imgconv/tree.c). */
#include "config.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/error.h"
#include "imgconv/tree.h"
#include "tests/tap.h"

static void canon(const char *in, const char *want)
{
	char buf[8192];
	int r;

	snprintf(buf, sizeof(buf), "%s", in);
	r = tree_canon_path(buf);
	if (want)
		is_str(r == 0 ? buf : berth_errmsg(r), want, "canonical '%s'", in);
	else
		ok(r == BERTH_EFORMAT, "'%s' refused: %s", in, r ? berth_errmsg(r) : "accepted");
}

static void test_canon(void)
{
	char long_name[300], long_path[5000];

	canon("./", "");
	canon(".", "");
	canon("usr/bin/", "usr/bin");
	canon("./usr//bin/./sh", "usr/bin/sh");
	canon("a/./b/.", "a/b");
	canon(".wh..wh..opq", ".wh..wh..opq");
	canon("..", NULL);
	canon("../etc", NULL);
	canon("a/../b", NULL);
	canon("a/b/..", NULL);
	canon("/etc/passwd", NULL);
	canon("/", NULL);
	canon("...", "...");
	canon("a..b/..c", "a..b/..c");
	memset(long_name, 'x', sizeof(long_name));
	long_name[256] = '\0';
	canon(long_name, NULL);
	long_name[255] = '\0';
	canon(long_name, long_name);
	for (size_t i = 0; i + 2 < sizeof(long_path); i += 2)
		memcpy(long_path + i, "d/", 2);
	long_path[sizeof(long_path) - 1] = '\0';
	canon(long_path, NULL);
}

static void test_xattrs(void)
{
	struct txattrs *x = txattrs_new();
	const char *key;
	const void *value;
	uint32_t size, pos = 0;
	char list[256] = "";

	txattrs_add(&x, "user.b", "2", 1);
	txattrs_add(&x, "security.capability", "\0\1", 2);
	txattrs_add(&x, "user.a", "1", 1);
	txattrs_add(&x, "user.b", "22", 2);
	while (txattrs_next(x, &pos, &key, &value, &size)) {
		char item[64];

		snprintf(item, sizeof(item), "%s=%u;", key, size);
		strcat(list, item);
	}
	is_str(list, "security.capability=2;user.a=1;user.b=2;", "xattrs sorted, a key set twice kept once");
	is_int(x->count, 3, "three keys");
	free(x);
}

static void test_tree_ops(void)
{
	struct tree *t = tree_new(7);
	struct tree_entry f = { .mode = S_IFREG | 0644, .size = 3 };
	struct tree_entry d = { .mode = S_IFDIR | 0700, .mtime = 9 };
	struct tnode **nodes;
	size_t n;

	is_int(tree_add(t, "a/b/c", &f, 1, NULL), 0, "add with implicit parents");
	ok(tree_lookup(t, "a/b") && tree_lookup(t, "a/b")->mtime == 7 &&
		   tree_lookup(t, "a/b")->mode == (S_IFDIR | 0755),
	   "implicit parents are 0755 with the default time");
	is_int(tree_add(t, "a/b", &d, 2, NULL), 0, "explicit directory over an implicit one");
	ok(tree_lookup(t, "a/b")->mode == (S_IFDIR | 0700) && tree_lookup(t, "a/b/c"),
	   "attributes replaced, children kept");
	is_int(tree_link(t, "x", "a/b/c", 2), 0, "hard link");
	is_int(tree_link(t, "x", "x", 2), 0, "hard link onto itself is harmless");
	ok(tree_lookup(t, "x") == tree_lookup(t, "a/b/c") && tree_lookup(t, "x")->nlink == 2,
	   "both names, one node, two links");
	is_int(tree_whiteout(t, "a", "b", 3), 0, "whiteout of a lower directory");
	ok(!tree_lookup(t, "a/b") && tree_lookup(t, "x") && tree_lookup(t, "x")->nlink == 1,
	   "directory gone, the hard link elsewhere keeps the file");
	is_int(tree_number(t, &nodes, &n), 0, "numbering");
	ok(n == 3 && nodes[n - 1] == t->root && nodes[n - 1]->ino == 3,
	   "post-order: root last, numbers 1..n");
	free(nodes);
	tree_free(t);
}

int main(void)
{
	test_canon();
	test_xattrs();
	test_tree_ops();
	return tap_done();
}
