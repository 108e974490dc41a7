/* SPDX-License-Identifier: MIT */
/* Under `ptimers exec`: an engine timer notifying by signal, one by thread
 * (SIGEV_THREAD), and a kernel timer made with the raw system call, as a
 * program may have all three.  Says "ready", then waits (30 s at most). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void fn(union sigval v)
{
	(void)v;
}

int main(void)
{
	struct sigevent sig = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN };
	struct sigevent thr = { .sigev_notify = SIGEV_THREAD, .sigev_notify_function = fn };
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	struct itimerspec far = { .it_value = { 3600, 0 } };
	timer_t a, b;
	int k;
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGRTMIN);
	sigprocmask(SIG_BLOCK, &s, NULL);
	if (timer_create(CLOCK_MONOTONIC, &sig, &a) || timer_settime(a, 0, &far, NULL) ||
	    timer_create(CLOCK_MONOTONIC, &thr, &b) || timer_settime(b, 0, &far, NULL) ||
	    syscall(SYS_timer_create, CLOCK_MONOTONIC, &none, &k)) {
		perror("mixed_timers");
		return 1;
	}
	puts("ready");
	fflush(stdout);
	sleep(30);
	return 0;
}
