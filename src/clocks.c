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
#include "sys.h"

#define CLOCKFD 3
#define CPUCLOCK_TYPE_MASK 7

struct fixed_base {
	struct pt_base b;
	clockid_t clock;
	int kid;          /* its kernel timer, -1 until first needed */
	int64_t set_for;  /* when the kernel timer was set to go off (its clock), 0: not */
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
		if (clockid < 0 && (clockid & CPUCLOCK_TYPE_MASK) == CLOCKFD)
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

static int64_t fixed_now(struct pt_base *b)
{
	return pt_clock_ns(((struct fixed_base *)b)->clock);
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
		if (pt_dispatch_ktimer(fb->clock, PT_SRC_BASE + b->index, false, &kid) != 0) {
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
static void source_fired(int value, pid_t via, const sigset_t *mask)
{
	if (value >= PT_SRC_CPU) {
		pt_cpu_fired(value - PT_SRC_CPU, via, mask);
		return;
	}
	int i = value - PT_SRC_BASE;
	if (i < 0 || i >= PT_NR_FIXED || !pt_dispatch_is_self())
		return;
	struct fixed_base *fb = &fixed[i];
	pt_base_spent(&fb->b);
	int64_t set_for = __atomic_load_n(&fb->set_for, __ATOMIC_RELAXED);
	if (set_for > 0)
		pt_queue_woke(fixed_now(&fb->b) - set_for);
}

int pt_clocks_start_slow(void)
{
	int err = 0;

	pt_lock(&start_lock);
	if (pt_clocks_started)
		goto out;
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
	pt_clocks_started = false;
	pt_lock_reset(&start_lock);
}

__attribute__((constructor(102))) static void clocks_init(void)
{
	for (int i = 0; i < PT_NR_FIXED; i++) {
		fixed[i].clock = pt_fixed_clock((uint16_t)i);
		fixed[i].kid = -1;
		pt_base_register(&fixed[i].b, &fixed_ops, i);
	}
	pt_dispatch_set_source_hook(source_fired);
}
