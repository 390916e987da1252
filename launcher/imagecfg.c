/* The image config stored in the squashfs at /.berth/image.json, and
 * Docker's Entrypoint/Cmd rules. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/launcher.h"
#include "launcher/safepath.h"

#define IMAGE_JSON "/.berth/image.json"

void launcher_image_clear(struct launcher_image *img)
{
	strv_free(img->env);
	strv_free(img->entrypoint);
	strv_free(img->cmd);
	free(img->workdir);
	*img = (struct launcher_image){0};
}

static int string_array(json_t *a, const char *key, char ***out)
{
	size_t i;
	json_t *v;

	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return berth_failx(BERTH_EFORMAT, "image config: %s is not an array", key);
	json_array_foreach(a, i, v) {
		if (!json_is_string(v))
			return berth_failx(BERTH_EFORMAT, "image config: %s[%zu] is not a string",
					   key, i);
		if (strv_push(out, json_string_value(v)) < 0)
			return -ENOMEM;
	}
	return 0;
}

int launcher_image_parse(const char *json, size_t len, struct launcher_image *out)
{
	json_error_t jerr;
	json_t *root = json_loadb(json, len, 0, &jerr), *cfg;
	struct launcher_image img = {0};
	int r;

	if (!root)
		return berth_failx(BERTH_EFORMAT, "image config: %s (line %d)", jerr.text,
				   jerr.line);
	/* {"config": <OCI image config>} whose "config" holds Env & co. */
	cfg = json_object_get(json_object_get(root, "config"), "config");
	if (cfg && !json_is_object(cfg)) {
		json_decref(root);
		return berth_failx(BERTH_EFORMAT, "image config: config.config is not an object");
	}
	r = string_array(json_object_get(cfg, "Env"), "Env", &img.env);
	if (r == 0)
		r = string_array(json_object_get(cfg, "Entrypoint"), "Entrypoint", &img.entrypoint);
	if (r == 0)
		r = string_array(json_object_get(cfg, "Cmd"), "Cmd", &img.cmd);
	if (r == 0) {
		json_t *wd = json_object_get(cfg, "WorkingDir");

		if (json_is_string(wd) && *json_string_value(wd) &&
		    !(img.workdir = strdup(json_string_value(wd))))
			r = -ENOMEM;
	}
	json_decref(root);
	if (r < 0) {
		launcher_image_clear(&img);
		return r;
	}
	*out = img;
	return 0;
}

int launcher_image_load(int root_fd, struct launcher_image *out)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL, *path = NULL;
	size_t len;
	int r;

	fd = safe_open(root_fd, IMAGE_JSON, O_RDONLY);
	if (fd == -ENOENT) {
		/* An image made by other tools: no config, nothing to apply. */
		*out = (struct launcher_image){0};
		return 0;
	}
	if (fd < 0)
		return berth_fail(fd, "open '%s' in the image", IMAGE_JSON);
	path = xasprintf("/proc/self/fd/%d", fd);
	if (!path)
		return -ENOMEM;
	r = read_file(path, 16u << 20, &buf, &len);
	if (r < 0)
		return berth_fail(r, "read '%s' in the image", IMAGE_JSON);
	r = launcher_image_parse(buf, len, out);
	return r < 0 ? berth_fail_context(r, "%s", IMAGE_JSON) : 0;
}

int launcher_argv_build(const struct launcher_image *img, const char *entrypoint,
			bool no_entrypoint, char *const *args, char ***out)
{
	_cleanup_strv_ char **argv = NULL;
	char *const *cmd = args && args[0] ? args : NULL;

	if (no_entrypoint || (entrypoint && !*entrypoint)) {
		/* nothing from the Entrypoint */
	} else if (entrypoint) {
		if (strv_push(&argv, entrypoint) < 0)
			return -ENOMEM;
	} else {
		for (size_t i = 0; img->entrypoint && img->entrypoint[i]; i++)
			if (strv_push(&argv, img->entrypoint[i]) < 0)
				return -ENOMEM;
	}
	/* Docker: --entrypoint resets the image's Cmd. */
	if (!cmd && !entrypoint)
		cmd = img->cmd;
	for (size_t i = 0; cmd && cmd[i]; i++)
		if (strv_push(&argv, cmd[i]) < 0)
			return -ENOMEM;
	if (!argv || !argv[0])
		return berth_failx(BERTH_EINVAL_INPUT,
				   "no command given and the image has no Entrypoint or Cmd");
	*out = TAKE_PTR(argv);
	return 0;
}
