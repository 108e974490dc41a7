/* SPDX-License-Identifier: MIT */
/*
 * ticker: an ordinary program with three POSIX timers, for trying
 * checkpoint and restore (README).  It knows nothing of ptimers: run as
 * is, its timers are the kernel's; under `ptimers exec`, the engine's.
 *
 *   ticker [--adopt] [--seconds=N]
 *
 * It makes, through libc's prctl(PR_TIMER_CREATE_RESTORE_IDS) and
 * timer_create, the seed's two sparse IDs and one more:
 *   1000000  CLOCK_MONOTONIC, SIGRTMIN, value 1, every second
 *   2000000  CLOCK_REALTIME, SIGRTMIN+1, value 2, at the next whole minute
 *            (TIMER_ABSTIME), then every minute
 *   the next ID  CLOCK_MONOTONIC, SIGRTMIN+2 to the main thread
 *            (SIGEV_THREAD_ID), value 3, every 2.5 s
 * and prints every signal they send: the timer's ID, its value and its
 * overrun count.  With --adopt it makes none and only prints the signals
 * of timers it finds in place (`ptimers restore IMAGE -- ticker --adopt`).
 * Its signals are blocked from the start and taken with sigtimedwait, so a
 * restored timer that fires before main loses nothing.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* From <linux/prctl.h> of Linux 6.15 and later; glibc 2.36's headers lack it,
 * so a program of this age spells it out. */
#ifndef PR_TIMER_CREATE_RESTORE_IDS
#define PR_TIMER_CREATE_RESTORE_IDS 77
#endif

static void die(const char *what)
{
	fprintf(stderr, "ticker: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A timer, with the ID wanted in restore mode.  The engine reads the
 * wanted ID from *timerid; glibc on the kernel hands the kernel a local
 * of its own instead, so on the kernel the system call is made here (for
 * such a timer glibc's timer_t is the kernel's ID). */
static timer_t make(clockid_t clock, struct sigevent *sev, intptr_t want)
{
	timer_t t = (timer_t)want;
	if (want && !dlsym(RTLD_DEFAULT, "ptimer_create")) {
		int id = (int)want;
		if (syscall(SYS_timer_create, clock, sev, &id) != 0)
			die("timer_create");
		return (timer_t)(intptr_t)id;
	}
	if (timer_create(clock, sev, &t) != 0)
		die("timer_create");
	return t;
}

int main(int argc, char **argv)
{
	int adopt = 0;
	long seconds = -1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--adopt")) {
			adopt = 1;
		} else if (!strncmp(argv[i], "--seconds=", 10)) {
			char *end;
			seconds = strtol(argv[i] + 10, &end, 10);
			if (*end || seconds < 0) {
				fprintf(stderr, "ticker: --seconds takes a whole number\n");
				return 2;
			}
		} else {
			fprintf(stderr, "usage: ticker [--adopt] [--seconds=N]\n");
			return !strcmp(argv[i], "--help") ? 0 : 2;
		}
	}
	sigset_t sigs;
	sigemptyset(&sigs);
	for (int k = 0; k < 3; k++)
		sigaddset(&sigs, SIGRTMIN + k);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (!adopt) {
		/* The seed's IDs, asked for as a restorer asks. */
		int restore_ids = prctl(PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) == 0;
		struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN,
					.sigev_value.sival_int = 1 };
		timer_t a = make(CLOCK_MONOTONIC, &sev, 1000000);
		sev.sigev_signo = SIGRTMIN + 1;
		sev.sigev_value.sival_int = 2;
		timer_t b = make(CLOCK_REALTIME, &sev, 2000000);
		if (restore_ids)
			prctl(PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0);
		sev.sigev_notify = SIGEV_THREAD_ID;
		sev.sigev_signo = SIGRTMIN + 2;
		sev.sigev_value.sival_int = 3;
		sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
		timer_t c = make(CLOCK_MONOTONIC, &sev, 0);

		struct itimerspec every_second = { { 1, 0 }, { 1, 0 } };
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		struct itimerspec next_minute = { { 60, 0 }, { now.tv_sec - now.tv_sec % 60 + 60, 0 } };
		struct itimerspec every_2_5 = { { 2, 500000000 }, { 2, 500000000 } };
		if (timer_settime(a, 0, &every_second, NULL) ||
		    timer_settime(b, TIMER_ABSTIME, &next_minute, NULL) ||
		    timer_settime(c, 0, &every_2_5, NULL))
			die("timer_settime");
		printf("ticker %d: timers %ld, %ld, %ld\n", (int)getpid(), (long)(intptr_t)a,
		       (long)(intptr_t)b, (long)(intptr_t)c);
	} else {
		printf("ticker %d: adopting the timers in place\n", (int)getpid());
	}

	struct timespec end;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += seconds;
	for (;;) {
		struct timespec now, wait = { 1, 0 };
		if (seconds >= 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
				return 0;
		}
		siginfo_t si;
		int sig = sigtimedwait(&sigs, &si, &wait);
		if (sig < 0)
			continue;
		printf("ticker %d: timer %d fired (value %d, overrun %d, SIGRTMIN+%d)\n", (int)getpid(),
		       si.si_timerid, si.si_value.sival_int, si.si_overrun, sig - SIGRTMIN);
	}
}
