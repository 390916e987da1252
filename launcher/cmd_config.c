#include "config.h"
#include <stdio.h>
#include <string.h>
#include "launcher/cli.h"

int cmd_config(struct berth_config *cfg, int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("Usage: berth config\n"
		       "Print every configuration key, its value, and where the value came from\n"
		       "(default, FILE:LINE, or a BERTH_* environment variable).\n");
		return 0;
	}
	if (argc > 1) {
		cli_error("config: unexpected argument '%s'", argv[1]);
		return 2;
	}
	berth_config_print(cfg, stdout);
	return 0;
}
