/* Regenerating the container's ld cache with the image's own ldconfig.
 *
 * The child pivots into the container root in a mount namespace of its
 * own first, so the image's program never has the host's root in reach,
 * then writes /etc/ld.so.conf.d/000-berth-gpu.conf (kept for later
 * ldconfig runs inside, e.g. by apt) and execs ldconfig -X with the GPU
 * directories also on its command line (an image whose ld.so.conf lacks
 * the conf.d include still gets them).  -X: the image's directories are
 * not touched; the soname links in ours are made by gpu_apply. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/gpu_int.h"

#define NO_LDCONFIG 100

static const char conf[] = "# Written by berth for the GPU driver libraries it binds here.\n" GPU_DIR
			   "/lib\n" GPU_DIR "/lib32\n";

_Noreturn static void child(int root_fd, int err_fd, bool lib32)
{
	static const char *const ldconfigs[] = {"/sbin/ldconfig.real", "/sbin/ldconfig",
						"/usr/sbin/ldconfig", "/usr/bin/ldconfig",
						"/bin/ldconfig"};
	static char path[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin", name[] = "ldconfig",
		    nolinks[] = "-X", lib[] = GPU_DIR "/lib", lib32dir[] = GPU_DIR "/lib32";
	char *const envp[] = {path, NULL};
	char *argv[] = {name, nolinks, lib, lib32 ? lib32dir : NULL, NULL};
	int fd;

	dup2(err_fd, 1);
	dup2(err_fd, 2);
	if (fchdir(root_fd) < 0 || unshare(CLONE_NEWNS) < 0 ||
	    syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) {
		fprintf(stderr, "enter the container root: %s\n", strerror(errno));
		_exit(1);
	}
	if (mkdir("/etc/ld.so.conf.d", 0755) == 0 || errno == EEXIST) {
		fd = open("/etc/ld.so.conf.d/000-berth-gpu.conf",
			  O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd >= 0) {
			(void)!write(fd, conf, strlen(conf));
			close(fd);
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(ldconfigs); i++)
		if (access(ldconfigs[i], X_OK) == 0) {
			execve(ldconfigs[i], argv, envp);
			fprintf(stderr, "exec %s: %s\n", ldconfigs[i], strerror(errno));
			_exit(1);
		}
	_exit(NO_LDCONFIG);
}

int gpu_ldconfig(int root_fd, bool lib32)
{
	char out[1024] = "";
	size_t used = 0;
	int fd, status;
	pid_t pid = fork_pipe(&fd);

	if (pid < 0)
		return pid;
	if (pid == 0)
		child(root_fd, fd, lib32);
	for (;;) {
		ssize_t n = read(fd, out + used, sizeof(out) - 1 - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
		if (used == sizeof(out) - 1) {
			char sink[256];

			while (read(fd, sink, sizeof(sink)) > 0)
				;
			break;
		}
	}
	close(fd);
	out[used] = '\0';
	out[strcspn(out, "\n")] = '\0';
	if (waitpid(pid, &status, 0) < 0)
		return berth_fail(-errno, "wait for ldconfig");
	if (WIFEXITED(status) && WEXITSTATUS(status) == NO_LDCONFIG) {
		log_warn("the image has no ldconfig: GPU libraries are in %s/lib but not in its "
			 "ld cache",
			 GPU_DIR);
		return 0;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return berth_failx(BERTH_ECHILD_FAILED, "the image's ldconfig failed%s%s",
				   *out ? ": " : "", out);
	return 0;
}
