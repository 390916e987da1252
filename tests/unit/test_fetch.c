/* The fetching side's pieces without a network: digests, the credentials
 * file, manifests and indexes, platform choice, retry delays. */
#include "config.h"
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/util.h"
#include "imgconv/fetch.h"
#include "tests/tap.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static char tmpdir[] = "/tmp/berth-unit-fetch-XXXXXX";

static void test_digest(void)
{
	char out[DIGEST_LEN + 1];

	ok(digest_valid(D1), "valid digest");
	ok(!digest_valid("sha256:111"), "short digest");
	ok(!digest_valid("sha512:1111111111111111111111111111111111111111111111111111111111111111"),
	   "other algorithm");
	ok(!digest_valid("sha256:111111111111111111111111111111111111111111111111111111111111111G"),
	   "non-hex");
	ok(!digest_valid(NULL), "NULL");
	is_int(sha256_buf("abc", 3, out), 0, "sha256 of abc");
	is_str(out, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	       "FIPS 180-2 test vector");
}

static char *netrc(const char *name, const char *text, mode_t mode)
{
	char *p = path_join(tmpdir, name);

	write_file_atomic(p, text, strlen(text), mode);
	chmod(p, mode);
	return p;
}

static void test_creds(void)
{
	char *login = NULL, *pass = NULL;
	char *f = netrc("cred", "# comment-free netrc\n"
			"machine registry.example.com login alice password s3cret\n"
			"machine 127.0.0.1:5000\n  login bob\n  password \"with space\"\n"
			"machine nvcr.io login $oauthtoken password tok1\n"
			"machine nvcr.io login other password tok2\n"
			"default login anon password anonpw\n", 0600);
	char *g = netrc("cred-open", "machine x login a password b\n", 0644);
	char *h = netrc("cred-nodefault", "machine x login a password b\n", 0600);
	int r;

	is_int(creds_lookup(f, "registry.example.com", NULL, &login, &pass), 0, "exact machine");
	is_str(login, "alice", "login");
	is_str(pass, "s3cret", "password");
	free(login), free(pass);
	is_int(creds_lookup(f, "registry.example.com:443", NULL, &login, &pass), 0,
	       "machine without the port matches host:port");
	is_str(login, "alice", "login via host");
	free(login), free(pass);
	is_int(creds_lookup(f, "127.0.0.1:5000", NULL, &login, &pass), 0, "host:port machine");
	is_str(pass, "with space", "quoted password");
	free(login), free(pass);
	is_int(creds_lookup(f, "nvcr.io", "other", &login, &pass), 0, "user picks the entry");
	is_str(pass, "tok2", "second entry for the host");
	free(login), free(pass);
	is_int(creds_lookup(f, "nvcr.io", NULL, &login, &pass), 0, "first entry without user");
	is_str(pass, "tok1", "first entry");
	free(login), free(pass);
	is_int(creds_lookup(f, "elsewhere.io", NULL, &login, &pass), 0, "default entry");
	is_str(login, "anon", "default login");
	free(login), free(pass);
	is_int(creds_lookup(h, "elsewhere.io", NULL, &login, &pass), -ENOENT, "no entry");
	is_int(creds_lookup("/nonexistent/berth-creds", "x", NULL, &login, &pass), -ENOENT,
	       "no file: anonymous");
	r = creds_lookup(g, "x", NULL, &login, &pass);
	is_int(r, BERTH_EAUTH, "mode 0644 refused");
	ok(strstr(berth_errmsg(r), "chmod 600") && strstr(berth_errmsg(r), g) &&
	   strstr(berth_errmsg(r), "0644") && !strstr(berth_errmsg(r), "password b"),
	   "message names the file, the mode and the fix, not the secret (%s)", berth_errmsg(r));
	ok(login == NULL && pass == NULL, "nothing returned");
	free(f), free(g), free(h);
}

