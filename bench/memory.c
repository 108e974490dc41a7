/* SPDX-License-Identifier: MIT */
/*
 * Memory per live timer at ten million timers (each armed an hour or more
 * ahead), by the engine's own count and by the process's resident size,
 * and what is left of it once every timer is deleted.  The target is 128
 * bytes a timer; the kernel's own timers cost it about 400 bytes of slab
 * each (k_itimer and its sigqueue), and it could not hold ten million here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "ptimers.h"

static long resident_bytes(void)
{
	long size = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &size, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * sysconf(_SC_PAGESIZE);
}

static uint64_t engine_bytes(void)
{
	struct ptimer_stats st;
	ptimer_get_stats(&st, sizeof(st));
	return st.bytes;
}

int bench_memory(const struct bench_opts *o, struct bench_report *r)
{
	long n = o->timers;
	timer_t *t = malloc((size_t)n * sizeof(*t));
	if (!t) {
		fprintf(stderr, "ptimers bench: memory: out of memory for %ld IDs\n", n);
		return -1;
	}
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGRTMIN;
	uint64_t b0 = engine_bytes();
	long r0 = resident_bytes() + n * (long)sizeof(*t); /* the ID array is the bench's */
	long made = 0;
	int err = 0;
	for (; made < n; made++) {
		struct itimerspec its = { .it_value = { 3600 + made % 3600, made % 1000000000 } };
		if (ptimer_create(CLOCK_MONOTONIC, &sev, &t[made]) != 0 ||
		    ptimer_settime(t[made], 0, &its, NULL) != 0) {
			err = errno;
			break;
		}
	}
	/* Let the dispatcher take every arming into its queues. */
	for (int i = 0; i < 100; i++) {
		struct timespec nap = { 0, 20000000 };
		nanosleep(&nap, NULL);
	}
	double per_engine = (double)(engine_bytes() - b0) / (double)made;
	double per_rss = (double)(resident_bytes() - r0) / (double)made;
	for (long i = 0; i < made; i++)
		ptimer_delete(t[i]);
	free(t);
	/* Chunks go back after a grace period: wait for it (5 s at most). */
	uint64_t left = engine_bytes();
	for (int i = 0; i < 250 && left > b0 + (engine_bytes() - b0) / 10; i++) {
		struct timespec nap = { 0, 20000000 };
		nanosleep(&nap, NULL);
		left = engine_bytes();
	}
	if (err) {
		fprintf(stderr, "ptimers bench: memory: %ld of %ld timers made: %s\n", made, n, strerror(err));
		return -1;
	}
	char name[48], count[24];
	if (n % 1000000 == 0)
		snprintf(count, sizeof(count), "%ldM", n / 1000000);
	else if (n % 1000 == 0)
		snprintf(count, sizeof(count), "%ldk", n / 1000);
	else
		snprintf(count, sizeof(count), "%ld", n);
	snprintf(name, sizeof(name), "memory_%s_timers", count);
	bench_add(r, name, "B/timer", per_engine, 128, "target", false, "the engine's count: objects, IDs, queues");
	snprintf(name, sizeof(name), "memory_%s_timers_rss", count);
	bench_add(r, name, "B/timer", per_rss, 128, "target", false, "resident size growth");
	/* Chunks an earlier group left may go back meanwhile too: below the
	 * start is nothing held. */
	bench_add(r, "memory_left_after_delete", "MB", left > b0 ? (double)(left - b0) / 1e6 : 0,
		  per_engine * (double)made / 1e6, "held", false, "what the engine holds once all are deleted");
	return 0;
}
