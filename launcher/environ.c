/* The container's environment (rules in launcher.h and berth(1)). */
#include "config.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/launcher.h"
#include "launcher/mpi.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static const char *const passthrough_prefixes[] = {
	"SLURM_", "CUDA_", "NVIDIA_", "PMIX_", "PMI_", "OMPI_", "UCX_", "FI_",
};
static const char *const passthrough_names[] = {"HOME", "USER", "TERM", "LANG"};

bool launcher_env_passthrough(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(passthrough_prefixes); i++)
		if (str_startswith(name, passthrough_prefixes[i]))
			return true;
	for (size_t i = 0; i < ARRAY_SIZE(passthrough_names); i++)
		if (streq(name, passthrough_names[i]))
			return true;
	return false;
}

static size_t name_len(const char *entry)
{
	const char *eq = strchr(entry, '=');

	return eq ? (size_t)(eq - entry) : strlen(entry);
}

static ssize_t env_find(char *const *env, const char *name, size_t len)
{
	for (size_t i = 0; env && env[i]; i++)
		if (name_len(env[i]) == len && strncmp(env[i], name, len) == 0)
			return (ssize_t)i;
	return -1;
}

static const char *env_get(char *const *env, const char *name)
{
	ssize_t i = env_find(env, name, strlen(name));

	return i < 0 ? NULL : env[i] + strlen(name) + 1;
}

/* Set "NAME=VALUE" (entry has '='), or unset NAME (entry has none). */
static int env_apply(char ***env, const char *entry)
{
	size_t len = name_len(entry);
	ssize_t i = env_find(*env, entry, len);

	if (!strchr(entry, '=')) {
		if (i >= 0) {
			size_t n = strv_length(*env);

			free((*env)[i]);
			memmove(*env + i, *env + i + 1, (n - (size_t)i) * sizeof(char *));
		}
		return 0;
	}
	if (i >= 0) {
		char *copy = strdup(entry);

		if (!copy)
			return -ENOMEM;
		free((*env)[i]);
		(*env)[i] = copy;
		return 0;
	}
	return strv_push(env, entry);
}

static bool kept(const struct launcher_env_rules *r, const char *name, size_t len)
{
	_cleanup_free_ char *n = strndup(name, len);

	if (!n)
		return false;
	if (!launcher_env_passthrough(n) && !strv_contains(r->keep_host, n))
		return false;
	return env_find(r->host, n, len) >= 0;
}

int launcher_env_build(const struct launcher_env_rules *r, char ***out)
{
	_cleanup_strv_ char **env = NULL;
	int rc;

	for (size_t i = 0; r->host && r->host[i]; i++) {
		if (!strchr(r->host[i], '=') || str_startswith(r->host[i], "PATH="))
			continue;
		if ((rc = env_apply(&env, r->host[i])) < 0)
			return rc;
	}
	for (size_t i = 0; r->image && r->image[i]; i++) {
		if (!strchr(r->image[i], '=') || kept(r, r->image[i], name_len(r->image[i])))
			continue;
		if ((rc = env_apply(&env, r->image[i])) < 0)
			return rc;
	}
	if (!env_get(env, "PATH") && (rc = env_apply(&env, "PATH=" DEFAULT_PATH)) < 0)
		return rc;
	if ((rc = mpi_env_fixup(&env, r->host)) < 0)
		return rc;
	for (size_t i = 0; r->user && r->user[i]; i++)
		if ((rc = env_apply(&env, r->user[i])) < 0)
			return rc;
	if (!env && !(env = calloc(1, sizeof(char *))))
		return -ENOMEM;
	*out = TAKE_PTR(env);
	return 0;
}

static int check_name(const char *what, const char *spec, size_t len)
{
	if (len == 0)
		return berth_failx(BERTH_EINVAL_INPUT, "%s '%s': empty variable name", what, spec);
	if (isdigit((unsigned char)spec[0]))
		return berth_failx(BERTH_EINVAL_INPUT, "%s '%s': name starts with a digit", what,
				   spec);
	for (size_t i = 0; i < len; i++)
		if (isspace((unsigned char)spec[i]) || !isprint((unsigned char)spec[i]))
			return berth_failx(BERTH_EINVAL_INPUT,
					   "%s '%s': invalid character in variable name", what, spec);
	return 0;
}

static int parse_entry(char ***user, const char *what, const char *spec, char *const *host)
{
	size_t len = name_len(spec);
	_cleanup_free_ char *name = NULL;
	const char *v;
	int r = check_name(what, spec, len);

	if (r < 0)
		return r;
	if (strchr(spec, '='))
		return strv_push(user, spec);
	name = strndup(spec, len);
	if (!name)
		return -ENOMEM;
	v = env_get(host, name);
	if (v) {
		_cleanup_free_ char *e = xasprintf("%s=%s", name, v);

		return e ? strv_push(user, e) : -ENOMEM;
	}
	return strv_push(user, name);
}

int launcher_env_parse(char ***user, const char *spec, char *const *host)
{
	if (!*spec)
		return berth_failx(BERTH_EINVAL_INPUT, "environment entry '': empty");
	return parse_entry(user, "environment entry", spec, host);
}

int launcher_env_parse_file(char ***user, const char *path, char *const *host)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_strv_ char **add = NULL;
	char *line, *save = NULL;
	unsigned lineno = 0;
	int r = read_file(path, 1u << 20, &buf, NULL);

	if (r < 0)
		return berth_fail(r, "env file '%s'", path);
	/* strtok_r would merge empty lines and lose the line numbers. */
	for (line = buf; line; line = save) {
		char where[64];

		save = strchr(line, '\n');
		if (save)
			*save++ = '\0';
		lineno++;
		while (isspace((unsigned char)*line))
			line++;
		for (size_t n = strlen(line); n > 0 && isspace((unsigned char)line[n - 1]); n--)
			line[n - 1] = '\0';
		if (!*line || *line == '#')
			continue;
		snprintf(where, sizeof(where), "line %u of env file", lineno);
		r = parse_entry(&add, where, line, host);
		if (r < 0)
			return berth_fail_context(r, "%s", path);
	}
	for (size_t i = 0; add && add[i]; i++)
		if ((r = strv_push(user, add[i])) < 0)
			return r;
	return 0;
}
