/* A task's environment in the container.  The rules are the launcher's
 * (launcher_env_build: the job's environment, the image's Env over it
 * except Slurm/PMI/GPU names and --container-env names, PATH from the
 * image), so `srun --container-image` and `berth run` agree.  On top, what
 * pyxis and enroot's PyTorch hook give images that set PYTORCH_VERSION:
 * RANK and LOCAL_RANK per task, and MASTER_ADDR, MASTER_PORT, WORLD_SIZE
 * and OMP_NUM_THREADS unless already set.  With --container-entrypoint,
 * what the entrypoint changed in its environment (entry.c) comes last, as
 * pyxis imports the entrypoint's environment into every task. */
#include "config.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/util.h"
#include "launcher/launcher.h"
#include "plugin/plugin.h"

static const char *get(char *const *env, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
			return env[i] + len + 1;
	return NULL;
}

static int set(char ***env, const char *name, const char *value, bool overwrite)
{
	size_t len = strlen(name);
	char *entry;

	for (size_t i = 0; *env && (*env)[i]; i++) {
		if (strncmp((*env)[i], name, len) != 0 || (*env)[i][len] != '=')
			continue;
		if (!overwrite)
			return 0;
		entry = xasprintf("%s=%s", name, value);
		if (!entry)
			return -ENOMEM;
		free((*env)[i]);
		(*env)[i] = entry;
		return 0;
	}
	entry = xasprintf("%s=%s", name, value);
	if (!entry)
		return -ENOMEM;
	return strv_push(env, entry) < 0 ? (free(entry), -ENOMEM) : (free(entry), 0);
}

char *hostlist_first(const char *list)
{
	size_t n = 0, depth = 0;
	char *out, *o;

	if (!list)
		return NULL;
	/* The first element ends at a ',' outside brackets. */
	while (list[n] && (list[n] != ',' || depth > 0)) {
		if (list[n] == '[')
			depth++;
		else if (list[n] == ']' && depth > 0)
			depth--;
		n++;
	}
	if (n == 0 || depth > 0)
		return NULL;
	out = o = calloc(1, n + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (list[i] != '[') {
			*o++ = list[i];
			continue;
		}
		/* "[01-04,07]": the first number of the range, as written. */
		for (i++; i < n && isdigit((unsigned char)list[i]); i++)
			*o++ = list[i];
		while (i < n && list[i] != ']')
			i++;
	}
	if (o == out) {
		free(out);
		return NULL;
	}
	return out;
}

static int pytorch(char ***env)
{
	const char *procid = get(*env, "SLURM_PROCID"), *localid = get(*env, "SLURM_LOCALID");
	const char *jobid = get(*env, "SLURM_JOB_ID"), *ntasks = get(*env, "SLURM_NTASKS");
	const char *st = get(*env, "SLURM_STEP_NUM_TASKS"), *sn = get(*env, "SLURM_STEP_NUM_NODES");
	_cleanup_free_ char *master = hostlist_first(get(*env, "SLURM_STEP_NODELIST"));
	char port[16];
	int r = 0;

	if (procid)
		r = set(env, "RANK", procid, true);
	if (r == 0 && localid)
		r = set(env, "LOCAL_RANK", localid, true);
	if (r == 0 && master)
		r = set(env, "MASTER_ADDR", master, false);
	if (r == 0 && jobid) {
		/* enroot's hook: a port per job, away from common services */
		snprintf(port, sizeof(port), "%lu", strtoul(jobid, NULL, 10) % 4536 + 61000);
		r = set(env, "MASTER_PORT", port, false);
	}
	if (r == 0 && ntasks)
		r = set(env, "WORLD_SIZE", ntasks, false);
	/* as torch.distributed.run does with several processes per node */
	if (r == 0 && st && sn && strtoul(st, NULL, 10) > strtoul(sn, NULL, 10))
		r = set(env, "OMP_NUM_THREADS", "1", false);
	return r;
}

static int unset(char **env, const char *name)
{
	size_t len = strlen(name), j = 0;

	for (size_t i = 0; env && env[i]; i++) {
		if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
			free(env[i]);
		else
			env[j++] = env[i];
	}
	if (env)
		env[j] = NULL;
	return 0;
}

/* "NAME=VALUE" sets, "NAME" unsets; the --container-env names keep the
 * job's value. */
static int apply_delta(char ***env, char *const *delta, char *const *keep)
{
	for (size_t i = 0; delta && delta[i]; i++) {
		_cleanup_free_ char *name = strndup(delta[i], strcspn(delta[i], "="));
		const char *eq = strchr(delta[i], '=');
		int r;

		if (!name)
			return -ENOMEM;
		if (keep && strv_contains(keep, name))
			continue;
		r = eq ? set(env, name, eq + 1, true) : unset(*env, name);
		if (r < 0)
			return r;
	}
	return 0;
}

int taskenv_build(char *const *job_env, char *const *image_env, char *const *entry_delta,
		  const char *keep_names, char ***out)
{
	_cleanup_strv_ char **keep = keep_names ? strv_split(keep_names, ',') : NULL;
	struct launcher_env_rules rules = {.host = job_env, .image = image_env, .keep_host = keep};
	char **env = NULL;
	int r;

	if (keep_names && !keep)
		return -ENOMEM;
	r = launcher_env_build(&rules, &env);
	if (r == 0)
		r = apply_delta(&env, entry_delta, keep);
	if (r == 0 && get(env, "PYTORCH_VERSION"))
		r = pytorch(&env);
	if (r < 0) {
		strv_free(env);
		return r;
	}
	*out = env;
	return 0;
}
