/* sbatch and salloc (allocator context): with sbatch_support (the
 * default) the options are taken here too; sbatch hands them to the batch
 * step, whose script then runs in the container, and salloc to the steps
 * started from its shell. */
#include "config.h"
#include "plugin/plugin.h"

static struct {
	struct pconf pconf;
	bool active;
} alloc = {.pconf = {0}, .active = false};

int alloc_init(spank_t sp, int ac, char **av)
{
	if (pconf_parse(&alloc.pconf, ac, av) < 0)
		return -1;
	if (!alloc.pconf.sbatch_support)
		return 0;
	alloc.active = true;
	return args_register(sp);
}

int alloc_post_opt(spank_t sp, int ac, char **av)
{
	if (!alloc.active)
		return 0;
	return args_finish(sp) < 0 ? -1 : 0;
}

int alloc_exit(spank_t sp, int ac, char **av)
{
	args_clear();
	pconf_clear(&alloc.pconf);
	alloc.active = false;
	return 0;
}
