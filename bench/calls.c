/* SPDX-License-Identifier: MIT */
/*
 * Per-call cost, engine against kernel.  Each figure is the best of
 * several rounds (the least disturbed by the machine's other load), the
 * engine's and the kernel's rounds taking turns so that a drift of the
 * machine's speed touches both alike.  Timers use SIGEV_SIGNAL with a
 * signal that never comes: they are armed seconds ahead and never fire.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "ptimers.h"

struct api {
	int (*create)(clockid_t, struct sigevent *, timer_t *);
	int (*settime)(timer_t, int, const struct itimerspec *, struct itimerspec *);
	int (*gettime)(timer_t, struct itimerspec *);
	int (*del)(timer_t);
};

static const struct api kernel_api = { timer_create, timer_settime, timer_gettime, timer_delete };
static const struct api engine_api = { ptimer_create, ptimer_settime, ptimer_gettime, ptimer_delete };

static struct sigevent bench_sev(void)
{
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGRTMIN;
	return sev;
}

static int op_create_delete(const struct api *a, long n, double *ns)
{
	struct sigevent sev = bench_sev();
	timer_t t;
	int64_t t0 = bench_now();
	for (long i = 0; i < n; i++) {
		if (a->create(CLOCK_MONOTONIC, &sev, &t) != 0 || a->del(t) != 0)
			return -1;
	}
	*ns = (double)(bench_now() - t0) / (double)n;
	return 0;
}

enum { SETTIME, ARM_DISARM, GETTIME };

static int with_timer(const struct api *a, long n, double *ns, int which)
{
	struct sigevent sev = bench_sev();
	timer_t t;
	if (a->create(CLOCK_MONOTONIC, &sev, &t) != 0)
		return -1;
	struct itimerspec its = { .it_value = { 10, 0 } }, off = { 0 }, cur;
	int err = a->settime(t, 0, &its, NULL);
	int64_t t0 = bench_now();
	for (long i = 0; i < n && !err; i++) {
		switch (which) {
		case SETTIME:
			its.it_value.tv_nsec = i & 1023; /* a new expiry every time */
			err = a->settime(t, 0, &its, NULL);
			break;
		case ARM_DISARM:
			err = a->settime(t, 0, &its, NULL) || a->settime(t, 0, &off, NULL);
			break;
		default:
			err = a->gettime(t, &cur);
		}
	}
	*ns = (double)(bench_now() - t0) / (double)n;
	a->del(t);
	return err ? -1 : 0;
}

static int op_settime(const struct api *a, long n, double *ns) { return with_timer(a, n, ns, SETTIME); }
static int op_arm_disarm(const struct api *a, long n, double *ns) { return with_timer(a, n, ns, ARM_DISARM); }
static int op_gettime(const struct api *a, long n, double *ns) { return with_timer(a, n, ns, GETTIME); }

static const struct {
	const char *name;
	int (*fn)(const struct api *, long, double *);
} ops[] = {
	{ "create_delete", op_create_delete },
	{ "arm_disarm", op_arm_disarm },
	{ "settime", op_settime },
	{ "gettime", op_gettime },
};

int bench_calls(const struct bench_opts *o, struct bench_report *r)
{
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		double eng = 0, ker = 0;
		for (int round = 0; round < o->rounds; round++) {
			double e, k;
			if (ops[i].fn(&engine_api, o->iterations, &e) != 0 ||
			    ops[i].fn(&kernel_api, o->iterations, &k) != 0) {
				fprintf(stderr, "ptimers bench: %s failed: %s\n", ops[i].name, strerror(errno));
				return -1;
			}
			if (round == 0 || e < eng)
				eng = e;
			if (round == 0 || k < ker)
				ker = k;
		}
		/* The engine's cost in clock reads: a relative arm pays one
		 * at least, the floor of any such call. */
		char note[96] = "";
		if (bench_ref.clock_ns > 0)
			snprintf(note, sizeof(note), "engine: %.1f clock reads", eng / bench_ref.clock_ns);
		bench_add(r, ops[i].name, "ns/call", eng, ker, "kernel", false, note);
	}
	return 0;
}
