/* SPDX-License-Identifier: MIT */
/*
 * A stand-in for the kernel's side of rseq time-slice extension, for tests
 * and the bench on kernels without it.  Each emulated thread gets a
 * stand-in rseq area that libptimers is pointed at
 * (ptimer__slice_emulate).  An "interrupt" (a signal to the thread, from a
 * scheduler thread or from the test) plays the kernel's return from an
 * interrupt with a reschedule pending:
 *   - request set: grant (clear request, set granted) and let it run;
 *   - granted past the time limit: revoke and preempt (flag the overstay,
 *     or a section that ended without yielding);
 *   - otherwise: preempt (the thread sleeps for the preemption length).
 * System calls are watched with Syscall User Dispatch, its selector
 * pointed at the request byte (or, while granted, at the granted byte):
 * any system call with either set traps.  rseq_slice_yield ends a grant
 * (the deferred preemption happens then); any other one inside a grant is
 * flagged and revokes it, as the kernel does; one made with a request set
 * is flagged (a grant could have come at any moment) and performed.  At
 * every interrupt the area is checked: granted written by user space, or
 * bits the ABI does not define, are flagged.
 */
#ifndef PTIMERS_SLICE_EMU_H
#define PTIMERS_SLICE_EMU_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "slice.h"

struct emu_thread {
	struct pt_rseq_area area; /* first: 32-aligned */
	pid_t tid;
	bool extension;   /* the "kernel" advertises the extension to this thread */
	int granted;      /* the stand-in's own view */
	int suspect_no_yield; /* granted past the limit, out of its sections, once */
	int64_t suspect_cpu;  /* its CPU clock then */
	uint64_t sections; /* the test's: the thread's sections, from ptimer_slice_stats() */
	int64_t grant_ns; /* when granted, on the thread's CPU clock */
	clockid_t cpu_clock;
	/* counters (written on the thread, by its handlers) */
	uint64_t interrupts, grants, preemptions, yields, revoked;
	/* what the stand-in caught user space doing */
	uint64_t v_granted_written, v_inconsistent, v_syscall_in_grant, v_syscall_requested,
		v_no_yield, v_overstay, v_yield_without_grant;
	long last_bad_syscall;
	void *last_overstay_ip; /* where an overstaying section was interrupted */
	void *last_bad_ip, *last_bad_caller; /* where it was made (and, for libc's leaf wrappers, from where) */
};

struct emu_config {
	int64_t limit_ns;   /* the grant's length (kernel: 5 us default, 50 max) */
	int64_t preempt_ns; /* how long a preempted thread is off the CPU */
};

/* Whether this process can watch system calls (Syscall User Dispatch);
 * without it, interrupts and grants still work but syscalls go unseen. */
bool emu_can_watch_syscalls(void);

/* On the thread to emulate: set up its stand-in area and the handlers.
 * extension = false plays a kernel without it (every interrupt preempts).
 * 0, or -1 with a message on stderr. */
int emu_attach(struct emu_thread *t, const struct emu_config *c, bool extension);
/* On the same thread, before it exits: stop watching. */
void emu_detach(struct emu_thread *t);

/* Interrupt thread t now (any thread may call); on t itself, the
 * interrupt is taken before this returns. */
void emu_interrupt(struct emu_thread *t);
/* Interrupt t if its grant is past the limit (the scheduler's tick). */
void emu_enforce(struct emu_thread *t);

/* A scheduler thread: every period_ns (jittered) it interrupts one of the
 * threads, round robin, and enforces the limit of every grant. */
struct emu_sched {
	struct emu_thread **threads;
	int n;
	int64_t period_ns;
	volatile int stop;
	pthread_t thread;
};

/* Overstays a thread may show without any fault of its sections.  A grant
 * is measured on the thread's CPU clock, which also runs while this
 * machine's host takes its virtual CPU away, or while a clock read waits
 * for the host to update its copy of the clock (tens of microseconds on a
 * busy host): nothing in the machine tells those from the section's own
 * time.  And the interrupts that grant land more often in the longest
 * sections, so on a busy machine many grants can overstay.  Counted
 * against the thread's sections instead: one in a thousand, and the odd
 * one.  (Sections that were all too long would overstay at most grants,
 * and a grant lands every few sections when they are long.) */
unsigned long emu_overstays_allowed(unsigned long sections);
int emu_sched_start(struct emu_sched *s);
void emu_sched_stop(struct emu_sched *s);

/* Sum of a thread's violations. */
uint64_t emu_violations(const struct emu_thread *t);
/* A system call straight to the kernel, unwatched (the stand-in's own). */
long emu_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
int64_t emu_now(void);
#endif
