/* What berth reads from the .sqsh file before mounting it (facts.c). */
#ifndef BERTH_FACTS_H
#define BERTH_FACTS_H

#include "imgconv/imgconv.h"
#include "launcher/launcher.h"

#define FACTS_MAX 32

struct launcher_facts {
	struct imgconv_entry v[FACTS_MAX];
	char *owned[FACTS_MAX]; /* path strings made here (home's prefixes) */
	size_t n;
};

/* The probed entry for path, or NULL when it was not probed. */
const struct imgconv_entry *facts_get(const struct launcher_facts *f, const char *path);

/* The content of a probed regular file (NULL: missing, not probed, too big). */
const char *facts_content(const struct launcher_facts *f, const char *path);

#endif
