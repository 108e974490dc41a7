/* SPDX-License-Identifier: MIT */
/*
 * The timer calls: create, settime, gettime, getoverrun, delete and the
 * restore-ID mode.  Each follows do_timer_create(), do_timer_settime(),
 * common_timer_get() and friends in kernel/time/posix-timers.c, including
 * the order of their checks, because the order decides which errno a
 * caller sees and whether an ID was used up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "rcu.h"

static inline int fail(int err)
{
	errno = err;
	return -1;
}

static inline int timer_to_id(timer_t timerid)
{
	intptr_t v = (intptr_t)timerid;
	return v < 0 || v > INT_MAX ? -1 : (int)v;
}

static bool timespec_valid(const struct timespec *ts)
{
	return ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < PT_NSEC_PER_SEC;
}

static int64_t timespec_to_ns_sat(const struct timespec *ts)
{
	if (ts->tv_sec >= PT_NEVER / PT_NSEC_PER_SEC)
		return PT_NEVER;
	return pt_ts_to_ns(ts);
}

void pt_timer_seq_begin(struct pt_timer *t)
{
	__atomic_store_n(&t->seq, t->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

void pt_timer_seq_end(struct pt_timer *t)
{
	__atomic_store_n(&t->seq, t->seq + 1, __ATOMIC_RELEASE);
}

/*
 * Move a periodic timer's expiry forward by whole intervals.  Like the
 * kernel's hrtimer_forward(): past now, returning how many intervals were
 * added.  With inclusive, to the last boundary at or before now instead:
 * the dispatcher uses it when it finds a signal already delivered and
 * re-arms as if at that boundary.
 */
int64_t pt_timer_forward(struct pt_timer *t, int64_t now, bool inclusive)
{
	int64_t iv = t->interval, delta = now - t->expires;

	if (iv <= 0 || delta < 0)
		return 0;
	/* expires + (delta / iv) * iv is the last boundary at or before now;
	 * the kernel always goes one interval further, to be past now. */
	int64_t orun = delta / iv + (inclusive ? 0 : 1);
	PT_WRITE(t->expires, t->expires + orun * iv);
	return orun;
}

static void timer_free(void *obj)
{
	struct pt_timer *t = obj;

	pt_notify_fini(t);
	free(t);
}

/* Give back the heap slots reserved at create, and its CPU clock. */
static void release_queues(struct pt_timer *t)
{
	pt_queue_unreserve();
	if (t->cpu)
		pt_cpu_detach(t->cpu);
}

int ptimer_create(clockid_t clockid, struct sigevent *sev, timer_t *timerid)
{
	int wanted = -1, err, id;

	err = pt_clock_check(clockid);
	if (err)
		return fail(-err);

	struct pt_timer *t = calloc(1, sizeof(*t));
	if (!t)
		return fail(EAGAIN); /* the kernel's answer to a failed allocation */
	t->heap_idx = -1;
	t->overrun = -1;
	t->clockid = clockid;

	/* Special case for checkpoint/restore: the wanted ID is in *timerid. */
	if (pt_ids_restore_on()) {
		if (!timerid) {
			free(t);
			return fail(EFAULT);
		}
		intptr_t req = (intptr_t)*timerid;
		if (req < 0 || req > INT_MAX) {
			free(t);
			return fail(EINVAL);
		}
		wanted = (int)req;
	}
	if (pt_queue_reserve() != 0) {
		free(t);
		return fail(EAGAIN);
	}
	if (pt_is_cpu_clock(clockid)) {
		t->cpu = pt_cpu_attach(clockid, &err);
		if (!t->cpu) {
			release_queues(t);
			free(t);
			return fail(-err);
		}
	}
	/* The ID is reserved from here on but the timer is not valid yet:
	 * lookups ignore it until it is fully built. */
	id = pt_ids_insert(t, wanted);
	if (id < 0) {
		release_queues(t);
		free(t);
		return fail(-id);
	}
	/* Like the kernel, validate the sigevent only now: a bad one has
	 * still used up a counter value. */
	err = pt_notify_check(sev, clockid);
	if (!err)
		err = pt_notify_init(t, sev);
	if (!err && t->notify != SIGEV_NONE)
		err = pt_dispatch_start();
	if (!err && !timerid)
		err = -EFAULT;
	if (err) {
		pt_ids_remove(t);
		release_queues(t);
		pt_notify_fini(t);
		free(t); /* never valid: no reader can hold it */
		return fail(-err);
	}
	__atomic_store_n(&t->valid, true, __ATOMIC_RELEASE);
	*timerid = (timer_t)(intptr_t)id;
	return 0;
}

