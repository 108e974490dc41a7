/* SPDX-License-Identifier: MIT */
/*
 * The readout: every timer of the process, in the /proc/PID/timers format
 * and in an extended form.  Like the kernel's since it moved to RCU, it
 * takes no lock its owners take: the ID space is walked under
 * rcu_read_lock() and each timer's arming state is read under its
 * seqcount, retrying if a writer was in the middle of a change.  Timers are
 * copied out in small batches, so no read-side section spans the output
 * (a slow reader of a pipe must not hold up the grace periods that
 * deletes wait for).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "rcu.h"

#define CHUNK 64

static void setting_of(int status, int notify, int64_t expires, int64_t interval, int64_t now,
		       struct itimerspec *cur)
{
	memset(cur, 0, sizeof(*cur));
	if (interval)
		cur->it_interval = pt_ns_to_ts(interval);
	if (status == PT_DISARMED)
		return;
	/* What gettime would say, without moving the timer forward. */
	if (interval && expires <= now && (status != PT_ARMED || notify == SIGEV_NONE))
		expires += ((now - expires) / interval + 1) * interval;
	int64_t remaining = expires - now;
	if (remaining > 0)
		cur->it_value = pt_ns_to_ts(remaining);
	else if (notify != SIGEV_NONE)
		cur->it_value.tv_nsec = 1;
}

void pt_timer_snapshot(struct pt_timer *t, struct ptimer_info *info)
{
	int status, base;
	int64_t expires, interval, overrun_last;
	bool queued;
	unsigned s1, s2;

	do {
		while ((s1 = __atomic_load_n(&t->seq, __ATOMIC_ACQUIRE)) & 1)
			__builtin_ia32_pause();
		status = PT_READ(t->status);
		base = PT_READ(t->base);
		expires = PT_READ(t->expires);
		interval = PT_READ(t->interval);
		overrun_last = PT_READ(t->overrun_last);
		queued = PT_READ(t->sig_queued);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&t->seq, __ATOMIC_RELAXED);
	} while (s1 != s2);

	info->id = t->id;
	info->clockid = t->clockid;
	info->notify = t->notify;
	info->signo = t->signo;
	info->value = t->value;
	info->target = t->target;
	setting_of(status, t->notify, expires, interval, pt_now(base, t), &info->setting);
	info->overrun = overrun_last > INT_MAX ? INT_MAX : (int)overrun_last;
	info->armed = status != PT_DISARMED;
	info->signal_pending = queued;
}

int ptimer_list(int from_id, struct ptimer_info *infos, int max)
{
	int n = 0, id = from_id;

	if (from_id < 0 || max < 0 || (max > 0 && !infos)) {
		errno = EINVAL;
		return -1;
	}
	pt_rcu_read_lock();
	while (n < max) {
		struct pt_timer *t = pt_ids_next(&id);
		if (!t)
			break;
		pt_timer_snapshot(t, &infos[n++]);
		if (id == INT_MAX)
			break;
		id++;
	}
	pt_rcu_read_unlock();
	return n;
}

static const char *notify_name(int notify)
{
	switch (notify & ~SIGEV_THREAD_ID) {
	case SIGEV_SIGNAL: return "signal";
	case SIGEV_NONE: return "none";
	case SIGEV_THREAD: return "thread";
	default: return "?";
	}
}

static const char *state_name(const struct ptimer_info *i)
{
	if (!i->armed)
		return "disarmed";
	return i->signal_pending ? "armed signal-pending" : "armed";
}

static int print_one(FILE *out, const struct ptimer_info *i, unsigned flags)
{
	int r = fprintf(out, "ID: %d\nsignal: %d/%016" PRIxPTR "\nnotify: %s/%s.%d\nClockID: %d\n",
			i->id, i->signo, (uintptr_t)i->value.sival_ptr, notify_name(i->notify),
			(i->notify & SIGEV_THREAD_ID) ? "tid" : "pid", (int)i->target,
			(int)i->clockid);
	if (r >= 0 && (flags & PTIMER_READOUT_EXTENDED))
		r = fprintf(out, "remaining: %lld.%09ld\ninterval: %lld.%09ld\noverrun: %d\nstate: %s\n",
			    (long long)i->setting.it_value.tv_sec, i->setting.it_value.tv_nsec,
			    (long long)i->setting.it_interval.tv_sec, i->setting.it_interval.tv_nsec,
			    i->overrun, state_name(i));
	return r < 0 ? -1 : 0;
}

int ptimer_readout(FILE *out, unsigned flags)
{
	struct ptimer_info chunk[CHUNK];
	int total = 0, from = 0, n;

	if (!out || (flags & ~PTIMER_READOUT_EXTENDED)) {
		errno = EINVAL;
		return -1;
	}
	while ((n = ptimer_list(from, chunk, CHUNK)) > 0) {
		for (int i = 0; i < n; i++)
			if (print_one(out, &chunk[i], flags) < 0)
				return -1;
		total += n;
		if (chunk[n - 1].id == INT_MAX)
			break;
		from = chunk[n - 1].id + 1;
	}
	if (fflush(out) != 0)
		return -1;
	return total;
}
