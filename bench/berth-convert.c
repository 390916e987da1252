/* berth-convert: imgconv_convert() / imgconv_pack_dir() from the command
 * line, for the benchmark (bench/convert.sh) and for tests until `berth
 * import` drives it.
 *
 *   berth-convert [-c COMP] [-l LEVEL] [-t THREADS] [-j CONFIG] OUT LAYER[:MEDIATYPE]...
 *   berth-convert -d DIR [-c COMP] [-l LEVEL] [-t THREADS] [-j CONFIG] OUT */
#include "config.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "imgconv/imgconv.h"

static int usage(void)
{
	fprintf(stderr, "usage: berth-convert [-v] [-c lz4|zstd|gzip|xz] [-l LEVEL] [-t THREADS] "
			"[-j CONFIG.json] (OUT LAYER[:MEDIATYPE]... | -d DIR OUT)\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct imgconv_convert_opts opts = { 0 };
	struct imgconv_layer *layers;
	const char *config_path = NULL, *dir = NULL;
	char *config = NULL;
	size_t config_len;
	int c, r, n;

	while ((c = getopt(argc, argv, "vc:l:t:j:d:")) != -1) {
		switch (c) {
		case 'v': berth_log_set_level(BERTH_LOG_DEBUG); break;
		case 'c': opts.compression = optarg; break;
		case 'l': opts.compression_level = (unsigned)atoi(optarg); break;
		case 't': opts.threads = (unsigned)atoi(optarg); break;
		case 'j': config_path = optarg; break;
		case 'd': dir = optarg; break;
		default: return usage();
		}
	}
	if (optind >= argc || (!dir && optind + 1 >= argc))
		return usage();
	if (config_path) {
		r = read_file(config_path, 0, &config, &config_len);
		if (r < 0) {
			fprintf(stderr, "berth-convert: %s: %s\n", config_path, berth_strerror(r));
			return 1;
		}
	} else {
		config = strdup("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{}}");
		config_len = strlen(config);
	}
	if (dir) {
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0) {
			perror(dir);
			return 1;
		}
		r = imgconv_pack_dir(fd, config, config_len, argv[optind], &opts);
		close(fd);
	} else {
		n = argc - optind - 1;
		layers = calloc((size_t)n, sizeof(*layers));
		for (int i = 0; i < n; i++) {
			char *arg = argv[optind + 1 + i], *colon = strstr(arg, ":application/");

			if (colon)
				*colon = '\0';
			layers[i].path = arg;
			layers[i].media_type = colon ? colon + 1 : NULL;
		}
		r = imgconv_convert(layers, (size_t)n, config, config_len, argv[optind], &opts);
		free(layers);
	}
	free(config);
	if (r < 0) {
		fprintf(stderr, "berth-convert: %s\n", berth_errmsg(r));
		return 1;
	}
	return 0;
}