/* Look up and lock a live timer.  On success the caller holds t->lock and
 * the RCU read lock; release both with unlock_timer(). */
static struct pt_timer *lock_timer(timer_t timerid)
{
	int id = timer_to_id(timerid);

	pt_rcu_read_lock();
	struct pt_timer *t = pt_ids_lookup(id);
	if (t) {
		pt_lock(&t->lock);
		if (t->valid)
			return t;
		pt_unlock(&t->lock); /* deleted while we looked */
	}
	pt_rcu_read_unlock();
	return NULL;
}

static void unlock_timer(struct pt_timer *t)
{
	pt_unlock(&t->lock);
	pt_rcu_read_unlock();
}

/* The kernel's common_timer_get(), t->lock held.  It may move a periodic
 * timer whose signal is pending (or a SIGEV_NONE one) forward, counting
 * overruns, exactly as the kernel does. */
static void timer_get(struct pt_timer *t, struct itimerspec *cur)
{
	bool sig_none = t->notify == SIGEV_NONE;

	memset(cur, 0, sizeof(*cur));
	int64_t now = t->cpu ? pt_cpu_now(t->cpu) : 0;
	if (now < 0)
		return; /* a CPU clock whose thread is gone: the kernel says all 0 */
	if (t->interval)
		cur->it_interval = pt_ns_to_ts(t->interval);
	if (t->status == PT_DISARMED)
		return; /* POSIX: a disarmed timer reports zero, SIGEV_NONE too */
	if (!t->cpu)
		now = pt_base_now(t->base);
	if (t->interval && (t->status != PT_ARMED || sig_none)) {
		pt_timer_seq_begin(t);
		PT_WRITE(t->overrun, t->overrun + pt_timer_forward(t, now, false));
		pt_timer_seq_end(t);
	}
	int64_t remaining = t->expires - now;
	if (remaining <= 0) {
		/* Expired and not yet handled by the dispatcher: the kernel
		 * reports 1 ns; an expired one-shot SIGEV_NONE reports 0. */
		if (!sig_none)
			cur->it_value.tv_nsec = 1;
	} else {
		cur->it_value = pt_ns_to_ts(remaining);
	}
}

int ptimer_settime(timer_t timerid, int flags, const struct itimerspec *new_value,
		   struct itimerspec *old_value)
{
	if (!new_value)
		return fail(EINVAL);
	if (!timespec_valid(&new_value->it_interval) || !timespec_valid(&new_value->it_value))
		return fail(EINVAL);

	struct pt_timer *t = lock_timer(timerid);
	if (!t)
		return fail(EINVAL);
	if (t->cpu && pt_cpu_now(t->cpu) < 0) {
		unlock_timer(t);
		return fail(ESRCH); /* the kernel's answer for a reaped thread's clock */
	}
	if (old_value)
		timer_get(t, old_value);

	bool absolute = flags & TIMER_ABSTIME;
	int64_t value = timespec_to_ns_sat(&new_value->it_value);
	int64_t interval = value ? timespec_to_ns_sat(&new_value->it_interval) : 0;

	pt_timer_seq_begin(t);
	pt_queue_del(t);
	/* A signal still pending for the old arming is dropped when it is
	 * delivered: it carries the old sequence number. */
	t->signal_seq++;
	PT_WRITE(t->status, PT_DISARMED);
	PT_WRITE(t->interval, interval);
	PT_WRITE(t->overrun_last, 0);
	PT_WRITE(t->overrun, -1);
	pt_notify_reset(t);
	if (value) {
		int base = pt_clock_base(t->clockid, absolute);
		int64_t expires = absolute ? value : pt_add_sat(pt_now(base, t), value);
		PT_WRITE(t->base, base);
		PT_WRITE(t->expires, expires);
		PT_WRITE(t->status, PT_ARMED);
		t->probe = false;
		/* SIGEV_NONE timers are never queued: gettime computes them. */
		if (t->notify != SIGEV_NONE)
			pt_queue_add(t, base, expires);
	}
	pt_timer_seq_end(t);
	unlock_timer(t);
	return 0;
}