static const char oci_manifest[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	"\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D1
	"\",\"size\":10},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
	"\"digest\":\"" D2 "\",\"size\":20},{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar"
	"+zstd\",\"digest\":\"" D3 "\",\"size\":30}]}";

static void test_manifest(void)
{
	struct manifest m;
	char buf[2048];
	int r;

	is_int(manifest_parse("m", NULL, oci_manifest, strlen(oci_manifest), &m), 0, "OCI manifest");
	is_int(m.n_layers, 2, "two layers");
	is_str(m.config.digest, D1, "config digest");
	is_str(m.layers[1].media_type, "application/vnd.oci.image.layer.v1.tar+zstd", "zstd layer");
	is_int(m.layers[1].size, 30, "layer size");
	manifest_clear(&m);

	snprintf(buf, sizeof(buf), "{\"schemaVersion\":2,\"config\":{\"mediaType\":"
		 "\"application/vnd.docker.container.image.v1+json\",\"digest\":\"" D1 "\",\"size\":1},"
		 "\"layers\":[{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\","
		 "\"digest\":\"" D2 "\",\"size\":2}]}");
	is_int(manifest_parse("m", "application/vnd.docker.distribution.manifest.v2+json", buf,
			      strlen(buf), &m), 0, "Docker schema 2 typed by Content-Type");
	manifest_clear(&m);

	snprintf(buf, sizeof(buf), "{\"schemaVersion\":2,\"config\":{\"mediaType\":"
		 "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D1 "\",\"size\":1},"
		 "\"layers\":[{\"mediaType\":\"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip\","
		 "\"digest\":\"" D2 "\",\"size\":2,\"urls\":[\"https://x\"]}]}");
	r = manifest_parse("img", NULL, buf, strlen(buf), &m);
	is_int(r, BERTH_EUNSUPPORTED, "foreign layer refused");
	ok(strstr(berth_errmsg(r), "foreign"), "message says foreign: %s", berth_errmsg(r));

	snprintf(buf, sizeof(buf), "{\"schemaVersion\":2,\"config\":{\"mediaType\":"
		 "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D1 "\",\"size\":1},"
		 "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.nondistributable.v1.tar"
		 "+gzip\",\"digest\":\"" D2 "\",\"size\":2}]}");
	is_int(manifest_parse("img", NULL, buf, strlen(buf), &m), BERTH_EUNSUPPORTED,
	       "non-distributable layer refused");

	snprintf(buf, sizeof(buf), "{\"schemaVersion\":2,\"config\":{\"mediaType\":"
		 "\"application/vnd.cncf.helm.config.v1+json\",\"digest\":\"" D1 "\",\"size\":1},"
		 "\"layers\":[]}");
	r = manifest_parse("img", NULL, buf, strlen(buf), &m);
	is_int(r, BERTH_EUNSUPPORTED, "helm chart refused");
	ok(strstr(berth_errmsg(r), "not a container image"), "%s", berth_errmsg(r));

	snprintf(buf, sizeof(buf), "{\"schemaVersion\":2,\"config\":{\"mediaType\":"
		 "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D1 "\",\"size\":1},"
		 "\"layers\":[{\"mediaType\":\"application/x-unknown\",\"digest\":\"" D2
		 "\",\"size\":2}]}");
	r = manifest_parse("img", NULL, buf, strlen(buf), &m);
	is_int(r, BERTH_EUNSUPPORTED, "unknown layer type refused");
	ok(strstr(berth_errmsg(r), "application/x-unknown"), "%s", berth_errmsg(r));

	snprintf(buf, sizeof(buf), "{\"schemaVersion\":1,\"name\":\"x\",\"fsLayers\":[]}");
	r = manifest_parse("img", "application/vnd.docker.distribution.manifest.v1+prettyjws", buf,
			   strlen(buf), &m);
	is_int(r, BERTH_EUNSUPPORTED, "schema 1 refused");
	ok(strstr(berth_errmsg(r), "schema 1"), "%s", berth_errmsg(r));

	snprintf(buf, sizeof(buf), "{\"schemaVersion\":2,\"config\":{\"mediaType\":"
		 "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"md5:abc\",\"size\":1},"
		 "\"layers\":[]}");
	is_int(manifest_parse("img", NULL, buf, strlen(buf), &m), BERTH_EUNSUPPORTED,
	       "non-sha256 digest refused");
	is_int(manifest_parse("img", NULL, "[1,2", 4, &m), BERTH_EFORMAT, "not JSON");
	is_int(manifest_parse("img", NULL, "{\"schemaVersion\":2}", 19, &m), BERTH_EFORMAT,
	       "no config");
}

static const char index_json[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
	"\"manifests\":["
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" D1
	"\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" D2
	"\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}},"
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" D3
	"\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}},"
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" D3
	"\",\"size\":1,\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"}}]}";

