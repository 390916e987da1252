/* The PMIx rendezvous directories and PMIX_MCA_* settings (launcher/mpi.h). */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/mpi.h"

static const char *env_get(char *const *env, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
			return env[i] + len + 1;
	return NULL;
}

/* "/a//b/./c/" -> "/a/b/c"; NULL for a relative path, "..", or "/". */
static char *clean_dir(const char *path)
{
	_cleanup_strv_ char **parts = NULL;
	char *out;

	if (!path || path[0] != '/')
		return NULL;
	parts = strv_split(path, '/');
	if (!parts || !parts[0])
		return NULL;
	for (size_t i = 0; parts[i]; i++)
		if (streq(parts[i], ".."))
			return NULL;
	for (size_t i = 0, j = 0;; i++) {
		if (parts[i] && streq(parts[i], ".")) {
			free(parts[i]);
			continue;
		}
		parts[j++] = parts[i];
		if (!parts[i])
			break;
	}
	if (!parts[0])
		return NULL;
	out = strv_join(parts, "/");
	if (out) {
		char *abs = xasprintf("/%s", out);

		free(out);
		out = abs;
	}
	return out;
}

static bool below(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Add dir unless it, or a directory above it, is there; drop the ones
 * below it. */
static int add_dir(char ***dirs, const char *path)
{
	_cleanup_free_ char *dir = clean_dir(path);
	struct stat st;
	size_t j = 0;

	if (!dir || stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return 0;
	for (size_t i = 0; *dirs && (*dirs)[i]; i++)
		if (below(dir, (*dirs)[i]))
			return 0;
	for (size_t i = 0; *dirs && (*dirs)[i]; i++) {
		if (below((*dirs)[i], dir))
			free((*dirs)[i]);
		else
			(*dirs)[j++] = (*dirs)[i];
	}
	if (*dirs)
		(*dirs)[j] = NULL;
	return strv_push(dirs, dir);
}

/* TmpFS= of a slurm.conf ("%n" is the node's name), or NULL. */
static char *slurm_tmpfs(const char *conf)
{
	_cleanup_free_ char *text = NULL;
	char *line, *save = NULL, host[256] = "";

	if (read_file(conf, 1 << 22, &text, NULL) < 0)
		return NULL;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *tok, *tsave = NULL;

		line[strcspn(line, "#")] = '\0';
		for (tok = strtok_r(line, " \t", &tsave); tok; tok = strtok_r(NULL, " \t", &tsave)) {
			_cleanup_free_ char *v = NULL;
			char *n;

			if (strncasecmp(tok, "TmpFS=", 6) != 0 || !tok[6])
				continue;
			if (!(v = strdup(tok + 6)) || !(n = strstr(v, "%n")))
				return TAKE_PTR(v);
			gethostname(host, sizeof(host) - 1);
			host[strcspn(host, ".")] = '\0';
			*n = '\0';
			return xasprintf("%s%s%s", v, host, n + 2);
		}
	}
	return NULL;
}

/* Where Slurm's PMIx plugin puts its client directories: SLURM_PMIX_TMPDIR,
 * else slurm.conf's TmpFS (the file SLURM_CONF names, else Slurm's default
 * path), else /tmp.  Configless setups keep their copy elsewhere: set
 * SLURM_CONF or SLURM_PMIX_TMPDIR there. */
static char *slurm_cli_base(char *const *env)
{
	const char *set = env_get(env, "SLURM_PMIX_TMPDIR"), *conf = env_get(env, "SLURM_CONF");
	char *tmpfs;

	if (set && *set)
		return strdup(set);
	tmpfs = slurm_tmpfs(conf && *conf ? conf : "/etc/slurm/slurm.conf");
	return tmpfs ? tmpfs : strdup("/tmp");
}

int mpi_rendezvous_dirs(char *const *env, uid_t uid, char ***out)
{
	static const char *const vars[] = {"PMIX_SERVER_TMPDIR", "OMPI_MCA_orte_jobfam_session_dir"};
	const char *job = env_get(env, "SLURM_JOB_ID"), *step = env_get(env, "SLURM_STEP_ID");
	char **dirs = NULL;
	int r = 0;

	for (size_t i = 0; i < ARRAY_SIZE(vars) && r == 0; i++)
		r = add_dir(&dirs, env_get(env, vars[i]));
	/* PMIX_DSTORE_21_BASE_PATH, PMIX_DSTORE_ESH_BASE_PATH, ...: the
	 * shared-memory key-value store, usually below the server's tmpdir. */
	for (size_t i = 0; env && env[i] && r == 0; i++) {
		size_t len = strcspn(env[i], "=");

		if (str_startswith(env[i], "PMIX_DSTORE_") && len > 10 &&
		    strncmp(env[i] + len - 10, "_BASE_PATH", 10) == 0 && env[i][len] == '=')
			r = add_dir(&dirs, env[i] + len + 1);
	}
	/* Slurm's PMIx plugin: the client directory under TmpFS, which the
	 * container's own /tmp would hide (22.05 names it with the uid, older
	 * releases without). */
	if (r == 0 && job && step) {
		_cleanup_free_ char *base = slurm_cli_base(env),
				    *a = xasprintf("%s/spmix_appdir_%u_%s.%s", base ? base : "",
						   (unsigned)uid, job, step),
				    *b = xasprintf("%s/spmix_appdir_%s.%s", base ? base : "", job, step);

		if (!base || !a || !b)
			r = -ENOMEM;
		if (r == 0)
			r = add_dir(&dirs, a);
		if (r == 0)
			r = add_dir(&dirs, b);
	}
	if (r == 0 && !dirs && !(dirs = calloc(1, sizeof(char *))))
		r = -ENOMEM;
	if (r < 0) {
		strv_free(dirs);
		return r;
	}
	*out = dirs;
	return 0;
}

static int env_set(char ***env, const char *name, const char *value)
{
	size_t len = strlen(name);
	char *entry = xasprintf("%s=%s", name, value);
	int r;

	if (!entry)
		return -ENOMEM;
	for (size_t i = 0; *env && (*env)[i]; i++) {
		if (strncmp((*env)[i], name, len) == 0 && (*env)[i][len] == '=') {
			free((*env)[i]);
			(*env)[i] = entry;
			return 0;
		}
	}
	r = strv_push(env, entry);
	free(entry);
	return r;
}

/* What enroot's PMIx hook does, for the same reason: the client inside
 * may come from another PMIx release than the server, with other default
 * components; the server names the ones it speaks, so the client is told
 * to pick exactly those (and fails loudly, not subtly, when it has none).
 * The server's choice beats an image's default; a PMIX_MCA_* the host
 * (the user) sets is left alone. */
int mpi_env_fixup(char ***env, char *const *host)
{
	static const char *const map[][2] = {
		{"PMIX_MCA_ptl", "PMIX_PTL_MODULE"},
		{"PMIX_MCA_psec", "PMIX_SECURITY_MODE"},
		{"PMIX_MCA_gds", "PMIX_GDS_MODULE"},
	};
	int r = 0;

	for (size_t i = 0; i < ARRAY_SIZE(map) && r == 0; i++) {
		const char *server = env_get(host, map[i][1]);

		if (server && !env_get(host, map[i][0]))
			r = env_set(env, map[i][0], server);
	}
	return r;
}
