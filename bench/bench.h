/* SPDX-License-Identifier: MIT */
/*
 * The benchmarks behind `ptimers bench`: each measures the engine and a
 * reference (the kernel's timers, or a bare signal) in the same run and
 * reports both and their ratio, so that no figure stands alone.
 */
#ifndef PTIMERS_BENCH_H
#define PTIMERS_BENCH_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

struct bench_opts {
	long iterations; /* per round, for the per-call rows */
	int rounds;      /* best of, for the per-call rows */
	double seconds;  /* length of the timed runs (contention) */
	long timers;     /* timers for the memory row */
	bool json;
	const char *only; /* comma-separated group names, or NULL for all */
	const char *criu; /* the criu binary, or NULL: look for one (outside.c) */
	const char *prog; /* for messages: "ptimers bench" */
};

/* One row: the engine's figure against the reference's.  better_high:
 * higher figures are better (throughput); else lower are (time, bytes).
 * ratio = how many times better the engine is (> 1: the engine wins). */
struct bench_row {
	char name[48];
	char unit[16];
	double engine, reference;
	const char *against; /* "kernel", "signal", "target", "alone" */
	bool better_high;
	char note[96];
};

struct bench_report {
	struct bench_row rows[96];
	int n;
	int dropped; /* rows that found no room: the run fails, naming them */
};

/* What every ratio rests on: this machine's own costs, measured at the
 * start of each run (best of several rounds). */
struct bench_ref {
	double syscall_ns; /* a system call's round trip (getppid) */
	double clock_ns;   /* a vDSO clock read (CLOCK_MONOTONIC) */
	double signal_ns;  /* a signal sent to the thread itself and taken */
};
extern struct bench_ref bench_ref;

void bench_add(struct bench_report *r, const char *name, const char *unit, double engine,
	       double reference, const char *against, bool better_high, const char *note);

/* The groups; each adds its rows, 0 or -1 (with a message on stderr). */
int bench_outside(const struct bench_opts *o, struct bench_report *r);
int bench_calls(const struct bench_opts *o, struct bench_report *r);
int bench_contention(const struct bench_opts *o, struct bench_report *r);
int bench_latency(const struct bench_opts *o, struct bench_report *r);
int bench_wakeups(const struct bench_opts *o, struct bench_report *r);
int bench_expiry(const struct bench_opts *o, struct bench_report *r);
int bench_memory(const struct bench_opts *o, struct bench_report *r);
int bench_restore(const struct bench_opts *o, struct bench_report *r);
int bench_slice(const struct bench_opts *o, struct bench_report *r);
double bench_slice_pair_ns(const struct bench_opts *o); /* best ns of a begin+end */

struct bench_group {
	const char *name;
	int (*fn)(const struct bench_opts *o, struct bench_report *r);
};

/* A bench command: its options (usage prints its --help), then the groups
 * asked for, as a table or JSON on standard output.  The exit status: 0,
 * 1 when a group failed, 2 for bad arguments. */
int bench_main(const char *prog, int argc, char **argv, const struct bench_group *groups, size_t ngroups,
	       void (*usage)(FILE *));

/* Shared helpers. */
static inline int64_t bench_clock_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
static inline int64_t bench_now(void)
{
	return bench_clock_ns(CLOCK_MONOTONIC);
}
double bench_cpu_seconds(void); /* the process's user + system time */
/* After mass deletes: until what the engine gives back is back with the
 * kernel, its thread's trim done (its bytes steady for 30 ms) and the
 * unmaps deferred after it run (at most ~5 s), so that the work does not
 * land in whatever is timed next. */
void bench_engine_quiesce(void);
double bench_median(double *v, int n); /* sorts v; of an even count, the middle two's mean */
void bench_raise_sigpending(void);     /* RLIMIT_SIGPENDING's soft limit to its hard one */
long bench_sigq_room(void);            /* signals (and kernel timers) the user may still queue */

/* A macro's value as a string literal: a turn count in a row's note. */
#define BENCH_STR_(x) #x
#define BENCH_STR(x) BENCH_STR_(x)
#endif
