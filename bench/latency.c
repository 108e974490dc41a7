/* SPDX-License-Identifier: MIT */
/*
 * Lateness of a 1 ms periodic timer: the time from each period's expiry to
 * the moment a thread waiting in sigwaitinfo() has the signal, engine
 * against kernel, alone and with 10,000 other timers armed far ahead.
 * Percentiles over 2,000 periods after 50 of warm-up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"
#include "ptimers.h"

#define PERIOD 1000000LL
#define WARMUP 50
#define SAMPLES 2000
#define OTHERS 10000

struct api {
	int (*create)(clockid_t, struct sigevent *, timer_t *);
	int (*settime)(timer_t, int, const struct itimerspec *, struct itimerspec *);
	int (*del)(timer_t);
};
static const struct api kernel_api = { timer_create, timer_settime, timer_delete };
static const struct api engine_api = { ptimer_create, ptimer_settime, ptimer_delete };

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* p50 and p99 lateness in microseconds, and the CPU the process used
 * meanwhile, as a share of one CPU.  0, or -1 (errno). */
static int measure(const struct api *a, int others, double *p50, double *p99, double *cpu)
{
	int sig = SIGRTMIN + 1;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGRTMIN; /* the others': never comes */
	static timer_t other[OTHERS];
	int made = 0, err = 0;
	for (; made < others; made++) {
		struct itimerspec far = { .it_value = { 3600 + made % 3600, (long)made * 7919 % 1000000000 } };
		if (a->create(CLOCK_MONOTONIC, &sev, &other[made]) != 0 ||
		    a->settime(other[made], 0, &far, NULL) != 0) {
			err = errno;
			break;
		}
	}
	timer_t t;
	sev.sigev_signo = sig;
	if (err || a->create(CLOCK_MONOTONIC, &sev, &t) != 0) {
		err = err ? err : errno;
		goto out;
	}
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t start = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec + PERIOD;
	struct itimerspec its = { .it_value = { start / 1000000000, start % 1000000000 },
				  .it_interval = { 0, PERIOD } };
	static int64_t late[SAMPLES];
	int n = 0;
	int64_t period = 0;
	if (a->settime(t, TIMER_ABSTIME, &its, NULL) != 0) {
		err = errno;
		goto out_t;
	}
	double c0 = bench_cpu_seconds();
	int64_t w0 = bench_now();
	while (n < SAMPLES) {
		siginfo_t si;
		struct timespec limit = { 1, 0 };
		if (sigtimedwait(&set, &si, &limit) != sig) {
			err = errno ? errno : EIO;
			break;
		}
		int64_t got = bench_now();
		period += 1 + si.si_overrun;
		int64_t due = start + (period - 1) * PERIOD;
		if (period > WARMUP)
			late[n++] = got - due;
	}
	*cpu = (bench_cpu_seconds() - c0) / ((double)(bench_now() - w0) / 1e9);
out_t:
	a->del(t);
out:
	for (int i = 0; i < made; i++)
		a->del(other[i]);
	while (sigtimedwait(&set, NULL, &(struct timespec){ 0, 0 }) > 0)
		;
	if (err) {
		errno = err;
		return -1;
	}
	qsort(late, SAMPLES, sizeof(late[0]), cmp);
	*p50 = (double)late[SAMPLES / 2] / 1000;
	*p99 = (double)late[SAMPLES * 99 / 100] / 1000;
	return 0;
}

int bench_latency(const struct bench_opts *o, struct bench_report *r)
{
	(void)o;
	for (int others = 0; others <= OTHERS; others += OTHERS) {
		double e50, e99, k50, k99, ecpu, kcpu;
		if (measure(&engine_api, others, &e50, &e99, &ecpu) != 0 ||
		    measure(&kernel_api, others, &k50, &k99, &kcpu) != 0) {
			fprintf(stderr, "ptimers bench: latency with %d other timers: %s%s\n", others,
				strerror(errno),
				errno == EAGAIN ? " (the user's RLIMIT_SIGPENDING is used up by others)" : "");
			return -1;
		}
		char name[48];
		snprintf(name, sizeof(name), "late_1ms_p50%s", others ? "_10k_armed" : "");
		bench_add(r, name, "us", e50, k50, "kernel", false, "");
		snprintf(name, sizeof(name), "late_1ms_p99%s", others ? "_10k_armed" : "");
		bench_add(r, name, "us", e99, k99, "kernel", false, "target: within 1.2x");
		if (!others)
			bench_add(r, "late_1ms_cpu", "% of a CPU", ecpu * 100, kcpu * 100, "kernel", false,
				  "the whole process; the engine's dispatcher spins to the deadline");
	}
	return 0;
}
