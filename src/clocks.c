/* SPDX-License-Identifier: MIT */
/*
 * Clocks (clocks.h) and the fixed bases: one kernel POSIX timer each,
 * armed (absolute, on the base's own clock) at the base's earliest
 * expiry, whose signal wakes the dispatcher (dispatch.h).  A kernel timer
 * on CLOCK_REALTIME or CLOCK_TAI armed absolute follows every setting of
 * the wall clock, as the engine's absolute timers on those clocks must.
 * Being kernel timers and not descriptors, nothing the program does to
 * its descriptor table reaches them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base.h"
#include "clocks.h"
#include "cpu.h"
#include "dispatch.h"
#include "lock.h"
#include "private.h"
#include "sys.h"

#define RESTORE_SLACK (10 * 1000000LL) /* ns: a wakeup this far off, or a canary */

struct fixed_base {
	struct pt_base b;
	clockid_t clock;
	int kid;          /* its kernel timer, -1 until first needed */
	int64_t set_for;  /* when the kernel timer was set to go off (its clock), 0: not */
	bool watched;     /* a clock CRIU may move under the engine (monotonic ones) */
	int64_t seen;     /* the dispatcher's latest reading of the kernel's clock ... */
	uint64_t seen_in; /* ... in this wakeup of it */
};

static struct fixed_base fixed[PT_NR_FIXED];
static pt_lock_t start_lock = PT_LOCK_INIT;
bool pt_clocks_started;

/*
 * _ALARM clocks need a wake-capable RTC (EOPNOTSUPP without, checked
 * first) and CAP_WAKE_ALARM (EPERM).  Only the kernel knows whether its
 * alarmtimer found an RTC, so ask it with a throw-away kernel timer.
 * Where it says yes, the timer runs on the matching wall or boot base
 * (README: it does not wake a suspended machine).
 */
static int alarm_clock_check(clockid_t clockid)
{
	struct sigevent sev = { .sigev_notify = SIGEV_NONE };
	int kid = 0;

	if (pt_sys_timer_create(clockid, &sev, &kid) != 0)
		return -errno;
	syscall(SYS_timer_delete, kid);
	return 0;
}

int pt_clock_check(clockid_t clockid)
{
	switch (clockid) {
	case CLOCK_REALTIME:
	case CLOCK_MONOTONIC:
	case CLOCK_BOOTTIME:
	case CLOCK_TAI:
		return 0;
	case CLOCK_MONOTONIC_RAW:
	case CLOCK_REALTIME_COARSE:
	case CLOCK_MONOTONIC_COARSE:
		return -EOPNOTSUPP; /* they exist, but cannot drive timers */
	case CLOCK_REALTIME_ALARM:
	case CLOCK_BOOTTIME_ALARM:
		return alarm_clock_check(clockid);
	default:
		if (clockid < 0 && (clockid & CLOCKFD_MASK) == CLOCKFD)
			return -EOPNOTSUPP; /* dynamic (PTP) clocks have no timers */
		if (pt_cpu_is_clock(clockid))
			return pt_cpu_check(clockid);
		return -EINVAL;
	}
}

int pt_clock_get(clockid_t clockid, uint16_t *cpu_base)
{
	*cpu_base = PT_BASE_NONE;
	if (!pt_cpu_is_clock(clockid))
		return 0;
	int b = pt_cpu_attach(clockid);
	if (b < 0)
		return b;
	*cpu_base = (uint16_t)b;
	return 0;
}

void pt_clock_put(uint16_t cpu_base)
{
	if (cpu_base != PT_BASE_NONE)
		pt_cpu_detach(cpu_base);
}

/* ---- the fixed bases ---- */

/*
 * The dispatcher's reading of a monotonic clock.  Within one wakeup its
 * readings come microseconds apart; one that leaps means the thread was
 * off the CPU meanwhile: preempted for long, or dumped and restored by
 * CRIU while it worked (a restore that finds it waiting interrupts the
 * wait instead).  Then look, before the reading is used.
 */
static void watch(struct fixed_base *fb, int64_t raw)
{
	uint64_t wakeup = pt_dispatch_wakeups();
	int64_t leap = raw - fb->seen;
	bool same = fb->seen_in == wakeup;
	fb->seen = raw;
	fb->seen_in = wakeup;
	if (same && leap > RESTORE_SLACK)
		pt_clocks_check_restored();
}

