/* SPDX-License-Identifier: MIT */
/*
 * Clocks: which clock IDs can drive a timer, and on which base a timer
 * runs.  The answers follow the kernel's clockid_to_kclock() and k_clock
 * tables; where the engine does not drive a clock yet it says EINVAL, never
 * a wrong timer (the README lists those clocks).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define CLOCKFD 3
#define CPUCLOCK_TYPE_MASK 7

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
	int kid;

	if (syscall(SYS_timer_create, clockid, &sev, &kid) != 0)
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
		if (pt_is_cpu_clock(clockid))
			return pt_cpu_check(clockid);
		return -EINVAL;
	}
}

int pt_clock_base(clockid_t clockid, bool absolute)
{
	switch (clockid) {
	case CLOCK_REALTIME:
		/* The kernel runs relative CLOCK_REALTIME timers on the
		 * monotonic base: they do not move when the clock is set. */
		return absolute ? PT_BASE_REALTIME : PT_BASE_MONOTONIC;
	case CLOCK_REALTIME_ALARM:
		/* Alarm timers are absolute on their clock even when armed
		 * relative: they follow a clock change. */
		return PT_BASE_REALTIME;
	case CLOCK_BOOTTIME:
	case CLOCK_BOOTTIME_ALARM:
		return PT_BASE_BOOTTIME;
	case CLOCK_TAI:
		return PT_BASE_TAI;
	default:
		return pt_is_cpu_clock(clockid) ? PT_BASE_CPU : PT_BASE_MONOTONIC;
	}
}

clockid_t pt_base_clock(int base)
{
	static const clockid_t clocks[PT_NR_BASES] = {
		[PT_BASE_MONOTONIC] = CLOCK_MONOTONIC,
		[PT_BASE_REALTIME] = CLOCK_REALTIME,
		[PT_BASE_BOOTTIME] = CLOCK_BOOTTIME,
		[PT_BASE_TAI] = CLOCK_TAI,
	};
	return clocks[base];
}

int64_t pt_base_now(int base)
{
	struct timespec ts;

	clock_gettime(pt_base_clock(base), &ts);
	return pt_ts_to_ns(&ts);
}

int64_t pt_now(int base, const struct pt_timer *t)
{
	return base == PT_BASE_CPU ? pt_cpu_now(t->cpu) : pt_base_now(base);
}
