/* SPDX-License-Identifier: MIT */
/*
 * Engine against kernel, per operation, in one run on one machine.  Each
 * figure is the best of several rounds (the least disturbed by the other
 * load of the machine); ratio = kernel / engine, so higher favours the
 * engine.  Timers use SIGEV_SIGNAL with a signal that never comes: they are
 * armed seconds ahead and never fire.
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

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		if (a->create(CLOCK_MONOTONIC, &sev, &t) != 0 || a->del(t) != 0)
			return -1;
	}
	*ns = (double)(now_ns() - t0) / (double)n;
	return 0;
}

static int with_timer(const struct api *a, long n, double *ns, int which)
{
	struct sigevent sev = bench_sev();
	timer_t t;
	if (a->create(CLOCK_MONOTONIC, &sev, &t) != 0)
		return -1;
	struct itimerspec its = { .it_value = { 10, 0 } }, cur;
	int err = 0;
	uint64_t t0 = now_ns();
	for (long i = 0; i < n && !err; i++) {
		if (which == 0) {
			its.it_value.tv_nsec = i & 1023; /* a new expiry every time */
			err = a->settime(t, 0, &its, NULL);
		} else {
			err = a->gettime(t, &cur);
		}
	}
	*ns = (double)(now_ns() - t0) / (double)n;
	a->del(t);
	return err ? -1 : 0;
}

static int op_settime(const struct api *a, long n, double *ns) { return with_timer(a, n, ns, 0); }
static int op_gettime(const struct api *a, long n, double *ns) { return with_timer(a, n, ns, 1); }

struct bench {
	const char *name;
	int (*fn)(const struct api *, long, double *);
};

static const struct bench benches[] = {
	{ "create_delete", op_create_delete },
	{ "settime", op_settime },
	{ "gettime", op_gettime },
};

/* Best of the rounds for each side, the two sides taking turns, so that
 * a change in the machine's speed during the run touches both alike. */
static int best_of(const struct bench *b, const struct bench_opts *o, double *eng, double *ker)
{
	for (int r = 0; r < o->rounds; r++) {
		double e, k;
		if (b->fn(&engine_api, o->iterations, &e) != 0 || b->fn(&kernel_api, o->iterations, &k) != 0)
			return -1;
		if (r == 0 || e < *eng)
			*eng = e;
		if (r == 0 || k < *ker)
			*ker = k;
	}
	return 0;
}

int bench_run(const struct bench_opts *o, FILE *out)
{
	size_t nb = sizeof(benches) / sizeof(benches[0]);
	double eng[sizeof(benches) / sizeof(benches[0])], ker[sizeof(benches) / sizeof(benches[0])];

	/* Block the signal so a stray expiry cannot kill the run. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	for (size_t i = 0; i < nb; i++) {
		if (best_of(&benches[i], o, &eng[i], &ker[i]) != 0) {
			fprintf(stderr, "ptimers bench: %s failed: %s\n", benches[i].name, strerror(errno));
			return -1;
		}
	}
	if (o->json) {
		fprintf(out, "[");
		for (size_t i = 0; i < nb; i++)
			fprintf(out, "%s\n  {\"name\": \"%s\", \"engine_ns\": %.1f, \"kernel_ns\": %.1f, \"ratio\": %.2f}",
				i ? "," : "", benches[i].name, eng[i], ker[i], ker[i] / eng[i]);
		fprintf(out, "\n]\n");
	} else {
		fprintf(out, "%-16s %12s %12s %8s\n", "operation", "engine ns", "kernel ns", "ratio");
		for (size_t i = 0; i < nb; i++)
			fprintf(out, "%-16s %12.1f %12.1f %8.2f\n", benches[i].name, eng[i], ker[i],
				ker[i] / eng[i]);
		fprintf(out, "(ratio = kernel / engine; best of %d rounds of %ld operations)\n", o->rounds,
			o->iterations);
	}
	return 0;
}
