/* Finding and joining the PID namespace of a --pid payload (pidns.h). */
#include "config.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/pidns.h"

/* /proc/<who>/ns/<ns>: who is a pid or "self". */
static bool ns_stat(const char *who, const char *ns, struct stat *st)
{
	char p[320];

	snprintf(p, sizeof(p), "/proc/%s/ns/%s", who, ns);
	return stat(p, st) == 0;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* The NSpid line of /proc/<who>/status: how many PID namespaces the
 * process is in (from ours down) and its pid in the innermost one. */
static int nspid(const char *who, unsigned *depth, long *inner)
{
	_cleanup_free_ char *path = xasprintf("/proc/%s/status", who), *text = NULL;
	const char *l;

	if (!path || read_file(path, 1u << 16, &text, NULL) < 0)
		return -1;
	l = strstr(text, "\nNSpid:");
	if (!l)
		return -1;
	l += 7;
	*depth = 0;
	for (;;) {
		char *end;
		long v = strtol(l, &end, 10);

		if (end == l)
			break;
		*inner = v;
		(*depth)++;
		l = end;
	}
	return *depth > 0 ? 0 : -1;
}

/* Field 22 of /proc/<who>/stat: start time in clock ticks after boot.
 * The command name (field 2) may hold spaces and ')': count from its end. */
static unsigned long long start_time(const char *who)
{
	_cleanup_free_ char *path = xasprintf("/proc/%s/stat", who), *text = NULL;
	const char *p;
	unsigned long long t = 0;

	if (!path || read_file(path, 1u << 12, &text, NULL) < 0 || !(p = strrchr(text, ')')))
		return 0;
	p++;
	for (int field = 2; field < 21 && p; field++)
		p = strchr(p + 1, ' ');
	if (p)
		t = strtoull(p + 1, NULL, 10);
	return t;
}

static int open_ns(const char *who, const char *ns)
{
	char p[320];
	int fd;

	snprintf(p, sizeof(p), "/proc/%s/ns/%s", who, ns);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

static int open_target(const char *who, struct pidns_target *t)
{
	int m = open_ns(who, "mnt"), p = m >= 0 ? open_ns(who, "pid") : -1;

	if (m < 0 || p < 0) {
		if (m >= 0)
			close(m);
		/* gone meanwhile: as if it had never run */
		return m == -ENOENT || p == -ENOENT || m == -ESRCH || p == -ESRCH
			       ? 0
			       : berth_fail(m < 0 ? m : p, "open the namespaces of process %s", who);
	}
	*t = (struct pidns_target){.mnt_fd = m, .pid_fd = p};
	return 0;
}

int pidns_of_keeper(pid_t keeper, struct pidns_target *t)
{
	_cleanup_closedir_ DIR *d = opendir("/proc");
	struct stat kuser, kpid, st;
	char kname[32], best[256] = "";
	unsigned long long best_start = 0;
	unsigned my_depth;
	long inner;
	struct dirent *e;

	*t = PIDNS_TARGET_NONE;
	snprintf(kname, sizeof(kname), "%d", (int)keeper);
	if (!d)
		return berth_fail(-errno, "open /proc");
	if (!ns_stat(kname, "user", &kuser) || !ns_stat(kname, "pid", &kpid) ||
	    nspid("self", &my_depth, &inner) < 0)
		return berth_failx(BERTH_ENOTFOUND, "container keeper %d: no such process",
				   (int)keeper);
	while ((e = readdir(d))) {
		unsigned depth;
		unsigned long long start;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		/* Other users' processes fail here, cheaply (ptrace access). */
		if (!ns_stat(e->d_name, "user", &st) || !same_file(&st, &kuser) ||
		    !ns_stat(e->d_name, "pid", &st) || same_file(&st, &kpid))
			continue;
		if (nspid(e->d_name, &depth, &inner) < 0 || depth != my_depth + 1 || inner != 1)
			continue;
		start = start_time(e->d_name);
		if (!best[0] || start < best_start) {
			snprintf(best, sizeof(best), "%s", e->d_name);
			best_start = start;
		}
	}
	return best[0] ? open_target(best, t) : 0;
}

int pidns_of_pid(pid_t pid, struct pidns_target *t)
{
	char name[32];
	struct stat a, b;

	*t = PIDNS_TARGET_NONE;
	snprintf(name, sizeof(name), "%d", (int)pid);
	if (!ns_stat(name, "pid", &a) || !ns_stat("self", "pid", &b) || same_file(&a, &b))
		return 0;
	return open_target(name, t);
}

void pidns_close(struct pidns_target *t)
{
	if (t->mnt_fd >= 0)
		close(t->mnt_fd);
	if (t->pid_fd >= 0)
		close(t->pid_fd);
	*t = PIDNS_TARGET_NONE;
}

int pidns_enter(struct pidns_target *t)
{
	int r = 0;

	if (t->pid_fd < 0)
		return 0;
	/* The mount namespace first: its /proc is the PID namespace's. */
	if (setns(t->mnt_fd, CLONE_NEWNS) < 0)
		r = berth_fail(-errno, "join the mount namespace of the container's PID namespace");
	else if (setns(t->pid_fd, CLONE_NEWPID) < 0)
		r = berth_fail(-errno, "join the container's PID namespace");
	pidns_close(t);
	return r < 0 ? r : 1;
}