static int64_t fixed_now(struct pt_base *b)
{
	struct fixed_base *fb = (struct fixed_base *)b;
	int64_t raw = pt_clock_ns(fb->clock);
	if (fb->watched && raw >= 0 && pt_dispatch_is_self())
		watch(fb, raw);
	return raw + pt_base_shift_of(b->index);
}

/* b->plock held. */
static void fixed_program(struct pt_base *b, int64_t when)
{
	struct fixed_base *fb = (struct fixed_base *)b;
	struct itimerspec its = { 0 };

	if (fb->kid < 0) {
		/* Made when first needed (by whoever programs the base
		 * first): a process that never arms a timer on this clock
		 * never has it. */
		if (when == PT_NEVER)
			return;
		int kid;
		if (pt_dispatch_ktimer(fb->clock, PT_SRC_BASE + b->index, PT_TO_DISPATCHER, &kid) != 0) {
			/* The kernel refused a timer (the user's signal queue
			 * is full, say): the dispatcher looks again soon, and
			 * meanwhile wakes to run the heap anyway. */
			pt_base_spent(b);
			if (pt_dispatch_is_self())
				pt_dispatch_wake_within(PT_NSEC_PER_SEC / 100);
			else
				pt_dispatch_kick();
			return;
		}
		__atomic_store_n(&fb->kid, kid, __ATOMIC_RELEASE);
	}
	if (when != PT_NEVER) {
		/* Early by the dispatcher's wakeup delay: it spins the rest. */
		when -= pt_queue_lead();
		__atomic_store_n(&fb->set_for, when, __ATOMIC_RELAXED);
		when -= pt_base_shift_of(b->index); /* on the kernel's clock */
		/* it_value zero would disarm: an expiry at or before the epoch
		 * is simply due, so ask for the smallest non-zero time. */
		its.it_value = when > 0 ? pt_ns_to_ts(when) : (struct timespec){ 0, 1 };
	} else {
		__atomic_store_n(&fb->set_for, 0, __ATOMIC_RELAXED);
	}
	syscall(SYS_timer_settime, fb->kid, TIMER_ABSTIME, &its, NULL);
}

static const struct pt_base_ops fixed_ops = {
	.now = fixed_now,
	.program = fixed_program,
	.leads = true,
};

/* A fixed base's kernel timer went off: it is spent, set again on the
 * dispatcher's next look.  Or a CPU clock's (cpu.c). */
static void source_fired(int value, pid_t via, const sigset_t *mask, bool woke)
{
	if (value == PT_SRC_INTERRUPTED) {
		pt_clocks_check_restored();
		return;
	}
	if (value >= PT_SRC_CPU) {
		pt_cpu_fired(value - PT_SRC_CPU, via, mask, woke);
		return;
	}
	int i = value - PT_SRC_BASE;
	if (i < 0 || i >= PT_NR_FIXED || !pt_dispatch_is_self())
		return;
	struct fixed_base *fb = &fixed[i];
	pt_base_spent(&fb->b);
	int64_t set_for = __atomic_load_n(&fb->set_for, __ATOMIC_RELAXED);
	if (set_for <= 0)
		return;
	int64_t late = fixed_now(&fb->b) - set_for;
	/* A kernel timer set absolute never goes off early, and seldom
	 * 10 ms late: either is how a restore without the old clocks shows
	 * (CRIU re-arms kernel timers relative). */
	if ((late < -RESTORE_SLACK || late > RESTORE_SLACK) &&
	    (fb->clock == CLOCK_MONOTONIC || fb->clock == CLOCK_BOOTTIME)) {
		pt_clocks_check_restored();
		late = fixed_now(&fb->b) - set_for;
	}
	pt_queue_woke(late);
}

/* ---- a restore without the old clocks ---- */

/*
 * A canary per monotonic clock: a kernel timer set, absolute, far ahead,
 * whose deadline the engine remembers.  CRIU re-arms it with the time it
 * had left, as every kernel timer: in the restored process the kernel's
 * remaining time and the one the engine works out from its deadline then
 * differ by how far the clock moved under it.  Within a time namespace
 * (CRIU's default) they agree and nothing changes.
 */
struct canary {
	clockid_t clock;
	int kid;          /* -1 until the dispatcher has started */
	int64_t deadline; /* on the kernel's clock */
};

