/* SPDX-License-Identifier: MIT */
/*
 * CPU clocks as one more provider of bases: CLOCK_PROCESS_CPUTIME_ID,
 * CLOCK_THREAD_CPUTIME_ID and the clocks of clock_getcpuclockid() and
 * pthread_getcpuclockid() of this process.
 */
#ifndef PTIMERS_CPU_H
#define PTIMERS_CPU_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

bool pt_cpu_is_clock(clockid_t c);
int pt_cpu_check(clockid_t c);         /* 0 or -EINVAL, as the kernel */

/* The base of this CPU clock (one per clock in use): its index or -errno. */
int pt_cpu_attach(clockid_t clockid);
void pt_cpu_detach(uint16_t base);

/* What the CPU clock of this base measures: 1 the process's CPU time, 2 a
 * thread's (*tid).  *clock: the clock, explicit. */
int pt_cpu_describe(uint16_t base, clockid_t *clock, pid_t *tid);

/* The kernel timer of the clock in this slot went off: via is the thread
 * whose handler took its signal (0: the dispatcher or a wait took it),
 * mask that thread's signal mask, woke: that thread was asleep in a
 * system call.  Async-signal-safe. */
void pt_cpu_fired(int slot, pid_t via, const sigset_t *mask, bool woke);

/* Where a CPU base keeps its clock, from the base's start (layout.h). */
uint32_t pt_cpu_clock_offset(void);

void pt_cpu_fork_prepare(void);
void pt_cpu_fork_parent(void);
void pt_cpu_fork_child(void);
#endif
