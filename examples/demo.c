/* SPDX-License-Identifier: MIT */
/*
 * demo: an ordinary program that uses libc's POSIX timers, six of them, of
 * every notification kind and on five clocks (a CPU clock among them),
 * prints each expiry as it comes, then the timer readout.
 *
 * It knows nothing of ptimers: run as is, it uses the kernel's timers and
 * reads /proc/self/timers; run under `ptimers exec`, the same calls land in
 * the engine and the readout comes from the engine (found with dlsym).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int thread_pipe[2];

static void on_thread(union sigval v)
{
	char c = (char)v.sival_int;
	(void)!write(thread_pipe[1], &c, 1);
}

static void die(const char *what)
{
	fprintf(stderr, "demo: %s: %s\n", what, strerror(errno));
	exit(1);
}

static timer_t make(const char *label, clockid_t clk, struct sigevent *sev, int flags, long first_ms,
		    long every_ms)
{
	timer_t t;
	if (timer_create(clk, sev, &t) != 0)
		die(label);
	struct itimerspec its = {
		.it_value = { first_ms / 1000, (first_ms % 1000) * 1000000 },
		.it_interval = { every_ms / 1000, (every_ms % 1000) * 1000000 },
	};
	if (flags & TIMER_ABSTIME) {
		struct timespec now;
		clock_gettime(clk, &now);
		its.it_value.tv_sec += now.tv_sec;
		its.it_value.tv_nsec += now.tv_nsec;
		if (its.it_value.tv_nsec >= 1000000000) {
			its.it_value.tv_sec++;
			its.it_value.tv_nsec -= 1000000000;
		}
	}
	if (timer_settime(t, flags, &its, NULL) != 0)
		die(label);
	printf("armed %-42s id %ld\n", label, (long)(intptr_t)t);
	return t;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	int (*readout)(FILE *, unsigned) = (int (*)(FILE *, unsigned))dlsym(RTLD_DEFAULT, "ptimer_readout");
	printf("timers from: %s\n", readout ? "ptimers engine (drop-in)" : "the kernel");

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN);
	sigaddset(&set, SIGRTMIN + 1);
	sigaddset(&set, SIGRTMIN + 2);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (pipe(thread_pipe) != 0)
		die("pipe");

	struct sigevent periodic = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN };
	periodic.sigev_value.sival_int = 1;
	struct sigevent to_me = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGRTMIN + 1 };
	to_me._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	to_me.sigev_value.sival_int = 3;
	struct sigevent in_thread = { .sigev_notify = SIGEV_THREAD, .sigev_notify_function = on_thread };
	in_thread.sigev_value.sival_int = 2;
	struct sigevent quiet = { .sigev_notify = SIGEV_NONE };
	struct sigevent on_cpu = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 2 };
	on_cpu.sigev_value.sival_int = 4;

	make("SIGEV_SIGNAL periodic 40ms MONOTONIC", CLOCK_MONOTONIC, &periodic, 0, 40, 40);
	make("SIGEV_THREAD one-shot 100ms REALTIME", CLOCK_REALTIME, &in_thread, 0, 100, 0);
	make("SIGEV_THREAD_ID absolute BOOTTIME +70ms", CLOCK_BOOTTIME, &to_me, TIMER_ABSTIME, 70, 0);
	make("NULL sigevent (SIGALRM) 130ms TAI", CLOCK_TAI, NULL, 0, 130, 0);
	timer_t q = make("SIGEV_NONE 10s MONOTONIC", CLOCK_MONOTONIC, &quiet, 0, 10000, 0);
	make("SIGEV_SIGNAL 20ms of this thread's CPU", CLOCK_THREAD_CPUTIME_ID, &on_cpu, 0, 20, 0);

	/* Some work, so that the CPU clock moves: 30 ms of this thread's CPU. */
	struct timespec cpu0, cpu;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
	do
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
	while ((cpu.tv_sec - cpu0.tv_sec) * 1000000000L + cpu.tv_nsec - cpu0.tv_nsec < 30000000);

	/* Collect expiries for 200 ms. */
	struct timespec end;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_nsec += 200000000;
	if (end.tv_nsec >= 1000000000) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000;
	}
	int periodic_hits = 0, others = 0;
	for (;;) {
		struct timespec now, left;
		clock_gettime(CLOCK_MONOTONIC, &now);
		left.tv_sec = end.tv_sec - now.tv_sec;
		left.tv_nsec = end.tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0) {
			left.tv_sec--;
			left.tv_nsec += 1000000000;
		}
		if (left.tv_sec < 0)
			break;
		siginfo_t si;
		int sig = sigtimedwait(&set, &si, &left);
		if (sig < 0) {
			if (errno == EAGAIN)
				break;
			if (errno == EINTR)
				continue;
			die("sigtimedwait");
		}
		if (sig == SIGRTMIN)
			periodic_hits++;
		else
			others++;
		printf("fired: signal %-2d si_code %s timer %d value %d overrun %d\n", sig,
		       si.si_code == SI_TIMER ? "SI_TIMER" : "other", si.si_timerid, si.si_value.sival_int,
		       si.si_overrun);
	}
	char c;
	struct timespec tiny = { 0, 1000000 };
	while (nanosleep(&tiny, NULL) == 0 && read(thread_pipe[0], &c, 1) == 1) {
		printf("fired: SIGEV_THREAD function ran with value %d\n", c);
		others++;
		break;
	}
	struct itimerspec cur;
	timer_gettime(q, &cur);
	printf("SIGEV_NONE timer: %ld.%03ld s remaining\n", (long)cur.it_value.tv_sec,
	       cur.it_value.tv_nsec / 1000000);
	printf("periodic signals: %d, other expiries: %d\n\n", periodic_hits, others);

	printf("readout:\n");
	if (readout) {
		if (readout(stdout, 1) < 0)
			die("ptimer_readout");
	} else {
		FILE *f = fopen("/proc/self/timers", "r");
		if (!f)
			die("/proc/self/timers");
		char line[256];
		while (fgets(line, sizeof(line), f))
			fputs(line, stdout);
		fclose(f);
	}
	return periodic_hits >= 2 && others >= 3 ? 0 : 1;
}
