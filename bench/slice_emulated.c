/* SPDX-License-Identifier: MIT */
/*
 * build/bench/slice-emulated: time-slice extension against the stand-in
 * kernel of the tests (tests/emu), where this kernel lacks it.  Built for
 * measuring, never installed: it links the engine's test build, which
 * has the stand-in's entry points.
 *
 *  - begin+end on the enabled path, on a stand-in rseq area with no grant
 *    (what a section costs where the kernel has the extension), against
 *    the no-op path;
 *  - a contended spinlock under emulated preemption: two threads take one
 *    lock around a short section while a scheduler thread interrupts them
 *    at random (every 200 us on average, each in turn); an interrupted
 *    thread is taken off the CPU for 50 us, unless it asked for an
 *    extension and got it (then it gives the CPU back when it unlocks).
 *    With and without the extension: lock acquisitions per second and the
 *    99th percentile of the time the lock was held.
 *
 *   slice-emulated [--json] [--seconds=S] [--iterations=N] [--rounds=R]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "emu/slice_emu.h"
#include "private.h"
#include "ptimers/slice.h"

/* ---- the contended lock ---- */

#define SAMPLES (1 << 22)
#define HOLD_NS 10000  /* inside the lock */
#define OUTSIDE_NS 2000 /* between two holds */
#define PERIOD_NS 200000 /* between two interrupts, on average */
struct worker {
	struct emu_thread emu; /* first: 32-aligned */
	bool extension;
	uint64_t taken;
	uint32_t *hold_ns; /* samples */
	size_t nhold;
	int failed;
};

static ptimer_spinlock_t lock = PTIMER_SPINLOCK_INIT;
static volatile int stop, ready;
static volatile uint64_t guarded;
static const struct emu_config emu_cfg = { .limit_ns = 50000, .preempt_ns = 50000 };

static void work_ns(int64_t ns)
{
	int64_t end = bench_now() + ns;
	while (bench_now() < end)
		__builtin_ia32_pause();
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	if (emu_attach(&w->emu, &emu_cfg, w->extension) != 0) {
		w->failed = 1;
		__atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
		return NULL;
	}
	__atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
	while (!stop) {
		ptimer_spin_lock(&lock);
		int64_t t0 = bench_now();
		guarded++;
		work_ns(HOLD_NS);
		int64_t held = bench_now() - t0;
		ptimer_spin_unlock(&lock);
		if (w->nhold < SAMPLES)
			w->hold_ns[w->nhold++] = (uint32_t)(held > UINT32_MAX ? UINT32_MAX : held);
		w->taken++;
		work_ns(OUTSIDE_NS);
	}
	emu_detach(&w->emu);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* One run: acquisitions per second and p99 hold (ns), or -1. */
static int contended(bool extension, double seconds, double *per_s, double *p99_ns)
{
	static struct worker w[2] __attribute__((aligned(32)));
	pthread_t th[2];
	stop = 0, ready = 0;
	for (int i = 0; i < 2; i++) {
		uint32_t *buf = w[i].hold_ns ? w[i].hold_ns : malloc(SAMPLES * sizeof(uint32_t));
		memset(&w[i], 0, sizeof(w[i]));
		w[i].hold_ns = buf;
		w[i].extension = extension;
		if (!buf || pthread_create(&th[i], NULL, worker_main, &w[i]) != 0) {
			fprintf(stderr, "bench slice: cannot start a worker\n");
			stop = 1;
			for (int j = 0; j < i; j++)
				pthread_join(th[j], NULL);
			return -1;
		}
	}
	while (__atomic_load_n(&ready, __ATOMIC_SEQ_CST) < 2)
		sched_yield();
	struct emu_thread *all[2] = { &w[0].emu, &w[1].emu };
	struct emu_sched sched = { .threads = all, .n = 2, .period_ns = PERIOD_NS };
	int64_t t0 = bench_now();
	if (emu_sched_start(&sched) != 0) {
		stop = 1;
		for (int i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
		return -1;
	}
	struct timespec run = { (time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9) };
	nanosleep(&run, NULL);
	emu_sched_stop(&sched);
	stop = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ptimer__slice_emulate_end(); /* no thread is in a section now */
	double elapsed = (double)(bench_now() - t0) / 1e9;
	if (w[0].failed || w[1].failed) {
		fprintf(stderr, "bench slice: the emulation could not start\n");
		return -1;
	}
	size_t n = w[0].nhold + w[1].nhold;
	uint32_t *all_hold = malloc(n * sizeof(uint32_t));
	if (!all_hold)
		return -1;
	memcpy(all_hold, w[0].hold_ns, w[0].nhold * sizeof(uint32_t));
	memcpy(all_hold + w[0].nhold, w[1].hold_ns, w[1].nhold * sizeof(uint32_t));
	qsort(all_hold, n, sizeof(uint32_t), cmp_u32);
	*p99_ns = n ? all_hold[n * 99 / 100] : 0;
	*per_s = (double)(w[0].taken + w[1].taken) / elapsed;
	free(all_hold);
	return 0;
}

static int bench_slice_emulated(const struct bench_opts *o, struct bench_report *r)
{
	double here = bench_slice_pair_ns(o);

	/* The enabled path, on a stand-in area that never grants. */
	static struct pt_rseq_area area;
	area.flags = PT_RSEQ_FLAG_SLICE_EXT_AVAILABLE | PT_RSEQ_FLAG_SLICE_EXT_ENABLED;
	if (ptimer__slice_emulate(&area) == 0) {
		double on = bench_slice_pair_ns(o);
		ptimer__slice_emulate_end();
		bench_add(r, "slice begin+end, enabled (emulated)", "ns", on, here, "no-op", false,
			  "request store, clear, granted check");
	}

	double seconds = o->seconds > 0 ? o->seconds : 1.0;
	double with_s, with_p99, without_s, without_p99;
	if (contended(true, seconds, &with_s, &with_p99) != 0 ||
	    contended(false, seconds, &without_s, &without_p99) != 0)
		return -1;
	bench_add(r, "contended lock, emulated preemption", "locks/s", with_s, without_s,
		  "no extension", true, "2 threads, 10 us holds, 50 us preemptions");
	bench_add(r, "p99 lock hold", "us", with_p99 / 1000, without_p99 / 1000, "no extension",
		  false, "same run");
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: slice-emulated [--json] [--seconds=S] [--iterations=N] [--rounds=R]\n"
		"\n"
		"Time-slice extension against the tests' stand-in kernel: begin+end on the\n"
		"enabled path (best of R rounds of 20N pairs) against the no-op path, and a\n"
		"spinlock two threads contend for under emulated preemption, for S seconds\n"
		"with the extension and S without (default 3).  Not installed: it carries\n"
		"the stand-in.\n");
}

int main(int argc, char **argv)
{
	static const struct bench_group groups[] = { { "slice-emulated", bench_slice_emulated } };
	return bench_main("slice-emulated", argc, argv, groups, 1, usage);
}
