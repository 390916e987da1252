/* plugstack.conf arguments: "required spank_berth.so key=value ...".
 *
 * pyxis's keys (runtime_path, execute_entrypoint, container_scope,
 * sbatch_support, importer) keep their meaning so a site can swap the
 * plugin line and keep the arguments; cache_dir, image_staging,
 * gpu_affinity and log_level are berth's.  Anything else is an error naming the argument,
 * so a typo stops slurmd at start instead of being ignored on every job. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "common/util.h"
#include "plugin/plugin.h"

#define DEFAULT_RUNTIME_PATH "/run/berth"

static int set_path(char **field, const char *key, const char *v)
{
	if (v[0] != '/') {
		slurm_error(PLUGIN_PREFIX "plugstack.conf: %s=%s: not an absolute path", key, v);
		return -1;
	}
	if (strlen(v) > 512) {
		slurm_error(PLUGIN_PREFIX "plugstack.conf: %s: path longer than 512 bytes", key);
		return -1;
	}
	free(*field);
	*field = strdup(v);
	return *field ? 0 : -1;
}

static int set_bool(bool *field, const char *key, const char *v)
{
	/* pyxis also takes y/n */
	if (streq(v, "y") || streq(v, "n")) {
		*field = v[0] == 'y';
		return 0;
	}
	if (parse_bool(v, field) < 0) {
		slurm_error(PLUGIN_PREFIX "plugstack.conf: %s=%s: not a boolean (yes/no, 1/0)", key,
			    v);
		return -1;
	}
	return 0;
}

static int set_one(struct pconf *c, const char *key, const char *v)
{
	enum berth_log_level level;

	if (streq(key, "runtime_path"))
		return set_path(&c->runtime_path, key, v);
	if (streq(key, "cache_dir"))
		return set_path(&c->cache_dir, key, v);
	if (streq(key, "importer"))
		return set_path(&c->importer, key, v);
	if (streq(key, "image_staging"))
		return set_path(&c->image_staging, key, v);
	if (streq(key, "execute_entrypoint"))
		return set_bool(&c->execute_entrypoint, key, v);
	if (streq(key, "sbatch_support"))
		return set_bool(&c->sbatch_support, key, v);
	if (streq(key, "gpu_affinity"))
		return set_bool(&c->gpu_affinity, key, v);
	if (streq(key, "container_scope")) {
		if (!streq(v, "job") && !streq(v, "global")) {
			slurm_error(PLUGIN_PREFIX "plugstack.conf: container_scope=%s: not job or "
				    "global", v);
			return -1;
		}
		c->container_scope = streq(v, "job") ? SCOPE_JOB : SCOPE_GLOBAL;
		return 0;
	}
	if (streq(key, "log_level")) {
		if (berth_log_parse_level(v, &level) < 0) {
			slurm_error(PLUGIN_PREFIX "plugstack.conf: log_level=%s: not one of "
				    "error, warn, info, debug, trace", v);
			return -1;
		}
		c->log_level = (int)level;
		return 0;
	}
	slurm_error(PLUGIN_PREFIX "plugstack.conf: unknown argument '%s' (known: runtime_path, "
		    "cache_dir, execute_entrypoint, container_scope, sbatch_support, importer, "
		    "image_staging, gpu_affinity, log_level)", key);
	return -1;
}

int pconf_parse(struct pconf *c, int ac, char **av)
{
	*c = (struct pconf){
		.execute_entrypoint = false,
		.container_scope = SCOPE_GLOBAL,
		.sbatch_support = true,
		.gpu_affinity = true,
		.log_level = BERTH_LOG_INFO,
	};
	c->runtime_path = strdup(DEFAULT_RUNTIME_PATH);
	if (!c->runtime_path)
		return -1;
	for (int i = 0; i < ac; i++) {
		_cleanup_free_ char *key = NULL;
		const char *eq = strchr(av[i], '=');

		if (!eq || eq == av[i]) {
			slurm_error(PLUGIN_PREFIX "plugstack.conf: argument '%s' is not key=value",
				    av[i]);
			pconf_clear(c);
			return -1;
		}
		key = strndup(av[i], (size_t)(eq - av[i]));
		if (!key || set_one(c, key, eq + 1) < 0) {
			pconf_clear(c);
			return -1;
		}
	}
	return 0;
}

void pconf_clear(struct pconf *c)
{
	free(c->runtime_path);
	free(c->cache_dir);
	free(c->importer);
	free(c->image_staging);
	*c = (struct pconf){0};
}
