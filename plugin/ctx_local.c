/* srun (local context): the options are registered and checked before
 * anything is launched, so bad input fails here with one line and a
 * non-zero exit, no step created. */
#include "config.h"
#include "plugin/plugin.h"

static struct {
	struct pconf pconf;
} local = {.pconf = {0}};

int local_init(spank_t sp, int ac, char **av)
{
	if (pconf_parse(&local.pconf, ac, av) < 0)
		return -1;
	return args_register(sp);
}

int local_post_opt(spank_t sp, int ac, char **av)
{
	return args_finish(sp) < 0 ? -1 : 0;
}

int local_exit(spank_t sp, int ac, char **av)
{
	args_clear();
	pconf_clear(&local.pconf);
	return 0;
}
