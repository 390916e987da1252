/* Verbs configuration and provider libraries (launcher/mpi.h).
 *
 * libibverbs finds its providers through the .driver files in
 * /etc/libibverbs.d and loads lib<name>-rdmav<ABI>.so from the "libibverbs"
 * directory next to itself (rdma-core's VERBS_PROVIDER_DIR).  A site's providers match its
 * hardware and kernel; an image brings rdma-core but rarely the site's
 * drivers.  So the host's driver files and provider directory are bound
 * over the image's: the host's directory is found through the host's
 * ld.so.cache (below the driver root, so tests use a fake tree), the
 * image's through the image's, in the keeper before pivot_root. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/ldcache.h"
#include "launcher/mpi.h"
#include "launcher/rootfs.h"
#include "launcher/safepath.h"

#define VERBS_LIB "libibverbs.so.1"
#define VERBS_CONF "/etc/libibverbs.d"

struct mpi_plan {
	char *conf_src;     /* <root>/etc/libibverbs.d */
	char *provider_src; /* <root>/<libdir>/libibverbs, or NULL */
};

void mpi_plan_free(struct mpi_plan *p)
{
	if (!p)
		return;
	free(p->conf_src);
	free(p->provider_src);
	free(p);
}

/* The directory of libibverbs.so.1 in the ld.so.cache below root_fd
 * ("/usr/lib/x86_64-linux-gnu"); NULL when there is none.  An image's
 * cache is opened without leaving the image (its /etc may be a link). */
static char *verbs_libdir(int root_fd, bool image)
{
	_cleanup_close_ int fd = -1;
	struct ldcache *c = NULL;
	char *dir = NULL, p[64];
	int r;

	if (image) {
		fd = safe_open(root_fd, "/etc/ld.so.cache", O_RDONLY);
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		r = fd < 0 ? fd : ldcache_load(AT_FDCWD, p, &c);
	} else {
		r = ldcache_load(root_fd, "etc/ld.so.cache", &c);
	}
	if (r < 0) {
		berth_error_clear();
		return NULL;
	}
	for (size_t i = 0; !dir && i < ldcache_count(c); i++) {
		const struct ldcache_entry *e = ldcache_get(c, i);

		if (streq(e->key, VERBS_LIB) && ldcache_abi(e->flags) == LDCACHE_ABI_NATIVE &&
		    e->path[0] == '/') {
			_cleanup_free_ char *copy = strdup(e->path);

			dir = copy ? strdup(dirname(copy)) : NULL;
		}
	}
	ldcache_free(c);
	return dir;
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int mpi_plan(const char *root, bool inject_verbs, struct mpi_plan **out)
{
	_cleanup_close_ int root_fd = -1;
	_cleanup_free_ char *conf = NULL, *libdir = NULL;
	struct mpi_plan *p;

	*out = NULL;
	if (!inject_verbs)
		return 0;
	conf = xasprintf("%s%s", streq(root, "/") ? "" : root, VERBS_CONF);
	if (!conf)
		return -ENOMEM;
	if (!is_dir(conf)) {
		log_debug("mpi_inject_verbs: no '%s' on this host: nothing to add", conf);
		return 0;
	}
	root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		return berth_fail(-errno, "driver root '%s'", root);
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->conf_src = TAKE_PTR(conf);
	libdir = verbs_libdir(root_fd, false);
	if (libdir) {
		p->provider_src = xasprintf("%s%s/libibverbs", streq(root, "/") ? "" : root, libdir);
		if (p->provider_src && !is_dir(p->provider_src)) {
			free(p->provider_src);
			p->provider_src = NULL;
		}
	}
	*out = p;
	return 0;
}

void mpi_plan_describe(const struct mpi_plan *p, FILE *f)
{
	if (!p)
		return;
	fprintf(f, "verbs conf %s\n", p->conf_src);
	if (p->provider_src)
		fprintf(f, "verbs providers %s\n", p->provider_src);
}

int mpi_apply(const struct mpi_plan *p, int root_fd, bool writable)
{
	_cleanup_free_ char *libdir = NULL, *dst = NULL;
	const unsigned ro = LAUNCHER_MNT_RO | LAUNCHER_MNT_NOSUID | LAUNCHER_MNT_NODEV;
	int r;

	if (!p)
		return 0;
	r = rootfs_bind(root_fd, p->conf_src, VERBS_CONF, ro, writable);
	if (r < 0)
		return berth_fail_context(r, "mpi_inject_verbs");
	if (!p->provider_src)
		return 0;
	/* The image's libibverbs loads from the directory next to it. */
	libdir = verbs_libdir(root_fd, true);
	if (!libdir) {
		log_debug("mpi_inject_verbs: the image has no %s: no providers added", VERBS_LIB);
		return 0;
	}
	dst = xasprintf("%s/libibverbs", libdir);
	if (!dst)
		return -ENOMEM;
	r = rootfs_bind(root_fd, p->provider_src, dst, ro, writable);
	return r < 0 ? berth_fail_context(r, "mpi_inject_verbs") : 0;
}
