/* Image references: every form berth accepts, validated against the
 * grammar of the distribution reference (github.com/distribution/reference,
 * "reference.go") so a typo fails here with a message naming the input,
 * not later as a confusing 404.
 *
 *   docker://[USER@][REGISTRY#]IMAGE[:TAG][@DIGEST]   enroot / pyxis form
 *   [REGISTRY/]IMAGE[:TAG][@DIGEST]                    docker form
 *   /path/to/x.sqsh, ./x.sqsh, x.squashfs              a squashfs file
 *   docker-archive://FILE.tar                          `docker save` output
 *   oci-dir://DIR[:TAG]                                OCI image layout
 */
#include "config.h"
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "common/util.h"
#include "imgconv/fetch.h"
#include "imgconv/imgconv.h"

/* The OCI image spec's digest syntax (descriptor.md): "sha256:" + 64
 * lowercase hex. */
bool digest_valid(const char *digest)
{
	if (!digest || strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != DIGEST_LEN)
		return false;
	for (const char *p = digest + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

#define NAME_MAX_LEN 255 /* whole repository name, reference.go NameTotalLengthMax */
#define TAG_MAX_LEN 128

static const char docker_hub[] = "registry-1.docker.io";

void imgconv_ref_clear(struct imgconv_ref *ref)
{
	if (!ref)
		return;
	free(ref->user);
	free(ref->registry);
	free(ref->repository);
	free(ref->tag);
	free(ref->digest);
	free(ref->path);
	memset(ref, 0, sizeof(*ref));
}

static int bad(const char *text, const char *why)
{
	return berth_failx(BERTH_EINVAL_INPUT, "invalid image reference '%s': %s", text, why);
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* path-component := [a-z0-9]+ (separator [a-z0-9]+)*
 * separator      := [_.] | "__" | "-"+ */
static bool valid_path_component(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
		return false;
	while (i < n) {
		if (is_lower_alnum(s[i])) {
			i++;
			continue;
		}
		if (s[i] == '-') {
			while (i < n && s[i] == '-')
				i++;
		} else if (s[i] == '_' && i + 1 < n && s[i + 1] == '_') {
			i += 2;
		} else if (s[i] == '_' || s[i] == '.') {
			i++;
		} else {
			return false;
		}
		if (i >= n || !is_lower_alnum(s[i]))
			return false;
	}
	return true;
}

static bool valid_repository(const char *repo)
{
	const char *p = repo;

	if (strlen(repo) > NAME_MAX_LEN)
		return false;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (!valid_path_component(p, n))
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

/* domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9] */
static bool valid_host_label(const char *s, size_t n)
{
	if (n == 0 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

/* domain := host [":" port], host a dotted name or a bracketed IPv6 address. */
static bool valid_registry(const char *reg)
{
	const char *colon, *p = reg, *end;

	if (reg[0] == '[') {
		const char *close = strchr(reg, ']');

		if (!close || close == reg + 1)
			return false;
		for (p = reg + 1; p < close; p++)
			if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
				return false;
		colon = close[1] == ':' ? close + 1 : NULL;
		if (!colon && close[1] != '\0')
			return false;
	} else {
		colon = strchr(reg, ':');
		end = colon ? colon : reg + strlen(reg);
		while (p < end) {
			const char *dot = memchr(p, '.', (size_t)(end - p));
			size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);

			if (!valid_host_label(p, n))
				return false;
			p += n + (dot ? 1 : 0);
			if (dot && p == end)
				return false; /* trailing dot */
		}
		if (end == reg)
			return false;
	}
	if (colon) {
		size_t n = strlen(colon + 1);

		if (n == 0 || n > 5 || strspn(colon + 1, "0123456789") != n ||
		    atoi(colon + 1) > 65535)
			return false;
	}
	return true;
}

/* tag := [\w][\w.-]{0,127} */
static bool valid_tag(const char *tag)
{
	size_t n = strlen(tag);

	if (n == 0 || n > TAG_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = tag[i];
		bool word = isalnum((unsigned char)c) || c == '_';

		if (!word && (i == 0 || (c != '.' && c != '-')))
			return false;
	}
	return true;
}

/* Only sha256 is accepted: it is the one algorithm registries use and the
 * OCI image spec requires (sha512 is optional); the encoded part must be
 * exactly 64 lowercase hex digits (image-spec descriptor.md). */
static int check_digest(const char *text, const char *digest)
{
	const char *colon = strchr(digest, ':');

	if (!colon || colon == digest)
		return bad(text, "digest must look like sha256:<64 hex digits>");
	if (strncmp(digest, "sha256:", 7) != 0)
		return berth_failx(BERTH_EUNSUPPORTED,
				   "invalid image reference '%s': digest algorithm '%.*s' is not "
				   "supported (only sha256)", text, (int)(colon - digest), digest);
	if (!digest_valid(digest))
		return bad(text, "a sha256 digest has exactly 64 lowercase hex digits");
	return 0;
}

/* The registry part of a docker-form name is its first component when that
 * contains '.' or ':', is "localhost", or has an uppercase letter (such a
 * component can be no repository name) -- reference.go splitDockerDomain. */
static bool looks_like_registry(const char *s, size_t n)
{
	if (n == 9 && strncmp(s, "localhost", 9) == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '.' || s[i] == ':' || s[i] == '[' || isupper((unsigned char)s[i]))
			return true;
	return false;
}

static bool is_docker_hub(const char *reg)
{
	return streq(reg, "docker.io") || streq(reg, "index.docker.io") ||
	       streq(reg, "registry-1.docker.io");
}

static int set_str(char **field, const char *s, size_t n)
{
	*field = strndup(s, n);
	return *field ? 0 : -ENOMEM;
}

/* Split "NAME[:TAG][@DIGEST]" (NAME without registry) into the ref. */
static int parse_name_tag_digest(const char *text, const char *s, struct imgconv_ref *ref)
{
	const char *at = strchr(s, '@'), *end, *colon;
	int r;

	if (at) {
		r = check_digest(text, at + 1);
		if (r < 0)
			return r;
		if (set_str(&ref->digest, at + 1, strlen(at + 1)) < 0)
			return -ENOMEM;
	}
	end = at ? at : s + strlen(s);
	/* A tag follows the last ':' after the last '/'. */
	colon = NULL;
	for (const char *p = s; p < end; p++) {
		if (*p == ':')
			colon = p;
		else if (*p == '/')
			colon = NULL;
	}
	if (colon) {
		_cleanup_free_ char *tag = strndup(colon + 1, (size_t)(end - colon - 1));

		if (!tag)
			return -ENOMEM;
		if (!valid_tag(tag))
			return bad(text, "a tag is 1-128 of [A-Za-z0-9_.-] and starts with a "
					 "letter, digit or '_'");
		ref->tag = TAKE_PTR(tag);
		end = colon;
	}
	if (end == s)
		return bad(text, "no image name");
	if (set_str(&ref->repository, s, (size_t)(end - s)) < 0)
		return -ENOMEM;
	if (!valid_repository(ref->repository))
		return bad(text, strlen(ref->repository) > NAME_MAX_LEN
				 ? "image name longer than 255 characters"
				 : "image names are lowercase [a-z0-9] components separated by "
				   "'/', '.', '_', '__' or '-'");
	return 0;
}

/* Fill registry (lowercased; Docker Hub normalised) and default the tag. */
static int finish_registry(const char *text, const char *registry, size_t n,
			   struct imgconv_ref *ref)
{
	char *reg = strndup(registry, n);

	if (!reg)
		return -ENOMEM;
	ref->registry = reg;
	if (!valid_registry(reg))
		return bad(text, "registry must be HOST[:PORT]");
	for (char *p = reg; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (is_docker_hub(reg)) {
		free(ref->registry);
		ref->registry = strdup(docker_hub);
		if (!ref->registry)
			return -ENOMEM;
	}
	/* Docker Hub's official images live under library/. */
	if (streq(ref->registry, docker_hub) && !strchr(ref->repository, '/')) {
		char *full = xasprintf("library/%s", ref->repository);

		if (!full)
			return -ENOMEM;
		free(ref->repository);
		ref->repository = full;
	}
	if (!ref->tag && !ref->digest && !(ref->tag = strdup("latest")))
		return -ENOMEM;
	return 0;
}

/* "[REGISTRY/]NAME[:TAG][@DIGEST]" */
static int parse_docker_form(const char *text, const char *s, const char *default_registry,
			     struct imgconv_ref *ref)
{
	const char *slash = strchr(s, '/');
	int r;

	if (slash && looks_like_registry(s, (size_t)(slash - s))) {
		r = parse_name_tag_digest(text, slash + 1, ref);
		return r < 0 ? r : finish_registry(text, s, (size_t)(slash - s), ref);
	}
	r = parse_name_tag_digest(text, s, ref);
	if (r < 0)
		return r;
	return finish_registry(text, default_registry, strlen(default_registry), ref);
}

/* Is p (just after an '@') a digest, "ALGORITHM:HEX" with 32+ hex digits
 * up to the end?  Otherwise the '@' ends a user name. */
static bool at_starts_digest(const char *p)
{
	size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789+._-");
	size_t h = n > 0 && p[n] == ':' ? strspn(p + n + 1, "0123456789abcdefABCDEF") : 0;

	return h >= 32 && p[n + 1 + h] == '\0';
}

/* "[USER@][REGISTRY#]IMAGE[:TAG][@DIGEST]" after "docker://".  The first
 * '@' is a user unless what follows it is the digest. */
static int parse_enroot_form(const char *text, const char *s, const char *default_registry,
			     struct imgconv_ref *ref)
{
	const char *at = strchr(s, '@'), *hash;

	if (at && !at_starts_digest(at + 1)) {
		if (at == s)
			return bad(text, "empty user name before '@'");
		for (const char *p = s; p < at; p++)
			if (!isalnum((unsigned char)*p) && !strchr("._-+$", *p))
				return bad(text, "user names are [A-Za-z0-9._+$-]");
		if (set_str(&ref->user, s, (size_t)(at - s)) < 0)
			return -ENOMEM;
		s = at + 1;
	}
	hash = strchr(s, '#');
	if (hash) {
		int r;

		if (strchr(hash + 1, '#'))
			return bad(text, "more than one '#'");
		if (hash == s)
			return bad(text, "empty registry before '#'");
		r = parse_name_tag_digest(text, hash + 1, ref);
		return r < 0 ? r : finish_registry(text, s, (size_t)(hash - s), ref);
	}
	return parse_docker_form(text, s, default_registry, ref);
}

static bool looks_like_file(const char *s)
{
	return s[0] == '/' || s[0] == '.' || s[0] == '~' || str_endswith(s, ".sqsh") ||
	       str_endswith(s, ".squashfs") || str_endswith(s, ".sqfs");
}

/* "DIR[:TAG]": a tag is taken only after the last '/', so paths with ':' in
 * a directory name still work. */
static int parse_oci_dir(const char *text, const char *s, struct imgconv_ref *ref)
{
	const char *slash = strrchr(s, '/'), *colon = strrchr(s, ':');

	if (colon && (!slash || colon > slash)) {
		if (!valid_tag(colon + 1))
			return bad(text, "oci-dir tag must be a valid tag");
		if (set_str(&ref->tag, colon + 1, strlen(colon + 1)) < 0)
			return -ENOMEM;
	} else {
		colon = s + strlen(s);
	}
	if (colon == s)
		return bad(text, "no directory after 'oci-dir://'");
	return set_str(&ref->path, s, (size_t)(colon - s));
}

static int parse(const char *text, const char *default_registry, struct imgconv_ref *ref)
{
	if (!*text)
		return bad(text, "empty");
	for (const char *p = text; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return bad(text, "contains white space or a control character");
	if (str_startswith(text, "docker-archive://") || str_startswith(text, "docker-archive:")) {
		const char *p = text + (str_startswith(text, "docker-archive://") ? 17 : 15);

		ref->kind = IMGCONV_REF_DOCKER_ARCHIVE;
		if (!*p)
			return bad(text, "no file after 'docker-archive://'");
		return set_str(&ref->path, p, strlen(p));
	}
	if (str_startswith(text, "oci-dir://") || str_startswith(text, "oci:")) {
		ref->kind = IMGCONV_REF_OCI_DIR;
		return parse_oci_dir(text, text + (str_startswith(text, "oci:") ? 4 : 10), ref);
	}
	ref->kind = IMGCONV_REF_REGISTRY;
	if (str_startswith(text, "docker://"))
		return parse_enroot_form(text, text + 9, default_registry, ref);
	if (strstr(text, "://"))
		return bad(text, "unknown scheme (use docker://, docker-archive:// or oci-dir://)");
	if (looks_like_file(text)) {
		ref->kind = IMGCONV_REF_SQUASHFS;
		return set_str(&ref->path, text, strlen(text));
	}
	if (strchr(text, '#'))
		return parse_enroot_form(text, text, default_registry, ref);
	return parse_docker_form(text, text, default_registry, ref);
}

int imgconv_ref_parse(const char *text, const char *default_registry, struct imgconv_ref *out)
{
	int r;

	memset(out, 0, sizeof(*out));
	if (!default_registry || !*default_registry)
		default_registry = docker_hub;
	r = parse(text, default_registry, out);
	if (r < 0)
		imgconv_ref_clear(out);
	return r == -ENOMEM ? berth_fail(r, "parse image reference") : r;
}

char *imgconv_ref_format(const struct imgconv_ref *ref)
{
	switch (ref->kind) {
	case IMGCONV_REF_SQUASHFS:
		return strdup(ref->path);
	case IMGCONV_REF_DOCKER_ARCHIVE:
		return xasprintf("docker-archive://%s", ref->path);
	case IMGCONV_REF_OCI_DIR:
		return ref->tag ? xasprintf("oci-dir://%s:%s", ref->path, ref->tag)
				: xasprintf("oci-dir://%s", ref->path);
	case IMGCONV_REF_REGISTRY:
		break;
	}
	return xasprintf("%s/%s%s%s%s%s", ref->registry, ref->repository, ref->tag ? ":" : "",
			 ref->tag ? ref->tag : "", ref->digest ? "@" : "",
			 ref->digest ? ref->digest : "");
}
