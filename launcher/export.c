/* Containers as new squashfs files, packed by imgconv_pack_dir():
 *
 * berth export (launcher_export): a named container that is not running.
 * Its image and writable layer are stacked in a read-only overlay (the
 * layer on top, whiteouts applied by the kernel) in a namespace of a child
 * process; nothing else is mounted there, so no bind or /proc ends up in
 * the file.
 *
 * --container-save (launcher_save): a running container.  A child joins
 * it and takes a detached copy of the container's root mount alone
 * (open_tree(2) with OPEN_TREE_CLONE and without AT_RECURSIVE), which
 * leaves out every mount on top of it: /proc, /dev, binds, home.  Another
 * child packs that tree.
 *
 * Both pack as root of a user namespace that maps the caller's uid to 0,
 * so the image's files and the changes are stored as root's, as enroot
 * exports them: a one-uid container has no other owner to keep. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

/* The image's config and reference, and the compression settings. */
static int pack_fd(const struct berth_config *cfg, const char *image, int fd, const char *out)
{
	_cleanup_free_ char *config = NULL, *ref = NULL;
	struct imgconv_convert_opts co = {.compression = cfg->compression,
					  .compression_level = (unsigned)cfg->compression_level};
	size_t len = 0;
	int r = image_config(image, &config, &len, &ref);

	if (r < 0)
		return r;
	co.reference = ref;
	return imgconv_pack_dir(fd, config, len, out, &co);
}

struct export_job {
	const struct berth_config *cfg;
	const char *image;
	const char *dir; /* the named container's directory (export) */
	const char *out;
	int root_fd;     /* the container's root mount (save) */
};

/* The image on lower, in a user and mount namespace of our own.  The
 * server is started first: it must be in none of them. */
