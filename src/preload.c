/* SPDX-License-Identifier: MIT */
/*
 * The drop-in: LD_PRELOAD=libptimers-preload.so routes libc's timer_*
 * functions and prctl(PR_TIMER_CREATE_RESTORE_IDS, ...) to the engine, so
 * unmodified programs run on user-space timers.  Every other prctl option
 * goes to the kernel untouched.
 *
 * prctl(PR_TIMER_CREATE_RESTORE_IDS) sets the engine's mode and is passed
 * on to the kernel as well.
 *
 * It matches glibc on the kernel, which is what programs see: the same
 * default for a NULL sigevent (SIGALRM, value 0), the same errnos.  Two
 * places where glibc on the kernel has no useful behaviour get a defined
 * one: a NULL timerid is EFAULT (glibc crashes), and in restore mode the
 * wanted ID is read from *timerid (glibc hands the kernel an uninitialised
 * local instead).
 *
 * PTIMERS_IDS=linux|dense picks the ID policy; PTIMERS_MAX_TIMERS caps the
 * number of timers.  A bad value is reported once on stderr and ignored.
 * PTIMERS_RESTORE=FILE restores an image before main (src/autorestore.c).
 * PTIMERS_STATS=1 prints at exit what the program did with the engine
 * (timers created by notify kind, signals sent, SIGEV_THREAD calls).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "autorestore.h"
#include "ptimers.h"

#define PR_TIMER_CREATE_RESTORE_IDS 77

static bool stats_on;
static int stats_fd = -1; /* stderr as it was at start: programs may close theirs */
static unsigned long created[4]; /* signal, thread, thread ID, none */

static void count_create(const struct sigevent *sev)
{
	int kind = sev->sigev_notify == SIGEV_THREAD        ? 1
		   : sev->sigev_notify == SIGEV_THREAD_ID ? 2
		   : sev->sigev_notify == SIGEV_NONE      ? 3
							  : 0;
	__atomic_fetch_add(&created[kind], 1, __ATOMIC_RELAXED);
}

int timer_create(clockid_t clockid, struct sigevent *sevp, timer_t *timerid)
{
	/* glibc passes its own default for a NULL sigevent: SIGALRM with a
	 * zero value (the kernel's own default would put the ID there). */
	struct sigevent glibc_default = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM };
	struct sigevent *sev = sevp ? sevp : &glibc_default;

	int r = ptimer_create(clockid, sev, timerid);
	if (r == 0)
		count_create(sev);
	return r;
}

int timer_settime(timer_t timerid, int flags, const struct itimerspec *new_value,
		  struct itimerspec *old_value)
{
	return ptimer_settime(timerid, flags, new_value, old_value);
}

int timer_gettime(timer_t timerid, struct itimerspec *curr_value)
{
	return ptimer_gettime(timerid, curr_value);
}

int timer_getoverrun(timer_t timerid)
{
	return ptimer_getoverrun(timerid);
}

int timer_delete(timer_t timerid)
{
	return ptimer_delete(timerid);
}

int prctl(int option, ...)
{
	va_list ap;
	unsigned long a2, a3, a4, a5;

	/* glibc's prctl reads four more arguments whatever the option; so do
	 * we, and hand them on unchanged. */
	va_start(ap, option);
	a2 = va_arg(ap, unsigned long);
	a3 = va_arg(ap, unsigned long);
	a4 = va_arg(ap, unsigned long);
	a5 = va_arg(ap, unsigned long);
	va_end(ap);
	if (option == PR_TIMER_CREATE_RESTORE_IDS) {
		int r = ptimer_restore_ids(a2, a3, a4, a5);
		/* The kernel's mode too, where the kernel has it: a program that
		 * turns it on through libc and then creates a timer with the
		 * raw system call (as a restorer does) gets what the kernel
		 * gives.  The engine's own kernel timers step around it. */
		if (r == 0)
			(void)syscall(SYS_prctl, option, a2, a3, a4, a5);
		return r;
	}
	return (int)syscall(SYS_prctl, option, a2, a3, a4, a5);
}

/* One line to fd, cut to the buffer if snprintf() had more. */
static void put(int fd, const char *msg, int n, size_t size)
{
	if (n > 0)
		(void)!syscall(SYS_write, fd, msg, (size_t)n < size ? (size_t)n : size - 1);
}

static void warn_env(const char *name, const char *value, const char *expect)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "ptimers: ignoring %s=%s (expected %s)\n", name, value,
			 expect);
	put(STDERR_FILENO, msg, n, sizeof(msg));
}

__attribute__((destructor)) static void preload_fini(void)
{
	if (!stats_on)
		return;
	char msg[320], name[64] = "?";
	int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = syscall(SYS_read, fd, name, sizeof(name) - 1);
		name[n > 0 ? n - 1 : 0] = '\0';
		syscall(SYS_close, fd);
	}
	struct ptimer_stats st = { 0 };
	ptimer_get_stats(&st, sizeof(st));
	int n = snprintf(msg, sizeof(msg),
			 "ptimers: %s[%d]: %lu timers on the engine (signal %lu, thread %lu, "
			 "thread-id %lu, none %lu); %llu signals sent, %llu notify threads started\n",
			 name, (int)getpid(),
			 created[0] + created[1] + created[2] + created[3], created[0], created[1],
			 created[2], created[3], (unsigned long long)st.signals_sent,
			 (unsigned long long)st.threads_started);
	put(stats_fd, msg, n, sizeof(msg));
}

__attribute__((constructor)) static void preload_init(void)
{
	const char *stats = getenv("PTIMERS_STATS");
	if (stats && *stats && strcmp(stats, "0") != 0) {
		stats_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
		stats_on = stats_fd >= 0;
	}
	const char *ids = getenv("PTIMERS_IDS");
	if (ids && *ids) {
		if (strcmp(ids, "linux") == 0)
			ptimer_set_id_policy(PTIMER_IDS_LINUX);
		else if (strcmp(ids, "dense") == 0)
			ptimer_set_id_policy(PTIMER_IDS_DENSE);
		else
			warn_env("PTIMERS_IDS", ids, "linux or dense");
	}
	const char *max = getenv("PTIMERS_MAX_TIMERS");
	if (max && *max) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(max, &end, 10);
		if (errno || *end || max[0] == '-')
			warn_env("PTIMERS_MAX_TIMERS", max, "a whole number, 0 for no cap");
		else
			ptimer_set_max_timers((size_t)v);
	}
	pt_autorestore(false); /* `ptimers restore`: the timers before main */
}
