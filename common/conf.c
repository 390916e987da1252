#include "config.h"
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/conf.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"

enum key_type { T_STR, T_LIST, T_U64, T_BOOL, T_LEVEL, T_CHOICE };

struct key {
	const char *name;
	enum key_type type;
	size_t offset;
	const char *def; /* NULL: computed in set_defaults() */
	const char *choices;
	uint64_t max;
};

#define K(n, t, d, c, m) {#n, t, offsetof(struct berth_config, n), d, c, m}
static const struct key keys[] = {
	K(cache_dir, T_STR, NULL, NULL, 0),
	K(runtime_dir, T_STR, NULL, NULL, 0),
	K(credentials_file, T_STR, NULL, NULL, 0),
	K(registry_mirrors, T_LIST, "", NULL, 0),
	K(insecure_registries, T_LIST, "", NULL, 0),
	K(default_registry, T_STR, "registry-1.docker.io", NULL, 0),
	K(max_connections, T_U64, "8", NULL, 64),
	K(compression, T_CHOICE, "lz4", "lz4,zstd,gzip,xz", 0),
	K(compression_level, T_U64, "0", NULL, 22),
	K(mount_linger, T_U64, "5", NULL, 86400),
	K(overlay, T_CHOICE, "auto", "auto,kernel,fuse", 0),
	K(writable, T_BOOL, "yes", NULL, 0),
	K(mount_home, T_BOOL, "yes", NULL, 0),
	K(remap_root, T_BOOL, "no", NULL, 0),
	K(gpu_driver_root, T_STR, "/", NULL, 0),
	K(mpi_inject_verbs, T_BOOL, "no", NULL, 0),
	K(log_level, T_LEVEL, "info", NULL, 0),
};
#undef K

_Static_assert(ARRAY_SIZE(keys) <= ARRAY_SIZE(((struct berth_config *)0)->source),
	       "source[] too small");

static const struct key *find_key(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

bool berth_config_known(const char *key)
{
	return find_key(key) != NULL;
}

static const char *home_dir(void)
{
	const char *h = getenv("HOME");
	struct passwd *pw;

	if (h && *h)
		return h;
	pw = getpwuid(getuid());
	return pw ? pw->pw_dir : "/";
}

/* "~/x", ${HOME}, ${USER}, ${UID} */
static char *expand(const char *v)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	if (v[0] == '~' && (v[1] == '/' || v[1] == '\0')) {
		fputs(home_dir(), f);
		v++;
	}
	while (*v) {
		if (strncmp(v, "${HOME}", 7) == 0) {
			fputs(home_dir(), f);
			v += 7;
		} else if (strncmp(v, "${UID}", 6) == 0) {
			fprintf(f, "%u", (unsigned)getuid());
			v += 6;
		} else if (strncmp(v, "${USER}", 7) == 0) {
			struct passwd *pw = getpwuid(getuid());

			if (pw)
				fputs(pw->pw_name, f);
			else
				fprintf(f, "%u", (unsigned)getuid());
			v += 7;
		} else {
			fputc(*v++, f);
		}
	}
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

static int set_value(struct berth_config *cfg, const struct key *k, const char *value,
		     const char *source)
{
	void *field = (char *)cfg + k->offset;
	size_t idx = (size_t)(k - keys);
	char *src = strdup(source);
	int r = 0;

	if (!src)
		return -ENOMEM;
	switch (k->type) {
	case T_STR:
	case T_CHOICE:
	case T_LEVEL: {
		char *v;

		if (k->type == T_CHOICE) {
			_cleanup_strv_ char **ch = strv_split(k->choices, ',');

			if (!strv_contains(ch, value))
				r = berth_failx(BERTH_ECONFIG, "%s: %s: '%s' is not one of %s",
						source, k->name, value, k->choices);
		} else if (k->type == T_LEVEL) {
			enum berth_log_level l;

			if (berth_log_parse_level(value, &l) < 0)
				r = berth_failx(BERTH_ECONFIG,
						"%s: %s: '%s' is not one of error,warn,info,debug,trace",
						source, k->name, value);
		} else if (!*value) {
			r = berth_failx(BERTH_ECONFIG, "%s: %s: empty value", source, k->name);
		}
		if (r < 0)
			break;
		v = k->type == T_STR ? expand(value) : strdup(value);
		if (!v) {
			r = -ENOMEM;
			break;
		}
		free(*(char **)field);
		*(char **)field = v;
		break;
	}
	case T_LIST: {
		char **v = strv_split(value, ',');

		if (!v) {
			r = -ENOMEM;
			break;
		}
		for (size_t i = 0; v[i]; i++) {
			/* trim blanks around items: "a, b" */
			char *s = v[i], *e;

			while (isspace((unsigned char)*s))
				s++;
			memmove(v[i], s, strlen(s) + 1);
			e = v[i] + strlen(v[i]);
			while (e > v[i] && isspace((unsigned char)e[-1]))
				*--e = '\0';
		}
		strv_free(*(char ***)field);
		*(char ***)field = v;
		break;
	}
	case T_U64: {
		uint64_t n;

		if (parse_u64(value, k->max, &n) < 0) {
			r = berth_failx(BERTH_ECONFIG,
					"%s: %s: '%s' is not a whole number from 0 to %llu",
					source, k->name, value, (unsigned long long)k->max);
			break;
		}
		*(uint64_t *)field = n;
		break;
	}
	case T_BOOL:
		if (parse_bool(value, (bool *)field) < 0)
			r = berth_failx(BERTH_ECONFIG, "%s: %s: '%s' is not yes or no",
					source, k->name, value);
		break;
	}
	if (r < 0) {
		free(src);
		return r;
	}
	free(cfg->source[idx]);
	cfg->source[idx] = src;
	return 0;
}

int berth_config_set(struct berth_config *cfg, const char *key, const char *value,
		     const char *source)
{
	const struct key *k = find_key(key);

	if (!k)
		return berth_failx(BERTH_ECONFIG, "%s: unknown key '%s'", source, key);
	return set_value(cfg, k, value, source);
}

static int set_defaults(struct berth_config *cfg)
{
	const char *xdg_cache = getenv("XDG_CACHE_HOME");
	const char *xdg_run = getenv("XDG_RUNTIME_DIR");
	_cleanup_free_ char *cache = NULL, *run = NULL, *cred = NULL;
	int r;

	cache = xdg_cache && *xdg_cache ? path_join(xdg_cache, "berth")
					: xasprintf("%s/.cache/berth", home_dir());
	run = xasprintf("%s/berth-%u", xdg_run && *xdg_run ? xdg_run : "/tmp",
			(unsigned)getuid());
	cred = xasprintf("%s/.config/berth/credentials", home_dir());
	if (!cache || !run || !cred)
		return -ENOMEM;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const char *d = keys[i].def;

		if (!d)
			d = streq(keys[i].name, "cache_dir") ? cache
			    : streq(keys[i].name, "runtime_dir") ? run : cred;
		r = set_value(cfg, &keys[i], d, "default");
		if (r < 0)
			return r;
	}
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int berth_config_read_file(struct berth_config *cfg, const char *path)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;

	if (!f) {
		if (errno == ENOENT)
			return -ENOENT;
		return berth_fail(-errno, "read config '%s'", path);
	}
	while (getline(&line, &cap, f) >= 0) {
		char src[4200], *s, *eq, *key, *val;
		int r;

		lineno++;
		s = trim(line);
		if (!*s || *s == '#')
			continue;
		snprintf(src, sizeof(src), "%s:%u", path, lineno);
		eq = strchr(s, '=');
		if (!eq)
			return berth_failx(BERTH_ECONFIG, "%s: expected 'key = value', got '%s'",
					   src, s);
		*eq = '\0';
		key = trim(s);
		val = trim(eq + 1);
		if (!find_key(key))
			return berth_failx(BERTH_ECONFIG, "%s: unknown key '%s'", src, key);
		r = berth_config_set(cfg, key, val, src);
		if (r < 0)
			return r;
	}
	return 0;
}