static int mount_image(const char *image, const char *lower, const char *merged)
{
	struct sqfuse sq;
	int r = sqfuse_start(image, 0, 0, SQFUSE_WAIT, &sq);

	if (r < 0)
		return r;
	r = userns_enter(true, CLONE_NEWNS);
	if (r == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		r = berth_fail(-errno, "make mounts private");
	if (r == 0 && ((mkdir(lower, 0700) < 0 && errno != EEXIST) ||
		       (mkdir(merged, 0700) < 0 && errno != EEXIST)))
		r = berth_fail(-errno, "create '%s'", lower);
	if (r == 0)
		r = sqfuse_mount(&sq, lower, 0, 0);
	sqfuse_close(&sq);
	return r;
}

static int pack_named(const struct export_job *j)
{
	_cleanup_free_ char *lower = xasprintf("%s/export.%d", j->dir, (int)getpid()),
			    *merged = NULL, *opts = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	if (!lower || !(merged = xasprintf("%s.m", lower)))
		return -ENOMEM;
	r = mount_image(j->image, lower, merged);
	/* Two lower layers and no upper: a read-only merged view. */
	if (r == 0)
		opts = xasprintf("lowerdir=%s/upper:%s,userxattr", j->dir, lower);
	if (r == 0 && (!opts || mount("overlay", merged, "overlay", MS_RDONLY, opts) < 0))
		r = berth_fail(opts ? -errno : -ENOMEM, "overlay the container's layer");
	if (r == 0 && (fd = open(merged, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		r = berth_fail(-errno, "open '%s'", merged);
	if (r == 0)
		r = pack_fd(j->cfg, j->image, fd, j->out);
	umount2(merged, MNT_DETACH);
	umount2(lower, MNT_DETACH);
	rmdir(merged);
	rmdir(lower);
	return r;
}

static int pack_root(const struct export_job *j)
{
	_cleanup_close_ int fd = -1;
	int r = userns_enter(true, 0);

	if (r < 0)
		return r;
	/* open_tree() gives an O_PATH fd; the packer also reads xattrs. */
	fd = openat(j->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return berth_fail(-errno, "open the container's root");
	return pack_fd(j->cfg, j->image, fd, j->out);
}

/* Run fn(j) in a child (it changes namespaces) and bring its result and
 * message back as if it had run here. */
static int in_child(int (*fn)(const struct export_job *), const struct export_job *j,
		    const char *what)
{
	int sp[2], status, r;
	char msg[1024];
	pid_t pid;
	ssize_t n;

	if (pipe2(sp, O_CLOEXEC) < 0)
		return berth_fail(-errno, "pipe");
	pid = fork();
	if (pid == 0) {
		close(sp[0]);
		r = fn(j);
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
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n <= 0)
		return berth_failx(BERTH_ECHILD_FAILED, "%s: the packing process died", what);
	msg[n] = '\0';
	r = (int)strtol(msg, NULL, 10);
	if (r < 0)
		return berth_failx(r, "%s: %s", what, strchr(msg, ' ') + 1);
	return 0;
}

int launcher_export(const struct berth_config *cfg, const char *name, const char *out)
{
	_cleanup_free_ char *image = NULL, *dir = NULL, *kdir = NULL, *what = NULL;
	int r = launcher_named_image(cfg, name, &image);

	if (r < 0)
		return r;
	dir = launcher_named_dir(cfg, name);
	kdir = xasprintf("%s/keepers/n-%s", cfg->runtime_dir, name);
	what = xasprintf("export '%s'", name);
	if (!dir || !kdir || !what)
		return -ENOMEM;
	r = keeper_connect(kdir, "info", NULL);
	if (r >= 0) {
		close(r);
		return berth_failx(BERTH_EINVAL_INPUT,
				   "container '%s' is running; export it when its processes are done",
				   name);
	}
	return in_child(pack_named, &(struct export_job){.cfg = cfg, .image = image, .dir = dir,
							 .out = out, .root_fd = -1},
			what);
}

/* One int (0 or a code), the message on failure, the fd on success. */
static void send_result(int sock, int code, int fd)
{
	char buf[1024];
	struct iovec iov = {.iov_base = buf};
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} u = {0};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	int n = snprintf(buf, sizeof(buf), "%d %s", code, code < 0 ? berth_errmsg(code) : "");

	iov.iov_len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
	if (code == 0) {
		mh.msg_control = u.space;
		mh.msg_controllen = sizeof(u.space);
		CMSG_FIRSTHDR(&mh)->cmsg_level = SOL_SOCKET;
		CMSG_FIRSTHDR(&mh)->cmsg_type = SCM_RIGHTS;
		CMSG_FIRSTHDR(&mh)->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(CMSG_FIRSTHDR(&mh)), &fd, sizeof(int));
	}
	(void)sendmsg(sock, &mh, MSG_NOSIGNAL);
}

static int recv_result(int sock, int *fd)
{
	char buf[1024];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.space,
			    .msg_controllen = sizeof(u.space)};
	struct cmsghdr *ch;
	ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	int code;

	if (n <= 0)
		return berth_failx(BERTH_ECHILD_FAILED, "the process joining the container died");
	buf[n] = '\0';
	code = (int)strtol(buf, NULL, 10);
	if (code < 0)
		return berth_failx(code, "%s", strchr(buf, ' ') ? strchr(buf, ' ') + 1 : buf);
	ch = CMSG_FIRSTHDR(&mh);
	if (!ch || ch->cmsg_type != SCM_RIGHTS)
		return berth_failx(BERTH_ECHILD_FAILED, "no root mount from the container");
	memcpy(fd, CMSG_DATA(ch), sizeof(int));
	return 0;
}

/* A child joins the container and sends back its root mount, alone. */
static int clone_root(struct launcher_container *c, int *fd)
{
	int sp[2], status, r;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return berth_fail(-errno, "socketpair");
	pid = fork();
	if (pid == 0) {
		int tree = -1;

		close(sp[0]);
		r = launcher_join(c);
		if (r == 0) {
			tree = (int)syscall(SYS_open_tree, AT_FDCWD, "/",
					    OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
			if (tree < 0)
				r = berth_fail(-errno, "copy the container's root mount");
		}
		send_result(sp[1], r, tree);
		_exit(r < 0 ? 1 : 0);
	}
	close(sp[1]);
	if (pid < 0) {
		close(sp[0]);
		return berth_fail(-errno, "fork");
	}
	r = recv_result(sp[0], fd);
	close(sp[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return r;
}

int launcher_save(const struct berth_config *cfg, struct launcher_container *c,
		  const char *image, const char *out)
{
	_cleanup_close_ int root = -1;
	_cleanup_free_ char *what = xasprintf("save the container as '%s'", out);
	struct stat st;
	int r;

	if (!what)
		return -ENOMEM;
	if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
		return berth_failx(BERTH_EINVAL_INPUT, "%s: it is a directory", what);
	r = clone_root(c, &root);
	if (r < 0)
		return berth_fail_context(r, "%s", what);
	return in_child(pack_root, &(struct export_job){.cfg = cfg, .image = image, .out = out,
							.root_fd = root},
			what);
}
