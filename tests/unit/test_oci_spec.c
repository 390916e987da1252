/* config.json parsing for `berth oci`: what is honoured, what is refused
 * (one message naming the field), container ids. */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/oci.h"
#include "tests/tap.h"

static char bundle[] = "/tmp/berth-oci-unit-XXXXXX";

/* A config with the image annotation, process fields from proc (JSON
 * members without braces), and extra top-level members. */
static int parse(const char *proc, const char *extra, struct oci_spec *s)
{
	char json[4096];

	snprintf(json, sizeof(json),
		 "{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": [\"sh\", \"-c\", \"x\"], "
		 "\"cwd\": \"/work\", \"env\": [\"A=1\", \"PATH=/bin\"]%s%s}, "
		 "\"root\": {\"path\": \"rootfs\"}, "
		 "\"annotations\": {\"org.berth.image\": \"/img/a.sqsh\"}%s%s}",
		 *proc ? ", " : "", proc, *extra ? ", " : "", extra);
	*s = (struct oci_spec){0};
	return oci_spec_parse(json, strlen(json), bundle, s);
}

static void refused(const char *proc, const char *extra, const char *want, const char *what)
{
	struct oci_spec s;
	int r = parse(proc, extra, &s);

	/* A missing file is -ENOENT; everything else is bad input. */
	ok(r < 0 && strstr(berth_errmsg(r), want), "refused: %s", what);
	if (r == 0 || !strstr(berth_errmsg(r), want))
		printf("#   got %d '%s'\n", r, r ? berth_errmsg(r) : "");
	if (r == 0)
		oci_spec_clear(&s);
	berth_error_clear();
}

static void test_basic(void)
{
	struct oci_spec s;
	char extra[1024];
	int r;

	r = parse("", "", &s);
	is_int(r, 0, "minimal config parses");
	is_str(s.image, "/img/a.sqsh", "image from the annotation");
	is_str(s.args[2], "x", "args");
	is_str(s.env[1], "PATH=/bin", "env");
	is_str(s.cwd, "/work", "cwd");
	ok(!s.remap_root && !s.readonly && s.namespaces == 0 && s.mounts.n == 0, "defaults");
	ok(s.annotations && strstr(s.annotations, "org.berth.image"), "annotations kept");
	oci_spec_clear(&s);

	snprintf(extra, sizeof(extra),
		 "\"hostname\": \"box\", \"linux\": {\"namespaces\": [{\"type\": \"uts\"}, "
		 "{\"type\": \"pid\"}, {\"type\": \"network\"}, {\"type\": \"mount\"}, "
		 "{\"type\": \"user\"}], \"uidMappings\": [{\"containerID\": 0, \"hostID\": %u, "
		 "\"size\": 1}], \"resources\": {\"devices\": []}, \"maskedPaths\": [\"/proc/kcore\"]}, "
		 "\"mounts\": [{\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"}, "
		 "{\"destination\": \"/data\", \"type\": \"bind\", \"source\": \"/tmp\", "
		 "\"options\": [\"rbind\", \"ro\", \"nosuid\"]}, {\"destination\": \"/scratch\", "
		 "\"type\": \"tmpfs\", \"source\": \"tmpfs\", \"options\": [\"size=64m\"]}]",
		 getuid());
	r = parse("\"user\": {\"uid\": 0, \"gid\": 0}, \"noNewPrivileges\": true, "
		  "\"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"soft\": 64, \"hard\": 128}]",
		  extra, &s);
	is_int(r, 0, "full config parses");
	if (r < 0)
		printf("#   %s\n", berth_errmsg(r));
	is_str(s.hostname, "box", "hostname");
	ok(s.namespaces == (OCI_NS_UTS | OCI_NS_PID | OCI_NS_NET), "namespaces");
	ok(s.remap_root == (getuid() != 0), "uid 0 with a one-id map is remap-root");
	ok(s.no_new_privs, "noNewPrivileges");
	is_int(s.n_rlimits, 1, "one rlimit");
	is_int(s.mounts.n, 2, "proc left to berth; bind and tmpfs kept");
	if (s.mounts.n == 2) {
		is_str(s.mounts.v[0].source, "/tmp", "bind source");
		ok(s.mounts.v[0].kind == LAUNCHER_MOUNT_BIND &&
			   (s.mounts.v[0].flags & LAUNCHER_MNT_RO) &&
			   (s.mounts.v[0].flags & LAUNCHER_MNT_RBIND),
		   "bind flags");
		ok(s.mounts.v[1].kind == LAUNCHER_MOUNT_TMPFS, "tmpfs");
	}
	oci_spec_clear(&s);
}

