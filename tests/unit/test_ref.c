/* Image references: every accepted form, canonical text, and the inputs
 * that must be refused with a message naming them. */
#include "config.h"
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "imgconv/imgconv.h"
#include "tests/tap.h"

#define HUB "registry-1.docker.io"
#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct good {
	const char *text;
	enum imgconv_ref_kind kind;
	const char *user, *registry, *repository, *tag, *digest, *path, *canonical;
};

static const struct good goods[] = {
	{"ubuntu", IMGCONV_REF_REGISTRY, NULL, HUB, "library/ubuntu", "latest", NULL, NULL,
	 HUB "/library/ubuntu:latest"},
	{"ubuntu:24.04", IMGCONV_REF_REGISTRY, NULL, HUB, "library/ubuntu", "24.04", NULL, NULL,
	 HUB "/library/ubuntu:24.04"},
	{"nvidia/cuda:12.2.0-base", IMGCONV_REF_REGISTRY, NULL, HUB, "nvidia/cuda", "12.2.0-base",
	 NULL, NULL, HUB "/nvidia/cuda:12.2.0-base"},
	{"nvcr.io/nvidia/pytorch:24.01-py3", IMGCONV_REF_REGISTRY, NULL, "nvcr.io",
	 "nvidia/pytorch", "24.01-py3", NULL, NULL, "nvcr.io/nvidia/pytorch:24.01-py3"},
	{"127.0.0.1:5000/x/y:t", IMGCONV_REF_REGISTRY, NULL, "127.0.0.1:5000", "x/y", "t", NULL,
	 NULL, "127.0.0.1:5000/x/y:t"},
	{"localhost/app", IMGCONV_REF_REGISTRY, NULL, "localhost", "app", "latest", NULL, NULL,
	 "localhost/app:latest"},
	{"localhost:5000/a/b/c", IMGCONV_REF_REGISTRY, NULL, "localhost:5000", "a/b/c", "latest",
	 NULL, NULL, "localhost:5000/a/b/c:latest"},
	{"Registry.Example.COM/app:1", IMGCONV_REF_REGISTRY, NULL, "registry.example.com", "app",
	 "1", NULL, NULL, "registry.example.com/app:1"},
	{"docker.io/ubuntu", IMGCONV_REF_REGISTRY, NULL, HUB, "library/ubuntu", "latest", NULL,
	 NULL, HUB "/library/ubuntu:latest"},
	{"index.docker.io/library/debian:12", IMGCONV_REF_REGISTRY, NULL, HUB, "library/debian",
	 "12", NULL, NULL, HUB "/library/debian:12"},
	{"[::1]:5000/x:y", IMGCONV_REF_REGISTRY, NULL, "[::1]:5000", "x", "y", NULL, NULL,
	 "[::1]:5000/x:y"},
	{"ubuntu@sha256:" D64, IMGCONV_REF_REGISTRY, NULL, HUB, "library/ubuntu", NULL,
	 "sha256:" D64, NULL, HUB "/library/ubuntu@sha256:" D64},
	{"ubuntu:24.04@sha256:" D64, IMGCONV_REF_REGISTRY, NULL, HUB, "library/ubuntu", "24.04",
	 "sha256:" D64, NULL, HUB "/library/ubuntu:24.04@sha256:" D64},
	{"abc/e_f.g---h:T_1.x-Y", IMGCONV_REF_REGISTRY, NULL, HUB, "abc/e_f.g---h",
	 "T_1.x-Y", NULL, NULL, HUB "/abc/e_f.g---h:T_1.x-Y"},
	{"a-b.example:8080/x", IMGCONV_REF_REGISTRY, NULL, "a-b.example:8080", "x", "latest",
	 NULL, NULL, "a-b.example:8080/x:latest"},
	{"my__repo/x", IMGCONV_REF_REGISTRY, NULL, HUB, "my__repo/x", "latest", NULL, NULL,
	 HUB "/my__repo/x:latest"},
	{"_tag:_x", IMGCONV_REF_REGISTRY, NULL, NULL, NULL, NULL, NULL, NULL, NULL}, /* bad */
	/* enroot / pyxis form */
	{"docker://ubuntu", IMGCONV_REF_REGISTRY, NULL, HUB, "library/ubuntu", "latest", NULL,
	 NULL, HUB "/library/ubuntu:latest"},
	{"docker://nvcr.io#nvidia/pytorch:24.01-py3", IMGCONV_REF_REGISTRY, NULL, "nvcr.io",
	 "nvidia/pytorch", "24.01-py3", NULL, NULL, "nvcr.io/nvidia/pytorch:24.01-py3"},
	{"docker://alice@nvcr.io#nvidia/pytorch", IMGCONV_REF_REGISTRY, "alice", "nvcr.io",
	 "nvidia/pytorch", "latest", NULL, NULL, "nvcr.io/nvidia/pytorch:latest"},
	{"docker://127.0.0.1:5000#team/app:1", IMGCONV_REF_REGISTRY, NULL, "127.0.0.1:5000",
	 "team/app", "1", NULL, NULL, "127.0.0.1:5000/team/app:1"},
	{"docker://bob@ubuntu:22.04", IMGCONV_REF_REGISTRY, "bob", HUB, "library/ubuntu", "22.04",
	 NULL, NULL, HUB "/library/ubuntu:22.04"},
	{"docker://ubuntu@sha256:" D64, IMGCONV_REF_REGISTRY, NULL, HUB, "library/ubuntu", NULL,
	 "sha256:" D64, NULL, HUB "/library/ubuntu@sha256:" D64},
	{"docker://$oauthtoken@nvcr.io#nvidia/x@sha256:" D64, IMGCONV_REF_REGISTRY, "$oauthtoken",
	 "nvcr.io", "nvidia/x", NULL, "sha256:" D64, NULL, "nvcr.io/nvidia/x@sha256:" D64},
	{"docker://docker.io#library/alpine:3", IMGCONV_REF_REGISTRY, NULL, HUB, "library/alpine",
	 "3", NULL, NULL, HUB "/library/alpine:3"},
	{"docker://quay.io/centos/centos:stream9", IMGCONV_REF_REGISTRY, NULL, "quay.io",
	 "centos/centos", "stream9", NULL, NULL, "quay.io/centos/centos:stream9"},
	{"nvcr.io#nvidia/pytorch:24.01-py3", IMGCONV_REF_REGISTRY, NULL, "nvcr.io",
	 "nvidia/pytorch", "24.01-py3", NULL, NULL, "nvcr.io/nvidia/pytorch:24.01-py3"},
	/* local forms */
	{"/data/images/pytorch.sqsh", IMGCONV_REF_SQUASHFS, NULL, NULL, NULL, NULL, NULL,
	 "/data/images/pytorch.sqsh", "/data/images/pytorch.sqsh"},
	{"./x.sqsh", IMGCONV_REF_SQUASHFS, NULL, NULL, NULL, NULL, NULL, "./x.sqsh", "./x.sqsh"},
	{"image.squashfs", IMGCONV_REF_SQUASHFS, NULL, NULL, NULL, NULL, NULL, "image.squashfs",
	 "image.squashfs"},
	{"docker-archive://img.tar", IMGCONV_REF_DOCKER_ARCHIVE, NULL, NULL, NULL, NULL, NULL,
	 "img.tar", "docker-archive://img.tar"},
	{"docker-archive:///abs/img.tar", IMGCONV_REF_DOCKER_ARCHIVE, NULL, NULL, NULL, NULL, NULL,
	 "/abs/img.tar", "docker-archive:///abs/img.tar"},
	{"oci-dir://layout", IMGCONV_REF_OCI_DIR, NULL, NULL, NULL, NULL, NULL, "layout",
	 "oci-dir://layout"},
	{"oci-dir:///srv/oci:v1.2", IMGCONV_REF_OCI_DIR, NULL, NULL, "", "v1.2", NULL, "/srv/oci",
	 "oci-dir:///srv/oci:v1.2"},
	{"oci-dir:///srv/a:b/dir", IMGCONV_REF_OCI_DIR, NULL, NULL, NULL, NULL, NULL,
	 "/srv/a:b/dir", "oci-dir:///srv/a:b/dir"},
};

