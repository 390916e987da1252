/* berth export: a named container's image plus its writable layer, as a
 * new squashfs.  The two are stacked in a read-only overlay (the layer on
 * top of the image, whiteouts applied by the kernel) in a namespace of a
 * child process, and imgconv packs that tree; nothing else is mounted
 * there, so no bind or /proc ends up in the file. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>
#include "common/error.h"
#include "common/util.h"
#include "imgconv/imgconv.h"
#include "launcher/keeper.h"
#include "launcher/launcher.h"
#include "launcher/sqfuse.h"
#include "launcher/userns.h"

/* The OCI config blob from the image's /.berth/image.json. */
static int image_config(const char *image, char **out, size_t *len, char **reference)
{
	_cleanup_free_ char *json = NULL;
	json_t *root, *cfg, *ref;
	size_t n;
	int r = imgconv_read_image_json(image, &json, &n);

	if (r < 0)
		return r;
	root = json_loadb(json, n, 0, NULL);
	cfg = json_object_get(root, "config");
	ref = json_object_get(root, "reference");
	*out = cfg ? json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	*reference = json_is_string(ref) ? strdup(json_string_value(ref)) : NULL;
	json_decref(root);
	if (!*out)
		return berth_failx(BERTH_EFORMAT, "image '%s': no config in /.berth/image.json",
				   image);
	*len = strlen(*out);
	return 0;
}

static int pack(const struct berth_config *cfg, const char *image, const char *dir,
		const char *out)
{
	_cleanup_free_ char *lower = xasprintf("%s/export.%d", dir, (int)getpid()),
			    *merged = NULL, *opts = NULL, *config = NULL, *ref = NULL;
	_cleanup_close_ int fd = -1;
	struct imgconv_convert_opts co = {.compression = cfg->compression,
					  .compression_level = (unsigned)cfg->compression_level};
	struct sqfuse sq;
	size_t len = 0;
	int r;

	if (!lower || !(merged = xasprintf("%s.m", lower)))
		return -ENOMEM;
	if ((r = image_config(image, &config, &len, &ref)) < 0)
		return r;
	co.reference = ref;
	if ((r = userns_enter(true, CLONE_NEWNS)) < 0)
		return r;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return berth_fail(-errno, "make mounts private");
	if ((mkdir(lower, 0700) < 0 && errno != EEXIST) || (mkdir(merged, 0700) < 0 && errno != EEXIST))
		return berth_fail(-errno, "create '%s'", lower);
	r = sqfuse_start(image, 0, 0, &sq);
	if (r == 0)
		r = sqfuse_mount(&sq, lower, 0, 0);
	/* Two lower layers and no upper: a read-only merged view. */
	opts = xasprintf("lowerdir=%s/upper:%s,userxattr", dir, lower);
	if (r == 0 && (!opts || mount("overlay", merged, "overlay", MS_RDONLY, opts) < 0))
		r = berth_fail(opts ? -errno : -ENOMEM, "overlay the container's layer");
	if (r == 0 && (fd = open(merged, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		r = berth_fail(-errno, "open '%s'", merged);
	if (r == 0)
		r = imgconv_pack_dir(fd, config, len, out, &co);
	umount2(merged, MNT_DETACH);
	umount2(lower, MNT_DETACH);
	rmdir(merged);
	rmdir(lower);
	return r;
}

int launcher_export(const struct berth_config *cfg, const char *name, const char *out)
{
	_cleanup_free_ char *image = NULL, *dir = NULL, *kdir = NULL;
	int sp[2], status, r = launcher_named_image(cfg, name, &image);
	char msg[1024];
	pid_t pid;
	ssize_t n;

	if (r < 0)
		return r;
	dir = launcher_named_dir(cfg, name);
	kdir = xasprintf("%s/keepers/n-%s", cfg->runtime_dir, name);
	if (!dir || !kdir)
		return -ENOMEM;
	r = keeper_connect(kdir, "info", NULL);
	if (r >= 0) {
		close(r);
		return berth_failx(BERTH_EINVAL_INPUT,
				   "container '%s' is running; export it when its processes are done",
				   name);
	}
	if (pipe2(sp, O_CLOEXEC) < 0)
		return berth_fail(-errno, "pipe");
	pid = fork();
	if (pid == 0) {
		close(sp[0]);
		r = pack(cfg, image, dir, out);
		n = snprintf(msg, sizeof(msg), "%d %s", r, r < 0 ? berth_errmsg(r) : "");
		(void)!write(sp[1], msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
		_exit(r < 0 ? 1 : 0);
	}
	close(sp[1]);
	if (pid < 0) {
		close(sp[0]);
		return berth_fail(-errno, "fork");
	}
	n = read(sp[0], msg, sizeof(msg) - 1);
	close(sp[0]);
	waitpid(pid, &status, 0);
	if (n <= 0)
		return berth_failx(BERTH_ECHILD_FAILED, "export '%s': the packing process died",
				   name);
	msg[n] = '\0';
	r = (int)strtol(msg, NULL, 10);
	if (r < 0)
		return berth_failx(r, "export '%s': %s", name, strchr(msg, ' ') + 1);
	return 0;
}
