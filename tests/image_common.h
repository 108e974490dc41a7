/* SPDX-License-Identifier: MIT */
/*
 * What the image tests share: test_image_codec.c (refusals),
 * test_image_engine.c and test_image_kernel.c (round trips).
 *
 * A round trip: a child makes timers of every notification kind on every
 * clock (make_timers), checkpoints them and exits; a new child restores
 * the image and compares what it has with what the first one had: IDs,
 * clocks (mapped), notification, signal, value, target thread (mapped),
 * interval exactly, remaining time (remaining_ok: less the time that went
 * by between the two readings, 10 ms margin; 1 s more on CPU clocks,
 * whose time is each process's own), overrun counts.
 */
#ifndef IMAGE_COMMON_H
#define IMAGE_COMMON_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <time.h>

#include "ptimers.h"

#define NSEC 1000000000ll
#define MARGIN (NSEC / 100)
#define MAX_T 64
#define SIG (SIGRTMIN + 2)


/* In a child: print what failed, and leave with 1. */
#define EXPECT(c)                                                                                 \
	do {                                                                                      \
		if (!(c)) {                                                                       \
			fprintf(stderr, "%s:%d: failed: %s (errno %d: %s)\n", __FILE__, __LINE__, #c, \
				errno, strerror(errno));                                          \
			return 1;                                                                 \
		}                                                                                 \
	} while (0)
/* ---- what a process had, for the one that restores to compare ---- */

struct had {
	int id;
	clockid_t clock;
	int cpu;          /* 0, 1 the process's CPU clock, 2 a thread's */
	bool cpu_helper;  /* a thread's CPU clock: the helper's (else the main thread's) */
	bool explicit_clock;
	int notify, signo;
	void *value;
	bool to_helper;   /* SIGEV_THREAD_ID: the helper thread */
	int64_t remaining, interval;
	int overrun;
	bool absolute;
};

struct shared {
	int n;
	struct had t[MAX_T];
	pid_t main_tid, helper_tid;
	int skipped_alarm;
	int walk_calls;
	int64_t read_at; /* CLOCK_MONOTONIC when the first process read its timers */
};


extern struct shared *sh;
extern pid_t helper_tid;     /* the waiting helper thread of start_helper() */
extern pid_t restore_helper; /* the restoring process's helper, for map_tid() */

/* The clocks a round trip covers. */
enum { C_REALTIME, C_MONOTONIC, C_BOOTTIME, C_TAI, C_REALTIME_ALARM, C_BOOTTIME_ALARM,
       C_PROCESS_CPU, C_THREAD_CPU, C_PID_CPU, C_HELPER_CPU, NCLOCKS };

/* The mmap'd record and SIG's handler; 0 or -1. */
int image_tests_init(void);
/* fn(arg) in a forked child: its exit status, 128 + signal if killed. */
int run_child(int (*fn)(void *), void *arg);
int64_t ts_ns(const struct timespec *t);
struct timespec ns_ts(int64_t ns);
int64_t now_ns(clockid_t c);
/* A thread that only waits: a target for SIGEV_THREAD_ID, and a thread
 * whose CPU clock can drive a timer; helper_tid is its TID. */
int start_helper(pthread_t *th);
void tick_fn(union sigval v);
int block_sig(void);
clockid_t clock_of(int c, pthread_t th);
void describe(struct had *h, int c);
/* How a timer is armed: relative with an interval, absolute, or not. */
struct itimerspec setting(int k, int i, clockid_t clock, int *flags, bool *absolute);
/* The first process's threads to this one's (restore_helper). */
pid_t map_tid(void *arg, pid_t saved);
bool remaining_ok(const struct had *h, int64_t rem);
int find_had(int id);
bool same_clock(const struct had *h, clockid_t clock, pid_t helper);
int memfd(void);

/* One side's timer calls, for make_timers(): the engine's or the kernel's. */
struct maker {
	const int *kinds;  /* SIGEV_* to make on each clock */
	int nkinds;
	uintptr_t value_base;
	int (*want)(int clock, int kind, int made); /* the ID to ask for */
	int (*restore_ids)(int mode);                /* PTIMER_RESTORE_IDS_*: 0 or -1 */
	int (*create)(clockid_t clock, struct sigevent *sev, int *id);
	int (*settime)(int id, int flags, const struct itimerspec *its);
	int (*gettime)(int id, struct itimerspec *cur);
	int (*getoverrun)(int id);
	int (*checkpoint)(int fd, const struct ptimer_restore_opts *o);
};
int make_timers(const struct maker *m, int fd);

#endif
