/* SPDX-License-Identifier: MIT */
/*
 * Hot periodic timers handed to a kernel timer of the same ID.
 *
 * An engine timer's expiry costs two wakeups: the dispatcher's, which
 * sends the signal, and the program's, which takes it.  A kernel timer's
 * costs one.  For a periodic signal timer that fires often (its interval
 * at most PT_HANDOFF_INTERVAL_NS), the dispatcher creates, at one of its
 * expiries, a kernel timer with the timer's own ID (the kernel's
 * restore-ID mode) and its clock (a CPU clock made explicit; timer.c
 * says which timers qualify), sigevent and grid, and lets the kernel
 * send every signal from then on: the kernel's CPU and latency, and the
 * kernel's own semantics (overruns, ignored and blocked signals), since
 * it is the kernel doing it.  The engine keeps the timer's ID and
 * fields, so that the readout, a checkpoint and gettime go on without a
 * system call (the kernel's expiries stay on the grid the engine keeps);
 * settime, getoverrun and delete ask the kernel.  A SIGEV_THREAD timer is
 * carried instead by a worker woken by a kernel timer of its own
 * (workers.h); it counts against the same cap.
 *
 * At most PTIMERS_HANDOFF timers at a time (default 64 in the drop-in,
 * whose program has no other way to create kernel timers; 0, off, for a
 * program linked with -lptimers, whose own timer_create calls the
 * process-wide restore-ID mode could meet: PTIMERS_HANDOFF=N there is
 * its promise that it does not create kernel timers while the engine
 * runs).  Only where the kernel has the restore-ID mode.
 */
#ifndef PTIMERS_HANDOFF_H
#define PTIMERS_HANDOFF_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define PT_HANDOFF_INTERVAL_NS 100000000LL /* ten expiries a second or more */
#define PT_HANDOFF_DROPIN_DEFAULT 64

/* At most max timers handed off (0: none).  explicit: the program asked
 * (PTIMERS_HANDOFF), which a default does not override. */
void pt_handoff_set_max(int max, bool explicit_);

/* The drop-in's default, unless PTIMERS_HANDOFF said otherwise. */
void pt_handoff_dropin(void);

/* May a timer of this interval be handed off now?  Cheap: no system call. */
bool pt_handoff_may(int64_t interval);

/* Create kernel timer id on clock with sev, armed absolutely for
 * expires (which may have passed: it fires at once) and every interval
 * after.  0, or -errno (then nothing is left behind, and handoffs rest a
 * while).
 *
 * aligned non-NULL: armed relatively instead, for expires on
 * CLOCK_MONOTONIC (a relative CLOCK_REALTIME setting, which the kernel
 * keeps on the monotonic clock, unmoved by a change of the wall clock);
 * *aligned is then the point of the kernel timer's grid nearest expires,
 * read back (a system call's time off it at most). */
int pt_handoff_start(int id, clockid_t clock, const struct sigevent *sev, int64_t expires,
		     int64_t interval, int64_t *aligned);

/* One more handed off (a SIGEV_THREAD timer's carrier, workers.h): true
 * when the cap and the user's signal queue allow; undone by
 * pt_handoff_release(). */
bool pt_handoff_reserve(void);
void pt_handoff_release(void);

/* Re-arm kernel timer id absolutely (or relatively, aligned as above):
 * 0 or -errno. */
int pt_handoff_rearm(int id, int64_t expires, int64_t interval, int64_t *aligned);

/* Delete kernel timer id: it is the engine's again. */
void pt_handoff_end(int id);

/* The kernel timer's timer_getoverrun(). */
int pt_handoff_overrun(int id);

/* The kernel timer's timer_gettime(): 0 or -errno. */
int pt_handoff_gettime(int id, struct itimerspec *cur);

/* How many are handed off now. */
int pt_handoff_count(void);

/* In the fork child: the kernel timers stayed with the parent. */
void pt_handoff_fork_child(void);

#endif