static void test_good(void)
{
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];
		struct imgconv_ref ref;
		char *canon;
		int r = imgconv_ref_parse(g->text, NULL, &ref);

		if (!g->canonical) {
			ok(r == BERTH_EINVAL_INPUT, "'%s' refused", g->text);
			continue;
		}
		is_int(r, 0, "'%s' parses", g->text);
		if (r < 0) {
			printf("#   %s\n", berth_errmsg(r));
			continue;
		}
		is_int(ref.kind, g->kind, "'%s' kind", g->text);
		is_str(ref.user, g->user, "'%s' user", g->text);
		if (g->kind == IMGCONV_REF_REGISTRY) {
			is_str(ref.registry, g->registry, "'%s' registry", g->text);
			is_str(ref.repository, g->repository, "'%s' repository", g->text);
		}
		is_str(ref.tag, g->tag, "'%s' tag", g->text);
		is_str(ref.digest, g->digest, "'%s' digest", g->text);
		is_str(ref.path, g->path, "'%s' path", g->text);
		canon = imgconv_ref_format(&ref);
		is_str(canon, g->canonical, "'%s' canonical form", g->text);
		/* The canonical form parses back to itself. */
		if (g->kind == IMGCONV_REF_REGISTRY) {
			struct imgconv_ref again;
			char *c2 = NULL;

			if (imgconv_ref_parse(canon, NULL, &again) == 0)
				c2 = imgconv_ref_format(&again);
			is_str(c2, canon, "'%s' round trip", canon);
			free(c2);
			imgconv_ref_clear(&again);
		}
		free(canon);
		imgconv_ref_clear(&ref);
	}
}

struct bad {
	const char *text;
	int code;
	const char *needle; /* part of the message */
};

