/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <time.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lock.h"
#include "sys.h"

void pt_lock_wait(int *v)
{
	/* Spin briefly: holds are a few dozen nanoseconds. */
	for (int i = 0; i < 64; i++) {
		int expected = 0;
		if (__atomic_load_n(v, __ATOMIC_RELAXED) == 0 &&
		    __atomic_compare_exchange_n(v, &expected, 1, false, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return;
		__builtin_ia32_pause();
	}
	/* A wait inside an outer section (nested locks) sleeps outside the
	 * extension. */
	pt_slice_pause();
	while (__atomic_exchange_n(v, 2, __ATOMIC_ACQUIRE) != 0)
		syscall(SYS_futex, v, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
	pt_slice_resume();
}

/* The i-th wait for a lock held by another thread: spin a hundred
 * times, then yield a hundred times, then nap (the holder may be of lower
 * priority than us on this CPU, where yielding would not let it run).
 * Yields and naps are outside the time-slice extension: the 100th wait
 * withdraws the request, and the taker gives it back (backoff_done). */
static void backoff(unsigned i)
{
	if (i < 100) {
		__builtin_ia32_pause();
	} else if (i < 200) {
		if (i == 100)
			pt_slice_pause();
		sched_yield();
	} else {
		struct timespec nap = { 0, 2000 };
		nanosleep(&nap, NULL);
	}
}

static void backoff_done(unsigned i)
{
	if (i > 100)
		pt_slice_resume();
}

void pt_spin_wait(int *v)
{
	for (unsigned i = 0;; i++) {
		if (__atomic_load_n(v, __ATOMIC_RELAXED) == 0 &&
		    !__atomic_exchange_n(v, 1, __ATOMIC_ACQUIRE)) {
			backoff_done(i);
			return;
		}
		backoff(i);
	}
}

void pt_seqlock_wait(uint32_t *seq)
{
	for (unsigned i = 0;; i++) {
		uint32_t s = __atomic_load_n(seq, __ATOMIC_RELAXED);
		if (!(s & PT_SEQ_HELD) && __atomic_compare_exchange_n(seq, &s, s | PT_SEQ_HELD, false,
								      __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			backoff_done(i);
			return;
		}
		backoff(i);
	}
}

void pt_lock_wake(int *v)
{
	pt_slice_pause(); /* only inside an outer section: the outermost has ended */
	syscall(SYS_futex, v, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	pt_slice_resume();
}

/* ---- the public locks (ptimers/slice.h): the same, without the engine
 * section (a user's lock must not defer the user's signal handlers) ---- */

int ptimer_spin_lock(ptimer_spinlock_t *l)
{
	if (!l)
		return EINVAL;
	pt_spin_take(&l->v);
	return 0;
}

int ptimer_spin_trylock(ptimer_spinlock_t *l)
{
	if (!l)
		return EINVAL;
	return pt_spin_try(&l->v) ? 0 : EBUSY;
}

int ptimer_spin_unlock(ptimer_spinlock_t *l)
{
	if (!l)
		return EINVAL;
	if (!__atomic_load_n(&l->v, __ATOMIC_RELAXED))
		return EPERM;
	pt_spin_give(&l->v);
	return 0;
}

int ptimer_mutex_lock(ptimer_mutex_t *l)
{
	if (!l)
		return EINVAL;
	pt_mutex_take(&l->v);
	return 0;
}

int ptimer_mutex_trylock(ptimer_mutex_t *l)
{
	if (!l)
		return EINVAL;
	return pt_mutex_try(&l->v) ? 0 : EBUSY;
}

int ptimer_mutex_unlock(ptimer_mutex_t *l)
{
	if (!l)
		return EINVAL;
	if (!__atomic_load_n(&l->v, __ATOMIC_RELAXED))
		return EPERM;
	pt_mutex_give(&l->v);
	return 0;
}
