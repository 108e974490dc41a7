/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>

#include "private.h"
#include "sys.h"

pid_t pt_pid;
int pt_own_signo;
static __thread pid_t tid_cache __attribute__((tls_model("initial-exec")));


pid_t pt_gettid(void)
{
	if (__builtin_expect(tid_cache == 0, 0))
		tid_cache = (pid_t)syscall(SYS_gettid);
	return tid_cache;
}

int pt_sys_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t w = pt_sys_write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

void pt_sys_fork_child(void)
{
	pt_pid = (pid_t)syscall(SYS_getpid);
	tid_cache = pt_pid;
}

/* Exported by glibc under this name since 2.2.5; never interposed. */
extern int __sigaction(int, const struct sigaction *, struct sigaction *);

int pt_sys_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	return __sigaction(sig, act, old);
}


int pt_sys_timer_create(clockid_t clock, struct sigevent *sev, int *kid)
{
	long mode = syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 2, 0, 0, 0);

	if (mode == 1)
		syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0);
	long r = syscall(SYS_timer_create, clock, sev, kid);
	int saved = errno;
	if (mode == 1)
		syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0);
	errno = saved;
	return r == 0 ? 0 : -1;
}

__attribute__((constructor(101))) static void sys_init(void)
{
	pt_pid = (pid_t)syscall(SYS_getpid);
}

int pt_refusev(char *why, size_t why_size, int err, const char *fmt, va_list ap)
{
	if (why && why_size)
		vsnprintf(why, why_size, fmt, ap);
	errno = err;
	return -1;
}

int pt_refuse(char *why, size_t why_size, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pt_refusev(why, why_size, err, fmt, ap);
	va_end(ap);
	return -1;
}
