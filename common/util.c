#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/error.h"
#include "common/util.h"

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	return r < 0 ? NULL : s;
}

char *path_join(const char *a, const char *b)
{
	size_t la = strlen(a);

	while (*b == '/')
		b++;
	if (la > 0 && a[la - 1] == '/')
		return xasprintf("%s%s", a, b);
	return xasprintf("%s/%s", a, b);
}

int mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = strdup(path);
	char *s;

	if (!p)
		return -ENOMEM;
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int read_file(const char *path, size_t max, char **buf, size_t *len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *data = NULL;
	size_t used = 0, cap = 0;

	if (fd < 0)
		return -errno;
	if (max == 0)
		max = 64u << 20;
	for (;;) {
		ssize_t n;

		if (cap - used < 4096) {
			char *nd;

			cap = cap ? cap * 2 : 8192;
			nd = realloc(data, cap + 1);
			if (!nd)
				return -ENOMEM;
			data = nd;
		}
		n = read(fd, data + used, cap - used);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > max)
			return -EFBIG;
	}
	if (!data && !(data = malloc(1)))
		return -ENOMEM;
	data[used] = '\0';
	*buf = TAKE_PTR(data);
	if (len)
		*len = used;
	return 0;
}

static int write_replace(const char *path, const void *buf, size_t len, mode_t mode, bool sync)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	const char *p = buf;
	int fd, r = 0;

	if (!tmp)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (r == 0 && sync && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode)
{
	return write_replace(path, buf, len, mode, true);
}

int write_file_runtime(const char *path, const void *buf, size_t len, mode_t mode)
{
	return write_replace(path, buf, len, mode, false);
}

static int rm_one(const char *fpath, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(fpath) < 0 && errno != ENOENT ? -errno : 0;
	return unlink(fpath) < 0 && errno != ENOENT ? -errno : 0;
}

int rm_rf(const char *path)
{
	struct stat st;
	int r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 ? -errno : 0;
	/* FTW_MOUNT: stay on this filesystem; FTW_PHYS: never follow links. */
	r = nftw(path, rm_one, 32, FTW_DEPTH | FTW_MOUNT | FTW_PHYS);
	if (r > 0)
		r = -EIO;
	if (r == 0 && access(path, F_OK) == 0)
		r = -EBUSY;
	return r;
}

int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "yes", "true", "on", "y"};
	static const char *const no[] = {"0", "no", "false", "off", "n"};

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

size_t strv_length(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

int strv_push(char ***v, const char *s)
{
	size_t n = strv_length(*v);
	char **nv = realloc(*v, (n + 2) * sizeof(char *));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[n] = strdup(s);
	nv[n + 1] = NULL;
	return nv[n] ? 0 : -ENOMEM;
}

char **strv_split(const char *s, char sep)
{
	char **v = calloc(1, sizeof(char *));
	const char *p = s;

	if (!v)
		return NULL;
	while (p && *p) {
		const char *e = strchr(p, sep);
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len > 0) {
			_cleanup_free_ char *item = strndup(p, len);

			if (!item || strv_push(&v, item) < 0) {
				strv_free(v);
				return NULL;
			}
		}
		p = e ? e + 1 : NULL;
	}
	return v;
}

bool strv_contains(char *const *v, const char *s)
{
	for (size_t i = 0; v && v[i]; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

char *strv_join(char *const *v, const char *sep)
{
	size_t len = 1, sl = strlen(sep);
	char *out, *p;

	for (size_t i = 0; v && v[i]; i++)
		len += strlen(v[i]) + sl;
	out = p = malloc(len);
	if (!out)
		return NULL;
	*p = '\0';
	for (size_t i = 0; v && v[i]; i++) {
		if (i)
			p = stpcpy(p, sep);
		p = stpcpy(p, v[i]);
	}
	return out;
}

void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

bool str_startswith(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_endswith(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

const char *format_bytes(uint64_t n, char *buf, size_t size)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024 && u + 1 < ARRAY_SIZE(unit)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, size, "%.1f %s", v, unit[u]);
	return buf;
}

pid_t fork_pipe(int *fd)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return berth_fail(-errno, "pipe");
	pid = fork();
	if (pid < 0) {
		int r = berth_fail(-errno, "fork");

		close(p[0]);
		close(p[1]);
		return r;
	}
	close(p[pid == 0 ? 0 : 1]);
	*fd = p[pid == 0 ? 1 : 0];
	return pid;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int stdio_devnull(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) {
		int r = -errno;

		if (fd > 2)
			close(fd);
		return r;
	}
	if (fd > 2)
		close(fd);
	return 0;
}
