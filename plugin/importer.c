/* importer= in plugstack.conf: the site's own program in place of berth's
 * import, with pyxis's interface: "IMPORTER get URI" prints the absolute
 * path of a squashfs on stdout (progress on stderr), "IMPORTER release"
 * frees what the step used and may run more than once.  It runs as the
 * job's user, in the job's environment plus PYXIS_RUNTIME_PATH. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "plugin/prepare.h"

static pid_t spawn(const struct pconf *pc, const char *verb, const char *uri, int out_fd)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	if (out_fd >= 0 && dup2(out_fd, 1) < 0)
		_exit(127);
	setenv("PYXIS_RUNTIME_PATH", pc->runtime_path, 1);
	execl(pc->importer, pc->importer, verb, uri, (char *)NULL);
	fprintf(stderr, "exec '%s': %s\n", pc->importer, strerror(errno));
	_exit(127);
}

static int wait_ok(pid_t pid, const char *what, const struct pconf *pc)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return berth_fail(-errno, "wait for importer '%s'", pc->importer);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		return berth_failx(BERTH_ECHILD_FAILED, "importer '%s' %s: killed by signal %d",
				   pc->importer, what, WTERMSIG(status));
	return berth_failx(BERTH_ECHILD_FAILED, "importer '%s' %s: exit status %d",
			   pc->importer, what, WEXITSTATUS(status));
}

int importer_get(const struct pconf *pc, const char *uri, char **path)
{
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int fds[2], r;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return berth_fail(-errno, "pipe");
	pid = spawn(pc, "get", uri, fds[1]);
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		return berth_fail(-errno, "fork");
	}
	f = fdopen(fds[0], "r");
	n = f ? getline(&line, &cap, f) : -1;
	if (f)
		while (getc(f) != EOF) /* let it finish writing */
			;
	r = wait_ok(pid, "get", pc);
	if (r < 0)
		return berth_fail_context(r, "import '%s'", uri);
	if (n <= 0)
		return berth_failx(BERTH_ECHILD_FAILED, "importer '%s' get '%s': no path on stdout",
				   pc->importer, uri);
	line[strcspn(line, "\n")] = '\0';
	if (line[0] != '/')
		return berth_failx(BERTH_ECHILD_FAILED,
				   "importer '%s' get '%s': '%s' is not an absolute path",
				   pc->importer, uri, line);
	*path = TAKE_PTR(line);
	return 0;
}

void importer_release(const struct pconf *pc)
{
	pid_t pid = spawn(pc, "release", NULL, -1);

	if (pid < 0 || wait_ok(pid, "release", pc) < 0)
		log_warn("%s", berth_errmsg(BERTH_ECHILD_FAILED));
}
