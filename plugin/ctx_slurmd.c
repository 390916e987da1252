/* slurmd: the plugstack.conf arguments are checked when slurmd starts, so
 * a misspelt key stops it with a message naming the key rather than
 * failing every job later.  The job epilog (run for slurmd, as root)
 * removes the job's named containers when container_scope=job, as the
 * job's user. */
#include "config.h"
#include <stddef.h>
#include "plugin/plugin.h"
#include "plugin/prepare.h"

int slurmd_init(spank_t sp, int ac, char **av)
{
	struct pconf pc;

	if (pconf_parse(&pc, ac, av) < 0)
		return -1;
	pconf_clear(&pc);
	return 0;
}

int slurmd_job_epilog(spank_t sp, int ac, char **av)
{
	struct pconf pc;
	struct job job = {0};
	char *env[] = {NULL};
	int r = 0;

	if (pconf_parse(&pc, ac, av) < 0)
		return -1;
	if (pc.container_scope == SCOPE_JOB) {
		if (spank_get_item(sp, S_JOB_UID, &job.uid) != ESPANK_SUCCESS ||
		    spank_get_item(sp, S_JOB_GID, &job.gid) != ESPANK_SUCCESS ||
		    spank_get_item(sp, S_JOB_ID, &job.jobid) != ESPANK_SUCCESS) {
			slurm_error(PLUGIN_PREFIX "epilog: cannot get the job's ids");
			r = -1;
		} else {
			job.env = env;
			r = prepare_as_user(&pc, &job, node_cleanup_job, NULL);
		}
	}
	pconf_clear(&pc);
	return r;
}