static void test_index(void)
{
	char *d = NULL, *p = NULL;
	int r;

	ok(manifest_is_index(NULL, index_json, strlen(index_json)), "index recognised");
	ok(!manifest_is_index(NULL, oci_manifest, strlen(oci_manifest)), "manifest is no index");
	ok(manifest_is_index("application/vnd.docker.distribution.manifest.list.v2+json",
			     "{\"manifests\":[]}", 16), "manifest list by Content-Type");
	is_int(index_select("i", index_json, strlen(index_json), "linux/amd64", &d), 0, "amd64");
	is_str(d, D1, "amd64 entry");
	free(d);
	is_int(index_select("i", index_json, strlen(index_json), "linux/arm64/v8", &d), 0, "arm64");
	is_str(d, D2, "arm64/v8 entry");
	free(d);
	is_int(index_select("i", index_json, strlen(index_json), "linux/arm", &d), 0,
	       "arm without variant takes any");
	is_str(d, D3, "arm/v7 entry");
	free(d);
	r = index_select("i", index_json, strlen(index_json), "linux/s390x", &d);
	is_int(r, BERTH_ENOTFOUND, "missing platform");
	ok(strstr(berth_errmsg(r), "linux/amd64, linux/arm64/v8, linux/arm/v7") &&
	   !strstr(berth_errmsg(r), "unknown"), "lists what exists: %s", berth_errmsg(r));
	ok(d == NULL, "no digest");

	is_int(platform_for(NULL, &p), 0, "host platform");
	ok(str_startswith(p, "linux/"), "host platform is linux/... (%s)", p);
	free(p);
	is_int(platform_for("arm64", &p), 0, "--arch arm64");
	is_str(p, "linux/arm64/v8", "arm64 means v8");
	free(p);
	is_int(platform_for("arm/v7", &p), 0, "--arch arm/v7");
	is_str(p, "linux/arm/v7", "ARCH/VARIANT");
	free(p);
	is_int(platform_for("linux/ppc64le", &p), 0, "--arch linux/ppc64le");
	is_str(p, "linux/ppc64le", "OS/ARCH");
	free(p);
	r = platform_for("AMD64", &p);
	is_int(r, BERTH_EINVAL_INPUT, "uppercase arch refused");
	ok(strstr(berth_errmsg(r), "'AMD64'"), "names the input: %s", berth_errmsg(r));
	is_int(platform_for("a/b/c/d", &p), BERTH_EINVAL_INPUT, "too many parts");
	is_int(platform_for("", &p), BERTH_EINVAL_INPUT, "empty");
}

static void test_retry_delay(void)
{
	is_int(retry_delay_ms(1, NULL), 500, "first backoff 0.5 s");
	is_int(retry_delay_ms(3, NULL), 2000, "doubles");
	is_int(retry_delay_ms(2, "7"), 7000, "Retry-After seconds honoured");
	is_int(retry_delay_ms(2, "86400"), 60000, "Retry-After capped at a minute");
	is_int(retry_delay_ms(2, "Wed, 21 Oct 2015 07:28:00 GMT"), 0, "a past HTTP-date: now");
	is_int(retry_delay_ms(2, "garbage"), 1000, "unparsable: backoff");
}

int main(void)
{
	if (!mkdtemp(tmpdir))
		return 1;
	test_digest();
	test_creds();
	test_manifest();
	test_index();
	test_retry_delay();
	rm_rf(tmpdir);
	return tap_done();
}
