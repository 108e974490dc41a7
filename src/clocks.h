/* SPDX-License-Identifier: MIT */
/*
 * Clocks: which clock IDs can drive a timer, and on which base a timer
 * runs, following the kernel's clockid_to_kclock() and its k_clock table.
 * Four fixed bases run on timerfds; each CPU clock in use is a base of its
 * own (cpu.h).
 */
#ifndef PTIMERS_CLOCKS_H
#define PTIMERS_CLOCKS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "base.h"
#include "sys.h"

enum {
	PT_BASE_MONOTONIC, /* CLOCK_MONOTONIC, and relative CLOCK_REALTIME as the kernel does */
	PT_BASE_REALTIME,  /* absolute CLOCK_REALTIME: follows clock changes */
	PT_BASE_BOOTTIME,
	PT_BASE_TAI,       /* CLOCK_TAI, absolute and relative (the kernel keeps both on TAI) */
	PT_NR_FIXED,
};

/* 0, or the kernel's -errno for a clock that cannot drive a timer. */
int pt_clock_check(clockid_t clockid);

/* A clock's provider for a new timer: PT_BASE_NONE for the fixed clocks,
 * or the CPU clock's own base (attached: pt_clock_put() gives it back).
 * Returns 0 or -errno. */
int pt_clock_get(clockid_t clockid, uint16_t *cpu_base);
void pt_clock_put(uint16_t cpu_base);

/* The base a timer on this clock is armed on (inline: every arming asks). */
static inline uint16_t pt_clock_base(clockid_t clockid, uint16_t cpu_base, bool absolute)
{
	if (cpu_base != PT_BASE_NONE)
		return cpu_base;
	switch (clockid) {
	case CLOCK_REALTIME:
		/* The kernel runs relative CLOCK_REALTIME timers on the
		 * monotonic base: they do not move when the clock is set. */
		return absolute ? PT_BASE_REALTIME : PT_BASE_MONOTONIC;
	case CLOCK_REALTIME_ALARM:
		/* Alarm timers are absolute on their clock even when armed
		 * relative: they follow a clock change. */
		return PT_BASE_REALTIME;
	case CLOCK_BOOTTIME:
	case CLOCK_BOOTTIME_ALARM:
		return PT_BASE_BOOTTIME;
	case CLOCK_TAI:
		return PT_BASE_TAI;
	default:
		return PT_BASE_MONOTONIC;
	}
}

/* The clock a fixed base (PT_BASE_MONOTONIC..PT_BASE_TAI) runs on. */
static inline clockid_t pt_fixed_clock(uint16_t base)
{
	static const clockid_t clock[PT_NR_FIXED] = {
		[PT_BASE_MONOTONIC] = CLOCK_MONOTONIC,
		[PT_BASE_REALTIME] = CLOCK_REALTIME,
		[PT_BASE_BOOTTIME] = CLOCK_BOOTTIME,
		[PT_BASE_TAI] = CLOCK_TAI,
	};
	return clock[base];
}

/* A base's clock now, in ns (-1: a CPU clock whose thread is gone).  The
 * fixed bases read their clock directly, not through the base's
 * operations: the arming path's one clock read, kept to the vDSO call. */
static inline int64_t pt_clock_now(uint16_t base)
{
	if (base < PT_NR_FIXED)
		return pt_clock_ns(pt_fixed_clock(base)) + pt_base_shift_of(base);
	return pt_base_now(base);
}

/* The dispatcher: was the process restored without its monotonic clocks
 * (CRIU, no time namespace)?  Then shift them (base.h).  Cheap to call
 * when in doubt: a wait interrupted, a wakeup far from when it was due. */
void pt_clocks_check_restored(void);

/* Start the dispatcher and the fixed bases' kernel timers: 0 or -errno.
 * Inline, the check every creation makes once they are running. */
extern bool pt_clocks_started;
int pt_clocks_start_slow(void);

static inline int pt_clocks_start(void)
{
	if (__atomic_load_n(&pt_clocks_started, __ATOMIC_ACQUIRE))
		return 0;
	return pt_clocks_start_slow();
}

void pt_clocks_fork_prepare(void);
void pt_clocks_fork_parent(void);
void pt_clocks_fork_child(void);
#endif
