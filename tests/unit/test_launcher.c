/* launcher: mount specs, environment rules, Entrypoint/Cmd rules. */
#include "config.h"
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/launcher.h"
#include "tests/tap.h"

/* -Wwrite-strings: environment vectors are char *const *. */
#define S(x) ((char *)(x))

static void test_mounts(void)
{
	struct launcher_mounts m = {0};
	static const char *const bad[] = {
		"", ":", "/tmp:", ":/x", "/a:b", "/a:/b:bogus", "/a:/b:ro+rw", "/a,",
		",/a", "/a,,/b", "/a:/b:c:d", "/a:/x/../y", "/a:/b:", "tmpfs",
	};

	ok(launcher_mounts_parse(&m, "/data:/mnt/data:ro+nosuid") == 0, "pyxis flags with +");
	is_int(m.n, 1, "one mount");
	is_str(m.v[0].source, "/data", "source");
	is_str(m.v[0].target, "/mnt/data", "target");
	ok(m.v[0].flags == (LAUNCHER_MNT_RO | LAUNCHER_MNT_NOSUID), "ro+nosuid flags");
	ok(launcher_mounts_parse(&m, "/a,/b:/c") == 0, "pyxis comma list");
	is_int(m.n, 3, "appended two");
	is_str(m.v[1].target, "/a", "SRC alone means SRC:SRC");
	ok(launcher_mounts_parse(&m, "/x:/y:ro,nodev") == 0, "docker -v flags with ,");
	is_int(m.n, 4, "flag words joined to the spec");
	ok(m.v[3].flags == (LAUNCHER_MNT_RO | LAUNCHER_MNT_NODEV), "ro,nodev flags");
	ok(launcher_mounts_parse(&m, "tmpfs:/scratch,umount:/opt") == 0, "tmpfs and umount");
	ok(m.v[4].kind == LAUNCHER_MOUNT_TMPFS && m.v[5].kind == LAUNCHER_MOUNT_UMOUNT, "kinds");
	ok(launcher_mounts_parse(&m, "rel/dir:/d") == 0 && m.v[6].source[0] == '/',
	   "relative source made absolute");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		size_t before = m.n;
		int r = launcher_mounts_parse(&m, bad[i]);

		ok(r == BERTH_EINVAL_INPUT && m.n == before, "refused: '%s' (%s)", bad[i],
		   berth_errmsg(r));
		ok(strstr(berth_errmsg(r), "mount '") != NULL, "message names the spec");
	}
	launcher_mounts_clear(&m);
}

static const char *get(char **env, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
			return env[i] + n + 1;
	return NULL;
}

static void test_env(void)
{
	char *host[] = {S("PATH=/host/bin"), S("HOME=/home/u"), S("SLURM_JOB_ID=42"), S("FOO=host"),
			S("KEEP=host"), S("LD_X=1"), NULL};
	char *image[] = {S("PATH=/img/bin"), S("HOME=/root"), S("SLURM_JOB_ID=0"), S("FOO=image"),
			 S("KEEP=image"), S("NEW=image"), NULL};
	char *keep[] = {S("KEEP"), NULL};
	char **user = NULL, **env = NULL;
	struct launcher_env_rules r = {.host = host, .image = image, .keep_host = keep};

	ok(launcher_env_parse(&user, "NEW=user", host) == 0, "-e NAME=VALUE");
	ok(launcher_env_parse(&user, "LD_X", host) == 0, "-e NAME from host");
	ok(launcher_env_parse(&user, "GONE", host) == 0, "-e NAME unset in host");
	r.user = user;
	ok(launcher_env_build(&r, &env) == 0, "build");
	is_str(get(env, "PATH"), "/img/bin", "PATH from the image");
	is_str(get(env, "HOME"), "/home/u", "HOME passes through");
	is_str(get(env, "SLURM_JOB_ID"), "42", "SLURM_* passes through");
	is_str(get(env, "FOO"), "image", "image Env over host env");
	is_str(get(env, "KEEP"), "host", "keep_host names keep the host value");
	is_str(get(env, "NEW"), "user", "-e last");
	is_str(get(env, "LD_X"), "1", "-e NAME takes the host value");
	strv_free(env);
	strv_free(user);
	user = NULL;
	ok(launcher_env_parse(&user, "", host) == BERTH_EINVAL_INPUT, "empty -e refused");
	ok(launcher_env_parse(&user, "=x", host) == BERTH_EINVAL_INPUT, "empty name refused");
	ok(launcher_env_parse(&user, "A B=x", host) == BERTH_EINVAL_INPUT, "space refused");
	ok(launcher_env_parse(&user, "1A=x", host) == BERTH_EINVAL_INPUT, "digit refused");
	ok(strstr(berth_errmsg(BERTH_EINVAL_INPUT), "'1A=x'") != NULL, "message names it");
	r = (struct launcher_env_rules){.host = host};
	ok(launcher_env_build(&r, &env) == 0, "build without image");
	ok(get(env, "PATH") && strstr(get(env, "PATH"), "/usr/bin"), "default PATH");
	strv_free(env);
	strv_free(user);
}

