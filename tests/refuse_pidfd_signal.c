/* SPDX-License-Identifier: MIT */
/*
 * refuse_pidfd_signal ERRNO PROG [ARG...]: run PROG with pidfd_send_signal()
 * refused with ERRNO by a seccomp filter, as a kernel older than 6.15
 * refuses PIDFD_SELF_THREAD_GROUP (EBADF), one without the call (ENOSYS),
 * or a sandbox (EPERM).  The engine must then send its signals the older
 * way, every one of them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: refuse_pidfd_signal ERRNO PROG [ARG...]\n");
		return 2;
	}
	char *end;
	long err = strtol(argv[1], &end, 10);
	if (*end || err <= 0 || err > 4095) {
		fprintf(stderr, "refuse_pidfd_signal: bad errno '%s'\n", argv[1]);
		return 2;
	}
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_send_signal, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
		fprintf(stderr, "refuse_pidfd_signal: seccomp: %s\n", strerror(errno));
		return 2;
	}
	execvp(argv[2], argv + 2);
	fprintf(stderr, "refuse_pidfd_signal: %s: %s\n", argv[2], strerror(errno));
	return 127;
}
