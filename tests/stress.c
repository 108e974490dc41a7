/* SPDX-License-Identifier: MIT */
/*
 * Stress: four threads create, arm (short one-shots and periodics that
 * really fire), re-arm and delete timers while a reader walks the readout
 * and a drainer takes the signals with sigtimedwait().  Bounded in
 * time (PTIMERS_STRESS_SECONDS, default 3).  Run under TSan and ASan+UBSan
 * in CI.  It checks that the readout never shows a half-built or freed
 * timer (every field is one a creator wrote) and that everything is gone
 * at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ptimers.h"

#define WORKERS 4
#define MAGIC 0x5eed

static atomic_bool stop;
static atomic_long created, fired, readouts, bad;

static void fail(const char *what)
{
	fprintf(stderr, "stress: %s\n", what);
	atomic_fetch_add(&bad, 1);
}

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	timer_t mine[64];
	int n = 0;

	while (!atomic_load(&stop)) {
		int op = rand_r(&seed) % 4;
		if (op < 2 && n < 64) {
			struct sigevent sev;
			memset(&sev, 0, sizeof(sev));
			sev.sigev_notify = rand_r(&seed) % 5 ? SIGEV_SIGNAL : SIGEV_NONE;
			sev.sigev_signo = SIGRTMIN;
			sev.sigev_value.sival_int = MAGIC;
			clockid_t clk = (clockid_t[]){ CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME,
						       CLOCK_TAI }[rand_r(&seed) % 4];
			if (ptimer_create(clk, &sev, &mine[n]) != 0) {
				fail("create");
				continue;
			}
			atomic_fetch_add(&created, 1);
			n++;
		} else if (op == 2 && n > 0) {
			struct itimerspec its = { .it_value = { 0, (rand_r(&seed) % 2000 + 1) * 1000 } };
			if (rand_r(&seed) % 3 == 0)
				its.it_interval.tv_nsec = 500000;
			if (ptimer_settime(mine[rand_r(&seed) % n], 0, &its, NULL) != 0)
				fail("settime");
		} else if (n > 0) {
			int i = rand_r(&seed) % n;
			struct itimerspec cur;
			if (ptimer_gettime(mine[i], &cur) != 0 || ptimer_getoverrun(mine[i]) < 0)
				fail("gettime");
			if (ptimer_delete(mine[i]) != 0)
				fail("delete");
			mine[i] = mine[--n];
		}
	}
	while (n > 0)
		if (ptimer_delete(mine[--n]) != 0)
			fail("final delete");
	return NULL;
}

static void *reader(void *arg)
{
	(void)arg;
	struct ptimer_info info[32];
	FILE *devnull = fopen("/dev/null", "w");

	while (!atomic_load(&stop)) {
		int from = 0, n;
		while ((n = ptimer_list(from, info, sizeof(struct ptimer_info), 32)) > 0) {
			for (int i = 0; i < n; i++) {
				const struct ptimer_info *p = &info[i];
				if (p->value.sival_int != MAGIC || p->signo != SIGRTMIN ||
				    (p->notify != SIGEV_SIGNAL && p->notify != SIGEV_NONE) ||
				    p->setting.it_value.tv_nsec < 0 ||
				    p->setting.it_value.tv_nsec >= 1000000000 || p->id < from)
					fail("readout saw a timer no creator wrote");
			}
			from = info[n - 1].id + 1;
		}
		if (ptimer_readout(devnull, PTIMER_READOUT_EXTENDED) < 0)
			fail("readout");
		atomic_fetch_add(&readouts, 1);
	}
	fclose(devnull);
	return NULL;
}

static void *drainer(void *arg)
{
	(void)arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN);
	struct timespec tick = { 0, 10000000 };
	while (!atomic_load(&stop)) {
		siginfo_t si;
		if (sigtimedwait(&set, &si, &tick) == SIGRTMIN) {
			/* The engine saw the delivery: the marker is gone and
			 * stale signals were never returned. */
			if (si.si_code != SI_TIMER || si.si_value.sival_int != MAGIC || si.si_errno)
				fail("foreign signal");
			else
				atomic_fetch_add(&fired, 1);
		}
	}
	return NULL;
}

int main(void)
{
	/* The hooks see the drainer's sigtimedwait (and stay linked). */
	if (!ptimer_hooks_linked())
		return 1;
	const char *env = getenv("PTIMERS_STRESS_SECONDS");
	int seconds = env ? atoi(env) : 3;
	if (seconds <= 0)
		seconds = 3;

	/* Every thread, the engine's included, starts with SIGRTMIN blocked. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	pthread_t th[WORKERS + 2];
	for (int i = 0; i < WORKERS; i++)
		pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1));
	pthread_create(&th[WORKERS], NULL, reader, NULL);
	pthread_create(&th[WORKERS + 1], NULL, drainer, NULL);

	struct timespec run = { seconds, 0 };
	while (nanosleep(&run, &run) != 0 && errno == EINTR)
		;
	/* Slow schedulers (valgrind) may not have run the reader or the
	 * drainer yet: wait for both to have done something, 30 s at most. */
	for (int i = 0; i < 3000 && (atomic_load(&readouts) == 0 || atomic_load(&fired) == 0); i++) {
		struct timespec tick = { 0, 10000000 };
		nanosleep(&tick, NULL);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < WORKERS + 2; i++)
		pthread_join(th[i], NULL);

	struct ptimer_info left[1];
	if (ptimer_list(0, left, sizeof(struct ptimer_info), 1) != 0)
		fail("timers left after every thread deleted its own");
	printf("stress: %ld created, %ld signals acted on, %ld readouts, %ld failures in %d s\n",
	       atomic_load(&created), atomic_load(&fired), atomic_load(&readouts), atomic_load(&bad),
	       seconds);
	if (atomic_load(&created) == 0 || atomic_load(&fired) == 0 || atomic_load(&readouts) == 0)
		fail("did not exercise create, expiry and readout");
	return atomic_load(&bad) ? 1 : 0;
}
