/* SPDX-License-Identifier: MIT */
/*
 * The timer calls and every change of a timer's state: create, arm, fire,
 * forward, deliver, delete.  Each follows its counterpart in the kernel's
 * kernel/time/posix-timers.c (do_timer_create(), do_timer_settime(),
 * common_timer_get(), posix_timer_fn(), posixtimer_deliver_signal()),
 * including the order of their checks, because the order decides which
 * errno a caller sees and whether an ID was used up.
 *
 * The dispatcher reaches this file through the queue callbacks: want()
 * says where a timer should be queued, expire() fires it.  The hooks reach
 * it when the program takes a signal: pt_timer_deliver().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "clocks.h"
#include "cpu.h"
#include "dispatch.h"
#include "handoff.h"
#include "ids.h"
#include "image.h"
#include "notify.h"
#include "pool.h"
#include "probes.h"
#include "root.h"
#include "ptimers.h"
#include "sys.h"
#include "timer.h"
#include "uaccess.h"

#define RETRY_NS 1000000 /* a send the full queue put off is tried again after this */
#define PROBE_MIN_NS 1000000 /* a probe looks no more often than this */

_Static_assert(sizeof(struct pt_timer) == 96, "a timer is 96 bytes");
_Static_assert(offsetof(struct pt_timer, status) == PT_QNODE_OWNER_BYTES,
	       "the timer's bytes start where the queue node's end");

#define RD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WR(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

static inline int fail(int err)
{
	errno = err;
	return -1;
}

static inline int id_of(timer_t timerid)
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

static int clamp_overrun(int64_t v)
{
	return v > INT_MAX ? INT_MAX : (int)v; /* DELAYTIMER_MAX */
}

/* ---- write windows and state writes (t->lock held) ---- */

/* Every change a reader sees (the fields pt_timer_read() copies) is made
 * inside a window: readers wait out an open one, so a window holds no
 * system call, no lock and no allocation; what the kernel says is asked
 * before it opens. */
static inline void seq_begin(struct pt_timer *t)
{
	pt_seq_write_begin(&t->lock);
}

static inline void seq_end(struct pt_timer *t)
{
	pt_seq_write_end(&t->lock);
}

static void set_flag(struct pt_timer *t, unsigned f, bool on)
{
	WR(t->flags, (uint8_t)(on ? t->flags | f : t->flags & ~f));
}

static void add_overrun(struct pt_timer *t, int64_t n)
{
	WR(t->overrun, clamp_overrun((int64_t)t->overrun + n));
}

static inline int64_t base_now(uint16_t base)
{
	return pt_clock_now(base);
}

/*
 * Move a periodic timer's expiry forward by whole intervals, past now,
 * returning how many were added: the kernel's hrtimer_forward().  With
 * inclusive, only to the last boundary at or before now (a probe found
 * the signal delivered and re-arms as if at that boundary).
 */
static int64_t forward(struct pt_timer *t, int64_t now, bool inclusive)
{
	int64_t iv = t->interval, delta = now - t->expires;

	if (iv <= 0 || delta < 0)
		return 0;
	int64_t n = delta / iv + (inclusive ? 0 : 1);
	WR(t->expires, pt_add_sat(t->expires, n > PT_NEVER / iv ? PT_NEVER : n * iv));
	return n;
}

/* ---- the queue's view of a timer ---- */

/* When a periodic timer that is not armed looks again at how things
 * stand (a probe, a parked timer without the hooks): at its next period
 * boundary, but not sooner than a millisecond from now: a timer of a
 * nanosecond's period must not keep the dispatcher looking. */
static int64_t next_look(struct pt_timer *t)
{
	int64_t from = base_now(t->base);
	if (t->interval < PROBE_MIN_NS)
		from = pt_add_sat(from, PROBE_MIN_NS);
	int64_t at = t->expires;
	if (at <= from)
		at += ((from - at) / t->interval + 1) * t->interval;
	return at;
}

static inline __attribute__((always_inline)) uint16_t want(struct pt_timer *t, int64_t *key)
{
	if (!t->valid || t->status == PT_DISARMED || t->status == PT_KERNEL || t->notify == SIGEV_NONE)
		return PT_BASE_NONE;
	if (t->flags & PT_F_IGNORED) {
		/* Parked until the program stops ignoring its signal.  The
		 * hooks tell when (pt_timer_unignore()); without them it
		 * looks at its period boundaries (expire()). */
		if (pt_notify_tracks_dispositions())
			return PT_BASE_NONE;
		*key = next_look(t);
		return t->base;
	}
	if (t->flags & PT_F_RETRY) {
		if (t->flags & PT_F_WAITS)
			return PT_BASE_NONE; /* its turn comes in the line */
		/* No memory for the line: tried again shortly, in real time
		 * whatever its clock (a CPU clock may not move). */
		*key = pt_clock_ns(CLOCK_MONOTONIC) + RETRY_NS;
		return PT_BASE_MONOTONIC;
	}
	if (t->status == PT_ARMED) {
		/* Queued by its latest time: the dispatcher wakes for that,
		 * and fires what is within its leeway then (base.h). */
		*key = t->leeway ? pt_add_sat(t->expires, pt_leeway_ns(t->leeway)) : t->expires;
		return t->base;
	}
	if (!(t->flags & PT_F_SIG_QUEUED))
		return PT_BASE_NONE; /* its thread is gone: nothing more to send */
	/* A periodic timer whose signal is out: look whether it was taken
	 * (the probe; see expire()). */
	*key = next_look(t);
	return t->base;
}

/* Tell the queue the timer's wishes changed.  t->lock held.  A timer
 * that neither was nor is to be queued (never armed, say) has nothing to
 * tell: a create/delete cycle never touches the queue. */
static inline __attribute__((always_inline)) void queued_changed(struct pt_timer *t)
{
	int64_t key = 0;
	uint16_t b = want(t, &key);
	bool queued = b != PT_BASE_NONE;
	if (!queued && !(t->flags & PT_F_QUEUED))
		return;
	set_flag(t, PT_F_QUEUED, queued);
	pt_queue_update(&t->q, b, key);
}

/* ---- locking by ID ---- */

/* Look up and lock a live timer.  On success the caller holds t->lock and
 * the RCU read lock; release both with unlock_timer(). */
static inline __attribute__((always_inline)) struct pt_timer *lock_timer(int id)
{
	pt_rcu_read_lock(); /* an engine section: it covers the lock's hold */
	struct pt_timer *t = pt_ids_lookup(id);
	if (t) {
		pt_seq_take(&t->lock.seq);
		/* Deleted (and maybe reused) while we looked: the pool keeps the
		 * memory a timer, so these two say whether it is ours. */
		if (t->valid && t->id == id)
			return t;
		pt_seq_give(&t->lock.seq);
	}
	pt_rcu_read_unlock();
	return NULL;
}

static inline __attribute__((always_inline)) void unlock_timer(struct pt_timer *t)
{
	pt_seq_give(&t->lock.seq);
	pt_rcu_read_unlock();
}

/* ---- create ---- */

/* Every field of a timer being made, disarmed, from its sigevent (the
 * caller's, or the kernel's default filled in); thr: its SIGEV_THREAD
 * call.  t->lock held, inside a window.  Shared by create and
 * restore, which then sets what the image carries. */
