/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <sched.h>
#include <time.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lock.h"
#include "rcu.h"

#ifdef __SANITIZE_THREAD__
char pt_rcu_tsan_sync;
#endif

void pt_lock_wait(pt_lock_t *l)
{
	/* Spin briefly: holds are a few dozen nanoseconds. */
	for (int i = 0; i < 64; i++) {
		int expected = 0;
		if (__atomic_load_n(&l->v, __ATOMIC_RELAXED) == 0 &&
		    __atomic_compare_exchange_n(&l->v, &expected, 1, false, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return;
		__builtin_ia32_pause();
	}
	while (__atomic_exchange_n(&l->v, 2, __ATOMIC_ACQUIRE) != 0)
		syscall(SYS_futex, &l->v, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
}

void pt_spin_wait(pt_spin_t *l)
{
	for (unsigned i = 0;; i++) {
		if (__atomic_load_n(&l->v, __ATOMIC_RELAXED) == 0 &&
		    !__atomic_exchange_n(&l->v, 1, __ATOMIC_ACQUIRE))
			return;
		if (i < 100) {
			__builtin_ia32_pause();
		} else if (i < 200) {
			sched_yield();
		} else {
			/* Still held: the holder may be of lower priority than us
			 * on this CPU, where yielding would not let it run. */
			struct timespec nap = { 0, 2000 };
			nanosleep(&nap, NULL);
		}
	}
}

void pt_lock_wake(pt_lock_t *l)
{
	syscall(SYS_futex, &l->v, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
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
		pthread_sigmask(SIG_SETMASK, &all, &old);
		(void)urcu_bp_get_default_call_rcu_data();
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		__atomic_store_n(&call_rcu_used, 1, __ATOMIC_RELEASE);
	}
	PT_TSAN_RELEASE();
	urcu_bp_call_rcu(head, fn);
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
		pthread_sigmask(SIG_SETMASK, &all, &old);
		urcu_bp_call_rcu_after_fork_child();
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
}
