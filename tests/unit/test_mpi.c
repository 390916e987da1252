/* launcher/mpi_env.c: which host directories a PMIx client needs, and the
 * PMIX_MCA_* settings derived from the server's. */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/util.h"
#include "launcher/launcher.h"
#include "launcher/mpi.h"
#include "tests/tap.h"

#define S(x) ((char *)(x))

static char tmp[] = "/tmp/berth-unit-mpi-XXXXXX";

static char *mk(const char *sub)
{
	char *p = path_join(tmp, sub);

	mkdir_p(p, 0755);
	return p;
}

static void test_dirs(void)
{
	_cleanup_free_ char *srv = mk("spool/pmix.7.0"), *ds = mk("spool/pmix.7.0/pmix_dstor_ds21_1"),
			    *app = mk("tmp/spmix_appdir_1001_7.0"), *ompi = mk("ompi/pid.5");
	_cleanup_free_ char *e1 = xasprintf("PMIX_SERVER_TMPDIR=%s//", srv),
			    *e2 = xasprintf("PMIX_DSTORE_21_BASE_PATH=%s/./", ds),
			    *e3 = xasprintf("SLURM_PMIX_TMPDIR=%s/tmp", tmp),
			    *e4 = xasprintf("OMPI_MCA_orte_jobfam_session_dir=%s", ompi),
			    *e5 = xasprintf("PMIX_DSTORE_ESH_BASE_PATH=%s/missing", tmp);
	char *env[] = {e1, e2, e3, e4, e5, S("SLURM_JOB_ID=7"), S("SLURM_STEP_ID=0"),
		       S("PMIX_SECURITY_MODE=/etc"), NULL};
	char **dirs = NULL;

	is_int(mpi_rendezvous_dirs(env, 1001, &dirs), 0, "rendezvous dirs");
	is_int(strv_length(dirs), 3, "three: the dstore is below the server's tmpdir, "
	       "missing ones and non-dir variables are left out");
	is_str(dirs[0], srv, "server tmpdir, trailing slashes dropped");
	is_str(dirs[1], ompi, "Open MPI's session dir");
	is_str(dirs[2], app, "Slurm's client dir for this uid, job and step");
	strv_free(dirs);

	/* TmpFS from the slurm.conf SLURM_CONF names, %n expanded */
	_cleanup_free_ char *conf = path_join(tmp, "slurm.conf"), *node = NULL, *app2 = NULL,
			    *e6 = NULL, *e7 = NULL, *text = NULL;
	char host[256] = "";

	gethostname(host, sizeof(host) - 1);
	host[strcspn(host, ".")] = '\0';
	node = xasprintf("node-%s", host);
	app2 = xasprintf("%s/%s/spmix_appdir_1001_7.0", tmp, node);
	free(mk(node));
	mkdir_p(app2, 0755);
	text = xasprintf("ClusterName=x # TmpFS=/wrong\nSlurmdSpoolDir=/s  tmpfs=%s/node-%%n\n", tmp);
	write_file_atomic(conf, text, strlen(text), 0644);
	e6 = xasprintf("SLURM_CONF=%s", conf);
	e7 = xasprintf("SLURM_JOB_ID=7");
	char *env2[] = {e6, e7, S("SLURM_STEP_ID=0"), NULL};
	is_int(mpi_rendezvous_dirs(env2, 1001, &dirs), 0, "rendezvous dirs with TmpFS");
	is_int(strv_length(dirs), 1, "one dir");
	is_str(dirs ? dirs[0] : NULL, app2, "TmpFS with %%n, any case, after other keys");
	strv_free(dirs);

	char *bad[] = {S("PMIX_SERVER_TMPDIR=relative/dir"), S("PMIX_DSTORE_X_BASE_PATH=/"),
		       S("OMPI_MCA_orte_jobfam_session_dir=/tmp/../etc"), NULL};
	is_int(mpi_rendezvous_dirs(bad, 1001, &dirs), 0, "bad values are no error");
	is_int(strv_length(dirs), 0, "relative paths, '/' and '..' are never bound");
	strv_free(dirs);
	is_int(mpi_rendezvous_dirs(NULL, 0, &dirs), 0, "no environment");
	ok(dirs && !dirs[0], "an empty list");
	strv_free(dirs);
}

static void test_env(void)
{
	char *host[] = {S("PMIX_SECURITY_MODE=native"), S("PMIX_GDS_MODULE=ds21,ds12,hash"),
			S("PMIX_MCA_gds=hash"), S("FI_PROVIDER=tcp"), S("UCX_TLS=sm"), NULL};
	char *image[] = {S("FI_PROVIDER=verbs"), S("PMIX_MCA_psec=munge"), S("OTHER=1"), NULL};
	struct launcher_env_rules r = {.host = host, .image = image};
	char **env = NULL;
	int psec = 0, gds = 0, ptl = 0;

	is_int(launcher_env_build(&r, &env), 0, "env build");
	for (size_t i = 0; env && env[i]; i++) {
		psec += streq(env[i], "PMIX_MCA_psec=native");
		gds += streq(env[i], "PMIX_MCA_gds=hash");
		ptl += str_startswith(env[i], "PMIX_MCA_ptl=");
		ok(!streq(env[i], "FI_PROVIDER=verbs"), "FI_* keeps the host's value (%s)", env[i]);
	}
	is_int(psec, 1, "PMIX_MCA_psec from PMIX_SECURITY_MODE over the image's");
	is_int(gds, 1, "a PMIX_MCA_gds the host sets is kept");
	is_int(ptl, 0, "no PMIX_PTL_MODULE, no PMIX_MCA_ptl");
	strv_free(env);
}

int main(void)
{
	if (!mkdtemp(tmp))
		return 1;
	test_dirs();
	test_env();
	rm_rf(tmp);
	return tap_done();
}
