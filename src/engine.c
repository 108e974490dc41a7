/* SPDX-License-Identifier: MIT */
/*
 * The engine as a whole: start-up, fork, statistics, and the face it
 * shows the hooks (engine.h).
 *
 * Fork.  The kernel gives a fork child a new signal_struct: no timers, a
 * zero ID counter, restore mode off.  The child of a process using the
 * engine likewise starts with no timers and no engine thread, and the
 * parent's descriptors (timerfds, epoll, eventfd) are closed, since arming
 * them would move the parent's timers.  Every process-wide lock is taken
 * before fork, in the engine's lock order, so that the child finds each
 * structure in a consistent state:
 *
 *   dispatcher's work -> clocks start -> cpu -> dispatch -> base registry -> ids -> pool ->
 *   notify line -> workers -> root -> liburcu (its registry and call_rcu worker)
 *
 * (the per-object locks -- a timer's, a mid's, a base's program lock --
 * are not taken: the child frees or resets what they guard).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "base.h"
#include "clocks.h"
#include "cpu.h"
#include "dispatch.h"
#include "handoff.h"
#include "private.h"
#include "ids.h"
#include "notify.h"
#include "pool.h"
#include "ptimers.h"
#include "rcu.h"
#include "root.h"
#include "sys.h"
#include "timer.h"
#include "slice.h"
#include "uaccess.h"
#include "workers.h"

/* ---- the dispatcher's work ---- */

static void engine_work(void)
{
	pt_timer_hand_off_asked();
	pt_queue_run();
	/* Sends the full queue put off, first come first served (an expiry
	 * just run went behind them), and a wakeup while any wait. */
	pt_timer_send_waiting();
	if (pt_pool_trim_wanted())
		pt_pool_trim(pt_timer_busy);
}

/* ---- fork ---- */

static void fork_prepare(void)
{
	pt_dispatch_fork_quiesce();
	pt_clocks_fork_prepare();
	pt_cpu_fork_prepare();
	pt_dispatch_fork_prepare();
	pt_queue_fork_prepare();
	pt_ids_fork_prepare();
	pt_pool_fork_prepare();
	pt_notify_fork_prepare();
	pt_workers_fork_prepare();
	pt_root_fork_prepare();
	pt_rcu_fork_prepare();
}

static void fork_parent(void)
{
	pt_rcu_fork_parent();
	pt_root_fork_parent();
	pt_workers_fork_parent();
	pt_notify_fork_parent();
	pt_pool_fork_parent();
	pt_ids_fork_parent();
	pt_queue_fork_parent();
	pt_dispatch_fork_parent();
	pt_cpu_fork_parent();
	pt_clocks_fork_parent();
}

static void fork_child(void)
{
	pt_sys_fork_child();
	pt_section_fork_child();
	pt_rcu_fork_child();
	pt_timer_fork_child(); /* before the tree it walks is gone */
	pt_handoff_fork_child();
	pt_notify_fork_child();
	pt_workers_fork_child();
	pt_root_fork_child();
	pt_pool_fork_child();
	pt_ids_fork_child();
	pt_queue_fork_child();
	pt_dispatch_fork_child();
	pt_cpu_fork_child();
	pt_clocks_fork_child();
}

