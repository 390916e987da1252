/* srun (local context): the options are registered and checked before
 * anything is launched, so bad input fails here with one line and a
 * non-zero exit, no step created. */
#include "config.h"
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/util.h"
#include "plugin/plugin.h"

static struct {
	struct pconf pconf;
} local = {.pconf = {0}};

/* Does srun's own command line (before the task's command) ask for -v?
 * Short options that take a separate value are skipped with it. */
static bool srun_verbose(void)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	bool value_next = false;

	if (read_file("/proc/self/cmdline", 1 << 20, &buf, &len) < 0)
		return false;
	for (size_t i = strlen(buf) + 1; i < len; i += strlen(buf + i) + 1) {
		const char *a = buf + i;

		if (value_next) {
			value_next = false;
			continue;
		}
		if (a[0] != '-' || streq(a, "--"))
			return false;
		if (streq(a, "--verbose") || a[strspn(a + 1, "v") + 1] == '\0')
			return true;
		value_next = strlen(a) == 2 && strchr("ACDJLMNSTWcdeimnoprstuw", a[1]);
	}
	return false;
}

int local_init(spank_t sp, int ac, char **av)
{
	if (pconf_parse(&local.pconf, ac, av) < 0)
		return -1;
	/* berth's per-node lines (the "container ready" timing) are info
	 * messages of slurmstepd: srun shows them at --slurmd-debug=1, which
	 * srun -v here implies.  Without -v, job output stays the program's. */
	if (srun_verbose())
		setenv("SLURMD_DEBUG", "1", 0);
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
