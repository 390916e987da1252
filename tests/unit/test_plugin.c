/* spank_berth.so pieces that need no Slurm: plugstack.conf arguments,
 * a task's environment (pyxis's PyTorch variables), hostlists. */
#include "config.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/util.h"
#include "plugin/plugin.h"
#include "tests/tap.h"

#define S(text) ((char *)(text)) /* test vectors of constant strings */

/* Slurm's logging, as slurmstepd provides it to the plugin. */
static char last_error[4096];
void slurm_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

static const char *env_get(char **env, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
			return env[i] + len + 1;
	return NULL;
}

static void test_pconf(void)
{
	struct pconf c;
	char *good[] = {S("runtime_path=/run/x"), S("container_scope=job"), S("execute_entrypoint=0"),
			S("sbatch_support=n"), S("importer=/usr/libexec/imp"), S("log_level=debug")};
	char *unknown[] = {S("runtime_path=/run/x"), S("cache_dri=/x")};
	char *relative[] = {S("runtime_path=run")};
	char *badscope[] = {S("container_scope=node")};
	char *nokv[] = {S("runtime_path")};

	ok(pconf_parse(&c, 0, NULL) == 0, "no arguments: defaults");
	is_str(c.runtime_path, "/run/berth", "default runtime_path");
	ok(c.sbatch_support && !c.execute_entrypoint && c.container_scope == SCOPE_GLOBAL,
	   "default sbatch_support=1, execute_entrypoint=0, container_scope=global");
	pconf_clear(&c);

	ok(pconf_parse(&c, 6, good) == 0, "all pyxis keys accepted");
	is_str(c.runtime_path, "/run/x", "runtime_path set");
	ok(c.container_scope == SCOPE_JOB && !c.execute_entrypoint && !c.sbatch_support,
	   "scope, entrypoint, sbatch_support set");
	is_str(c.importer, "/usr/libexec/imp", "importer set");
	pconf_clear(&c);

	ok(pconf_parse(&c, 2, unknown) < 0, "unknown key refused");
	ok(strstr(last_error, "'cache_dri'") != NULL, "the message names the key");
	ok(pconf_parse(&c, 1, relative) < 0, "relative runtime_path refused");
	ok(pconf_parse(&c, 1, badscope) < 0, "container_scope=node refused");
	ok(strstr(last_error, "container_scope=node") != NULL, "the message names the value");
	ok(pconf_parse(&c, 1, nokv) < 0, "argument without '=' refused");
	{
		char *ep[] = {S("execute_entrypoint=yes")}, *bad[] = {S("execute_entrypoint=sometimes")};

		ok(pconf_parse(&c, 1, ep) == 0 && c.execute_entrypoint, "execute_entrypoint=yes");
		pconf_clear(&c);
		ok(pconf_parse(&c, 1, bad) < 0, "execute_entrypoint=sometimes refused");
		ok(strstr(last_error, "execute_entrypoint=sometimes") != NULL, "the message names it");
	}
	{
		char *aff[] = {S("gpu_affinity=0")};

		ok(pconf_parse(&c, 0, NULL) == 0 && c.gpu_affinity, "gpu_affinity on by default");
		pconf_clear(&c);
		ok(pconf_parse(&c, 1, aff) == 0 && !c.gpu_affinity, "gpu_affinity=0");
		pconf_clear(&c);
	}
}

static void test_hostlist(void)
{
	static const char *const cases[][2] = {
		{"node01", "node01"},
		{"n[01-04],m", "n01"},
		{"gpu[7,9-12]", "gpu7"},
		{"a,b,c", "a"},
		{"rack[2-3]-n[005-006]", "rack2-n005"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *f = hostlist_first(cases[i][0]);

		is_str(f, cases[i][1], "first host of %s", cases[i][0]);
		free(f);
	}
	ok(hostlist_first("n[01-") == NULL, "unclosed bracket refused");
	ok(hostlist_first("") == NULL, "empty list refused");
}

static void test_taskenv(void)
{
	char *job[] = {S("PATH=/host/bin"), S("HOME=/home/u"), S("SLURM_PROCID=3"), S("SLURM_LOCALID=1"),
		       S("SLURM_JOB_ID=1000"), S("SLURM_NTASKS=4"), S("SLURM_STEP_NODELIST=n[1-2]"),
		       S("SLURM_STEP_NUM_TASKS=4"), S("SLURM_STEP_NUM_NODES=2"), S("FOO=host"),
		       S("KEEP=host"), S("MASTER_PORT=1234"), NULL};
	char *image[] = {S("PATH=/img/bin"), S("FOO=image"), S("KEEP=image"), S("PYTORCH_VERSION=2.1"),
			 S("HOME=/root"), NULL};
	char *plain[] = {S("PATH=/img/bin"), NULL};
	char **env = NULL;

	ok(taskenv_build(job, image, NULL, "KEEP", &env) == 0, "environment built");
	is_str(env_get(env, "PATH"), "/img/bin", "PATH is the image's");
	is_str(env_get(env, "FOO"), "image", "image Env wins over the job's");
	is_str(env_get(env, "KEEP"), "host", "--container-env name keeps the job's value");
	is_str(env_get(env, "HOME"), "/home/u", "HOME passes through");
	is_str(env_get(env, "RANK"), "3", "RANK from SLURM_PROCID");
	is_str(env_get(env, "LOCAL_RANK"), "1", "LOCAL_RANK from SLURM_LOCALID");
	is_str(env_get(env, "WORLD_SIZE"), "4", "WORLD_SIZE from SLURM_NTASKS");
	is_str(env_get(env, "MASTER_ADDR"), "n1", "MASTER_ADDR is the step's first node");
	is_str(env_get(env, "MASTER_PORT"), "1234", "a MASTER_PORT already set is kept");
	is_str(env_get(env, "OMP_NUM_THREADS"), "1", "OMP_NUM_THREADS=1 with 2 tasks a node");
	strv_free(env);

	ok(taskenv_build(job, plain, NULL, NULL, &env) == 0, "environment without PyTorch");
	ok(env_get(env, "RANK") == NULL, "no RANK without PYTORCH_VERSION");
	is_str(env_get(env, "FOO"), "host", "job variable kept when the image has none");
	strv_free(env);
}

static void test_entry_delta(void)
{
	char *job[] = {S("PATH=/host/bin"), S("SLURM_PROCID=3"), S("FOO=host"), S("KEEP=host"),
		       S("GONE=host"), NULL};
	char *image[] = {S("PATH=/img/bin"), NULL};
	char *delta[] = {S("PATH=/entry/bin:/img/bin"), S("NEW=entry"), S("KEEP=entry"), S("GONE"),
			 S("SLURM_PROCID=0"), NULL};
	char **env = NULL;

	ok(taskenv_build(job, image, delta, "KEEP", &env) == 0, "environment with entrypoint changes");
	is_str(env_get(env, "PATH"), "/entry/bin:/img/bin", "the entrypoint's PATH");
	is_str(env_get(env, "NEW"), "entry", "a variable the entrypoint exported");
	is_str(env_get(env, "KEEP"), "host", "--container-env names keep the job's value");
	ok(env_get(env, "GONE") == NULL, "a variable the entrypoint unset is gone");
	is_str(env_get(env, "FOO"), "host", "what the entrypoint left alone stays");
	is_str(env_get(env, "SLURM_PROCID"), "0", "the delta is applied as the entrypoint left it");
	strv_free(env);
}

int main(void)
{
	test_pconf();
	test_hostlist();
	test_taskenv();
	test_entry_delta();
	return tap_done();
}
