/* Image manifests and indexes (OCI image spec manifest.md, image-index.md;
 * Docker "Image Manifest V2, Schema 2" and manifest lists), and choosing a
 * platform from an index. */
#include "config.h"
#include <errno.h>
#include <string.h>
#include <sys/utsname.h>
#include <jansson.h>
#include "common/error.h"
#include "common/util.h"
#include "imgconv/fetch.h"

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

const char manifest_accept[] = MT_OCI_INDEX ", " MT_DOCKER_LIST ", " MT_OCI_MANIFEST
			       ", " MT_DOCKER_MANIFEST;

static const char *const config_types[] = {
	"application/vnd.oci.image.config.v1+json",
	"application/vnd.docker.container.image.v1+json",
};

/* Layers imgconv_convert reads; foreign / non-distributable ones live
 * outside the registry (Windows base layers) and are refused. */
static const char *const layer_types[] = {
	"application/vnd.oci.image.layer.v1.tar",
	"application/vnd.oci.image.layer.v1.tar+gzip",
	"application/vnd.oci.image.layer.v1.tar+zstd",
	"application/vnd.docker.image.rootfs.diff.tar.gzip",
	"application/vnd.docker.image.rootfs.diff.tar",
};

static bool in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (streq(s, list[i]))
			return true;
	return false;
}

/* The served Content-Type may carry parameters ("; charset=utf-8"). */
static bool type_is(const char *content_type, const char *type)
{
	size_t n = strlen(type);

	return content_type && strncmp(content_type, type, n) == 0 &&
	       (content_type[n] == '\0' || content_type[n] == ';' || content_type[n] == ' ');
}

/* The body's own mediaType field wins; the Content-Type header is the
 * fallback (older registries serve application/json). */
static const char *media_type_of(json_t *root, const char *content_type)
{
	const char *mt = json_string_value(json_object_get(root, "mediaType"));

	if (mt)
		return mt;
	if (type_is(content_type, MT_OCI_INDEX))
		return MT_OCI_INDEX;
	if (type_is(content_type, MT_DOCKER_LIST))
		return MT_DOCKER_LIST;
	if (type_is(content_type, MT_DOCKER_MANIFEST))
		return MT_DOCKER_MANIFEST;
	if (json_is_array(json_object_get(root, "manifests")))
		return MT_OCI_INDEX;
	return MT_OCI_MANIFEST;
}

bool manifest_is_index(const char *media_type, const char *body, size_t len)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	const char *mt;
	bool is;

	if (!root)
		return false;
	mt = media_type_of(root, media_type);
	is = streq(mt, MT_OCI_INDEX) || streq(mt, MT_DOCKER_LIST);
	json_decref(root);
	return is;
}

static int parse_descriptor(const char *what, const char *field, json_t *j,
			    struct descriptor *d)
{
	const char *mt = json_string_value(json_object_get(j, "mediaType"));
	const char *dg = json_string_value(json_object_get(j, "digest"));
	json_t *size = json_object_get(j, "size");

	if (!json_is_object(j) || !mt || !dg || !json_is_integer(size) ||
	    json_integer_value(size) < 0)
		return berth_failx(BERTH_EFORMAT, "%s: manifest %s lacks mediaType, digest or size",
				   what, field);
	if (!digest_valid(dg))
		return berth_failx(BERTH_EUNSUPPORTED, "%s: manifest %s has digest '%.80s' (only "
				   "sha256 is supported)", what, field, dg);
	d->media_type = strdup(mt);
	d->digest = strdup(dg);
	d->size = (uint64_t)json_integer_value(size);
	return d->media_type && d->digest ? 0 : -ENOMEM;
}