int ptimer_gettime(timer_t timerid, struct itimerspec *curr)
{
	struct pt_timer *t = lock_timer(timerid);

	if (!t)
		return fail(EINVAL);
	if (!curr) {
		unlock_timer(t);
		return fail(EFAULT);
	}
	timer_get(t, curr);
	unlock_timer(t);
	return 0;
}

static int overrun_to_int(int64_t overrun)
{
	return overrun > INT_MAX ? INT_MAX : (int)overrun; /* DELAYTIMER_MAX */
}

int ptimer_getoverrun(timer_t timerid)
{
	struct pt_timer *t = lock_timer(timerid);

	if (!t)
		return fail(EINVAL);
	int ret = overrun_to_int(t->overrun_last);
	unlock_timer(t);
	return ret;
}

int ptimer_delete(timer_t timerid)
{
	struct pt_timer *t = lock_timer(timerid);

	if (!t)
		return fail(EINVAL);
	pt_timer_seq_begin(t);
	__atomic_store_n(&t->valid, false, __ATOMIC_RELEASE);
	pt_queue_del(t);
	t->signal_seq++;
	PT_WRITE(t->status, PT_DISARMED);
	pt_notify_reset(t);
	pt_timer_seq_end(t);
	unlock_timer(t);

	pt_ids_remove(t);
	release_queues(t);
	pt_defer_free(&t->limbo, t, timer_free);
	return 0;
}

/* Re-arm a periodic timer whose signal was delivered (the kernel's
 * __posixtimer_deliver_signal()).  t->lock held, status REQUEUE_PENDING. */
static void rearm_delivered(struct pt_timer *t, int64_t now, bool inclusive)
{
	pt_timer_seq_begin(t);
	pt_queue_del(t); /* a probe that is no longer needed */
	PT_WRITE(t->overrun, t->overrun + pt_timer_forward(t, now, inclusive));
	PT_WRITE(t->status, PT_ARMED);
	PT_WRITE(t->overrun_last, t->overrun);
	PT_WRITE(t->overrun, -1);
	t->signal_seq++;
	t->probe = false;
	pt_queue_add(t, t->base, t->expires);
	pt_timer_seq_end(t);
}

void pt_timer_rearm_queued(struct pt_timer *t)
{
	rearm_delivered(t, pt_now(t->base, t), true);
}

/* The kernel's posixtimer_deliver_signal(). */
int pt_deliver(siginfo_t *info)
{
	info->si_errno = 0; /* the marker is ours, not the program's */
	struct pt_timer *t = lock_timer((timer_t)(intptr_t)info->si_timerid);
	if (!t)
		return 0; /* deleted: the kernel drops the signal */
	int ret = 1;
	if (t->sig_queued && t->sigqueue_seq == t->signal_seq) {
		PT_WRITE(t->sig_queued, false);
		if (t->interval && t->status == PT_REQUEUE_PENDING) {
			rearm_delivered(t, pt_now(t->base, t), false);
			info->si_overrun = overrun_to_int(t->overrun_last);
		}
	} else if (!t->sig_queued && t->probe_took && t->probe_seq == t->signal_seq) {
		/* The probe found the signal gone while it was on its way to
		 * us and re-armed already: this is that delivery. */
		t->probe_took = false;
		info->si_overrun = overrun_to_int(t->overrun_last);
	} else {
		/* Re-armed or deleted since it was sent: stale. */
		PT_WRITE(t->sig_queued, false);
		ret = 0;
	}
	unlock_timer(t);
	return ret;
}

int ptimer_signal_delivered(siginfo_t *info)
{
	if (!info || !pt_is_engine_signal(info))
		return -1;
	return pt_deliver(info);
}

int ptimer_restore_ids(unsigned long mode, unsigned long a3, unsigned long a4, unsigned long a5)
{
	if (a3 || a4 || a5)
		return fail(EINVAL);
	int ret = pt_ids_restore_mode(mode);
	return ret < 0 ? fail(-ret) : ret;
}

int ptimer_set_id_policy(enum ptimer_id_policy policy)
{
	int ret = pt_ids_set_policy((int)policy);
	return ret < 0 ? fail(-ret) : 0;
}

int ptimer_get_id_policy(void)
{
	return pt_ids_get_policy();
}

int ptimer_set_max_timers(size_t max)
{
	pt_ids_set_max(max);
	return 0;
}
