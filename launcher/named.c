/* Named containers, listing and cleanup of runtime state. */
#include "config.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/lock.h"
#include "common/util.h"
#include "launcher/container.h"
#include "launcher/keeper.h"
#include "launcher/launcher.h"

bool launcher_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64 || !isalnum((unsigned char)name[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("_.-", name[i]))
			return false;
	return true;
}

char *launcher_named_dir(const struct berth_config *cfg, const char *name)
{
	return xasprintf("%s/containers/%s", cfg->runtime_dir, name);
}

static int check_name(const char *name)
{
	if (!launcher_name_valid(name))
		return berth_failx(BERTH_EINVAL_INPUT,
				   "container name '%s': use letters, digits, '_', '.', '-' "
				   "(first a letter or digit, at most 64)",
				   name);
	return 0;
}

int launcher_named_image(const struct berth_config *cfg, const char *name, char **image)
{
	_cleanup_free_ char *dir = NULL, *file = NULL, *text = NULL;
	int r;

	if (!launcher_name_valid(name))
		return BERTH_ENOTFOUND;
	dir = launcher_named_dir(cfg, name);
	file = dir ? path_join(dir, "image") : NULL;
	if (!file)
		return -ENOMEM;
	r = read_file(file, 8192, &text, NULL);
	if (r == -ENOENT)
		return berth_failx(BERTH_ENOTFOUND, "no container named '%s' (see 'berth ps')", name);
	if (r < 0)
		return berth_fail(r, "read '%s'", file);
	text[strcspn(text, "\n")] = '\0';
	*image = TAKE_PTR(text);
	return 0;
}

int launcher_named_create(const struct berth_config *cfg, const char *name, const char *image)
{
	_cleanup_free_ char *dir = NULL, *file = NULL, *old = NULL, *abs = NULL;
	_cleanup_free_ char *containers = path_join(cfg->runtime_dir, "containers");
	int r = check_name(name);

	if (r < 0)
		return r;
	abs = realpath(image, NULL);
	if (!abs)
		return berth_fail(-errno, "image '%s'", image);
	dir = launcher_named_dir(cfg, name);
	if (!dir || !containers || !(file = path_join(dir, "image")))
		return -ENOMEM;
	if (launcher_named_image(cfg, name, &old) == 0) {
		if (streq(old, abs))
			return 0;
		return berth_failx(BERTH_EINVAL_INPUT,
				   "container '%s' exists with image '%s' (remove it with 'berth rm %s')",
				   name, old, name);
	}
	berth_error_clear();
	if ((r = mkdir_p(containers, 0700)) < 0)
		return berth_fail(r, "create '%s'", containers);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return berth_fail(-errno, "create '%s'", dir);
	r = write_file_atomic(file, abs, strlen(abs), 0600);
	return r < 0 ? berth_fail(r, "write '%s'", file) : 0;
}

static int chmod_dirs(const char *fpath, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type == FTW_D || type == FTW_DNR)
		chmod(fpath, (sb->st_mode & 07777) | 0700);
	return 0;
}

int rm_rf_owned(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISDIR(st.st_mode)) {
		chmod(path, (st.st_mode & 07777) | 0700);
		/* pre-order: a directory is opened for writing before its children */
		nftw(path, chmod_dirs, 32, FTW_MOUNT | FTW_PHYS);
	}
	return rm_rf(path);
}

static bool keeper_alive(const char *dir, unsigned *users)
{
	char buf[32] = "";
	int fd = keeper_connect(dir, "info", NULL);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (users)
		*users = n > 6 ? (unsigned)strtoul(buf + 6, NULL, 10) : 0;
	return n > 0;
}

int launcher_named_remove(const struct berth_config *cfg, const char *name)
{
	_cleanup_free_ char *dir = NULL, *image = NULL, *kdir = NULL;
	int r = launcher_named_image(cfg, name, &image);

	if (r < 0)
		return r;
	dir = launcher_named_dir(cfg, name);
	kdir = xasprintf("%s/keepers/n-%s", cfg->runtime_dir, name);
	if (!dir || !kdir)
		return -ENOMEM;
	if (keeper_alive(kdir, NULL))
		return berth_failx(BERTH_EINVAL_INPUT,
				   "container '%s' is running; stop its processes first", name);
	r = rm_rf_owned(dir);
	return r < 0 ? berth_fail(r, "remove '%s'", dir) : 0;
}

unsigned long long launcher_proc_start(pid_t pid)
{
	char path[64], buf[1024];
	_cleanup_close_ int fd = -1;
	unsigned long long start = 0;
	const char *p;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
		return 0;
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: count fields
	 * after its last ')'; state is field 3, start time field 22. */
	p = strrchr(buf, ')');
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p)
		start = strtoull(p + 1, NULL, 10);
	return start;
}

/* Is running/<name> ("PID-START") a process that is still there? */
static bool running_alive(const char *name, pid_t *pid)
{
	char *end;
	long p = strtol(name, &end, 10);

	if (p <= 0 || *end != '-')
		return false;
	*pid = (pid_t)p;
	return strtoull(end + 1, NULL, 10) == launcher_proc_start(*pid);
}

