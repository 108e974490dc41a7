/* SPDX-License-Identifier: MIT */
/*
 * A small futex mutex (0 free, 1 held, 2 held with waiters), Drepper's
 * "Futexes are tricky" mutex 2.  Uncontended: one CAS to take, one xchg to
 * release, no system call.  Every hold is an engine section (section.h),
 * so no handler runs on a thread that holds one, and asks for a time-slice
 * extension (slice.h), so the holder is not preempted in the middle of its
 * short section.  The futex wait and wake happen outside the extension.
 */
#ifndef PTIMERS_LOCK_H
#define PTIMERS_LOCK_H

#include <stdbool.h>

#include "section.h"
#include "slice.h"

typedef struct {
	int v;
} pt_lock_t;

#define PT_LOCK_INIT { 0 }

void pt_lock_wait(int *v);
void pt_lock_wake(int *v);

/* Take and give the word itself, with the extension; the engine's lock
 * adds its section around them, the public ptimer_mutex_t (lock.c) does
 * not. */
static inline void pt_mutex_take(int *v)
{
	int expected = 0;

	if (!__atomic_compare_exchange_n(v, &expected, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		pt_lock_wait(v);
	pt_slice_begin();
}

static inline bool pt_mutex_try(int *v)
{
	int expected = 0;

	if (!__atomic_compare_exchange_n(v, &expected, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return false;
	pt_slice_begin();
	return true;
}

static inline void pt_mutex_give(int *v)
{
	pt_slice_end(); /* the wake below is outside the extension */
	if (__atomic_exchange_n(v, 0, __ATOMIC_RELEASE) == 2)
		pt_lock_wake(v);
}

static inline void pt_lock(pt_lock_t *l)
{
	pt_section_enter();
	pt_mutex_take(&l->v);
}

static inline void pt_unlock(pt_lock_t *l)
{
	pt_mutex_give(&l->v);
	pt_section_leave();
}

/* After fork the child is single-threaded: a lock held by a thread that
 * no longer exists is simply reset. */
static inline void pt_lock_reset(pt_lock_t *l)
{
	__atomic_store_n(&l->v, 0, __ATOMIC_RELAXED);
}

/*
 * A spinlock, for the shortest sections: a timer's own state (tens of
 * nanoseconds, one system call at most).  One exchange to take, a plain
 * store to release (no waiter to wake, so nothing to ask on the way out),
 * which halves what a lock costs a settime.  A waiter spins briefly, then
 * yields, then sleeps in short steps, so that a holder preempted on the
 * same CPU, or of lower priority, gets to run and let go.  Like pt_lock:
 * an engine section, with a time-slice extension asked for while held.
 */
typedef struct {
	int v;
} pt_spin_t;

#define PT_SPIN_INIT { 0 }

void pt_spin_wait(int *v);

/* The word itself, as pt_mutex_take/give (the public ptimer_spinlock_t). */
static inline void pt_spin_take(int *v)
{
	if (__atomic_exchange_n(v, 1, __ATOMIC_ACQUIRE))
		pt_spin_wait(v);
	pt_slice_begin();
}

static inline bool pt_spin_try(int *v)
{
	if (__atomic_load_n(v, __ATOMIC_RELAXED) || __atomic_exchange_n(v, 1, __ATOMIC_ACQUIRE))
		return false;
	pt_slice_begin();
	return true;
}

static inline void pt_spin_give(int *v)
{
	pt_slice_end();
	__atomic_store_n(v, 0, __ATOMIC_RELEASE);
}

static inline void pt_spin_lock(pt_spin_t *l)
{
	pt_section_enter();
	pt_spin_take(&l->v);
}

static inline void pt_spin_unlock(pt_spin_t *l)
{
	pt_spin_give(&l->v);
	pt_section_leave();
}

static inline void pt_spin_reset(pt_spin_t *l)
{
	__atomic_store_n(&l->v, 0, __ATOMIC_RELAXED);
}
#endif
