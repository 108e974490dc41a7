/* SPDX-License-Identifier: MIT */
/*
 * Time-slice extension on this kernel: begin+end, where the kernel lacks
 * the extension the inline no-op path (target: at most 2 ns), where it
 * has it the real one.  The enabled path and a contended lock under
 * preemption are measured against a stand-in kernel by
 * build/bench/slice-emulated (slice_emulated.c), which is not installed.
 */
#define _GNU_SOURCE
#include <stdio.h>

#include "bench.h"
#include "ptimers/slice.h"

static double per_pair_ns(long n)
{
	int64_t t0 = bench_now();
	for (long i = 0; i < n; i++) {
		ptimer_slice_begin();
		__asm__ volatile("" ::: "memory");
		(void)ptimer_slice_end();
	}
	return (double)(bench_now() - t0) / (double)n;
}

double bench_slice_pair_ns(const struct bench_opts *o)
{
	long n = o->iterations * 20;
	double best = 1e9;
	for (int r = 0; r < o->rounds; r++) {
		double ns = per_pair_ns(n);
		if (ns < best)
			best = ns;
	}
	return best;
}

int bench_slice(const struct bench_opts *o, struct bench_report *r)
{
	char note[96];
	int reason = ptimer_slice_reason();

	double here = bench_slice_pair_ns(o);
	snprintf(note, sizeof(note), "%s",
		 reason == PTIMER_SLICE_OK ? "this kernel has the extension: the real path"
					   : "no-op path: this kernel lacks the extension");
	bench_add(r, "slice begin+end, this kernel", "ns", here, 2.0, "target", false, note);
	return 0;
}