static struct canary canaries[2] = { { CLOCK_MONOTONIC, -1, 0 }, { CLOCK_BOOTTIME, -1, 0 } };
#define CANARY_AHEAD (1000000LL * PT_NSEC_PER_SEC) /* eleven days and more */

static void canaries_arm(void)
{
	for (int i = 0; i < 2; i++) {
		struct canary *c = &canaries[i];
		int kid = c->kid;
		if (kid < 0) {
			/* It never signals; the engine's signal marks it as the
			 * engine's in /proc/PID/timers (ptimers ls). */
			struct sigevent sev = { .sigev_notify = SIGEV_NONE,
						.sigev_signo = pt_dispatch_signo() };
			if (pt_sys_timer_create(c->clock, &sev, &kid) != 0)
				continue;
		}
		c->deadline = pt_clock_ns(c->clock) + CANARY_AHEAD;
		struct itimerspec its = { .it_value = pt_ns_to_ts(c->deadline) };
		syscall(SYS_timer_settime, kid, TIMER_ABSTIME, &its, NULL);
		/* Published with its deadline: the dispatcher reads neither
		 * before. */
		__atomic_store_n(&c->kid, kid, __ATOMIC_RELEASE);
	}
}

void pt_clocks_check_restored(void)
{
	bool moved = false;
	for (int i = 0; i < 2; i++) {
		struct canary *c = &canaries[i];
		struct itimerspec cur;
		int kid = __atomic_load_n(&c->kid, __ATOMIC_ACQUIRE);
		if (kid < 0 || syscall(SYS_timer_gettime, kid, &cur) != 0)
			continue;
		int64_t now = pt_clock_ns(c->clock);
		int64_t delta = (c->deadline - now) - pt_ts_to_ns(&cur.it_value);
		if (delta > -RESTORE_SLACK && delta < RESTORE_SLACK)
			continue;
		/* Restored: the clock moved by -delta under the engine's
		 * deadlines.  Shifting its bases by delta keeps the time each
		 * had left; the canary's deadline follows. */
		c->deadline -= delta;
		for (int b = 0; b < PT_NR_FIXED; b++) {
			bool on_it = c->clock == CLOCK_MONOTONIC ? b == PT_BASE_MONOTONIC
								 : b == PT_BASE_BOOTTIME;
			if (on_it) {
				__atomic_add_fetch(&pt_base_shift[b], delta, __ATOMIC_RELAXED);
				pt_base_spent(&fixed[b].b); /* its kernel timer set again */
			}
		}
		moved = true;
	}
	if (moved)
		pt_dispatch_kick();
}

int pt_clocks_start_slow(void)
{
	int err = 0;

	pt_lock(&start_lock);
	if (pt_clocks_started)
		goto out;
	/* The canaries first: the dispatcher looks at them from its first
	 * wakeup. */
	pt_slice_pause(); /* kernel timers made and set under the lock */
	canaries_arm();
	pt_slice_resume();
	err = pt_dispatch_start();
	for (int i = 0; i < PT_NR_FIXED && !err; i++)
		pt_base_spent(&fixed[i].b); /* its kernel timer made and set on the next run */
	if (!err)
		__atomic_store_n(&pt_clocks_started, true, __ATOMIC_RELEASE);
	pt_dispatch_kick();
out:
	pt_unlock(&start_lock);
	return err;
}

void pt_clocks_fork_prepare(void)
{
	pt_lock(&start_lock);
}

void pt_clocks_fork_parent(void)
{
	pt_unlock(&start_lock);
}

void pt_clocks_fork_child(void)
{
	/* The parent's kernel timers are not the child's. */
	for (int i = 0; i < PT_NR_FIXED; i++)
		fixed[i].kid = -1;
	for (int i = 0; i < 2; i++)
		canaries[i].kid = -1;
	pt_clocks_started = false;
	pt_lock_reset(&start_lock);
}

__attribute__((constructor(102))) static void clocks_init(void)
{
	for (int i = 0; i < PT_NR_FIXED; i++) {
		fixed[i].clock = pt_fixed_clock((uint16_t)i);
		fixed[i].kid = -1;
		fixed[i].watched = fixed[i].clock == CLOCK_MONOTONIC || fixed[i].clock == CLOCK_BOOTTIME;
		pt_base_register(&fixed[i].b, &fixed_ops, i);
	}
	pt_dispatch_set_source_hook(source_fired);
}
