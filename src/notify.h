/* SPDX-License-Identifier: MIT */
/*
 * Notification by signal: sending a timer's signal, and asking the kernel
 * about a signal already sent (SIGEV_THREAD calls: workers.h).  notify.c reports
 * what happened and writes no field of a timer (timer.c does).
 */
#ifndef PTIMERS_NOTIFY_H
#define PTIMERS_NOTIFY_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "timer.h"

enum pt_send {
	PT_SENT,  /* queued in the kernel (*sent_tid: the thread, or 0 for the process) */
	PT_LINED, /* a standard signal is pending there: it goes out when that is taken */
	PT_GONE,  /* the target thread is gone: the kernel stops notifying */
	PT_FULL,  /* the kernel's signal queue is full (RLIMIT_SIGPENDING): try later */
};

/*
 * si_errno of every engine signal: the engine's marker in the high 16
 * bits, the timer's stamp for this send in the low 16 (si_errno is the
 * one field that every way of taking a signal reports, signalfd's
 * ssi_errno included).  The stamp tells which send a delivery is; the
 * kernel keeps the same in its sigqueue.  Cleared where the program takes
 * the signal.
 */
extern int pt_marker;
bool pt_notify_is_engine_signal(const siginfo_t *si);
static inline uint16_t pt_notify_stamp(const siginfo_t *si)
{
	return (uint16_t)(si->si_errno & 0xffff);
}

/* The kernel's checks of a sigevent, in its order: 0 or -errno. */
int pt_notify_check(const struct sigevent *sev);

/* Send t's signal, stamped t->stamp (t->lock held).  via: the thread
 * whose CPU time made a CPU-clock timer expire (0: none), via_mask its
 * signal mask. */
enum pt_send pt_notify_send(struct pt_timer *t, pid_t via, uint64_t via_mask, pid_t *sent_tid);

/*
 * The same in two steps, for the dispatcher, which sends after letting go
 * of the timer's lock: a receiver woken on its CPU then delivers at once
 * instead of waiting for the dispatcher to run again and let go.
 * pt_notify_prepare() (t->lock held) lines the timer up or finds the
 * queue full as pt_notify_send() would, or returns PT_SENT with *s ready;
 * s->thread or s->via is where it goes first (0: the process).
 * pt_notify_fire() (no lock) sends it: PT_SENT, PT_GONE or PT_FULL.
 * pt_notify_send_begin(t) (t->lock held, the send recorded as made)
 * before letting go; pt_notify_send_end() after the system call, went:
 * where it was recorded to go; else pt_notify_send_settled() once the
 * record is put right, t->lock held again.  Meanwhile pt_notify_pending(t)
 * waits for the system call, and says pending while the record is wrong.
 */
struct pt_sending {
	siginfo_t info;
	pid_t thread, via;
};
enum pt_send pt_notify_prepare(struct pt_timer *t, pid_t via, uint64_t via_mask, struct pt_sending *s);
enum pt_send pt_notify_fire(struct pt_sending *s, pid_t *sent_tid);
void pt_notify_send_begin(const struct pt_timer *t);
void pt_notify_send_end(bool went);
void pt_notify_send_settled(void);

/* Is t's last signal still on its way (in the kernel's queue, or in
 * line)?  t->lock held. */
bool pt_notify_pending(const struct pt_timer *t);

/* An expiry that fell due at or before now on clock base `base`. */
struct pt_when {
	int64_t now;
	uint16_t base;
};

/* Would the kernel drop t's signal as ignored (its sig_ignored())?  when:
 * the expiry this asks for (the dispatcher's), or NULL. */
bool pt_notify_ignored(const struct pt_timer *t, const struct pt_when *when);

/* The hooks are in place and report every change of a disposition made
 * through libc: what the kernel says of a signal can then be kept, and
 * pt_notify_ignored() asks it once per signal, not once per expiry.
 * Without them it asks once per signal for all the expiries the
 * dispatcher finds due in one look (the same when). */
void pt_notify_track_dispositions(void);
bool pt_notify_tracks_dispositions(void);
void pt_notify_disposition(int sig, bool ignored);

/* Without the hooks: does the program still ignore sig?  The kernel is
 * asked at most once a millisecond per signal.  The dispatcher's. */
bool pt_notify_untracked_ignores(int sig);

/* Leave the line (re-armed or deleted while waiting).  t->lock held. */
void pt_notify_unline(const struct pt_timer *t);

/* The next timer waiting in line for sig, with the signal_seq it had when
 * it got in line; NULL if none.  The timer may have been deleted since
 * (the pool keeps its memory a timer): check under its lock. */
struct pt_timer *pt_notify_line_pop(int sig, uint32_t *seq);
/* Is any timer in line for sig?  (No lock, no RCU: a first look, which
 * every signal the program takes pays.) */
bool pt_notify_lined(int sig);

/* The line of timers whose send the full queue put off (t->lock held
 * for a push): first come, first served.  push: false when out of
 * memory; front: back where it was (its retry failed again).  pop: the
 * first, with the signal_seq it had when it got in line (the timer may
 * have been re-armed or deleted since: check under its lock). */
bool pt_notify_wait_push(struct pt_timer *t, bool front);
bool pt_notify_waiting(void);
struct pt_timer *pt_notify_wait_pop(uint32_t *seq);
/* CLOCK_MONOTONIC until which sends are put off without asking (0: none). */
int64_t pt_notify_full_until(void);

/* What the engine did, for --stats. */
struct pt_notify_stats {
	unsigned long signals; /* sent */
	unsigned long full;    /* sends put off because the queue was full */
	uint64_t asked;        /* dispositions asked of the kernel */
};
void pt_notify_stats(struct pt_notify_stats *out);

void pt_notify_fork_prepare(void);
void pt_notify_fork_parent(void);
void pt_notify_fork_child(void);
#endif
