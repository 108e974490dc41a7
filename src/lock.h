/* SPDX-License-Identifier: MIT */
/*
 * A small futex mutex (0 free, 1 held, 2 held with waiters), Drepper's
 * "Futexes are tricky" mutex 2.  Uncontended: one CAS to take, one xchg to
 * release, no system call.  Every hold is wrapped in a time-slice extension
 * request so a holder is not preempted in the middle of a short section.
 */
#ifndef PTIMERS_LOCK_H
#define PTIMERS_LOCK_H

#include "slice_internal.h"

typedef struct {
	int v;
} pt_lock_t;

/* How many engine sections (locks held or being taken, RCU read sides)
 * this thread is in.  A signal whose handler the engine installed that
 * interrupts the thread while it is non-zero is not handled there and then
 * (the handler may call the engine, which needs those locks): it is set
 * aside and handled when the count drops back to zero, as the kernel
 * delivers a signal only when it leaves its own critical sections.  So
 * timer_settime/gettime/getoverrun stay async-signal-safe, as POSIX wants. */
extern __thread unsigned pt_lock_depth __attribute__((tls_model("initial-exec")));
extern __thread unsigned pt_deferred_count __attribute__((tls_model("initial-exec")));
void pt_deliver_deferred(void);

#define PT_LOCK_INIT { 0 }

void pt_lock_wait(pt_lock_t *l);
void pt_lock_wake(pt_lock_t *l);

static inline void pt_lock(pt_lock_t *l)
{
	int expected = 0;

	pt_lock_depth++;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pt_slice_begin();
	if (!__atomic_compare_exchange_n(&l->v, &expected, 1, false, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		pt_lock_wait(l);
}

static inline bool pt_trylock(pt_lock_t *l)
{
	int expected = 0;

	pt_lock_depth++;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pt_slice_begin();
	if (__atomic_compare_exchange_n(&l->v, &expected, 1, false, __ATOMIC_ACQUIRE,
					__ATOMIC_RELAXED))
		return true;
	pt_slice_end();
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pt_lock_depth--;
	return false;
}

static inline void pt_unlock(pt_lock_t *l)
{
	if (__atomic_exchange_n(&l->v, 0, __ATOMIC_RELEASE) == 2)
		pt_lock_wake(l);
	pt_slice_end();
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (--pt_lock_depth == 0 && __builtin_expect(pt_deferred_count != 0, 0))
		pt_deliver_deferred();
}

/* After fork the child is single-threaded: locks held by threads that no
 * longer exist are simply reset. */
static inline void pt_lock_reset(pt_lock_t *l)
{
	__atomic_store_n(&l->v, 0, __ATOMIC_RELAXED);
}
#endif
