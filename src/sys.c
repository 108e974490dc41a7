/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#if defined(__x86_64__) || defined(__i386__)
#if __has_include(<sys/platform/x86.h>)
#include <sys/platform/x86.h>
#else
#include <cpuid.h>
#endif
#endif
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>

#include "private.h"
#include "sys.h"

void *pt_sys_map_aligned(size_t len, size_t align)
{
	char *p = mmap(NULL, len + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	char *aligned = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	if (aligned > p)
		munmap(p, (size_t)(aligned - p));
	munmap(aligned + len, (size_t)(p + align - aligned));
	return aligned;
}

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

ssize_t pt_sys_read_file(const char *path, char *buf, size_t size)
{
	ssize_t n = -1;
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = pt_sys_read(fd, buf, size - 1);
		pt_sys_close(fd);
	}
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

static void pt_sys_timer_fork_child(void);

void pt_sys_fork_child(void)
{
	pt_sys_timer_fork_child();
	pt_pid = (pid_t)syscall(SYS_getpid);
	tid_cache = pt_pid;
}

/* Exported by glibc under this name since 2.2.5; never interposed. */
extern int __sigaction(int, const struct sigaction *, struct sigaction *);

int pt_sys_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	return __sigaction(sig, act, old);
}


/* The kernel's restore-ID mode is the process's: one creation at a time
 * switches it, so that the engine's own calls never see it half-set. */
static pthread_mutex_t ktimer_lock = PTHREAD_MUTEX_INITIALIZER;
static int next_high = INT_MAX; /* the engine's own timers, from the top down */
static bool high_ids;

static void pt_sys_timer_fork_child(void)
{
	pthread_mutex_init(&ktimer_lock, NULL);
}

void pt_sys_timer_ids_high(bool on)
{
	__atomic_store_n(&high_ids, on, __ATOMIC_RELAXED);
}

bool pt_sys_timer_ids_usable(void)
{
	static int usable = -1; /* not asked yet */
	int u = __atomic_load_n(&usable, __ATOMIC_RELAXED);
	if (u < 0) {
		u = syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 2, 0, 0, 0) >= 0;
		__atomic_store_n(&usable, u, __ATOMIC_RELAXED);
	}
	return u;
}

/* Under ktimer_lock.  id < 0: whatever the kernel gives, with the mode off
 * for the call; else that ID, with the mode on for the call. */
static int create_locked(clockid_t clock, struct sigevent *sev, int id, int *kid)
{
	long mode = syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 2, 0, 0, 0);
	long want = id >= 0;

	if (mode >= 0 && mode != want)
		syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, want, 0, 0, 0);
	int k = id;
	long r = syscall(SYS_timer_create, clock, sev, &k);
	int saved = errno;
	if (mode >= 0 && mode != want)
		syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, mode, 0, 0, 0);
	errno = saved;
	if (r != 0)
		return -1;
	*kid = k;
	return 0;
}

int pt_sys_timer_create(clockid_t clock, struct sigevent *sev, int *kid)
{
	int r = -1;

	pthread_mutex_lock(&ktimer_lock);
	if (__atomic_load_n(&high_ids, __ATOMIC_RELAXED) && pt_sys_timer_ids_usable()) {
		/* Out of the way of the engine's IDs, which are low: a timer
		 * handed to the kernel takes its own ID there (handoff.h). */
		for (int tries = 0; tries < 64 && next_high > 0; tries++) {
			r = create_locked(clock, sev, next_high--, kid);
			if (r == 0 || errno != EBUSY)
				break;
		}
	} else {
		r = create_locked(clock, sev, -1, kid);
	}
	int saved = errno;
	pthread_mutex_unlock(&ktimer_lock);
	errno = saved;
	return r;
}

int pt_sys_timer_create_id(clockid_t clock, struct sigevent *sev, int id)
{
	int kid;

	if (id < 0 || !pt_sys_timer_ids_usable()) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&ktimer_lock);
	int r = create_locked(clock, sev, id, &kid);
	int saved = errno;
	pthread_mutex_unlock(&ktimer_lock);
	errno = saved;
	if (r == 0 && kid != id) { /* cannot be: the mode was on */
		syscall(SYS_timer_delete, kid);
		errno = EBUSY;
		return -1;
	}
	return r;
}

bool pt_has_prefetchw;

bool pt_cpu_has(enum pt_cpu_feature f)
{
#if defined(__x86_64__) || defined(__i386__)
#if __has_include(<sys/platform/x86.h>)
	/* What glibc found at its own start: a CPUID instruction costs a
	 * virtual machine an exit to its host (3.6 us each here), and every
	 * program that loads the library would pay for it. */
	switch (f) {
	case PT_CPU_PREFETCHW: return CPU_FEATURE_PRESENT(PREFETCHW);
	case PT_CPU_SSE4_2: return CPU_FEATURE_ACTIVE(SSE4_2);
	}
	return false;
#else
	unsigned a, b, c, d;
	switch (f) {
	case PT_CPU_PREFETCHW:
		return __get_cpuid(0x80000001, &a, &b, &c, &d) && (c >> 8 & 1); /* PRFCHW */
	case PT_CPU_SSE4_2:
		return __get_cpuid(1, &a, &b, &c, &d) && (c >> 20 & 1);
	}
	return false;
#endif
#else
	(void)f;
	return false;
#endif
}

__attribute__((constructor(101))) static void sys_init(void)
{
	pt_pid = (pid_t)syscall(SYS_getpid);
	pt_has_prefetchw = pt_cpu_has(PT_CPU_PREFETCHW);
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
