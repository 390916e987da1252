/* The lean `berth` and its image side, `berth-image` (doc/decisions.md,
 * "Lean run path"): berth-image links libcurl, libarchive and libcrypto;
 * berth execs it for the image commands and for `berth run REF`.
 *
 * It is looked for next to the running berth first (a build tree, or a
 * copy of both files), then in $(libexecdir)/berth. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/cli.h"

#define HELPER_NAME "berth-image"

extern char **environ;

int image_helper_path(char **out)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *p;

	if (n > 0) {
		self[n] = '\0';
		p = path_join(dirname(self), HELPER_NAME);
		if (p && access(p, X_OK) == 0) {
			*out = p;
			return 0;
		}
		free(p);
	}
	p = path_join(LIBEXECDIR "/berth", HELPER_NAME);
	if (!p)
		return -ENOMEM;
	if (access(p, X_OK) < 0) {
		int r = berth_fail(-errno, "image helper '%s'", p);

		free(p);
		return r;
	}
	*out = p;
	return 0;
}

/* HELPER [-v|-q...] ARGS... (NULL-terminated). */
static char **helper_argv(const char *helper, int argc, const char *const *argv)
{
	char **v = calloc((size_t)(cli_global_argc + argc) + 2, sizeof(*v));
	int k = 0;

	if (!v)
		return NULL;
	v[k++] = (char *)helper;
	for (int i = 0; i < cli_global_argc; i++)
		v[k++] = cli_global_argv[i];
	for (int i = 0; i < argc; i++)
		v[k++] = (char *)argv[i]; /* execv's prototype; it writes nothing */
	return v;
}

int cli_forward(struct berth_config *cfg, int argc, char **argv)
{
	_cleanup_free_ char *helper = NULL;
	_cleanup_free_ char **v = NULL;
	int r = image_helper_path(&helper);

	(void)cfg;
	if (r < 0)
		return cli_fail(r);
	v = helper_argv(helper, argc, (const char *const *)argv);
	if (!v)
		return cli_fail(-ENOMEM);
	fflush(NULL);
	execv(helper, v);
	return cli_fail(berth_fail(-errno, "run '%s'", helper));
}

/* Read FD to EOF (at most MAX bytes kept), NUL-terminated. */
static char *read_all(int fd, size_t max)
{
	char *buf = malloc(max + 1);
	size_t len = 0;
	ssize_t n;

	if (!buf)
		return NULL;
	while ((n = read(fd, buf + len, max - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		len += (size_t)n;
		if (len == max) { /* keep draining so the child never blocks */
			char sink[4096];

			while (read(fd, sink, sizeof(sink)) > 0)
				;
			break;
		}
	}
	buf[len] = '\0';
	return buf;
}

static void import_child(const char *helper, char **v, int out[2], int err[2])
{
	char efd[32];

	close(out[0]);
	close(err[0]);
	if (dup2(out[1], STDOUT_FILENO) < 0 || dup2(err[1], 3) < 0)
		_exit(127);
	snprintf(efd, sizeof(efd), "%d", 3);
	setenv("BERTH_ERROR_FD", efd, 1);
	execv(helper, v);
	dprintf(3, "berth: run '%s': %s\n", helper, strerror(errno));
	_exit(127);
}

/* The child's result: its stdout line is the path; else its error line. */
static int import_result(const char *helper, int status, char *out, char *err, char **path)
{
	size_t n = strlen(out);
	char *msg = err;

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && n > 1 && out[n - 1] == '\n' &&
	    !memchr(out, '\n', n - 1)) {
		out[n - 1] = '\0';
		*path = strdup(out);
		return *path ? 0 : -ENOMEM;
	}
	msg[strcspn(msg, "\n")] = '\0';
	if (str_startswith(msg, "berth: "))
		msg += strlen("berth: ");
	if (msg[0])
		return berth_failx(BERTH_ECHILD_FAILED, "%s", msg);
	if (WIFSIGNALED(status))
		return berth_failx(BERTH_ECHILD_FAILED, "%s: killed by signal %d", helper,
				   WTERMSIG(status));
	return berth_failx(BERTH_ECHILD_FAILED, "%s: failed (exit status %d)", helper,
			   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

int image_helper_import(const struct berth_config *cfg, const char *ref, char **path)
{
	/* Progress on a terminal only, as `berth import` decides itself;
	 * --quiet otherwise, as the in-process import did. */
	const char *loud[] = {"import", "--", ref};
	const char *quiet[] = {"import", "--quiet", "--", ref};
	_cleanup_free_ char *helper = NULL, *out = NULL, *err = NULL;
	_cleanup_free_ char **v = NULL;
	int o[2] = {-1, -1}, e[2] = {-1, -1}, status = 0, r;
	pid_t pid;

	(void)cfg;
	if ((r = image_helper_path(&helper)) < 0)
		return r;
	v = isatty(STDERR_FILENO) ? helper_argv(helper, 3, loud) : helper_argv(helper, 4, quiet);
	if (!v)
		return -ENOMEM;
	if (pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0) {
		r = berth_fail(-errno, "pipe");
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		r = berth_fail(-errno, "fork");
		goto out;
	}
	if (pid == 0)
		import_child(helper, v, o, e);
	close(TAKE_FD(o[1]));
	close(TAKE_FD(e[1]));
	out = read_all(o[0], PATH_MAX + 1);
	err = read_all(e[0], 4096);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	r = out && err ? import_result(helper, status, out, err, path) : -ENOMEM;
out:
	for (int i = 0; i < 2; i++) {
		if (o[i] >= 0)
			close(o[i]);
		if (e[i] >= 0)
			close(e[i]);
	}
	return r;
}
