/* SPDX-License-Identifier: MIT */
/* A program with one timer through libc: says that its main ran and
 * whether the timer fired.  Built statically too (tests/hostile.sh). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int main(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR1;
	timer_t t;
	if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0) {
		perror("timer_create");
		return 1;
	}
	struct itimerspec its = { .it_value = { 0, 10000000 } };
	timer_settime(t, 0, &its, NULL);
	struct timespec limit = { 5, 0 };
	int sig = sigtimedwait(&set, NULL, &limit);
	printf("main ran, the timer %s\n", sig == SIGUSR1 ? "fired" : "did not fire");
	return sig == SIGUSR1 ? 0 : 1;
}
