/* The per-node, per-step work of slurm_spank_user_init, done in a child
 * process that is the job's user for good (real, effective and saved ids
 * and groups), so nothing here runs as root: reading the user's config,
 * resolving or pulling the image into the user's cache (imgconv takes the
 * per-image lock, so one import per node however many steps ask), and
 * starting or finding the container keeper.
 *
 * slurmstepd is threaded and only lowered its effective uid; the child
 * therefore never calls into Slurm (its log lines go to a memfd the parent
 * replays) and reports through one SOCK_SEQPACKET message.  The parent then
 * takes its own reference on the keeper before the child lets go of its
 * one, so the keeper never sees zero users in between. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common/conf.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "imgconv/imgconv.h"
#include "launcher/launcher.h"
#include "plugin/plugin.h"
#include "plugin/prepare.h"

int drop_privileges(uid_t uid, gid_t gid, const gid_t *gids, int ngids)
{
	uid_t ru, eu, su;

	/* slurmstepd lowered only its euid; the saved uid is still root. */
	if (geteuid() != 0 && seteuid(0) < 0)
		return -errno;
	if (setgroups((size_t)(ngids > 0 ? ngids : 0), gids) < 0)
		return -errno;
	if (setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return -errno;
	if (getresuid(&ru, &eu, &su) < 0 || ru != uid || eu != uid || su != uid)
		return -EPERM;
	if (uid != 0 && setresuid(0, 0, 0) == 0)
		return -EPERM; /* must be impossible now */
	/* A uid change made us non-dumpable, which makes /proc/self/uid_map
	 * root's: the user namespace setup needs it to be ours again. */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		return -errno;
	return 0;
}

char *user_runtime_dir(const struct pconf *pc, uid_t uid)
{
	return xasprintf("%s/%u", pc->runtime_path, (unsigned)uid);
}

char *scoped_name(const struct pconf *pc, const char *name, uint32_t jobid)
{
	if (pc->container_scope == SCOPE_JOB)
		return xasprintf("j%u_%s", (unsigned)jobid, name);
	return strdup(name);
}

/* Close every descriptor but 0-2 and keep[]: slurmstepd's sockets to srun
 * and slurmd must not live on in a keeper. */
static void close_others(const int *keep, size_t n)
{
	unsigned from = 3;

	for (;;) {
		unsigned next = ~0u;

		for (size_t i = 0; i < n; i++)
			if (keep[i] >= (int)from && (unsigned)keep[i] < next)
				next = (unsigned)keep[i];
		if (next > from)
			syscall(SYS_close_range, from, next == ~0u ? ~0u : next - 1, 0);
		if (next == ~0u)
			break;
		from = next + 1;
	}
}

static void set_message(struct prep_result *res, int code, const char *fmt, ...)
	_printf_(3, 4);
static void set_message(struct prep_result *res, int code, const char *fmt, ...)
{
	va_list ap;

	res->code = code < 0 ? code : BERTH_ECHILD_FAILED;
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
}

/* The child's environment is the job's: config lookups ($HOME,
 * XDG_*, BERTH_*), proxies and credentials files behave as in the user's
 * own `berth import`. */
static int adopt_environment(char **env)
{
	if (clearenv() != 0)
		return -ENOMEM;
	for (size_t i = 0; env && env[i]; i++)
		if (strchr(env[i], '=') && putenv(env[i]) != 0)
			return -errno;
	return 0;
}

/* Wait until the parent holds its own reference (or is gone). */
static void wait_parent(int sock)
{
	char c;

	while (read(sock, &c, 1) < 0 && errno == EINTR)
		;
}

/* The start of every child: default signals, no terminal or Slurm
 * descriptors, stderr into the log memfd, then the job's user for good in
 * the job's environment.  Returns 0, or -errno with res->message set. */
static int become_user(const struct pconf *pc, const struct job *job, const int *keep,
		       size_t nkeep, int logfd, struct prep_result *res)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC), r;
	sigset_t all;

	sigfillset(&all);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
	}
	dup2(logfd, 2);
	close_others(keep, nkeep);
	prctl(PR_SET_NAME, "berth-prepare");
	r = drop_privileges(job->uid, job->gid, job->gids, job->ngids);
	if (r < 0) {
		set_message(res, r, "become uid %u: %s", (unsigned)job->uid, strerror(-r));
		return r;
	}
	if ((r = adopt_environment(job->env)) < 0) {
		set_message(res, r, "job environment: %s", strerror(-r));
		return r;
	}
	slog_to_fd(2, pc->log_level);
	if (job->cwd && chdir(job->cwd) < 0)
		log_debug("chdir '%s': %s", job->cwd, strerror(errno));
	return 0;
}

