/* Mount specs: "-v SRC:DST[:FLAGS]" and pyxis's "--container-mounts" list.
 * Pure parsing; the mounts are made by rootfs.c inside the keeper. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/launcher.h"

static const struct {
	const char *name;
	unsigned flag;
} flag_names[] = {
	{"ro", LAUNCHER_MNT_RO},         {"rw", LAUNCHER_MNT_RW},
	{"nosuid", LAUNCHER_MNT_NOSUID}, {"nodev", LAUNCHER_MNT_NODEV},
	{"noexec", LAUNCHER_MNT_NOEXEC}, {"rbind", LAUNCHER_MNT_RBIND},
	{"bind", 0},                     {"private", LAUNCHER_MNT_PRIVATE},
	{"rprivate", LAUNCHER_MNT_PRIVATE}, {"slave", LAUNCHER_MNT_SLAVE},
	{"rslave", LAUNCHER_MNT_SLAVE},
};

static int flag_lookup(const char *word, unsigned *flag)
{
	for (size_t i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++) {
		if (streq(word, flag_names[i].name)) {
			*flag = flag_names[i].flag;
			return 0;
		}
	}
	return -1;
}

static void mount_clear(struct launcher_mount *m)
{
	free(m->source);
	free(m->target);
	m->source = m->target = NULL;
}

void launcher_mounts_clear(struct launcher_mounts *m)
{
	for (size_t i = 0; i < m->n; i++)
		mount_clear(&m->v[i]);
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

static int add_flags(struct launcher_mount *m, const char *spec, const char *list)
{
	_cleanup_strv_ char **words = strv_split(list, '+');

	if (!words)
		return -ENOMEM;
	if (!words[0])
		return berth_failx(BERTH_EINVAL_INPUT, "mount '%s': empty flags", spec);
	for (size_t i = 0; words[i]; i++) {
		unsigned f;

		if (flag_lookup(words[i], &f) < 0)
			return berth_failx(BERTH_EINVAL_INPUT,
					   "mount '%s': unknown flag '%s' (known: ro, rw, nosuid, "
					   "nodev, noexec, bind, rbind, private, slave)",
					   spec, words[i]);
		m->flags |= f;
	}
	if ((m->flags & LAUNCHER_MNT_RO) && (m->flags & LAUNCHER_MNT_RW))
		return berth_failx(BERTH_EINVAL_INPUT, "mount '%s': both ro and rw", spec);
	if ((m->flags & LAUNCHER_MNT_PRIVATE) && (m->flags & LAUNCHER_MNT_SLAVE))
		return berth_failx(BERTH_EINVAL_INPUT, "mount '%s': both private and slave", spec);
	return 0;
}

/* A target is a path in the container: absolute, and without ".." so that
 * nobody writes a spec that reads as if it left the root. */
static int check_target(const char *spec, const char *t)
{
	_cleanup_strv_ char **parts = NULL;

	if (t[0] != '/')
		return berth_failx(BERTH_EINVAL_INPUT,
				   "mount '%s': target '%s' is not an absolute path", spec, t);
	parts = strv_split(t, '/');
	if (!parts)
		return -ENOMEM;
	for (size_t i = 0; parts[i]; i++)
		if (streq(parts[i], ".."))
			return berth_failx(BERTH_EINVAL_INPUT,
					   "mount '%s': target '%s' contains '..'", spec, t);
	return 0;
}

static char *absolute_source(const char *src)
{
	_cleanup_free_ char *cwd = NULL;

	if (src[0] == '/')
		return strdup(src);
	cwd = getcwd(NULL, 0);
	return cwd ? path_join(cwd, src) : NULL;
}

static int parse_one(const char *spec, struct launcher_mount *m)
{
	_cleanup_free_ char *copy = NULL;
	char *src, *dst, *flags;

	/* Initialised before any return: the caller clears *m on failure. */
	*m = (struct launcher_mount){.kind = LAUNCHER_MOUNT_BIND};
	copy = strdup(spec);
	if (!copy)
		return -ENOMEM;
	src = copy;
	dst = strchr(src, ':');
	if (dst)
		*dst++ = '\0';
	flags = dst ? strchr(dst, ':') : NULL;
	if (flags)
		*flags++ = '\0';
	if (flags && strchr(flags, ':'))
		return berth_failx(BERTH_EINVAL_INPUT,
				   "mount '%s': too many ':' (SRC:DST[:FLAGS])", spec);
	if (!*src)
		return berth_failx(BERTH_EINVAL_INPUT, "mount '%s': empty source", spec);
	if (dst && !*dst)
		return berth_failx(BERTH_EINVAL_INPUT, "mount '%s': empty target", spec);
	if (streq(src, "tmpfs") || streq(src, "umount")) {
		if (!dst)
			return berth_failx(BERTH_EINVAL_INPUT, "mount '%s': %s needs a target",
					   spec, src);
		m->kind = streq(src, "tmpfs") ? LAUNCHER_MOUNT_TMPFS : LAUNCHER_MOUNT_UMOUNT;
	} else if (!(m->source = absolute_source(src))) {
		return -ENOMEM;
	}
	m->target = strdup(dst ? dst : m->source ? m->source : src);
	if (!m->target)
		return -ENOMEM;
	if (check_target(spec, m->target) < 0 || (flags && add_flags(m, spec, flags) < 0))
		return BERTH_EINVAL_INPUT;
	return 0;
}

static bool is_flag_word(const char *s)
{
	unsigned f;

	return flag_lookup(s, &f) == 0;
}

int launcher_mounts_parse(struct launcher_mounts *m, const char *text)
{
	_cleanup_strv_ char **items = NULL;
	struct launcher_mounts add = {0};
	bool flags_open = false;
	int r = 0;

	if (!*text)
		return berth_failx(BERTH_EINVAL_INPUT, "mount '': empty mount spec");
	if (text[strlen(text) - 1] == ',' || text[0] == ',' || strstr(text, ",,"))
		return berth_failx(BERTH_EINVAL_INPUT, "mount '%s': empty entry in list", text);
	items = strv_split(text, ',');
	if (!items)
		return -ENOMEM;
	for (size_t i = 0; items[i] && r == 0; i++) {
		struct launcher_mount *nv;

		/* docker -v style "SRC:DST:ro,nosuid": a bare flag word after a
		 * spec that already has flags belongs to that spec. */
		if (flags_open && is_flag_word(items[i])) {
			r = add_flags(&add.v[add.n - 1], text, items[i]);
			continue;
		}
		flags_open = strchr(items[i], ':') && strchr(strchr(items[i], ':') + 1, ':');
		nv = realloc(add.v, (add.n + 1) * sizeof(*nv));
		if (!nv) {
			r = -ENOMEM;
			break;
		}
		add.v = nv;
		add.v[add.n] = (struct launcher_mount){0};
		r = parse_one(items[i], &add.v[add.n]);
		if (r < 0)
			mount_clear(&add.v[add.n]);
		else
			add.n++;
	}
	if (r == 0) {
		struct launcher_mount *nv = realloc(m->v, (m->n + add.n + 1) * sizeof(*nv));

		if (!nv) {
			r = -ENOMEM;
		} else {
			m->v = nv;
			memcpy(m->v + m->n, add.v, add.n * sizeof(*nv));
			m->n += add.n;
			free(add.v);
			return 0;
		}
	}
	launcher_mounts_clear(&add);
	return r;
}