static inline __attribute__((always_inline)) void
init_fields(struct pt_timer *t, int id, clockid_t clockid, uint16_t cbase, const struct sigevent *ev,
	    struct pt_thread_notify *thr)
{
	WR(t->id, id);
	WR(t->gen, 0); /* set once the ID is had */
	WR(t->clockid, clockid);
	WR(t->cbase, cbase);
	WR(t->base, pt_clock_base(clockid, cbase, false));
	WR(t->status, PT_DISARMED);
	WR(t->flags, 0);
	WR(t->expires, 0);
	WR(t->interval, 0);
	WR(t->overrun, -1);
	WR(t->overrun_last, 0);
	t->signal_seq = t->sigq_seq = 0;
	t->stamp = t->probe_stamp = 0;
	WR(t->notify, (uint8_t)ev->sigev_notify);
	WR(t->signo, (uint8_t)ev->sigev_signo);
	WR(t->leeway, 0);
	WR(t->value.sival_ptr, ev->sigev_value.sival_ptr);
	if (thr) {
		WR(t->thr, thr);
	} else {
		WR(t->target, ev->sigev_notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID) ? ev->_sigev_un._tid
										   : pt_pid);
		WR(t->sent_tid, 0);
	}
}

int ptimer_create(clockid_t clockid, struct sigevent *sev, timer_t *timerid)
{
	int wanted = -1, err;
	uint16_t cbase = PT_BASE_NONE;
	struct sigevent ev;

	/* The kernel copies the sigevent in before anything else. */
	if (sev && pt_copy_from_user(&ev, sev, sizeof(ev)) != 0)
		return fail(EFAULT);
	err = pt_clock_check(clockid);
	if (err)
		return fail(-err);
	/* Special case for checkpoint/restore: the wanted ID is in *timerid. */
	if (pt_ids_restore_on()) {
		timer_t req;
		if (pt_copy_from_user(&req, timerid, sizeof(req)) != 0)
			return fail(EFAULT);
		if ((intptr_t)req < 0 || (intptr_t)req > INT_MAX)
			return fail(EINVAL);
		wanted = (int)(intptr_t)req;
	}
	pt_root_publish(); /* readers outside the process find it from now on */
	struct pt_timer *t = pt_pool_alloc();
	if (!t)
		return fail(EAGAIN); /* the kernel's answer to a failed allocation */
	err = pt_clock_get(clockid, &cbase);
	if (err)
		goto out_free;
	/* The ID is reserved from here on but the timer is not valid yet:
	 * lookups pass it over until it is fully built. */
	uint32_t gen = 0;
	int id = pt_ids_alloc(t, wanted, &gen);
	if (id < 0) {
		err = id == -ENOMEM ? -EAGAIN : id;
		goto out_clock;
	}
	/* Like the kernel, check the sigevent only now: a bad one has still
	 * used up a counter value. */
	err = pt_notify_check(sev ? &ev : NULL);
	struct pt_thread_notify *thr = NULL;
	if (!err && sev && ev.sigev_notify == SIGEV_THREAD)
		err = pt_workers_notify_new(&ev, &thr);
	if (!err)
		err = pt_clocks_start(); /* the dispatcher and the clocks */
	/* The kernel copies the ID out before the timer becomes valid. */
	if (!err && pt_copy_to_user(timerid, &(timer_t){ (timer_t)(intptr_t)id }, sizeof(timer_t)))
		err = -EFAULT;
	if (err) {
		if (thr)
			pt_workers_notify_free(thr);
		goto out_id;
	}

	if (!sev) {
		/* The kernel's default: SIGALRM with the timer ID as value. */
		memset(&ev, 0, sizeof(ev));
		ev.sigev_notify = SIGEV_SIGNAL;
		ev.sigev_signo = SIGALRM;
		ev.sigev_value.sival_int = id;
	}
	/* Built under the lock: a late reader of the timer this memory was
	 * may hold it, and must see the old state or the new one. */
	pt_seqlock_lock(&t->lock);
	seq_begin(t);
	init_fields(t, id, clockid, cbase, &ev, thr);
	WR(t->gen, gen);
	__atomic_store_n(&t->valid, 1, __ATOMIC_RELEASE);
	seq_end(t);
	pt_seqlock_unlock(&t->lock);
	PT_PROBE4(create, id, clockid, ev.sigev_notify, ev.sigev_signo);
	return 0;

out_id:
	pt_ids_free(id);
out_clock:
	pt_clock_put(cbase);
out_free:
	pt_pool_free(t); /* never valid: no reader acts on it */
	return fail(-err);
}

/* ---- get ---- */

/* The kernel's common_timer_get(), t->lock held.  It may move a periodic
 * timer whose signal is pending (or a SIGEV_NONE one) forward, counting
 * overruns, exactly as the kernel does. */