_Noreturn static void child(const struct prep_ctx *pc_, int sock, int logfd)
{
	struct prep_ctx p = *pc_;
	struct prep_result *res = p.res;
	struct launcher_container *c = NULL;
	int keep[] = {sock, logfd, p.entry_log_fd, p.entry_env_fd};
	int r = become_user(p.pconf, p.job, keep, ARRAY_SIZE(keep), logfd, res);

	if (r == 0) {
		r = prepare_container(&p, &c);
		if (r < 0)
			set_message(res, r, "%s", berth_errmsg(r));
	}
	if (send(sock, res, sizeof(*res), MSG_NOSIGNAL) == (ssize_t)sizeof(*res) && r == 0)
		wait_parent(sock);
	launcher_release(c);
	_exit(r < 0 ? 1 : 0);
}

/* Read the memfd the child logged into. */
static void collect_log(int logfd, char **log, size_t *len)
{
	struct stat st;
	char *buf;

	*log = NULL;
	*len = 0;
	if (fstat(logfd, &st) < 0 || st.st_size <= 0 || st.st_size > (1 << 20))
		return;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return;
	if (pread(logfd, buf, (size_t)st.st_size, 0) != st.st_size) {
		free(buf);
		return;
	}
	buf[st.st_size] = '\0';
	*log = buf;
	*len = (size_t)st.st_size;
}

static int memfd(const char *name)
{
	return (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC);
}

/* The parent's side: the child's report, its reference on the keeper
 * taken over, the child reaped, the memfds read. */
static int parent(pid_t pid, int sock, const struct prep_ctx *p, int logfd,
		  struct launcher_container **out, struct prep_output *o)
{
	struct prep_result *res = p->res;
	int status = 0;
	ssize_t n;

	do
		n = recv(sock, res, sizeof(*res), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*res))
		*res = (struct prep_result){.code = BERTH_ECHILD_FAILED};
	res->message[sizeof(res->message) - 1] = '\0';
	res->state_dir[sizeof(res->state_dir) - 1] = '\0';
	if (res->code == 0) {
		struct berth_config none = {0};
		int r = launcher_open(&none, res->state_dir, out);

		if (r < 0)
			set_message(res, r, "container keeper: %s", berth_errmsg(r));
	}
	close(sock); /* the child may go now */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (res->code == BERTH_ECHILD_FAILED && !res->message[0])
		snprintf(res->message, sizeof(res->message),
			 "the preparation process failed (%s %d)",
			 WIFSIGNALED(status) ? "signal" : "exit status",
			 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	collect_log(logfd, &o->log, &o->log_len);
	collect_log(p->entry_log_fd, &o->entry_log, &o->entry_log_len);
	collect_log(p->entry_env_fd, &o->entry_env, &o->entry_env_len);
	return 0;
}

int prepare_run(const struct pconf *pconf, const struct args *a, const struct job *job,
		struct prep_result *res, struct launcher_container **out, struct prep_output *o)
{
	struct prep_ctx p = {.pconf = pconf, .args = a, .job = job, .res = res};
	int sv[2] = {-1, -1}, logfd = memfd("berth-prepare-log"), r = 0;
	pid_t pid = -1;

	*out = NULL;
	*res = (struct prep_result){0};
	*o = (struct prep_output){0};
	p.entry_log_fd = memfd("berth-entrypoint-log");
	p.entry_env_fd = memfd("berth-entrypoint-env");
	if (logfd < 0 || p.entry_log_fd < 0 || p.entry_env_fd < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		r = -errno;
	if (r == 0 && (pid = fork()) == 0) {
		close(sv[0]);
		child(&p, sv[1], logfd);
	}
	if (sv[1] >= 0)
		close(sv[1]);
	if (r == 0 && pid < 0)
		r = -errno;
	if (r == 0)
		r = parent(pid, sv[0], &p, logfd, out, o);
	else if (sv[0] >= 0)
		close(sv[0]);
	if (logfd >= 0)
		close(logfd);
	if (p.entry_log_fd >= 0)
		close(p.entry_log_fd);
	if (p.entry_env_fd >= 0)
		close(p.entry_env_fd);
	return r;
}

/* Run fn as the job's user in a child; its log lines are replayed into
 * Slurm's log (as errors when it failed). */
int prepare_as_user(const struct pconf *pc, const struct job *job,
		    int (*fn)(const struct pconf *pc, const struct job *job, void *arg), void *arg)
{
	struct prep_result res = {0};
	_cleanup_free_ char *log = NULL;
	size_t len = 0;
	int logfd, status = 0;
	pid_t pid;

	logfd = (int)syscall(SYS_memfd_create, "berth-log", MFD_CLOEXEC);
	if (logfd < 0)
		return -errno;
	pid = fork();
	if (pid == 0) {
		int r = become_user(pc, job, &logfd, 1, logfd, &res);

		if (r == 0)
			r = fn(pc, job, arg);
		if (r < 0)
			log_error("%s", res.message[0] ? res.message : berth_errmsg(r));
		_exit(r < 0 ? 1 : 0);
	}
	if (pid < 0) {
		close(logfd);
		return -errno;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	collect_log(logfd, &log, &len);
	close(logfd);
	slog_replay(log, !WIFEXITED(status) || WEXITSTATUS(status) != 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}
