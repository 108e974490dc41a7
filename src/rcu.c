/* SPDX-License-Identifier: MIT */
/* RCU (rcu.h): deferred frees on liburcu-bp's worker, and fork. */
#define _GNU_SOURCE
#include <signal.h>

#include "rcu.h"
#include "slice.h"
#include "sys.h"

#ifdef __SANITIZE_THREAD__
char pt_rcu_tsan_sync;
#endif

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

void pt_rcu_barrier(void)
{
	if (__atomic_load_n(&call_rcu_used, __ATOMIC_ACQUIRE))
		urcu_bp_barrier();
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
