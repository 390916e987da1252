/* Config parsing: defaults, files, environment precedence, file:line errors. */
#include "config.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/conf.h"
#include "common/error.h"
#include "common/util.h"
#include "tests/tap.h"

static char tmpdir[] = "/tmp/berth-unit-XXXXXX";

static char *write_conf(const char *name, const char *text)
{
	char *path = path_join(tmpdir, name);

	write_file_atomic(path, text, strlen(text), 0644);
	return path;
}

static void test_defaults(void)
{
	struct berth_config *cfg = NULL;
	int r;

	setenv("HOME", "/home/alice", 1);
	unsetenv("XDG_CACHE_HOME");
	setenv("XDG_RUNTIME_DIR", "/run/user/1234", 1);
	r = berth_config_load(&cfg, BERTH_CONFIG_NO_FILES | BERTH_CONFIG_NO_ENV);
	is_int(r, 0, "defaults load");
	is_str(cfg->cache_dir, "/home/alice/.cache/berth", "cache_dir default under ~/.cache");
	ok(str_startswith(cfg->runtime_dir, "/run/user/1234/berth-"),
	   "runtime_dir under XDG_RUNTIME_DIR (%s)", cfg->runtime_dir);
	is_int(cfg->max_connections, 8, "max_connections default");
	ok(cfg->writable && !cfg->remap_root, "writable yes, remap_root no");
	is_int(strv_length(cfg->insecure_registries), 0, "no insecure registries by default");
	is_str(cfg->source[0], "default", "source says default");
	berth_config_free(cfg);
}

static void test_file_and_env(void)
{
	struct berth_config *cfg = NULL;
	_cleanup_free_ char *path = write_conf("good.conf",
		"# comment\n\n"
		"cache_dir = ~/scratch/cache\n"
		"insecure_registries = 127.0.0.1:5000, localhost:5001\n"
		"max_connections=3\n"
		"writable = no\n");
	char src[512];
	int r;

	setenv("BERTH_CONFIG", path, 1);
	setenv("BERTH_MAX_CONNECTIONS", "5", 1);
	r = berth_config_load(&cfg, 0);
	is_int(r, 0, "file + env load");
	is_str(cfg->cache_dir, "/home/alice/scratch/cache", "~ expanded in file value");
	is_int(strv_length(cfg->insecure_registries), 2, "list has two items");
	is_str(cfg->insecure_registries[1], "localhost:5001", "list items trimmed");
	is_int(cfg->max_connections, 5, "environment wins over file");
	ok(!cfg->writable, "bool from file");
	snprintf(src, sizeof(src), "%s:3", path);
	is_str(cfg->source[0], src, "source names file:line");
	unsetenv("BERTH_MAX_CONNECTIONS");
	berth_config_free(cfg);
}

static void expect_error(const char *text, const char *want_sub, const char *what)
{
	struct berth_config *cfg = NULL;
	_cleanup_free_ char *path = write_conf("bad.conf", text);
	int r;

	berth_error_clear();
	setenv("BERTH_CONFIG", path, 1);
	r = berth_config_load(&cfg, 0);
	is_int(r, BERTH_ECONFIG, "%s: rejected", what);
	ok(strstr(berth_errmsg(r), want_sub) != NULL, "%s: message '%s' has '%s'", what,
	   berth_errmsg(r), want_sub);
}

static void test_errors(void)
{
	expect_error("cache_dir = /x\nfrobnicate = 1\n", "bad.conf:2: unknown key 'frobnicate'",
		     "unknown key");
	expect_error("max_connections = lots\n", "bad.conf:1: max_connections: 'lots'",
		     "non-number");
	expect_error("max_connections = 1000\n", "0 to 64", "out of range");
	expect_error("writable = perhaps\n", "'perhaps' is not yes or no", "bad bool");
	expect_error("just words\n", "bad.conf:1: expected 'key = value'", "no equals sign");
	expect_error("compression = lzma\n", "not one of lz4,zstd,gzip,xz", "bad choice");
	expect_error("cache_dir =\n", "cache_dir: empty value", "empty path");

	setenv("BERTH_CONFIG", "/nonexistent/berth.conf", 1);
	{
		struct berth_config *cfg = NULL;
		int r = berth_config_load(&cfg, 0);

		ok(r == -ENOENT && strstr(berth_errmsg(r), "/nonexistent/berth.conf"),
		   "missing BERTH_CONFIG file is an error naming it");
	}
	unsetenv("BERTH_CONFIG");
	{
		struct berth_config *cfg = NULL;
		int r;

		setenv("BERTH_WRITABLE", "maybe", 1);
		r = berth_config_load(&cfg, BERTH_CONFIG_NO_FILES);
		ok(r == BERTH_ECONFIG && strstr(berth_errmsg(r), "environment BERTH_WRITABLE"),
		   "bad environment value names the variable");
		unsetenv("BERTH_WRITABLE");
	}
}

static void test_util(void)
{
	_cleanup_strv_ char **v = strv_split(",a,,b,", ',');
	_cleanup_free_ char *j = NULL;
	uint64_t n;
	bool b;

	is_int(strv_length(v), 2, "strv_split drops empty items");
	j = strv_join(v, "+");
	is_str(j, "a+b", "strv_join");
	is_int(parse_u64("42", 100, &n), 0, "parse_u64 ok");
	is_int(parse_u64("-1", 100, &n), -EINVAL, "parse_u64 rejects negative");
	is_int(parse_u64("101", 100, &n), -ERANGE, "parse_u64 range");
	is_int(parse_u64("", 100, &n), -EINVAL, "parse_u64 rejects empty");
	is_int(parse_bool("On", &b), 0, "parse_bool case-insensitive");
	ok(b, "On is true");
	{
		_cleanup_free_ char *p = path_join("/a/", "/b");

		is_str(p, "/a/b", "path_join collapses slashes");
	}
}

int main(void)
{
	if (!mkdtemp(tmpdir))
		return 99;
	test_defaults();
	test_file_and_env();
	test_errors();
	test_util();
	rm_rf(tmpdir);
	return tap_done();
}
