/* The only exported functions of spank_berth.so: Slurm calls them in
 * every context (srun, sbatch/salloc, slurmd, slurmstepd, job scripts);
 * each hands over to the file of its context. */
#include "config.h"
#include <slurm/spank.h>
#include "plugin/plugin.h"

/* Built with -fvisibility=hidden: what Slurm looks up is made visible here
 * (and the version script keeps everything else out of the symbol table). */
#pragma GCC visibility push(default)

SPANK_PLUGIN(berth, 1)

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	switch (spank_context()) {
	case S_CTX_LOCAL:
		return local_init(sp, ac, av);
	case S_CTX_ALLOCATOR:
		return alloc_init(sp, ac, av);
	case S_CTX_REMOTE:
		return remote_init(sp, ac, av);
	case S_CTX_SLURMD:
		return slurmd_init(sp, ac, av);
	default:
		return 0;
	}
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	switch (spank_context()) {
	case S_CTX_LOCAL:
		return local_post_opt(sp, ac, av);
	case S_CTX_ALLOCATOR:
		return alloc_post_opt(sp, ac, av);
	case S_CTX_REMOTE:
		return remote_post_opt(sp, ac, av);
	default:
		return 0;
	}
}

int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
	return spank_context() == S_CTX_REMOTE ? remote_user_init(sp, ac, av) : 0;
}

int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	return spank_context() == S_CTX_REMOTE ? remote_task_init(sp, ac, av) : 0;
}

int slurm_spank_task_exit(spank_t sp, int ac, char **av)
{
	return spank_context() == S_CTX_REMOTE ? remote_task_exit(sp, ac, av) : 0;
}

int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
	return slurmd_job_epilog(sp, ac, av);
}

int slurm_spank_exit(spank_t sp, int ac, char **av)
{
	switch (spank_context()) {
	case S_CTX_LOCAL:
		return local_exit(sp, ac, av);
	case S_CTX_ALLOCATOR:
		return alloc_exit(sp, ac, av);
	case S_CTX_REMOTE:
		return remote_exit(sp, ac, av);
	default:
		return 0;
	}
}

#pragma GCC visibility pop