static int load_env(struct berth_config *cfg)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		char var[64], src[80];
		const char *v;
		size_t j;
		int r;

		strcpy(var, "BERTH_");
		for (j = 0; keys[i].name[j]; j++)
			var[6 + j] = (char)toupper((unsigned char)keys[i].name[j]);
		var[6 + j] = '\0';
		v = getenv(var);
		if (!v)
			continue;
		snprintf(src, sizeof(src), "environment %s", var);
		r = set_value(cfg, &keys[i], v, src);
		if (r < 0)
			return r;
	}
	return 0;
}

int berth_config_load(struct berth_config **out, unsigned flags)
{
	struct berth_config *cfg;
	const char *explicit = getenv("BERTH_CONFIG");
	int r;

	if (flags & ~BERTH_CONFIG_ALL_FLAGS)
		return -EINVAL;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return -ENOMEM;
	r = set_defaults(cfg);
	if (r == 0 && !(flags & BERTH_CONFIG_NO_FILES)) {
		if (explicit && *explicit) {
			r = berth_config_read_file(cfg, explicit);
			if (r == -ENOENT)
				r = berth_fail(r, "BERTH_CONFIG: read '%s'", explicit);
		} else {
			_cleanup_free_ char *user = xasprintf("%s/.config/berth/berth.conf",
							      home_dir());

			r = berth_config_read_file(cfg, SYSCONFDIR "/berth/berth.conf");
			if (r == -ENOENT)
				r = 0;
			if (r == 0 && user) {
				r = berth_config_read_file(cfg, user);
				/* HOME may point at someone else's home (slurmstepd
				 * runs OCI hooks as the user with HOME=/root): a
				 * user file we may not read is not ours. */
				if (r == -EACCES) {
					log_debug("skipping unreadable '%s'", user);
					berth_error_clear();
				}
				if (r == -ENOENT || r == -EACCES)
					r = 0;
			}
		}
	}
	if (r == 0 && !(flags & BERTH_CONFIG_NO_ENV))
		r = load_env(cfg);
	if (r < 0) {
		berth_config_free(cfg);
		return r;
	}
	*out = cfg;
	return 0;
}

void berth_config_free(struct berth_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		void *field = (char *)cfg + keys[i].offset;

		if (keys[i].type == T_LIST)
			strv_free(*(char ***)field);
		else if (keys[i].type != T_U64 && keys[i].type != T_BOOL)
			free(*(char **)field);
		free(cfg->source[i]);
	}
	free(cfg);
}

void berth_config_print(const struct berth_config *cfg, FILE *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const void *field = (const char *)cfg + keys[i].offset;
		char buf[32];
		_cleanup_free_ char *joined = NULL;
		const char *v = buf;

		switch (keys[i].type) {
		case T_LIST:
			v = joined = strv_join(*(char **const *)field, ",");
			break;
		case T_U64:
			snprintf(buf, sizeof(buf), "%llu",
				 (unsigned long long)*(const uint64_t *)field);
			break;
		case T_BOOL:
			v = *(const bool *)field ? "yes" : "no";
			break;
		default:
			v = *(char *const *)field;
		}
		fprintf(out, "%-20s = %-40s # %s\n", keys[i].name, v ? v : "",
			cfg->source[i]);
	}
}