static int parse_layers(const char *what, json_t *layers, struct manifest *m)
{
	size_t i;
	json_t *l;

	m->layers = calloc(json_array_size(layers) + 1, sizeof(*m->layers));
	if (!m->layers)
		return -ENOMEM;
	json_array_foreach(layers, i, l) {
		char field[32];
		int r;

		snprintf(field, sizeof(field), "layer %zu", i + 1);
		r = parse_descriptor(what, field, l, &m->layers[i]);
		m->n_layers = i + 1;
		if (r < 0)
			return r;
		if (strstr(m->layers[i].media_type, "nondistributable") ||
		    strstr(m->layers[i].media_type, "foreign"))
			return berth_failx(BERTH_EUNSUPPORTED, "%s: layer %zu is a foreign "
					   "(non-distributable) layer (%s), which berth does not "
					   "fetch", what, i + 1, m->layers[i].media_type);
		if (!in_list(m->layers[i].media_type, layer_types, ARRAY_SIZE(layer_types)))
			return berth_failx(BERTH_EUNSUPPORTED, "%s: layer %zu has unsupported "
					   "media type '%.100s'", what, i + 1,
					   m->layers[i].media_type);
	}
	return 0;
}

int manifest_parse(const char *what, const char *media_type, const char *body, size_t len,
		   struct manifest *out)
{
	json_t *root = json_loadb(body, len, 0, NULL), *layers;
	const char *mt;
	int r;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(root)) {
		json_decref(root);
		return berth_failx(BERTH_EFORMAT, "%s: manifest is not a JSON object", what);
	}
	mt = media_type_of(root, media_type);
	if (json_integer_value(json_object_get(root, "schemaVersion")) == 1 ||
	    strstr(mt, "distribution.manifest.v1")) {
		r = berth_failx(BERTH_EUNSUPPORTED, "%s: Docker schema 1 manifests are not "
				"supported (re-push the image with a current client)", what);
		goto out;
	}
	if (!streq(mt, MT_OCI_MANIFEST) && !streq(mt, MT_DOCKER_MANIFEST)) {
		r = berth_failx(BERTH_EUNSUPPORTED, "%s: unsupported manifest media type '%.100s'",
				what, mt);
		goto out;
	}
	r = parse_descriptor(what, "config", json_object_get(root, "config"), &out->config);
	if (r < 0)
		goto out;
	if (!in_list(out->config.media_type, config_types, ARRAY_SIZE(config_types))) {
		r = berth_failx(BERTH_EUNSUPPORTED, "%s: not a container image (config media type "
				"'%.100s')", what, out->config.media_type);
		goto out;
	}
	layers = json_object_get(root, "layers");
	if (!json_is_array(layers)) {
		r = berth_failx(BERTH_EFORMAT, "%s: manifest has no layers array", what);
		goto out;
	}
	r = parse_layers(what, layers, out);
out:
	json_decref(root);
	if (r < 0)
		manifest_clear(out);
	return r;
}

void manifest_clear(struct manifest *m)
{
	free(m->config.media_type);
	free(m->config.digest);
	for (size_t i = 0; i < m->n_layers; i++) {
		free(m->layers[i].media_type);
		free(m->layers[i].digest);
	}
	free(m->layers);
	memset(m, 0, sizeof(*m));
}

/* "os/arch[/variant]" of an index entry, NULL when it has no platform. */
static char *entry_platform(json_t *entry)
{
	json_t *p = json_object_get(entry, "platform");
	const char *os = json_string_value(json_object_get(p, "os"));
	const char *arch = json_string_value(json_object_get(p, "architecture"));
	const char *variant = json_string_value(json_object_get(p, "variant"));

	if (!os || !arch)
		return NULL;
	/* arm64's only variant is v8; images leave it out or spell it. */
	if (streq(arch, "arm64") && !variant)
		variant = "v8";
	return variant ? xasprintf("%s/%s/%s", os, arch, variant) : xasprintf("%s/%s", os, arch);
}

/* want matches have when equal, or when want names no variant and have
 * has one of the same os/arch. */
static bool platform_matches(const char *want, const char *have)
{
	size_t n = strlen(want);

	return streq(want, have) ||
	       (strchr(strchr(want, '/') + 1, '/') == NULL && strncmp(want, have, n) == 0 &&
		have[n] == '/');
}

