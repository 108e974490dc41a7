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

void pt_lock_wait(pt_lock_t *l);
void pt_lock_wake(pt_lock_t *l);

static inline void pt_lock(pt_lock_t *l)
{
	int expected = 0;

	pt_section_enter();
	if (!__atomic_compare_exchange_n(&l->v, &expected, 1, false, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		pt_lock_wait(l);
	pt_slice_begin();
}

static inline void pt_unlock(pt_lock_t *l)
{
	pt_slice_end();
	if (__atomic_exchange_n(&l->v, 0, __ATOMIC_RELEASE) == 2)
		pt_lock_wake(l);
	pt_section_leave();
}

/* After fork the child is single-threaded: a lock held by a thread that
 * no longer exists is simply reset. */
static inline void pt_lock_reset(pt_lock_t *l)
{
	__atomic_store_n(&l->v, 0, __ATOMIC_RELAXED);
}
#endif
