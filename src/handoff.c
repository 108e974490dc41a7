/* SPDX-License-Identifier: MIT */
/*
 * Handing hot periodic timers to kernel timers of the same ID (handoff.h).
 * The kernel's calls and the count; timer.c decides and keeps the fields.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handoff.h"
#include "slice.h"
#include "sys.h"

#define REST_NS 100000000LL /* after a refusal, no handoff for this long */
#define ALIGN_NS 2000         /* a read of a kernel timer's grid this close is enough */

static struct {
	int max, count;
	bool explicit_;
	int64_t rest_until; /* CLOCK_MONOTONIC */
} ho;

static void apply(int max)
{
	__atomic_store_n(&ho.max, max, __ATOMIC_RELAXED);
	/* The engine's own kernel timers move out of the way of its IDs. */
	if (max > 0 && pt_sys_timer_ids_usable())
		pt_sys_timer_ids_high(true);
}

void pt_handoff_set_max(int max, bool explicit_)
{
	ho.explicit_ = explicit_;
	apply(max < 0 ? 0 : max);
}

void pt_handoff_dropin(void)
{
	if (!ho.explicit_)
		apply(PT_HANDOFF_DROPIN_DEFAULT);
}

/* PTIMERS_HANDOFF=N: at most N timers handed to the kernel (0: none). */
__attribute__((constructor)) static void handoff_init(void)
{
	const char *v = getenv("PTIMERS_HANDOFF");
	if (!v || !*v)
		return;
	char *end;
	long n = strtol(v, &end, 10);
	if (*end || n < 0)
		return; /* not a number: the default */
	pt_handoff_set_max(n > 1 << 20 ? 1 << 20 : (int)n, true);
}

bool pt_handoff_may(int64_t interval)
{
	if (interval <= 0 || interval > PT_HANDOFF_INTERVAL_NS)
		return false;
	if (__atomic_load_n(&ho.count, __ATOMIC_RELAXED) >= __atomic_load_n(&ho.max, __ATOMIC_RELAXED))
		return false;
	int64_t rest = __atomic_load_n(&ho.rest_until, __ATOMIC_RELAXED);
	return !rest || pt_clock_ns(CLOCK_MONOTONIC) >= rest;
}

static int refused(int err)
{
	__atomic_store_n(&ho.rest_until, pt_clock_ns(CLOCK_MONOTONIC) + REST_NS, __ATOMIC_RELAXED);
	return -err;
}

/* Room in the user's signal queue (RLIMIT_SIGPENDING, shared by all of
 * the user's processes; a kernel timer holds one entry of it for as long
 * as it lives): hand off only while a quarter of it, and at least 256,
 * would stay free, so that the engine's own sends never want for room
 * the kernel timers took. */
static bool queue_has_room(void)
{
	char buf[4096];
	if (pt_sys_read_file("/proc/self/status", buf, sizeof(buf)) <= 0)
		return false;
	const char *p = strstr(buf, "\nSigQ:");
	long pending, limit;
	if (!p || sscanf(p + 6, "%ld/%ld", &pending, &limit) != 2)
		return false;
	long left = limit - pending - 1;
	return left >= 256 && left >= limit / 4;
}

static int settime(int id, int64_t expires, int64_t interval, int64_t *aligned)
{
	struct itimerspec its = { .it_interval = pt_ns_to_ts(interval), .it_value = pt_ns_to_ts(expires) };
	int flags = TIMER_ABSTIME;
	if (aligned) {
		int64_t value = expires - pt_clock_ns(CLOCK_MONOTONIC);
		its.it_value = pt_ns_to_ts(value > 0 ? value : 1);
		flags = 0;
	} else if (expires <= 0) {
		its.it_value = (struct timespec){ 0, 1 }; /* long passed: at once, not disarmed */
	}
	if (syscall(SYS_timer_settime, id, flags, &its, NULL) != 0)
		return -errno;
	if (aligned) {
		/* Where the kernel's grid fell: a point of it read back (the
		 * next expiry, from the clock between two readings: the
		 * narrowest of a few tries), and the point of it nearest the
		 * engine's. */
		int64_t at = 0, window = INT64_MAX;
		for (int i = 0; i < 4 && window > ALIGN_NS; i++) {
			struct itimerspec cur;
			int64_t before = pt_clock_ns(CLOCK_MONOTONIC);
			if (syscall(SYS_timer_gettime, id, &cur) != 0 || pt_ts_to_ns(&cur.it_value) <= 0)
				break;
			int64_t after = pt_clock_ns(CLOCK_MONOTONIC);
			if (after - before < window) {
				window = after - before;
				at = before + window / 2 + pt_ts_to_ns(&cur.it_value);
			}
		}
		*aligned = expires;
		if (window != INT64_MAX)
			*aligned = at - (at - expires + interval / 2) / interval * interval;
	}
	return 0;
}

bool pt_handoff_reserve(void)
{
	/* Counted first: two expiries at once must not pass the cap. */
	if (__atomic_add_fetch(&ho.count, 1, __ATOMIC_RELAXED) > __atomic_load_n(&ho.max, __ATOMIC_RELAXED)) {
		__atomic_sub_fetch(&ho.count, 1, __ATOMIC_RELAXED);
		return false;
	}
	pt_slice_pause(); /* the caller may hold the timer's lock */
	bool room = queue_has_room();
	pt_slice_resume();
	if (!room) {
		__atomic_sub_fetch(&ho.count, 1, __ATOMIC_RELAXED);
		refused(EAGAIN);
	}
	return room;
}

void pt_handoff_release(void)
{
	__atomic_sub_fetch(&ho.count, 1, __ATOMIC_RELAXED);
}

int pt_handoff_start(int id, clockid_t clock, const struct sigevent *sev, int64_t expires,
		     int64_t interval, int64_t *aligned)
{
	struct sigevent ev = *sev;

	if (!pt_handoff_reserve())
		return -EAGAIN;
	pt_slice_pause(); /* the caller holds the timer's lock */
	int err = 0;
	if (pt_sys_timer_create_id(clock, &ev, id) != 0)
		err = errno;
	else if ((err = -settime(id, expires, interval, aligned)) != 0)
		syscall(SYS_timer_delete, id);
	pt_slice_resume();
	if (err) {
		pt_handoff_release();
		return refused(err);
	}
	return 0;
}

int pt_handoff_rearm(int id, int64_t expires, int64_t interval, int64_t *aligned)
{
	pt_slice_pause();
	int r = settime(id, expires, interval, aligned);
	pt_slice_resume();
	return r;
}

void pt_handoff_end(int id)
{
	pt_slice_pause();
	syscall(SYS_timer_delete, id);
	pt_slice_resume();
	pt_handoff_release();
}

int pt_handoff_overrun(int id)
{
	pt_slice_pause();
	long r = syscall(SYS_timer_getoverrun, id);
	pt_slice_resume();
	return r < 0 ? 0 : (int)r;
}

int pt_handoff_gettime(int id, struct itimerspec *cur)
{
	pt_slice_pause();
	int r = syscall(SYS_timer_gettime, id, cur) == 0 ? 0 : -errno;
	pt_slice_resume();
	return r;
}

int pt_handoff_count(void)
{
	return __atomic_load_n(&ho.count, __ATOMIC_RELAXED);
}

void pt_handoff_fork_child(void)
{
	ho.count = 0;
	ho.rest_until = 0;
}
