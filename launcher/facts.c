/* What berth reads from the .sqsh file before mounting it.
 *
 * One opening of the image with libsquashfs, in the calling process: the
 * image config, /etc/passwd and /etc/group, and what the paths berth
 * mounts on are in the image.  A cold start then neither waits for round
 * trips to the fresh FUSE server for them (each ~50 us, one after the
 * other) nor reads them through a mount that the caller cannot see once
 * inside the container. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/facts.h"

static const struct {
	const char *path;
	size_t max;
} fixed[] = {
	{"/etc/passwd", 4u << 20},
	{"/etc/group", 4u << 20},
	{"/.berth/image.json", 16u << 20},
	{"/etc", 0},
	{"/etc/hosts", 0},
	{"/etc/resolv.conf", 0},
	{"/etc/localtime", 0},
	{"/proc", 0},
	{"/sys", 0},
	{"/dev", 0},
	{"/tmp", 0},
};

/* "/home/u/x": "/home", "/home/u", "/home/u/x" */
static int add_prefixes(struct launcher_facts *f, const char *path)
{
	for (const char *p = path + 1; f->n < FACTS_MAX; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		if (p > path + 1 && p[-1] != '/') {
			char *prefix = strndup(path, (size_t)(p - path));

			if (!prefix)
				return -ENOMEM;
			f->owned[f->n] = prefix;
			f->v[f->n++] = (struct imgconv_entry){.path = prefix};
		}
		if (*p == '\0')
			break;
	}
	return 0;
}

int launcher_facts_read(const char *image, const char *home, struct launcher_facts **out)
{
	struct launcher_facts *f = calloc(1, sizeof(*f));
	int r;

	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
		f->v[f->n++] = (struct imgconv_entry){.path = fixed[i].path, .max = fixed[i].max};
	r = home && home[0] == '/' && !strstr(home, "/.") ? add_prefixes(f, home) : 0;
	if (r == 0)
		r = imgconv_probe(image, f->v, f->n);
	if (r < 0) {
		launcher_facts_free(f);
		return r;
	}
	*out = f;
	return 0;
}

void launcher_facts_free(struct launcher_facts *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		free(f->v[i].content);
		free(f->owned[i]);
	}
	free(f);
}

const struct imgconv_entry *facts_get(const struct launcher_facts *f, const char *path)
{
	for (size_t i = 0; f && i < f->n; i++)
		if (streq(f->v[i].path, path))
			return &f->v[i];
	return NULL;
}

const char *facts_content(const struct launcher_facts *f, const char *path)
{
	const struct imgconv_entry *e = facts_get(f, path);

	return e ? e->content : NULL;
}

const char *launcher_facts_config(const struct launcher_facts *f)
{
	return facts_content(f, "/.berth/image.json");
}