static void test_root_path(void)
{
	struct oci_spec s;
	const char *json = "{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": [\"true\"], "
			   "\"cwd\": \"/\"}, \"root\": {\"path\": \"img.sqsh\", \"readonly\": true}}";
	_cleanup_free_ char *sqsh = path_join(bundle, "img.sqsh"), *dir = path_join(bundle, "rootfs");
	int r;

	write_file_atomic(sqsh, "x", 1, 0644);
	r = oci_spec_parse(json, strlen(json), bundle, &s);
	is_int(r, 0, "root.path naming a file");
	is_str(r == 0 ? s.image : NULL, sqsh, "relative root.path against the bundle");
	ok(r == 0 && s.readonly, "root.readonly");
	if (r == 0)
		oci_spec_clear(&s);
	mkdir_p(dir, 0755);
	json = "{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": [\"true\"], \"cwd\": \"/\"}, "
	       "\"root\": {\"path\": \"rootfs\"}}";
	r = oci_spec_parse(json, strlen(json), bundle, &s);
	ok(r == BERTH_EINVAL_INPUT && strstr(berth_errmsg(r), "is a directory: berth runs squashfs"),
	   "refused: a plain rootfs directory");
	berth_error_clear();
	unlink(sqsh);
	rmdir(dir);
}

static void test_refusals(void)
{
	char map[256];

	refused("\"terminal\": true", "", "process.terminal", "terminal");
	refused("\"user\": {\"uid\": 4242, \"gid\": 4242}", "", "process.user 4242:4242", "other uid");
	refused("\"user\": {\"uid\": 0, \"gid\": 0, \"additionalGids\": [5]}", "",
		"additionalGids", "supplementary groups");
	snprintf(map, sizeof(map), "\"linux\": {\"uidMappings\": [{\"containerID\": 0, "
		 "\"hostID\": 100000, \"size\": 65536}]}");
	refused("\"user\": {\"uid\": 0, \"gid\": 0}", map, "linux.uidMappings", "a range map");
	refused("", "\"linux\": {\"namespaces\": [{\"type\": \"time\"}]}", "type 'time'",
		"time namespace");
	refused("", "\"linux\": {\"namespaces\": [{\"type\": \"network\", \"path\": "
		"\"/proc/1/ns/net\"}]}", "by path", "joining a namespace");
	refused("", "\"hooks\": {\"prestart\": [{\"path\": \"/bin/true\"}]}", "hooks", "hooks");
	refused("", "\"mounts\": [{\"destination\": \"/x\", \"type\": \"nfs\", \"source\": \"h:/\"}]",
		"type 'nfs'", "nfs mount");
	refused("", "\"mounts\": [{\"destination\": \"x\", \"type\": \"bind\", \"source\": \"/tmp\"}]",
		"destination must be an absolute path", "relative destination");
	refused("", "\"mounts\": [{\"destination\": \"/x\", \"type\": \"bind\", \"source\": "
		"\"/nonexistent/berth\", \"options\": [\"bind\"]}]", "source '/nonexistent/berth'",
		"missing bind source");
	refused("", "\"mounts\": [{\"destination\": \"/x\", \"type\": \"bind\", \"source\": \"/tmp\", "
		"\"options\": [\"shared\"]}]", "option 'shared'", "unknown mount option");
	refused("", "\"hostname\": \"h\"", "needs a uts namespace", "hostname without uts");
	refused("\"rlimits\": [{\"type\": \"RLIMIT_BOGUS\", \"soft\": 1, \"hard\": 1}]", "",
		"unknown type 'RLIMIT_BOGUS'", "unknown rlimit");
	refused("\"env\": [\"NOEQUALS\"]", "", "'NOEQUALS' is not NAME=VALUE", "bad env entry");
}

static void test_bad_json(void)
{
	struct oci_spec s;
	const char *json;
	int r = oci_spec_parse("{\"ociVersion\": ", 15, bundle, &s);

	ok(r == BERTH_EINVAL_INPUT && str_startswith(berth_errmsg(r), "config.json: "),
	   "malformed JSON names config.json");
	berth_error_clear();
	json = "{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": [], \"cwd\": \"/\"}}";
	r = oci_spec_parse(json, strlen(json), bundle, &s);
	ok(r == BERTH_EINVAL_INPUT && strstr(berth_errmsg(r), "process.args is empty"),
	   "empty args refused");
	berth_error_clear();
	json = "{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": [\"a\"], \"cwd\": \"rel\"}}";
	r = oci_spec_parse(json, strlen(json), bundle, &s);
	ok(r == BERTH_EINVAL_INPUT && strstr(berth_errmsg(r), "process.cwd must be an absolute"),
	   "relative cwd refused");
	berth_error_clear();
}

static void test_ids(void)
{
	ok(oci_id_valid("node1.alice.123.0.0"), "Slurm-style id");
	ok(oci_id_valid("a+b_c-d"), "punctuation");
	ok(!oci_id_valid(""), "empty id");
	ok(!oci_id_valid("../x"), "path id");
	ok(!oci_id_valid(".hidden"), "leading dot");
	ok(!oci_id_valid("a/b"), "slash");
}

int main(void)
{
	if (!mkdtemp(bundle))
		return 1;
	test_basic();
	test_root_path();
	test_refusals();
	test_bad_json();
	test_ids();
	rmdir(bundle);
	return tap_done();
}
