/* SPDX-License-Identifier: MIT */
/*
 * The one place liburcu-bp comes in.
 *
 * Normal builds inline the read side (a TLS load and a store).  Sanitizer
 * builds define PTIMERS_NO_URCU_INLINE and call the library's out-of-line
 * functions: liburcu-bp 0.13 places its per-thread reader records at
 * addresses looser than the 128-byte alignment their type declares, which
 * UBSan rightly reports from inlined code.  The semantics are the same.
 *
 * ThreadSanitizer cannot see a grace period (liburcu orders it with
 * membarrier and plain loads).  Under TSan, every read-side unlock
 * releases and every synchronize acquires one address: exactly the
 * guarantee RCU gives, that what a reader did before leaving happens
 * before what the updater does after the grace period.
 */
#ifndef PTIMERS_RCU_H
#define PTIMERS_RCU_H
#ifndef PTIMERS_NO_URCU_INLINE
#define _LGPL_SOURCE
#endif
#include <urcu-bp.h>

#include "lock.h"

#ifdef __SANITIZE_THREAD__
#include <sanitizer/tsan_interface.h>
extern char pt_rcu_tsan_sync;
#define PT_TSAN_RELEASE() __tsan_release(&pt_rcu_tsan_sync)
#define PT_TSAN_ACQUIRE() __tsan_acquire(&pt_rcu_tsan_sync)
#else
#define PT_TSAN_RELEASE() do { } while (0)
#define PT_TSAN_ACQUIRE() do { } while (0)
#endif

/* Read-side sections count as engine sections (lock.h): a handler must
 * not run inside one, where a grace period could wait for itself. */
static inline void pt_rcu_read_lock(void)
{
	pt_lock_depth++;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	urcu_bp_read_lock();
}

static inline void pt_rcu_read_unlock(void)
{
	PT_TSAN_RELEASE();
	urcu_bp_read_unlock();
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (--pt_lock_depth == 0 && __builtin_expect(pt_deferred_count != 0, 0))
		pt_deliver_deferred();
}

static inline void pt_synchronize_rcu(void)
{
	urcu_bp_synchronize_rcu();
	PT_TSAN_ACQUIRE();
}
#endif