__attribute__((constructor(103))) static void engine_init(void)
{
	pt_timer_init();
	pt_pool_set_trim_hook(pt_dispatch_kick);
	pt_dispatch_set_work(engine_work);
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---- statistics ---- */

/* The struct may grow at its end: a caller that knows a larger one (up
 * to a page) gets the part past ours zeroed; a bad pointer is EFAULT. */
int ptimer_slice_stats(struct ptimer_slice_stats *stats, size_t size)
{
	static const char zeros[64];
	struct ptimer_slice_stats s;

	if (!stats || size < sizeof(s) || size > 4096) {
		errno = EINVAL;
		return -1;
	}
	pt_slice_stats(&s);
	for (size_t at = sizeof(s); at < size; at += sizeof(zeros)) {
		size_t n = size - at < sizeof(zeros) ? size - at : sizeof(zeros);
		if (pt_copy_to_user((char *)stats + at, zeros, n) != 0) {
			errno = EFAULT;
			return -1;
		}
	}
	if (pt_copy_to_user(stats, &s, sizeof(s)) != 0) {
		errno = EFAULT;
		return -1;
	}
	return 0;
}

int ptimer_get_stats(struct ptimer_stats *stats, size_t size)
{
	struct ptimer_stats s;
	struct pt_notify_stats n;

	if (!stats || size == 0) {
		errno = EINVAL;
		return -1;
	}
	memset(&s, 0, sizeof(s));
	pt_notify_stats(&n);
	s.timers = pt_ids_count();
	s.signals_sent = n.signals;
	s.threads_started = pt_workers_calls();
	s.sends_put_off = n.full;
	s.wakeups = pt_dispatch_wakeups();
	s.handed_off = (uint64_t)pt_handoff_count();
	s.dispositions_asked = n.asked;
	s.bytes = pt_pool_bytes() + pt_ids_bytes() + pt_queue_bytes();
	if (pt_copy_to_user(stats, &s, size < sizeof(s) ? size : sizeof(s)) != 0) {
		errno = EFAULT;
		return -1;
	}
	return 0;
}

/* ---- the hooks' side ---- */

int ptimer__taken(siginfo_t *si, const void *uc)
{
	pt_timer_signal_taken(si->si_signo); /* a standard signal's slot is free again */
	if (pt_dispatch_signal(si, uc))
		return 0;
	return pt_notify_is_engine_signal(si) ? pt_timer_deliver(si) : 1;
}

void ptimer__marks(struct ptimer__marks *m)
{
	m->engine_signo = pt_dispatch_signo();
	m->marker = pt_marker;
}

void ptimer__prefetch(const int *ids, size_t n)
{
	/* Two rounds: each ID's slot in the tree, then each timer, so that
	 * the misses of a round overlap instead of following each other.
	 * The slots are loaded, not prefetched: right after the read's
	 * system call a prefetch may be dropped where a load waits, and
	 * sixteen independent loads overlap all the same. */
	struct pt_timer *t[16];
	if (n > 16)
		n = 16;
	pt_rcu_read_lock();
	for (size_t i = 0; i < n; i++) {
		void *const *slot = pt_ids_dense_slot(ids[i]);
		t[i] = slot ? __atomic_load_n(slot, __ATOMIC_ACQUIRE) : NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (t[i]) { /* 96 bytes: two lines, whatever its alignment */
			pt_prefetch_own(t[i]);
			pt_prefetch_own((char *)t[i] + sizeof(*t[i]) - 1);
		}
	pt_rcu_read_unlock();
}

/* Signals whose default action is to do nothing (the kernel's
 * sig_kernel_ignore()). */
static bool ignores(int sig, void *handler)
{
	if (handler == (void *)SIG_IGN)
		return true;
	return handler == (void *)SIG_DFL &&
	       (sig == SIGCHLD || sig == SIGCONT || sig == SIGURG || sig == SIGWINCH);
}

void ptimer__disposition(int sig, void *old_handler, void *new_handler)
{
	pt_notify_disposition(sig, ignores(sig, new_handler));
	/* Timers whose signal was ignored get it now that it is not (the
	 * kernel's posixtimer_sig_unignore()). */
	if (ignores(sig, old_handler) && !ignores(sig, new_handler))
		pt_timer_unignore(sig);
}

int ptimer__fault_action(int sig, const struct sigaction *act, struct sigaction *old)
{
	if (!pt_fault_signal(sig)) {
		errno = EINVAL;
		return -1;
	}
	return pt_fault_set_action(sig, act, old);
}

int ptimer__engine_signo(void)
{
	return pt_dispatch_signo();
}

void ptimer__mask_changed(void)
{
	pt_fault_mask_changed();
}

int ptimer__copy_in(void *dst, const void *src, size_t n)
{
	return pt_copy_from_user(dst, src, n);
}

bool ptimer__is_engine_signal(const siginfo_t *si)
{
	return pt_notify_is_engine_signal(si);
}

bool ptimer__in_engine(void)
{
	return pt_section_inside();
}

void ptimer__defer(void)
{
	pt_section_defer();
}

void ptimer__set_exit_hook(void (*fn)(void))
{
	/* Only the hooks call this: from now on every disposition change
	 * made through libc is reported. */
	pt_section_set_exit_hook(fn);
	pt_notify_track_dispositions();
}

/* Tests: run fn on the dispatcher's thread when it starts (the stand-in
 * kernel attaches to it there).  0, or -1 with EBUSY once it runs. */
int ptimer__dispatch_on_start(void (*fn)(void))
{
	if (pt_dispatch_started()) {
		errno = EBUSY;
		return -1;
	}
	pt_dispatch_on_start(fn);
	return 0;
}

int ptimer__handoff(int max)
{
	if (max < 0) {
		errno = EINVAL;
		return -1;
	}
	if (max > 0 && !pt_sys_timer_ids_usable()) {
		errno = EOPNOTSUPP;
		return -1;
	}
	pt_handoff_set_max(max, true);
	return 0;
}