static char *joined(char **v)
{
	static char buf[256];
	char *s = strv_join(v, " ");

	snprintf(buf, sizeof(buf), "%s", s ? s : "(null)");
	free(s);
	strv_free(v);
	return buf;
}

static void test_argv(void)
{
	const char *j = "{\"config\":{\"config\":{\"Entrypoint\":[\"/ep\",\"-x\"],"
			"\"Cmd\":[\"c1\",\"c2\"],\"WorkingDir\":\"/w\",\"Env\":[\"A=1\"]}}}";
	struct launcher_image img;
	char *args[] = {S("my"), S("cmd"), NULL};
	char **out = NULL;

	ok(launcher_image_parse(j, strlen(j), &img) == 0, "parse image.json");
	is_str(img.workdir, "/w", "WorkingDir");
	is_str(img.env[0], "A=1", "Env");
	ok(launcher_argv_build(&img, NULL, false, NULL, &out) == 0, "defaults");
	is_str(joined(out), "/ep -x c1 c2", "Entrypoint + Cmd");
	ok(launcher_argv_build(&img, NULL, false, args, &out) == 0, "args");
	is_str(joined(out), "/ep -x my cmd", "args replace Cmd");
	ok(launcher_argv_build(&img, "/other", false, NULL, &out) == 0, "--entrypoint");
	is_str(joined(out), "/other", "--entrypoint drops the image's Cmd");
	ok(launcher_argv_build(&img, "/other", false, args, &out) == 0, "--entrypoint + args");
	is_str(joined(out), "/other my cmd", "--entrypoint with args");
	ok(launcher_argv_build(&img, NULL, true, NULL, &out) == 0, "--no-entrypoint");
	is_str(joined(out), "c1 c2", "--no-entrypoint keeps Cmd");
	ok(launcher_argv_build(&img, "", false, args, &out) == 0, "--entrypoint ''");
	is_str(joined(out), "my cmd", "empty entrypoint");
	ok(launcher_argv_build(&img, "", false, NULL, &out) == BERTH_EINVAL_INPUT,
	   "nothing to run refused");
	launcher_image_clear(&img);
	ok(launcher_image_parse("{", 1, &img) == BERTH_EFORMAT, "bad JSON refused");
	ok(launcher_image_parse("{\"config\":{\"config\":{\"Cmd\":\"x\"}}}", 32, &img) ==
		   BERTH_EFORMAT,
	   "Cmd not an array refused");
}

int main(void)
{
	test_mounts();
	test_env();
	test_argv();
	ok(launcher_name_valid("a-b_c.1") && !launcher_name_valid("-x") &&
		   !launcher_name_valid("a/b") && !launcher_name_valid(""),
	   "container names");
	return tap_done();
}
