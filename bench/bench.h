/* SPDX-License-Identifier: MIT */
#ifndef PTIMERS_BENCH_H
#define PTIMERS_BENCH_H
#include <stdio.h>

struct bench_opts {
	long iterations; /* per round */
	int rounds;      /* best of */
	int json;
};

/* Runs every benchmark, engine and kernel in the same run; prints a table
 * or a JSON list of {name, engine_ns, kernel_ns, ratio}.  0 or -1. */
int bench_run(const struct bench_opts *o, FILE *out);
#endif
