/* SPDX-License-Identifier: MIT */
/*
 * hot_timer: an ordinary program (nothing of ptimers in it) with one 2 ms
 * periodic timer made with libc's timer_create, taken 100 times with
 * sigwaitinfo.  It checks every signal is its timer's (ID, value, code)
 * and prints whether /proc/self/timers has a kernel timer with that ID
 * and signal, and the CPU the process used: tests/dropin.sh runs it
 * natively and under `ptimers exec`, where the engine hands such a timer
 * to a kernel timer of its ID.  Exit 0, or 1 naming what was wrong.
 * With --hold it prints "ready" after its checks and keeps the timer
 * (taking its signals) until its standard input ends, for `ptimers ls`.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool kernel_has(int id, int signo)
{
	FILE *f = fopen("/proc/self/timers", "r");
	char line[256];
	bool found = false;
	int cur = -1;
	while (f && fgets(line, sizeof(line), f)) {
		int v, s;
		if (sscanf(line, "ID: %d", &v) == 1)
			cur = v;
		else if (sscanf(line, "signal: %d/", &s) == 1 && cur == id && s == signo)
			found = true;
	}
	if (f)
		fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	bool hold = argc > 1 && strcmp(argv[1], "--hold") == 0;
	int sig = SIGRTMIN + 3;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_BLOCK, &set, NULL);
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = sig;
	sev.sigev_value.sival_int = 4242;
	timer_t t;
	if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0) {
		perror("timer_create");
		return 1;
	}
	int id = (int)(intptr_t)t;
	struct itimerspec its = { { 0, 2000000 }, { 0, 2000000 } };
	timer_settime(t, 0, &its, NULL);
	for (int i = 0; i < 100; i++) {
		siginfo_t si;
		if (sigwaitinfo(&set, &si) != sig || si.si_code != SI_TIMER || si.si_timerid != id ||
		    si.si_value.sival_int != 4242 || si.si_errno != 0) {
			printf("signal %d: not the timer's (code %d, timer %d, value %d, errno %d)\n", i,
			       si.si_code, si.si_timerid, si.si_value.sival_int, si.si_errno);
			return 1;
		}
	}
	printf("kernel timer with its ID: %s\n", kernel_has(id, sig) ? "yes" : "no");
	if (hold) {
		printf("ready\n");
		fflush(stdout);
		char c;
		while (read(0, &c, 1) > 0)
			;
	}
	timer_delete(t);
	if (kernel_has(id, sig)) {
		printf("the kernel timer outlived timer_delete\n");
		return 1;
	}
	return 0;
}