static void timer_get(struct pt_timer *t, struct itimerspec *cur)
{
	bool sig_none = t->notify == SIGEV_NONE;

	memset(cur, 0, sizeof(*cur));
	if (t->cbase != PT_BASE_NONE && base_now(t->cbase) < 0)
		return; /* a CPU clock whose thread is gone: the kernel says all 0 */
	if (t->interval)
		cur->it_interval = pt_ns_to_ts(t->interval);
	if (t->status == PT_DISARMED)
		return; /* POSIX: a disarmed timer reports zero, SIGEV_NONE too */
	/* A CPU clock's kernel timer fires at a tick after its time, and
	 * says 1 ns left until then, where the grid would name the next
	 * expiry: ask it (as dear as reading the clock, a system call too). */
	if (t->status == PT_KERNEL && t->cbase != PT_BASE_NONE && t->notify != SIGEV_THREAD &&
	    pt_handoff_gettime(t->id, cur) == 0)
		return;
	int64_t now = base_now(t->base);
	if (t->interval && (t->status != PT_ARMED || sig_none)) {
		seq_begin(t);
		add_overrun(t, forward(t, now, false));
		seq_end(t);
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

int ptimer_gettime(timer_t timerid, struct itimerspec *curr)
{
	struct itimerspec cur;
	struct pt_timer *t = lock_timer(id_of(timerid));

	if (!t)
		return fail(EINVAL);
	timer_get(t, &cur);
	unlock_timer(t);
	return pt_copy_to_user(curr, &cur, sizeof(cur)) ? fail(EFAULT) : 0;
}

/* ---- handing off to the kernel (handoff.h) ---- */

/* Periodic and hot enough for a kernel timer to keep, without leeway,
 * which only the engine has, on a base the kernel's clock reads as the
 * engine's does (no shift after a restore). */
static bool hot(const struct pt_timer *t, int64_t interval, uint16_t base)
{
	return interval > 0 && interval <= PT_HANDOFF_INTERVAL_NS && !t->leeway && pt_base_shift_of(base) == 0;
}

/* Could a kernel timer keep t, armed with this interval on this base, on
 * its own clock ID: hot, on a clock that reads the same whichever thread
 * creates the kernel timer (a worker does, for a carrier), armed
 * absolutely on the timer's grid, or for a relative CLOCK_REALTIME
 * setting relatively, as the kernel keeps it (relative_realtime()).  Not
 * an absolute wall-clock (or TAI) setting: CRIU re-arms a kernel timer
 * relatively, which keeps a grid on the monotonic clocks (a time
 * namespace, or the engine's shift) but would move one on the wall
 * clock by the time the process lay dead, where the engine keeps its
 * wall-clock deadlines.  Both a signal timer's handoff and a
 * SIGEV_THREAD timer's carrier ask this. */
static bool kernel_keeps(const struct pt_timer *t, int64_t interval, uint16_t base)
{
	return hot(t, interval, base) && t->cbase == PT_BASE_NONE &&
	       (t->clockid == CLOCK_MONOTONIC || t->clockid == CLOCK_BOOTTIME ||
		(t->clockid == CLOCK_REALTIME && base == PT_BASE_MONOTONIC));
}

/* ... and a signal timer, handed to a kernel timer of its ID: on those
 * clocks, or on a CPU clock (made explicit: the engine's thread is not
 * the one whose time CLOCK_THREAD_CPUTIME_ID counts).  A CPU one whose
 * signal goes to the process is handed off between two expiries, not at
 * one (ahead()). */
static bool handoff_fits(const struct pt_timer *t, int64_t interval, uint16_t base)
{
	if (t->notify != SIGEV_SIGNAL && t->notify != (SIGEV_SIGNAL | SIGEV_THREAD_ID))
		return false;
	if (t->cbase != PT_BASE_NONE)
		return hot(t, interval, base);
	return kernel_keeps(t, interval, base);
}

/* A CPU-clock timer whose signal goes to the process.  A kernel CPU timer
 * armed for a time already passed fires at once, from the thread arming
 * it, and the kernel gives the signal to that thread if it takes it, else
 * to any other; at an expiry the thread arming it would be the engine's,
 * which blocks the signal, where the kernel's own timer gives it to the
 * thread whose time ran out, as that thread runs.  So such a timer is
 * handed off armed for its next expiry, still ahead: asked for when the
 * program takes its signal (pt_timer_deliver()), done by the dispatcher
 * (pt_timer_hand_off_asked()). */
static bool ahead(const struct pt_timer *t)
{
	return t->cbase != PT_BASE_NONE && t->notify == SIGEV_SIGNAL;
}

/* A relative CLOCK_REALTIME setting: the kernel keeps it on the
 * monotonic clock (the engine on its monotonic base), where an absolute
 * arming of a CLOCK_REALTIME kernel timer would follow the wall clock.
 * Its kernel timer is armed relatively, and the engine's grid moved onto
 * the kernel's (handoff.h). */
static bool relative_realtime(const struct pt_timer *t, uint16_t base)
{
	return t->clockid == CLOCK_REALTIME && base == PT_BASE_MONOTONIC;
}

static clockid_t handoff_clock(const struct pt_timer *t)
{
	clockid_t clock = t->clockid;
	pid_t tid;
	if (t->cbase != PT_BASE_NONE)
		pt_cpu_describe(t->cbase, &clock, &tid);
	return clock;
}

/* The timer is the engine's again, armed at the next point of its grid,
 * its overruns counted afresh.  t->lock held; the caller tells the queue
 * (or re-arms it anyway). */
static void rejoin_grid(struct pt_timer *t)
{
	int64_t now = base_now(t->base);
	seq_begin(t);
	forward(t, now, false);
	WR(t->status, PT_ARMED);
	WR(t->overrun, -1);
	seq_end(t);
}

/* May t be handed off now (t->lock held, nothing of it in flight)?
 * Only once the program has taken a signal of this arming: the one the
 * engine sent went out (stamp), and its delivery is the last re-arm
 * (sigq_seq one behind).  A timer whose signal stays blocked is left to
 * the engine, whose overrun count survives a CRIU restore of a pending
 * signal; the kernel's does not (README).  And only when that delivery
 * had no overruns: until the kernel timer's first delivery, getoverrun
 * asks it, and it says 0. */
static bool may_hand_off(const struct pt_timer *t)
{
	return !(t->flags & ~(PT_F_QUEUED | PT_F_ABSOLUTE)) && t->stamp && t->sigq_seq + 1 == t->signal_seq &&
	       t->overrun_last == 0 && handoff_fits(t, t->interval, t->base) && pt_handoff_may(t->interval) &&
	       !pt_notify_full_until();
}

/* The kernel timer made, the timer is the kernel's from its next expiry
 * (expires).  t->lock held. */
static bool start_kernel_timer(struct pt_timer *t)
{
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = t->notify;
	sev.sigev_signo = t->signo;
	sev.sigev_value = t->value;
	if (t->notify & SIGEV_THREAD_ID)
		sev._sigev_un._tid = t->target;
	int64_t aligned = t->expires;
	if (pt_handoff_start(t->id, handoff_clock(t), &sev, t->expires, t->interval,
			     relative_realtime(t, t->base) ? &aligned : NULL) != 0)
		return false;
	seq_begin(t);
	WR(t->expires, aligned);
	WR(t->status, PT_KERNEL);
	WR(t->overrun, -1);
	t->signal_seq++;
	seq_end(t);
	return true;
}

/* At an expiry of t (due, t->lock held, nothing of it in flight): hand
 * it off, the kernel timer sending this expiry's signal and every one
 * after.  false: not now, the engine fires it. */
static bool hand_off(struct pt_timer *t)
{
	return !ahead(t) && may_hand_off(t) && start_kernel_timer(t);
}

/* How far ahead of its next expiry (of CPU time) a timer asked for must
 * still be when the dispatcher hands it off: the clock the kernel reads
 * as it arms must not have passed it (every thread of the process may be
 * adding to it meanwhile).  A timer closer than that asks again at its
 * next delivery. */
#define AHEAD_NS 1000000LL

#define ASKS 64
static struct {
	pt_lock_t lock;
	unsigned n;
	struct ask {
		int id;
		uint32_t gen, seq;
	} e[ASKS];
} asks = { .lock = PT_LOCK_INIT };

/* At a delivery that re-armed t (t->lock held): ask for its handoff.
 * True: the dispatcher must be woken (once t->lock is let go). */
static bool ask_ahead(struct pt_timer *t)
{
	if (!ahead(t) || t->status != PT_ARMED || !may_hand_off(t))
		return false;
	pt_lock(&asks.lock);
	bool added = asks.n < ASKS;
	if (added) {
		asks.e[asks.n] = (struct ask){ t->id, t->gen, t->signal_seq };
		__atomic_store_n(&asks.n, asks.n + 1, __ATOMIC_RELAXED); /* looked at unlocked */
	}
	pt_unlock(&asks.lock);
	return added;
}

void pt_timer_hand_off_asked(void)
{
	struct ask e[ASKS];

	if (!__atomic_load_n(&asks.n, __ATOMIC_RELAXED))
		return;
	pt_lock(&asks.lock);
	unsigned n = asks.n;
	memcpy(e, asks.e, n * sizeof(e[0]));
	__atomic_store_n(&asks.n, 0, __ATOMIC_RELAXED);
	pt_unlock(&asks.lock);
	for (unsigned i = 0; i < n; i++) {
		struct pt_timer *t = lock_timer(e[i].id);
		if (!t)
			continue;
		/* Nothing happened to it since: not re-armed, nothing sent. */
		if (t->gen == e[i].gen && t->signal_seq == e[i].seq && t->status == PT_ARMED && may_hand_off(t)) {
			int64_t now = base_now(t->base);
			int64_t margin = t->interval / 2 < AHEAD_NS ? t->interval / 2 : AHEAD_NS;
			if (now >= 0 && t->expires - now >= margin && start_kernel_timer(t))
				queued_changed(t);
		}
		unlock_timer(t);
	}
}

/* A handed-off timer is the engine's again (its leeway changed).  t->lock
 * held. */
static void take_back(struct pt_timer *t)
{
	pt_handoff_end(t->id);
	rejoin_grid(t);
}

/* A SIGEV_THREAD timer carried by a worker of its own (workers.h): the
 * same conditions, and the pool's default threads (a timer with thread
 * attributes gets a new thread each call).  Asked for at an expiry. */
static void carry_ask(struct pt_timer *t)
{
	if (t->thr->carrier || t->thr->attrs.given || t->overrun_last ||
	    !kernel_keeps(t, t->interval, t->base) || !pt_handoff_may(t->interval) ||
	    !pt_handoff_reserve())
		return;
	t->thr->carrier = pt_workers_carry(t->thr->fn, t->value, t->clockid, t->id);
	if (!t->thr->carrier)
		pt_handoff_release();
}

/* The carrier made kernel timer kid (-1: it could not): arm it for the
 * timer's next expiry if the carrier is still wanted. */
static bool carry_started(struct pt_carrier *c, int id, int kid)
{
	struct pt_timer *t = lock_timer(id);
	if (!t)
		return false; /* deleted: the delete let the carrier go */
	bool ok = false;
	if (t->notify == SIGEV_THREAD && t->thr->carrier == c) {
		int64_t aligned = t->expires;
		ok = kid >= 0 && t->status == PT_ARMED && t->interval && !t->leeway &&
		     pt_handoff_rearm(kid, t->expires, t->interval,
				      relative_realtime(t, t->base) ? &aligned : NULL) == 0;
		if (ok) {
			seq_begin(t);
			WR(t->expires, aligned);
			WR(t->status, PT_KERNEL);
			WR(t->overrun_last, 0);
			seq_end(t);
			queued_changed(t);
		} else {
			t->thr->carrier = NULL;
			pt_handoff_release();
		}
	}
	unlock_timer(t);
	return ok;
}

/* The carrier's thread ended (its function called pthread_exit): the
 * timer is the engine's again, if it was still carried. */
static bool carry_lost(struct pt_carrier *c, int id)
{
	struct pt_timer *t = lock_timer(id);
	if (!t)
		return false;
	bool ours = t->notify == SIGEV_THREAD && t->thr->carrier == c;
	if (ours) {
		t->thr->carrier = NULL;
		pt_handoff_release();
		rejoin_grid(t);
		queued_changed(t);
	}
	unlock_timer(t);
	return ours;
}

/* A SIGEV_THREAD timer's carrier is let go (settime, delete, leeway):
 * the timer is the engine's again, on its grid.  t->lock held. */
static void carry_end(struct pt_timer *t)
{
	struct pt_carrier *c = t->thr->carrier;
	if (!c)
		return;
	bool carried = t->status == PT_KERNEL;
	t->thr->carrier = NULL;
	pt_workers_carry_stop(c, carried);
	pt_handoff_release();
	if (carried)
		rejoin_grid(t);
}

/* ---- arm ---- */

/* Timers parked because their signal is ignored: while there are none,
 * a signal no longer ignored needs no look through the timers. */
static unsigned long parked;

/* Forget the signal of the old arming: drop it from the line (before the
 * window, it takes the line's lock) and from the parked set (inside). */
static void unline(struct pt_timer *t)
{
	if (t->flags & PT_F_LINED)
		pt_notify_unline(t);
}

static void forget_signal(struct pt_timer *t)
{
	if (t->flags & PT_F_IGNORED)
		__atomic_fetch_sub(&parked, 1, __ATOMIC_RELAXED);
	set_flag(t, PT_F_LINED | PT_F_IGNORED | PT_F_RETRY | PT_F_WAITS | PT_F_PROBE_TOOK, false);
	/* A signal still pending for the old arming is dropped when it is
	 * delivered: it carries the old sequence number.  (If it is still
	 * pending at the next expiry, it stands for that one, as the
	 * kernel's queued sigqueue does.) */
	t->signal_seq++;
}

int ptimer_settime(timer_t timerid, int flags, const struct itimerspec *new_value,
		   struct itimerspec *old_value)
{
	struct itimerspec nv, ov;

	if (!new_value)
		return fail(EINVAL);
	if (pt_copy_from_user(&nv, new_value, sizeof(nv)) != 0)
		return fail(EFAULT);
	if (!timespec_valid(&nv.it_interval) || !timespec_valid(&nv.it_value))
		return fail(EINVAL);

	struct pt_timer *t = lock_timer(id_of(timerid));
	if (!t)
		return fail(EINVAL);
	if (t->cbase != PT_BASE_NONE && base_now(t->cbase) < 0) {
		unlock_timer(t);
		return fail(ESRCH); /* the kernel's answer for a reaped thread's clock */
	}
	if (old_value)
		timer_get(t, &ov);

	bool absolute = flags & TIMER_ABSTIME;
	int64_t value = timespec_to_ns_sat(&nv.it_value);
	int64_t interval = value ? timespec_to_ns_sat(&nv.it_interval) : 0;
	uint16_t base = value ? pt_clock_base(t->clockid, t->cbase, absolute) : t->base;
	/* An absolute value is on the kernel's clock, the engine's is shifted
	 * after a restore without the old clocks (base.h). */
	int64_t expires = !value ? 0
			  : absolute ? pt_shifted(value, pt_base_shift_of(base))
				     : pt_add_sat(base_now(base), value);

	if (t->notify == SIGEV_THREAD) {
		carry_end(t);
	} else if (t->status == PT_KERNEL) {
		/* Still one for the kernel: it re-arms it, on the same grid
		 * as the engine (absolutely, or relatively with the engine's
		 * grid moved onto the kernel's).  Else it is the engine's
		 * again. */
		int64_t aligned = expires;
		if (value && handoff_fits(t, interval, base) &&
		    pt_handoff_rearm(t->id, expires, interval, relative_realtime(t, base) ? &aligned : NULL) == 0) {
			seq_begin(t);
			t->signal_seq++;
			WR(t->interval, interval);
			WR(t->overrun_last, 0);
			set_flag(t, PT_F_ABSOLUTE, absolute);
			WR(t->base, base);
			WR(t->expires, aligned);
			seq_end(t);
			goto done;
		}
		pt_handoff_end(t->id);
	}
	unline(t);
	seq_begin(t);
	forget_signal(t);
	WR(t->status, PT_DISARMED);
	WR(t->interval, interval);
	WR(t->overrun_last, 0);
	WR(t->overrun, -1);
	set_flag(t, PT_F_ABSOLUTE, absolute);
	if (value) {
		WR(t->base, base);
		WR(t->expires, expires);
		WR(t->status, PT_ARMED);
	}
	seq_end(t);
	queued_changed(t);
done:
	unlock_timer(t);
	PT_PROBE3(arm, id_of(timerid), expires, interval);
	/* As the kernel: the new setting stands even if old_value is bad. */
	if (old_value && pt_copy_to_user(old_value, &ov, sizeof(ov)) != 0)
		return fail(EFAULT);
	return 0;
}

/* ---- delivery ---- */

/* Re-arm a periodic timer whose signal was delivered (the kernel's
 * __posixtimer_deliver_signal()): its overruns are the periods missed
 * since the expiry that sent it.  t->lock held, inside a window. */
static void rearm_delivered(struct pt_timer *t, int64_t now, bool inclusive)
{
	add_overrun(t, forward(t, now, inclusive));
	WR(t->status, PT_ARMED);
	WR(t->overrun_last, t->overrun < 0 ? 0 : t->overrun);
	WR(t->overrun, -1);
	t->signal_seq++;
}

/* A signal that went out was taken where the engine could not see it
 * (found by a probe, or by getoverrun): re-arm as at delivery, and let a
 * late report of that very signal through (its stamp).  t->lock held. */
static void delivered_unseen(struct pt_timer *t, int64_t now, bool inclusive)
{
	seq_begin(t);
	set_flag(t, PT_F_SIG_QUEUED, false);
	rearm_delivered(t, now, inclusive);
	set_flag(t, PT_F_PROBE_TOOK, true);
	seq_end(t);
	t->probe_stamp = t->stamp;
}

int pt_timer_deliver(siginfo_t *info)
{
	struct pt_timer *t = lock_timer(info->si_timerid);
	if (!t) {
		info->si_errno = 0;
		return 0; /* deleted: the kernel drops the signal */
	}
	int ret = 1;
	bool kick = false;
	uint16_t stamp = pt_notify_stamp(info);
	info->si_errno = 0; /* the marker is ours, not the program's */
	if ((t->flags & PT_F_SIG_QUEUED) && stamp == t->stamp) {
		/* The signal in flight.  It stands for the current arming
		 * unless the timer was re-armed since (the kernel's
		 * it_sigqueue_seq against it_signal_seq). */
		bool current = t->sigq_seq == t->signal_seq;
		bool rearm = current && t->interval && t->status == PT_REQUEUE_PENDING;
		int64_t now = rearm ? base_now(t->base) : 0;
		seq_begin(t);
		set_flag(t, PT_F_SIG_QUEUED, false);
		if (rearm)
			rearm_delivered(t, now, false);
		seq_end(t);
		if (!current)
			ret = 0;
		if (rearm) {
			queued_changed(t);
			info->si_overrun = t->overrun_last;
			kick = ask_ahead(t);
		}
		if (current)
			PT_PROBE2(deliver, t->id, info->si_overrun);
	} else if ((t->flags & PT_F_PROBE_TOOK) && stamp == t->probe_stamp) {
		/* A probe found this signal gone while it was on its way to
		 * the program, and re-armed already: this is that delivery. */
		set_flag(t, PT_F_PROBE_TOOK, false);
		info->si_overrun = t->overrun_last;
		PT_PROBE2(deliver, t->id, info->si_overrun);
	} else {
		ret = 0; /* re-armed or deleted since it was sent: stale */
	}
	unlock_timer(t);
	if (kick)
		pt_dispatch_kick();
	return ret;
}

int ptimer_signal_delivered(siginfo_t *info)
{
	siginfo_t si;

	if (pt_copy_from_user(&si, info, sizeof(si)) != 0) {
		errno = EFAULT;
		return -1;
	}
	if (!pt_notify_is_engine_signal(&si))
		return -1;
	/* Written back before it counts, so that a read-only siginfo does
	 * not leave a delivery half-done. */
	if (pt_copy_to_user(info, &si, sizeof(si)) != 0) {
		errno = EFAULT;
		return -1;
	}
	int r = pt_timer_deliver(&si);
	pt_copy_to_user(info, &si, sizeof(si));
	return r;
}

int ptimer_getoverrun(timer_t timerid)
{
	struct pt_timer *t = lock_timer(id_of(timerid));

	if (!t)
		return fail(EINVAL);
	if (t->status == PT_KERNEL && t->notify != SIGEV_THREAD) {
		int r = pt_handoff_overrun(t->id);
		unlock_timer(t);
		return r;
	}
	/* The kernel counts a delivery's overruns when the signal is taken,
	 * even by a default action no hook sees: ask the kernel whether the
	 * signal is still there. */
	if ((t->flags & PT_F_SIG_QUEUED) && t->status == PT_REQUEUE_PENDING && !pt_notify_pending(t)) {
		delivered_unseen(t, base_now(t->base), false);
		queued_changed(t);
	}
	int ret = t->overrun_last;
	unlock_timer(t);
	return ret;
}

/* ---- leeway ---- */

static uint8_t leeway_code(int64_t ns)
{
	if (ns < pt_leeway_ns(1))
		return 0; /* under 1.152 us, the least there is: none */
	int e = 0;
	while (e < 31 && (ns >> (e + 7)) > 15)
		e++;
	int64_t m = (ns >> (e + 7)) - 8;
	if (m > 7)
		m = 7; /* past the largest: the largest */
	return (uint8_t)(e << 3 | m);
}

int ptimer_setleeway(timer_t timerid, const struct timespec *leeway)
{
	struct timespec l;

	if (!leeway)
		return fail(EINVAL);
	if (pt_copy_from_user(&l, leeway, sizeof(l)) != 0)
		return fail(EFAULT);
	if (!timespec_valid(&l))
		return fail(EINVAL);
	uint8_t code = leeway_code(timespec_to_ns_sat(&l));
	struct pt_timer *t = lock_timer(id_of(timerid));
	if (!t)
		return fail(EINVAL);
	if (t->leeway != code) {
		if (code && t->notify == SIGEV_THREAD)
			carry_end(t); /* the kernel has no leeway: the engine's again */
		else if (code && t->status == PT_KERNEL)
			take_back(t);
		seq_begin(t);
		WR(t->leeway, code);
		seq_end(t);
		queued_changed(t); /* its latest time moved */
	}
	unlock_timer(t);
	return 0;
}

int ptimer_getleeway(timer_t timerid, struct timespec *leeway)
{
	struct pt_timer *t = lock_timer(id_of(timerid));
	if (!t)
		return fail(EINVAL);
	struct timespec l = pt_ns_to_ts(pt_leeway_ns(t->leeway));
	unlock_timer(t);
	if (!leeway || pt_copy_to_user(leeway, &l, sizeof(l)) != 0)
		return fail(EFAULT);
	return 0;
}

/* ---- the process's ID space ---- */

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

/* ---- delete ---- */

int ptimer_delete(timer_t timerid)
{
	struct pt_timer *t = lock_timer(id_of(timerid));

	if (!t)
		return fail(EINVAL);
	int id = t->id;
	PT_PROBE1(delete, id);
	uint16_t cbase = t->cbase;
	struct pt_thread_notify *thr = t->notify == SIGEV_THREAD ? t->thr : NULL;
	if (thr)
		carry_end(t);
	else if (t->status == PT_KERNEL)
		pt_handoff_end(id); /* its signal still queued is dropped by the kernel */
	unline(t);
	seq_begin(t);
	__atomic_store_n(&t->valid, 0, __ATOMIC_RELEASE);
	forget_signal(t);
	WR(t->status, PT_DISARMED);
	set_flag(t, PT_F_SIG_QUEUED, false);
	seq_end(t);
	queued_changed(t); /* out of its queue */
	unlock_timer(t);

	pt_ids_free(id);
	pt_clock_put(cbase);
	if (thr)
		pt_workers_notify_free(thr);
	pt_pool_free(t); /* reusable at once: late readers check valid and id */
	return 0;
}

/* ---- expiry (the dispatcher) ---- */

/* A send the dispatcher makes once it let go of the timer's lock (see
 * pt_notify_prepare()), and the arming it was for. */
struct later {
	struct pt_sending s;
	uint32_t gen, seq;
	uint16_t stamp;
	bool go;
};

/* Record what became of an expiry's signal, t->lock held: in_flight, one
 * still pending stands for it; ignored, the kernel would drop it; behind,
 * others wait for room in the queue first; else how the send went (sent:
 * the thread it went to, 0 the process).  retry: it came from the front
 * of the line of put-off sends. */
static void record_send(struct pt_timer *t, bool in_flight, bool ignored, bool behind, bool retry,
			enum pt_send how, pid_t sent)
{
	/* The queue is full: wait for a turn (at the front again when a
	 * retry failed), a periodic timer's missed periods becoming the
	 * overruns of that signal. */
	bool off = behind || how == PT_FULL;
	bool waits = off && pt_notify_wait_push(t, !behind && retry);

	seq_begin(t);
	WR(t->status, t->interval ? PT_REQUEUE_PENDING : PT_DISARMED);
	/* PT_F_PROBE_TOOK stays: a late report of the signal a probe took
	 * is still that delivery, whatever was sent since. */
	set_flag(t, PT_F_RETRY | PT_F_WAITS, false);
	if (in_flight) {
		t->sigq_seq = t->signal_seq;
	} else if (ignored) {
		set_flag(t, PT_F_SIG_QUEUED, false);
		if (t->interval) {
			set_flag(t, PT_F_IGNORED, true);
			__atomic_fetch_add(&parked, 1, __ATOMIC_RELAXED);
		}
	} else if (off) {
		set_flag(t, PT_F_SIG_QUEUED, false);
		set_flag(t, PT_F_RETRY, true);
		set_flag(t, PT_F_WAITS, waits);
		if (!t->interval)
			WR(t->status, PT_ARMED);
	} else if (how == PT_SENT || how == PT_LINED) {
		set_flag(t, PT_F_SIG_QUEUED, true);
		set_flag(t, PT_F_LINED, how == PT_LINED);
		t->sigq_seq = t->signal_seq;
		WR(t->sent_tid, sent);
	} else {
		/* PT_GONE: the target thread is gone; like the kernel, stop
		 * notifying it. */
		set_flag(t, PT_F_SIG_QUEUED, false);
	}
	seq_end(t);
	if (off && !pt_dispatch_is_self())
		pt_dispatch_kick(); /* it sends from the line */
}

/*
 * The kernel's posix_timer_fn() and posixtimer_send_sigqueue() for a
 * signal timer, t->lock held.  via: see pt_notify_send().  retry: it
 * comes from the front of the line of put-off sends.  when: the look at
 * what is due that found this expiry (see pt_notify_ignored()), or NULL.
 * The kernel is asked and the signal sent first; the window then records
 * what happened.  later: the dispatcher sends after letting go of the
 * lock (send_later()); the window records the send as made.
 */
static void fire_signal(struct pt_timer *t, pid_t via, uint64_t via_mask, bool retry,
			const struct pt_when *when, struct later *later)
{
	/* At most one signal per timer: one still pending stands for this
	 * expiry (the kernel updates its sequence the same way). */
	bool in_flight = (t->flags & PT_F_SIG_QUEUED) && pt_notify_pending(t);
	/* The kernel's posixtimer_sig_ignore(): a one-shot expiry is lost, a
	 * periodic timer waits for the signal to matter, its expiry kept so
	 * that the periods missed become overruns. */
	bool ignored = !in_flight && pt_notify_ignored(t, when);
	/* Others wait for room in the queue: behind them. */
	bool behind = !in_flight && !ignored && !retry && pt_notify_waiting();
	enum pt_send how = PT_GONE;
	pid_t sent = 0;
	if (!in_flight && !ignored && !behind) {
		t->stamp++;
		if (later) {
			pt_slice_pause();
			how = pt_notify_prepare(t, via, via_mask, &later->s);
			pt_slice_resume();
			later->go = how == PT_SENT;
			if (later->go)
				sent = later->s.via; /* where it goes, unless that thread is gone */
		} else {
			how = pt_notify_send(t, via, via_mask, &sent);
		}
	}
	record_send(t, in_flight, ignored, behind, retry, how, sent);
	if (later && later->go) {
		later->gen = t->gen;
		later->seq = t->signal_seq;
		later->stamp = t->stamp;
		pt_notify_send_begin(t);
	}
}

/* The dispatcher's send of an expiry recorded as sent, t->lock let go
 * (inside the RCU read section that keeps t).  Where it went otherwise
 * (the queue full, the thread gone), the record is put right, unless the
 * arming is over by now (re-armed, deleted, or the signal delivered). */
static void send_later(struct pt_timer *t, struct later *l)
{
	pid_t sent;
	enum pt_send how = pt_notify_fire(&l->s, &sent);
	bool went = how == PT_SENT && sent == l->s.via;
	pt_notify_send_end(went);
	if (went)
		return;
	pt_seqlock_lock(&t->lock);
	if (t->valid && t->gen == l->gen && t->signal_seq == l->seq && t->stamp == l->stamp &&
	    (t->flags & PT_F_SIG_QUEUED)) {
		record_send(t, false, false, false, false, how, sent);
		pt_queue_settle(&t->q);
	}
	pt_notify_send_settled();
	pt_seqlock_unlock(&t->lock);
}

void pt_timer_send_waiting(void)
{
	while (pt_notify_waiting()) {
		int64_t until = pt_notify_full_until();
		if (until) {
			int64_t now = pt_clock_ns(CLOCK_MONOTONIC);
			if (now < until) {
				pt_dispatch_wake_within(until - now);
				return;
			}
		}
		uint32_t seq;
		pt_rcu_read_lock();
		struct pt_timer *t = pt_notify_wait_pop(&seq);
		bool full = false;
		if (t) {
			pt_seqlock_lock(&t->lock);
			if (t->valid && (t->flags & PT_F_WAITS) && seq == t->signal_seq) {
				fire_signal(t, 0, 0, true, NULL, NULL);
				full = t->flags & PT_F_WAITS;
				queued_changed(t);
			}
			pt_seqlock_unlock(&t->lock);
		}
		pt_rcu_read_unlock();
		if (full) {
			/* Still full: it is first in line again. */
			pt_dispatch_wake_within(RETRY_NS);
			return;
		}
	}
}

/* The kernel's posixtimer_sig_unignore() for one timer, t->lock held: it
 * gets its signal now, and is re-armed when that is delivered. */
static void unpark(struct pt_timer *t)
{
	seq_begin(t);
	set_flag(t, PT_F_IGNORED, false);
	seq_end(t);
	__atomic_fetch_sub(&parked, 1, __ATOMIC_RELAXED);
	if (t->status == PT_REQUEUE_PENDING)
		fire_signal(t, 0, 0, false, NULL, NULL);
}

static void expire(struct pt_qnode *n, struct pt_base *b, int64_t now)
{
	struct pt_timer *t = (struct pt_timer *)n;
	struct later later;
	later.go = false;

	pt_rcu_read_lock(); /* keeps a SIGEV_THREAD timer's call */
	pt_seqlock_lock(&t->lock);
	if (!t->valid)
		goto out;
	if (t->flags & PT_F_RETRY) {
		if (b->index == PT_BASE_MONOTONIC && !(t->flags & PT_F_WAITS))
			fire_signal(t, 0, 0, false, NULL, NULL);
		goto out;
	}
	if (b->index != t->base)
		goto out; /* re-armed elsewhere since: the queue catches up */
	if (t->flags & PT_F_IGNORED) {
		/* Parked, without the hooks (want()): still ignored? */
		if (!pt_notify_tracks_dispositions() && !pt_notify_untracked_ignores(t->signo))
			unpark(t);
		goto out;
	}
	if (t->status == PT_REQUEUE_PENDING && (t->flags & PT_F_SIG_QUEUED)) {
		/* The probe: was the signal taken without the engine seeing? */
		if (!pt_notify_pending(t)) {
			delivered_unseen(t, now, true);
			/* expires <= now: it fires on the queue's next look */
		}
		goto out;
	}
	if (t->status != PT_ARMED || t->expires > now)
		goto out;
	PT_PROBE2(fire, t->id, now);
	if (t->notify == SIGEV_THREAD) {
		pt_workers_run(t->thr, t->value);
		seq_begin(t);
		if (t->interval) {
			/* glibc's helper thread takes the signal at once, so the
			 * kernel re-arms right away: overruns are the periods
			 * already missed. */
			WR(t->overrun_last, clamp_overrun(forward(t, now, false) - 1));
			WR(t->overrun, -1);
			t->signal_seq++;
		} else {
			WR(t->status, PT_DISARMED);
		}
		seq_end(t);
		carry_ask(t);
	} else if (!hand_off(t)) {
		struct pt_when when = { .now = now, .base = b->index };
		fire_signal(t, __atomic_load_n(&b->via, __ATOMIC_ACQUIRE),
			    __atomic_load_n(&b->via_mask, __ATOMIC_RELAXED), false, &when, &later);
	}
out:
	pt_queue_settle(&t->q);
	pt_seqlock_unlock(&t->lock);
	if (later.go)
		send_later(t, &later);
	pt_rcu_read_unlock();
}

/* ---- signals the program took, disposition changes ---- */

void pt_timer_signal_taken(int sig)
{
	uint32_t seq;

	if (!pt_notify_lined(sig))
		return; /* every real-time signal, most standard ones */
	pt_rcu_read_lock();
	struct pt_timer *t = pt_notify_line_pop(sig, &seq);
	if (t) {
		pt_seqlock_lock(&t->lock);
		if (t->valid && (t->flags & PT_F_LINED) && seq == t->signal_seq) {
			pid_t sent = 0;
			enum pt_send r = pt_notify_send(t, 0, 0, &sent);
			seq_begin(t);
			set_flag(t, PT_F_LINED, r == PT_LINED);
			if (r != PT_SENT && r != PT_LINED)
				set_flag(t, PT_F_SIG_QUEUED, false);
			WR(t->sent_tid, sent);
			seq_end(t);
		}
		pt_seqlock_unlock(&t->lock);
	}
	pt_rcu_read_unlock();
}

/* Every timer parked on sig, unparked. */
void pt_timer_unignore(int sig)
{
	if (__atomic_load_n(&parked, __ATOMIC_RELAXED) == 0)
		return;
	int id = 0;
	pt_rcu_read_lock();
	for (struct pt_timer *t; (t = pt_ids_next(&id)) != NULL; id++) {
		if (!(RD(t->flags) & PT_F_IGNORED) || RD(t->signo) != sig)
			continue;
		pt_seqlock_lock(&t->lock);
		if (t->valid && (t->flags & PT_F_IGNORED)) {
			unpark(t);
			queued_changed(t);
		}
		pt_seqlock_unlock(&t->lock);
		if (id == INT_MAX)
			break;
	}
	pt_rcu_read_unlock();
}

/* ---- snapshots: the readout, checkpoints ---- */

bool pt_timer_read(const struct pt_timer *t, struct pt_timer_fields *f)
{
	uint32_t s1;
	do {
		s1 = pt_seq_read_begin(&t->lock);
		f->valid = RD(t->valid);
		f->id = RD(t->id);
		f->gen = RD(t->gen);
		f->status = RD(t->status);
		f->flags = RD(t->flags);
		f->notify = RD(t->notify);
		f->signo = RD(t->signo);
		f->clockid = RD(t->clockid);
		f->base = RD(t->base);
		f->cbase = RD(t->cbase);
		f->expires = RD(t->expires);
		f->interval = RD(t->interval);
		f->overrun_last = RD(t->overrun_last);
		f->value.sival_ptr = RD(t->value.sival_ptr);
		f->target = f->notify != SIGEV_THREAD ? RD(t->target) : 0;
	} while (!pt_seq_read_ok(&t->lock, s1));
	return f->valid != 0;
}

void pt_timer_fields_save(const struct pt_timer_fields *f, pid_t pid, int64_t now, int64_t shift,
			  struct pt_saved *s)
{
	memset(s, 0, sizeof(*s));
	s->id = f->id;
	s->clockid = f->clockid;
	s->notify = f->notify;
	s->signo = f->signo;
	s->value = f->value;
	s->target = f->notify == SIGEV_THREAD ? pid : f->target;
	s->overrun = f->overrun_last;
	s->armed = f->status != PT_DISARMED;
	s->absolute = s->armed && (f->flags & PT_F_ABSOLUTE);
	s->signal_pending = (f->flags & PT_F_SIG_QUEUED) != 0;
	s->kernel = f->status == PT_KERNEL;
	s->interval = f->interval;
	if (!s->armed)
		return;
	if (now < 0) {
		s->armed = s->absolute = false; /* a CPU clock whose thread is gone */
		s->interval = 0;
		return;
	}
	/* What gettime would say, without moving the timer forward. */
	int64_t expires = f->expires;
	if (f->interval && expires <= now && (f->status != PT_ARMED || f->notify == SIGEV_NONE))
		expires += ((now - expires) / f->interval + 1) * f->interval;
	s->deadline = pt_shifted(expires, -shift);
	int64_t remaining = expires - now;
	s->remaining = remaining > 0 ? remaining : f->notify != SIGEV_NONE ? 1 : 0;
}

bool pt_timer_save(struct pt_timer *t, int id, struct pt_saved *s, int64_t *now_cache, uint32_t *gen)
{
	struct pt_timer_fields f;

	if (!pt_timer_read(t, &f) || f.id != id)
		return false;
	if (gen)
		*gen = f.gen;
	uint16_t b = f.cbase != PT_BASE_NONE ? f.cbase : f.base;
	int64_t now = 0;
	if (f.status != PT_DISARMED) {
		if (!now_cache) {
			now = pt_base_now(b);
		} else {
			if (now_cache[b] == INT64_MIN)
				now_cache[b] = pt_base_now(b);
			now = now_cache[b];
		}
	}
	pt_timer_fields_save(&f, pt_pid, now, pt_base_shift_of(b), s);
	if (f.cbase != PT_BASE_NONE)
		s->cpu = pt_cpu_describe(f.cbase, &s->cpu_clock, &s->cpu_tid);
	return true;
}

bool pt_timer_snapshot(struct pt_timer *t, int id, struct ptimer_info *info, uint32_t made)
{
	struct pt_saved s;
	uint32_t gen;

	if (!pt_timer_save(t, id, &s, NULL, &gen) || (int32_t)(gen - made) > 0)
		return false;
	memset(info, 0, sizeof(*info));
	info->id = id;
	info->clockid = s.clockid;
	info->notify = s.notify;
	info->signo = s.signo;
	info->value = s.value;
	info->target = s.target;
	info->overrun = s.overrun;
	info->armed = s.armed;
	info->signal_pending = s.signal_pending;
	info->setting.it_interval = pt_ns_to_ts(s.interval);
	info->setting.it_value = pt_ns_to_ts(s.remaining);
	return true;
}

/* ---- restore ---- */

static void restore_undo(struct pt_timer **t, const struct pt_image_timer *it, size_t n,
			 bool ids)
{
	for (size_t i = 0; i < n; i++) {
		if (ids)
			pt_ids_free(it[i].id);
		pt_clock_put(t[i]->cbase);
		if (t[i]->notify == SIGEV_THREAD && t[i]->thr)
			pt_workers_notify_free(t[i]->thr);
		pt_pool_free(t[i]);
	}
}

int pt_timer_restore(const struct pt_image_timer *it, const struct pt_thread_fn *fns, size_t n, size_t *bad)
{
	struct pt_timer **t = malloc((n ? n : 1) * sizeof(*t));
	int err = 0;
	size_t i = 0;
	bool any_fires = false;

	if (!t)
		return -ENOMEM;
	pt_root_publish();
	/* Every timer built, but not yet in the ID space: a failure here
	 * leaves the process as it was. */
	for (; i < n; i++) {
		struct sigevent ev;
		memset(&ev, 0, sizeof(ev));
		ev.sigev_notify = it[i].notify;
		ev.sigev_signo = it[i].signo;
		ev.sigev_value = it[i].value;
		ev._sigev_un._tid = it[i].tid;
		if (it[i].notify == SIGEV_THREAD && fns) {
			ev.sigev_notify_function = fns[i].fn;
			ev.sigev_notify_attributes = (pthread_attr_t *)fns[i].attr;
		}
		err = pt_clock_check(it[i].clockid);
		if (!err)
			err = pt_notify_check(&ev);
		if (err)
			break;
		t[i] = pt_pool_alloc();
		if (!t[i]) {
			err = -ENOMEM;
			break;
		}
		uint16_t cbase = PT_BASE_NONE;
		err = pt_clock_get(it[i].clockid, &cbase);
		struct pt_thread_notify *thr = NULL;
		if (!err && it[i].notify == SIGEV_THREAD) {
			err = pt_workers_notify_new(&ev, &thr);
			if (err)
				pt_clock_put(cbase);
		}
		if (err) {
			pt_pool_free(t[i]);
			break;
		}
		struct pt_timer *x = t[i];
		pt_seqlock_lock(&x->lock);
		seq_begin(x);
		init_fields(x, it[i].id, it[i].clockid, cbase, &ev, thr);
		WR(x->interval, it[i].interval);
		WR(x->overrun_last, it[i].overrun);
		WR(x->base, pt_clock_base(it[i].clockid, cbase, it[i].absolute));
		seq_end(x);
		pt_seqlock_unlock(&x->lock);
		any_fires |= it[i].notify != SIGEV_NONE;
	}
	if (err) {
		restore_undo(t, it, i, false);
		*bad = i;
		free(t);
		return err;
	}
	/* All the IDs at once, or none. */
	uint32_t gen0 = 0;
	err = n ? pt_ids_alloc_batch((void *const *)t, &it[0].id, sizeof(it[0]), n, &i, &gen0) : 0;
	if (err) {
		restore_undo(t, it, n, false);
		*bad = i;
		free(t);
		return err;
	}
	if (any_fires && (err = pt_clocks_start()) != 0) {
		restore_undo(t, it, n, true);
		*bad = 0;
		free(t);
		return err;
	}
	/* In the ID space, still not valid: arm and publish each, relative
	 * ones from one reading of each clock. */
	int64_t now[PT_NR_FIXED]; /* the fixed bases' clocks; CPU clocks read each time */
	for (unsigned b = 0; b < PT_NR_FIXED; b++)
		now[b] = INT64_MIN;
	for (i = 0; i < n; i++) {
		struct pt_timer *x = t[i];
		pt_seqlock_lock(&x->lock);
		int64_t from = 0;
		if (it[i].armed && !it[i].absolute && x->base < PT_NR_FIXED) {
			if (now[x->base] == INT64_MIN)
				now[x->base] = base_now(x->base);
			from = now[x->base];
		} else if (it[i].armed && !it[i].absolute) {
			from = base_now(x->base);
		}
		seq_begin(x);
		if (it[i].armed) {
			set_flag(x, PT_F_ABSOLUTE, it[i].absolute);
			WR(x->expires, it[i].absolute ? pt_shifted(it[i].deadline, pt_base_shift_of(x->base))
						      : pt_add_sat(from, it[i].remaining));
			WR(x->status, PT_ARMED);
		}
		WR(x->gen, gen0 + 1 + (uint32_t)i);
		__atomic_store_n(&x->valid, 1, __ATOMIC_RELEASE);
		seq_end(x);
		queued_changed(x);
		pt_seqlock_unlock(&x->lock);
	}
	free(t);
	return 0;
}

/* ---- process life ---- */

static void q_lock(struct pt_qnode *n) { pt_seqlock_lock(&((struct pt_timer *)n)->lock); }
static void q_unlock(struct pt_qnode *n) { pt_seqlock_unlock(&((struct pt_timer *)n)->lock); }
static uint16_t q_want(struct pt_qnode *n, int64_t *key) { return want((struct pt_timer *)n, key); }
/* Its earliest time, read without its lock: expire() looks again under
 * it. */
static int64_t q_earliest(struct pt_qnode *n)
{
	struct pt_timer *t = (struct pt_timer *)n;
	if (!RD(t->leeway) || RD(t->status) != PT_ARMED || (RD(t->flags) & PT_F_RETRY))
		return PT_NEVER;
	return RD(t->expires);
}

static const struct pt_queue_ops queue_ops = {
	.lock = q_lock,
	.unlock = q_unlock,
	.want = q_want,
	.earliest = q_earliest,
	.expire = expire,
	.span = sizeof(struct pt_timer),
};

void pt_timer_init(void)
{
	pt_pool_init(sizeof(struct pt_timer), offsetof(struct pt_timer, value));
	pt_queue_set_ops(&queue_ops);
	pt_workers_set_carry_fns(carry_started, carry_lost);
}

bool pt_timer_busy(void *obj)
{
	return pt_queue_busy(&((struct pt_timer *)obj)->q);
}

/* The child has no timers: give back what the parent's SIGEV_THREAD
 * timers hold (the pool and the ID tree are freed wholesale). */
void pt_timer_fork_child(void)
{
	asks.lock = (pt_lock_t)PT_LOCK_INIT; /* the parent's other threads are not here */
	asks.n = 0;
	int id = 0;
	for (struct pt_timer *t; (t = pt_ids_next(&id)) != NULL; id++) {
		if (t->valid && t->notify == SIGEV_THREAD) {
			if (t->thr->carrier)
				pt_workers_carry_forget(t->thr->carrier);
			free(t->thr);
		}
		if (id == INT_MAX)
			break;
	}
	parked = 0;
}