int index_select(const char *what, const char *body, size_t len, const char *platform,
		 char **digest)
{
	json_t *root = json_loadb(body, len, 0, NULL), *list, *e;
	_cleanup_strv_ char **seen = NULL;
	_cleanup_free_ char *avail = NULL;
	size_t i;

	*digest = NULL;
	list = json_object_get(root, "manifests");
	if (!json_is_array(list)) {
		json_decref(root);
		return berth_failx(BERTH_EFORMAT, "%s: index has no manifests array", what);
	}
	json_array_foreach(list, i, e) {
		_cleanup_free_ char *p = entry_platform(e);
		const char *dg = json_string_value(json_object_get(e, "digest"));

		/* BuildKit attestations are "unknown/unknown" entries. */
		if (!p || !dg || strstr(p, "unknown"))
			continue;
		if (platform_matches(platform, p) && !*digest) {
			if (!digest_valid(dg)) {
				json_decref(root);
				return berth_failx(BERTH_EUNSUPPORTED, "%s: index entry for %s has "
						   "digest '%.80s' (only sha256)", what, p, dg);
			}
			*digest = strdup(dg);
		}
		if (!strv_contains(seen, p))
			strv_push(&seen, p);
	}
	json_decref(root);
	if (*digest)
		return 0;
	avail = strv_join(seen, ", ");
	return berth_failx(BERTH_ENOTFOUND, "%s: no image for platform %s in the index "
			   "(it has: %s); choose one with --arch", what, platform,
			   avail && *avail ? avail : "none");
}

static const char *host_arch(const char **variant)
{
	static struct utsname u;
	static const struct {
		const char *machine, *arch, *variant;
	} map[] = {
		{"x86_64", "amd64", NULL},   {"aarch64", "arm64", "v8"}, {"armv7l", "arm", "v7"},
		{"armv6l", "arm", "v6"},     {"ppc64le", "ppc64le", NULL}, {"s390x", "s390x", NULL},
		{"riscv64", "riscv64", NULL}, {"i686", "386", NULL},     {"i386", "386", NULL},
	};

	*variant = NULL;
	if (uname(&u) < 0)
		return "amd64";
	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (streq(u.machine, map[i].machine)) {
			*variant = map[i].variant;
			return map[i].arch;
		}
	return u.machine;
}

int platform_for(const char *arch_opt, char **out)
{
	const char *variant, *arch;
	size_t slashes = 0;

	if (!arch_opt) {
		arch = host_arch(&variant);
		*out = variant ? xasprintf("linux/%s/%s", arch, variant)
			       : xasprintf("linux/%s", arch);
		return *out ? 0 : -ENOMEM;
	}
	for (const char *p = arch_opt; *p; p++) {
		if (*p == '/')
			slashes++;
		else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return berth_failx(BERTH_EINVAL_INPUT, "invalid --arch '%s': use ARCH, "
					   "ARCH/VARIANT or OS/ARCH[/VARIANT], e.g. arm64", arch_opt);
	}
	if (!*arch_opt || slashes > 2 || strstr(arch_opt, "//") || arch_opt[0] == '/' ||
	    str_endswith(arch_opt, "/"))
		return berth_failx(BERTH_EINVAL_INPUT, "invalid --arch '%s': use ARCH, "
				   "ARCH/VARIANT or OS/ARCH[/VARIANT], e.g. arm64", arch_opt);
	/* Two parts are ARCH/VARIANT when the first is no OS name. */
	if (slashes == 2 || (slashes == 1 && (str_startswith(arch_opt, "linux/") ||
					     str_startswith(arch_opt, "windows/"))))
		*out = strdup(arch_opt);
	else
		*out = xasprintf("linux/%s", arch_opt);
	if (*out && streq(*out, "linux/arm64")) {
		free(*out);
		*out = strdup("linux/arm64/v8");
	}
	return *out ? 0 : -ENOMEM;
}
