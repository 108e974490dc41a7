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
#include <stdint.h>

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

/*
 * A sequence lock: one word that is both a spinlock and the seqcount that
 * lock-free readers check, so an object pays four bytes for both.  Bit 0:
 * held; bit 1: the holder is changing the object (a write window, short
 * and without system calls); the rest counts the windows.  A reader waits
 * out a window and retries if a window opened or closed while it read, so
 * a holder that is only holding (or is stopped while it holds) does not
 * stop readers.  Readers never take the lock and never make a holder
 * wait.  Taken and given like pt_spin_t: one compare-and-swap, one store,
 * an engine section with a time-slice extension asked for while held.
 */
typedef struct {
	uint32_t seq;
} pt_seqlock_t;

#define PT_SEQ_HELD 1u
#define PT_SEQ_WRITING 2u
#define PT_SEQ_WINDOW 4u

void pt_seqlock_wait(uint32_t *seq);

static inline void pt_seq_take(uint32_t *seq)
{
	uint32_t s = __atomic_load_n(seq, __ATOMIC_RELAXED);
	if ((s & PT_SEQ_HELD) || !__atomic_compare_exchange_n(seq, &s, s | PT_SEQ_HELD, false,
							       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		pt_seqlock_wait(seq);
	pt_slice_begin();
}

static inline void pt_seq_give(uint32_t *seq)
{
	pt_slice_end();
	__atomic_store_n(seq, __atomic_load_n(seq, __ATOMIC_RELAXED) & ~PT_SEQ_HELD, __ATOMIC_RELEASE);
}

/* The holder's write window: readers see all of it or none. */
static inline void pt_seq_write_begin(pt_seqlock_t *l)
{
	__atomic_store_n(&l->seq, __atomic_load_n(&l->seq, __ATOMIC_RELAXED) | PT_SEQ_WRITING,
			 __ATOMIC_RELAXED);
	/* The mark is seen before any change of the window's. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void pt_seq_write_end(pt_seqlock_t *l)
{
	uint32_t s = __atomic_load_n(&l->seq, __ATOMIC_RELAXED);
	__atomic_store_n(&l->seq, (s & ~PT_SEQ_WRITING) + PT_SEQ_WINDOW, __ATOMIC_RELEASE);
}

static inline void pt_seqlock_lock(pt_seqlock_t *l)
{
	pt_section_enter();
	pt_seq_take(&l->seq);
}

static inline void pt_seqlock_unlock(pt_seqlock_t *l)
{
	pt_seq_give(&l->seq);
	pt_section_leave();
}

/* A reader's begin: the value to compare with at its end (it waits,
 * briefly, while a write window is open). */
static inline uint32_t pt_seq_read_begin(const pt_seqlock_t *l)
{
	uint32_t s;
	while ((s = __atomic_load_n(&l->seq, __ATOMIC_ACQUIRE)) & PT_SEQ_WRITING)
		__builtin_ia32_pause();
	return s & ~PT_SEQ_HELD;
}

/* A reader's end: true when no window opened or closed meanwhile. */
static inline bool pt_seq_read_ok(const pt_seqlock_t *l, uint32_t begin)
{
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return (__atomic_load_n(&l->seq, __ATOMIC_RELAXED) & ~PT_SEQ_HELD) == begin;
}
#endif
