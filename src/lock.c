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
#include "rcu.h"
#include "sys.h"

#ifdef __SANITIZE_THREAD__
char pt_rcu_tsan_sync;
#endif

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

void pt_spin_wait(int *v)
{
	for (unsigned i = 0;; i++) {
		if (__atomic_load_n(v, __ATOMIC_RELAXED) == 0 &&
		    !__atomic_exchange_n(v, 1, __ATOMIC_ACQUIRE)) {
			if (i > 100)
				pt_slice_resume();
			return;
		}
		if (i < 100) {
			__builtin_ia32_pause();
		} else if (i < 200) {
			if (i == 100)
				pt_slice_pause(); /* yields and naps: outside the extension */
			sched_yield();
		} else {
			/* Still held: the holder may be of lower priority than us
			 * on this CPU, where yielding would not let it run. */
			struct timespec nap = { 0, 2000 };
			nanosleep(&nap, NULL);
		}
	}
}

void pt_seqlock_wait(uint32_t *seq)
{
	for (unsigned i = 0;; i++) {
		uint32_t s = __atomic_load_n(seq, __ATOMIC_RELAXED);
		if (!(s & PT_SEQ_HELD) && __atomic_compare_exchange_n(seq, &s, s | PT_SEQ_HELD, false,
								      __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			if (i > 100)
				pt_slice_resume();
			return;
		}
		/* As pt_spin_wait. */
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

/* ---- deferred frees ---- */

static int call_rcu_used; /* the worker exists (it starts on first use) */

void pt_call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *))
{
	if (!__atomic_load_n(&call_rcu_used, __ATOMIC_ACQUIRE)) {
		/* Start liburcu's worker now, with every signal blocked: the
		 * thread inherits the mask, and a process-directed signal must
		 * never be handed to it. */
		sigset_t all, old;
		sigfillset(&all);
		pt_slice_pause(); /* a new thread: outside the extension */
		pt_sys_sigmask(SIG_SETMASK, &all, &old);
		(void)urcu_bp_get_default_call_rcu_data();
		pt_sys_sigmask(SIG_SETMASK, &old, NULL);
		pt_slice_resume();
		__atomic_store_n(&call_rcu_used, 1, __ATOMIC_RELEASE);
	}
	PT_TSAN_RELEASE();
	pt_slice_pause(); /* it may wake its worker (futex) */
	urcu_bp_call_rcu(head, fn);
	pt_slice_resume();
}

void pt_rcu_fork_prepare(void)
{
	if (call_rcu_used)
		urcu_bp_call_rcu_before_fork();
	urcu_bp_before_fork();
}

void pt_rcu_fork_parent(void)
{
	urcu_bp_after_fork_parent();
	if (call_rcu_used)
		urcu_bp_call_rcu_after_fork_parent();
}

void pt_rcu_fork_child(void)
{
	urcu_bp_after_fork_child();
	if (call_rcu_used) {
		/* liburcu starts the child's worker here: same mask rule. */
		sigset_t all, old;
		sigfillset(&all);
		pt_sys_sigmask(SIG_SETMASK, &all, &old);
		urcu_bp_call_rcu_after_fork_child();
		pt_sys_sigmask(SIG_SETMASK, &old, NULL);
	}
}