/* Containers built by their caller (no keeper) whose process is gone. */
static void cleanup_running(const struct berth_config *cfg)
{
	_cleanup_free_ char *dir = path_join(cfg->runtime_dir, "running");
	_cleanup_closedir_ DIR *d = dir ? opendir(dir) : NULL;
	struct dirent *de;
	pid_t pid;

	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && !running_alive(de->d_name, &pid))
			unlinkat(dirfd(d), de->d_name, 0);
}

void launcher_cleanup_locked(const struct berth_config *cfg)
{
	_cleanup_free_ char *keepers = path_join(cfg->runtime_dir, "keepers");
	_cleanup_closedir_ DIR *d = keepers ? opendir(keepers) : NULL;
	struct dirent *de;

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *dir = NULL;

		if (de->d_name[0] == '.')
			continue;
		dir = path_join(keepers, de->d_name);
		if (dir && !keeper_alive(dir, NULL))
			rm_rf(dir);
	}
	cleanup_running(cfg);
}

int launcher_cleanup_stale(const struct berth_config *cfg)
{
	_cleanup_free_ char *lock = path_join(cfg->runtime_dir, "lock");
	_cleanup_close_ int fd = -1;

	if (!lock)
		return -ENOMEM;
	if (access(cfg->runtime_dir, F_OK) < 0)
		return 0;
	fd = lock_path(lock, false, true);
	if (fd < 0)
		return berth_fail(fd, "lock '%s'", lock);
	launcher_cleanup_locked(cfg);
	return 0;
}

static int push_entry(struct launcher_entry **v, size_t *n, struct launcher_entry e)
{
	struct launcher_entry *nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[(*n)++] = e;
	return 0;
}

static char *info_value(const char *text, const char *key)
{
	_cleanup_free_ char *k = xasprintf("%s=", key);
	const char *p = k ? strstr(text, k) : NULL;

	if (!p || (p != text && p[-1] != '\n'))
		return NULL;
	p += strlen(k);
	return strndup(p, strcspn(p, "\n"));
}

static int list_keepers(const struct berth_config *cfg, struct launcher_entry **v, size_t *n)
{
	_cleanup_free_ char *keepers = path_join(cfg->runtime_dir, "keepers");
	_cleanup_closedir_ DIR *d = keepers ? opendir(keepers) : NULL;
	struct dirent *de;

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *info = NULL, *text = NULL;
		struct launcher_entry e = {0};
		char *dir;

		if (de->d_name[0] == '.' || !(dir = path_join(keepers, de->d_name)))
			continue;
		info = path_join(dir, "info");
		if (!info || read_file(info, 0, &text, NULL) < 0 || !keeper_alive(dir, &e.users)) {
			free(dir);
			continue;
		}
		int fd = keeper_connect(dir, "info", &e.keeper);

		if (fd >= 0)
			close(fd);
		e.dir = dir;
		e.image = info_value(text, "image");
		e.name = info_value(text, "name");
		if (e.name && !*e.name) {
			free(e.name);
			e.name = NULL;
		}
		if (push_entry(v, n, e) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* running/: one user each, the process that built it (and became its
 * payload), shown as the container's PID. */
static int list_running(const struct berth_config *cfg, struct launcher_entry **v, size_t *n)
{
	_cleanup_free_ char *dir = path_join(cfg->runtime_dir, "running");
	_cleanup_closedir_ DIR *d = dir ? opendir(dir) : NULL;
	struct dirent *de;

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *text = NULL;
		struct launcher_entry e = {.users = 1};
		char *path;

		if (de->d_name[0] == '.' || !running_alive(de->d_name, &e.keeper) ||
		    !(path = path_join(dir, de->d_name)))
			continue;
		if (read_file(path, 0, &text, NULL) < 0) {
			free(path);
			continue;
		}
		e.dir = path;
		e.image = info_value(text, "image");
		if (push_entry(v, n, e) < 0)
			return -ENOMEM;
	}
	return 0;
}

int launcher_list(const struct berth_config *cfg, struct launcher_entry **out, size_t *n)
{
	_cleanup_free_ char *containers = path_join(cfg->runtime_dir, "containers");
	_cleanup_closedir_ DIR *d = NULL;
	struct launcher_entry *v = NULL;
	struct dirent *de;
	size_t count = 0;

	if (list_keepers(cfg, &v, &count) < 0 || list_running(cfg, &v, &count) < 0)
		goto fail;
	d = containers ? opendir(containers) : NULL;
	while (d && (de = readdir(d))) {
		struct launcher_entry e = {0};
		bool running = false;

		if (de->d_name[0] == '.')
			continue;
		for (size_t i = 0; i < count; i++)
			running |= v[i].name && streq(v[i].name, de->d_name);
		if (running || launcher_named_image(cfg, de->d_name, &e.image) < 0)
			continue;
		e.name = strdup(de->d_name);
		if (push_entry(&v, &count, e) < 0)
			goto fail;
	}
	berth_error_clear();
	*out = v;
	*n = count;
	return 0;
fail:
	launcher_list_free(v, count);
	return -ENOMEM;
}

void launcher_list_free(struct launcher_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].image);
		free(v[i].dir);
	}
	free(v);
}
