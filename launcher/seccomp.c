/* --remap-root for package managers: in a user namespace that maps one
 * uid (the caller's, shown as root), chown to any other owner and the
 * set*id calls for any other id fail with EINVAL, and apt-get, dpkg, yum
 * and rpm stop there.  As enroot and pyxis do, a seccomp filter makes those
 * calls return 0 without doing anything: files keep the caller as owner
 * (the only owner there is), processes keep their ids.
 *
 * Raw classic BPF (linux/filter.h, linux/seccomp.h), no libseccomp.  The
 * filter looks at the native architecture only (x86_64 or aarch64, the
 * syscall numbers from the build's headers); calls through another ABI
 * (i386 on x86_64) are left alone, as is everything else. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/launcher.h"

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

/* aarch64 has no chown/lchown: glibc uses fchownat there. */
static const unsigned faked[] = {
#ifdef __NR_chown
	__NR_chown,
#endif
#ifdef __NR_lchown
	__NR_lchown,
#endif
	__NR_fchown,   __NR_fchownat, __NR_setuid,    __NR_setgid,
	__NR_setreuid, __NR_setregid, __NR_setresuid, __NR_setresgid,
	__NR_setgroups, __NR_setfsuid, __NR_setfsgid,
};

bool launcher_userns_remapped(void)
{
	_cleanup_free_ char *map = NULL;
	unsigned long inside, outside, count;
	int used = 0;

	if (read_file("/proc/self/uid_map", 4096, &map, NULL) < 0)
		return false;
	/* one line, "0 <uid> 1" */
	if (sscanf(map, " %lu %lu %lu %n", &inside, &outside, &count, &used) != 3)
		return false;
	return inside == 0 && count == 1 && map[used] == '\0';
}

#ifdef NATIVE_ARCH
int launcher_seccomp_remap_root(void)
{
	enum { N = ARRAY_SIZE(faked) };
	struct sock_filter f[N + 5];
	struct sock_fprog prog = {.len = N + 5, .filter = f};
	size_t i = 0;

	f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, arch));
	/* another ABI: jump over the list to "allow" */
	f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 0, N + 1);
	f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, nr));
	for (size_t k = 0; k < N; k++)
		f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, faked[k],
						      (unsigned char)(N - k), 0);
	f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	/* SECCOMP_RET_ERRNO with errno 0: the call returns 0, undone. */
	f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 0);
	/* Unprivileged filters need no_new_privs; nothing in a one-uid
	 * namespace could gain privileges by exec anyway. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return berth_fail(-errno, "remap-root: set no_new_privs");
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return berth_fail(-errno, "remap-root: install the seccomp filter for chown and "
				  "set*id");
	return 0;
}
#else
int launcher_seccomp_remap_root(void)
{
	log_warn("remap-root: no seccomp filter for chown and set*id on this architecture; "
		 "package managers may fail in the container");
	return 0;
}
#endif
