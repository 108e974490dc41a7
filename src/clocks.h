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

/* The base a timer on this clock is armed on. */
uint16_t pt_clock_base(clockid_t clockid, uint16_t cpu_base, bool absolute);

/* Start the dispatcher and the fixed bases' kernel timers: 0 or -errno. */
int pt_clocks_start(void);

void pt_clocks_fork_prepare(void);
void pt_clocks_fork_parent(void);
void pt_clocks_fork_child(void);
#endif