static const struct bad bads[] = {
	{"", BERTH_EINVAL_INPUT, "empty"},
	{"Ubuntu", BERTH_EINVAL_INPUT, "lowercase"},
	{"ubuntu:", BERTH_EINVAL_INPUT, "tag"},
	{"ubuntu:-x", BERTH_EINVAL_INPUT, "tag"},
	{"ubuntu:.x", BERTH_EINVAL_INPUT, "tag"},
	{"ubuntu:a/b", BERTH_EINVAL_INPUT, "registry"},
	{"a.b-c__d/x", BERTH_EINVAL_INPUT, "registry"},
	{"docker://bob@ubuntu@sha256:abc", BERTH_EINVAL_INPUT, "64"},
	{"ubuntu:"
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", BERTH_EINVAL_INPUT, "1-128"},
	{"ubu ntu", BERTH_EINVAL_INPUT, "white space"},
	{"ubuntu\t", BERTH_EINVAL_INPUT, "white space"},
	{"-ubuntu", BERTH_EINVAL_INPUT, "lowercase"},
	{"ubuntu-", BERTH_EINVAL_INPUT, "lowercase"},
	{"a..b", BERTH_EINVAL_INPUT, "lowercase"},
	{"a___b", BERTH_EINVAL_INPUT, "lowercase"},
	{"a//b", BERTH_EINVAL_INPUT, "lowercase"},
	{"a/b/", BERTH_EINVAL_INPUT, "lowercase"},
	{"nvcr.io/", BERTH_EINVAL_INPUT, "no image name"},
	{"nvcr.io/Nvidia/x", BERTH_EINVAL_INPUT, "lowercase"},
	{"bad_host.io/x", BERTH_EINVAL_INPUT, "registry"},
	{"-host.io/x", BERTH_EINVAL_INPUT, "registry"},
	{"host.io:99999/x", BERTH_EINVAL_INPUT, "registry"},
	{"host.io:/x", BERTH_EINVAL_INPUT, "registry"},
	{"host.io:abc/x", BERTH_EINVAL_INPUT, "registry"},
	{"[zz]:5000/x", BERTH_EINVAL_INPUT, "registry"},
	{"ubuntu@sha256:abc", BERTH_EINVAL_INPUT, "64"},
	{"ubuntu@sha256:" D64 "0", BERTH_EINVAL_INPUT, "64"},
	{"ubuntu@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
	 BERTH_EINVAL_INPUT, "lowercase hex"},
	{"ubuntu@sha512:" D64 D64, BERTH_EUNSUPPORTED, "only sha256"},
	{"ubuntu@" D64, BERTH_EINVAL_INPUT, "sha256:"},
	{"docker://", BERTH_EINVAL_INPUT, "no image name"},
	{"docker://#x", BERTH_EINVAL_INPUT, "empty registry"},
	{"docker://a#b#c", BERTH_EINVAL_INPUT, "more than one"},
	{"docker://@ubuntu", BERTH_EINVAL_INPUT, "empty user"},
	{"docker://a/b@reg#x", BERTH_EINVAL_INPUT, "user names"},
	{"docker://nvcr.io#Nvidia/x", BERTH_EINVAL_INPUT, "lowercase"},
	{"http://x/y", BERTH_EINVAL_INPUT, "unknown scheme"},
	{"docker-archive://", BERTH_EINVAL_INPUT, "no file"},
	{"oci-dir://", BERTH_EINVAL_INPUT, "no directory"},
	{"oci-dir://dir:-bad", BERTH_EINVAL_INPUT, "tag"},
};

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct imgconv_ref ref;
		int r = imgconv_ref_parse(bads[i].text, NULL, &ref);
		const char *msg = berth_errmsg(r);

		is_int(r, bads[i].code, "'%.40s' refused with the right code", bads[i].text);
		ok(strstr(msg, bads[i].needle) != NULL, "'%.40s': message says '%s' (%s)",
		   bads[i].text, bads[i].needle, msg);
		ok(*bads[i].text == '\0' || strstr(msg, bads[i].text) != NULL,
		   "message names the input");
		ok(ref.registry == NULL && ref.repository == NULL && ref.path == NULL,
		   "nothing left allocated");
		berth_error_clear();
	}
}

static void test_default_registry(void)
{
	struct imgconv_ref ref;
	char *c;

	is_int(imgconv_ref_parse("tools/gcc:13", "registry.site.example:443", &ref), 0,
	       "short name with a site default registry");
	c = imgconv_ref_format(&ref);
	is_str(c, "registry.site.example:443/tools/gcc:13", "no library/ prefix off Docker Hub");
	free(c);
	imgconv_ref_clear(&ref);
	is_int(imgconv_ref_parse("gcc", "registry.site.example", &ref), 0, "one component");
	is_str(ref.repository, "gcc", "kept as is");
	imgconv_ref_clear(&ref);
}

int main(void)
{
	test_good();
	test_bad();
	test_default_registry();
	return tap_done();
}
