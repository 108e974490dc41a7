/* SPDX-License-Identifier: MIT */
/*
 * The readout: every timer of the process, in the /proc/PID/timers format
 * and in an extended form.  Like the kernel's since it moved to RCU, it
 * takes no lock the timers' owners take: the ID space is walked under
 * rcu_read_lock() and each timer is read under its seqcount, retrying if
 * a writer was in the middle of a change (timer.c).  Timers are copied out
 * in small batches, so no read-side section spans the output (a slow
 * reader of a pipe must not hold up the grace periods that frees wait for).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "ids.h"
#include "proctimers.h"
#include "ptimers.h"
#include "rcu.h"
#include "timer.h"
#include "uaccess.h"

#define CHUNK 64

/* ptimer_list(), leaving out timers made after creation number `made`
 * (ids.h): a listing never holds more timers than were alive when it
 * began, whatever is created and deleted while it walks. */
static int list_made(int from_id, struct ptimer_info *infos, size_t info_size, int max, uint32_t made)
{
	int n = 0, id = from_id;

	size_t copy = info_size < sizeof(struct ptimer_info) ? info_size : sizeof(struct ptimer_info);
	while (n < max) {
		struct ptimer_info batch[CHUNK];
		int got = 0;
		pt_rcu_read_lock();
		while (got < CHUNK && n + got < max) {
			struct pt_timer *t = pt_ids_next(&id);
			if (!t)
				break;
			if (pt_timer_snapshot(t, id, &batch[got], made))
				got++;
			if (id == INT_MAX) {
				id = -1;
				break;
			}
			id++;
		}
		pt_rcu_read_unlock();
		for (int i = 0; i < got; i++, n++) {
			char *dst = (char *)infos + (size_t)n * info_size;
			if (pt_copy_to_user(dst, &batch[i], copy) != 0) {
				errno = EFAULT;
				return -1;
			}
		}
		if (got < CHUNK || id < 0)
			break;
	}
	return n;
}

int ptimer_list(int from_id, struct ptimer_info *infos, size_t info_size, int max)
{
	if (from_id < 0 || max < 0 || info_size == 0 || (max > 0 && !infos)) {
		errno = EINVAL;
		return -1;
	}
	return list_made(from_id, infos, info_size, max, pt_ids_made());
}

static int print_one(FILE *out, const struct ptimer_info *i, unsigned flags)
{
	struct pt_proc_timer t = {
		.id = i->id, .signo = i->signo, .value = (uint64_t)(uintptr_t)i->value.sival_ptr,
		.notify = i->notify, .target = i->target, .clockid = i->clockid,
		.extended = flags & PTIMER_READOUT_EXTENDED, .setting = i->setting,
		.overrun = i->overrun, .armed = i->armed, .signal_pending = i->signal_pending,
	};
	return pt_proc_timer_write(out, &t);
}

int ptimer_readout(FILE *out, unsigned flags)
{
	struct ptimer_info chunk[CHUNK];
	int total = 0, from = 0, n;

	char probe;
	if (!out || (flags & ~PTIMER_READOUT_EXTENDED)) {
		errno = EINVAL;
		return -1;
	}
	if (pt_copy_from_user(&probe, out, 1) != 0) {
		errno = EFAULT; /* not even a readable FILE */
		return -1;
	}
	uint32_t made = pt_ids_made(); /* one listing, however many pieces */
	while ((n = list_made(from, chunk, sizeof(chunk[0]), CHUNK, made)) > 0) {
		for (int i = 0; i < n; i++)
			if (print_one(out, &chunk[i], flags) < 0)
				return -1;
		total += n;
		if (chunk[n - 1].id == INT_MAX)
			break;
		from = chunk[n - 1].id + 1;
	}
	if (n < 0 || fflush(out) != 0)
		return -1;
	return total;
}
