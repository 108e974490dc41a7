/* SPDX-License-Identifier: MIT */
/*
 * The one place liburcu-bp comes in: read-side sections and deferred
 * frees (call_rcu).
 *
 * Normal builds inline the read side (a TLS load and a store).  Sanitizer
 * builds define PTIMERS_NO_URCU_INLINE and call the library's out-of-line
 * functions: liburcu-bp 0.13 places its per-thread reader records at
 * addresses looser than the 128-byte alignment their type declares, which
 * UBSan rightly reports from inlined code.  The semantics are the same.
 *
 * ThreadSanitizer cannot see a grace period (liburcu orders it with
 * membarrier and plain loads).  Under TSan, every read-side unlock
 * releases and every grace period acquires one address: exactly the
 * guarantee RCU gives, that what a reader did before leaving happens
 * before what the updater does after the grace period.
 */
#ifndef PTIMERS_RCU_H
#define PTIMERS_RCU_H
#ifndef PTIMERS_NO_URCU_INLINE
#define _LGPL_SOURCE
#endif
#include <urcu-bp.h>
#include <urcu/call-rcu.h>

#include "section.h"

#ifdef __SANITIZE_THREAD__
#include <sanitizer/tsan_interface.h>
extern char pt_rcu_tsan_sync;
#define PT_TSAN_RELEASE() __tsan_release(&pt_rcu_tsan_sync)
#define PT_TSAN_ACQUIRE() __tsan_acquire(&pt_rcu_tsan_sync)
#else
#define PT_TSAN_RELEASE() do { } while (0)
#define PT_TSAN_ACQUIRE() do { } while (0)
#endif

/* Read-side sections are engine sections: a handler must not run inside
 * one, where a grace period could end up waiting for itself. */
static inline void pt_rcu_read_lock(void)
{
	pt_section_enter();
	urcu_bp_read_lock();
}

static inline void pt_rcu_read_unlock(void)
{
	PT_TSAN_RELEASE();
	urcu_bp_read_unlock();
	pt_section_leave();
}

/* Call fn(head) after a grace period, on liburcu's worker thread (started
 * on first use, with every signal blocked, so that it never takes a signal
 * meant for the program's threads).  Allocates nothing: the rcu_head is
 * embedded in what is to be freed. */
void pt_call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *));

/* Until every callback passed to pt_call_rcu() so far has run.  Not
 * inside a read-side section or a callback. */
void pt_rcu_barrier(void);

/* First thing in every pt_call_rcu() callback: under TSan, what every
 * reader did before its unlock, and what the caller of pt_call_rcu() did
 * before the call, happens before the free. */
#define PT_RCU_CALLBACK() PT_TSAN_ACQUIRE()

/* Fork: liburcu's reader registry and its worker (engine.c orders them). */
void pt_rcu_fork_prepare(void);
void pt_rcu_fork_parent(void);
void pt_rcu_fork_child(void);
#endif
