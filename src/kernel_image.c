/* SPDX-License-Identifier: MIT */
/*
 * The process's kernel timers to and from checkpoint images (ptimers.h),
 * the same images the engine's are: a checkpoint reads /proc/self/timers
 * (proctimers.c), timer_gettime and timer_getoverrun; a restore recreates
 * each timer with its ID through PR_TIMER_CREATE_RESTORE_IDS or, where the
 * kernel lacks it or when asked, the create/delete walk, and arms them all
 * once all are made.  All or nothing.
 *
 * Nothing here needs the engine: libptimers-restore.so is this file, the
 * codec and the system layer.  The engine's own kernel timers carry its
 * signal (pt_own_signo, sys.h) and are left out of a checkpoint.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "kernel_image.h"
#include "private.h"
#include "proctimers.h"
#include "restoring.h"
#include "sys.h"

static int ksys_gettime(int id, struct itimerspec *cur)
{
	return (int)syscall(SYS_timer_gettime, id, cur);
}

static void kernel_delete(const int *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		syscall(SYS_timer_delete, ids[i]);
}

static int cmp_id(const void *a, const void *b)
{
	int x = ((const struct pt_image_timer *)a)->id, y = ((const struct pt_image_timer *)b)->id;
	return x < y ? -1 : x > y;
}

/* The process's own kernel timers, as /proc/self/timers lists them (not
 * the engine's), with their settings. */
static int read_kernel_timers(struct pt_image_timer **out, size_t *count, const struct ptimer_restore_opts *o)
{
	char *text = NULL;
	size_t len = 0, n = 0;
	struct pt_proc_timer *p = NULL;
	int e = pt_proc_timers_read(0, &text, &len);
	if (!e)
		e = pt_proc_timers_parse(text, len, &p, &n);
	free(text);
	if (e)
		return pt_restore_refuse(o, -e, "cannot read /proc/self/timers: %s", strerror(-e));
	struct pt_image_timer *t = malloc((n ? n : 1) * sizeof(*t));
	if (!t) {
		free(p);
		return pt_restore_refuse(o, ENOMEM, "no memory for %zu timers", n);
	}
	int own = __atomic_load_n(&pt_own_signo, __ATOMIC_RELAXED);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (own && p[i].signo == own)
			continue; /* the engine's own: its signal is no one else's */
		/* glibc's SIGEV_THREAD timers signal its helper thread with its
		 * own signal (SIGRTMIN as the kernel numbers it, 32): their
		 * function is glibc's, nothing a restore could give back. */
		if ((p[i].notify & SIGEV_THREAD_ID) && p[i].signo == 32) {
			int id = p[i].id;
			free(p);
			free(t);
			return pt_restore_refuse(o, EINVAL, "kernel timer %d is glibc's SIGEV_THREAD (signal 32 "
						 "to its helper thread): it cannot be checkpointed", id);
		}
		struct pt_image_timer *x = &t[k++];
		memset(x, 0, sizeof(*x));
		x->id = p[i].id;
		x->clockid = p[i].clockid;
		x->notify = (uint8_t)(p[i].notify < 0 ? SIGEV_SIGNAL : p[i].notify);
		x->signo = (uint8_t)p[i].signo;
		x->value.sival_ptr = (void *)(uintptr_t)p[i].value;
		if (p[i].notify >= 0 && (p[i].notify & SIGEV_THREAD_ID))
			x->tid = p[i].target;
	}
	free(p);
	*out = t;
	*count = k;
	return 0;
}

int ptimer_kernel_checkpoint(int fd, const struct ptimer_restore_opts *opts)
{
	struct ptimer_restore_opts copy;
	struct pt_image_timer *t = NULL;
	size_t n = 0;
	if (pt_restore_opts_take(&opts, &copy) != 0 || read_kernel_timers(&t, &n, opts) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct itimerspec cur;
		if (ksys_gettime(t[i].id, &cur) != 0) {
			int id = t[i].id, e = errno;
			free(t);
			return pt_restore_refuse(opts, e, "kernel timer %d: timer_gettime: %s (deleted "
						 "meanwhile?)", id, strerror(e));
		}
		t[i].remaining = pt_ts_to_ns(&cur.it_value);
		t[i].interval = pt_ts_to_ns(&cur.it_interval);
		t[i].armed = t[i].remaining > 0;
		long ov = syscall(SYS_timer_getoverrun, t[i].id);
		t[i].overrun = ov > 0 ? (int)ov : 0;
	}
	qsort(t, n, sizeof(*t), cmp_id);
	/* The kernel's ID counter cannot be read: the image says nothing of it. */
	int r = pt_image_write(fd, t, n, PT_IMAGE_SOURCE_KERNEL, -1, -1, opts->error, opts->error_size);
	free(t);
	return r;
}

/* The kernel timer one image entry asks for: its sigevent and setting. */
struct ktimer {
	int id;
	clockid_t clock;
	struct sigevent sev;
	struct itimerspec its;
	int flags;
};

static int kernel_plan(const struct pt_image *img, struct ktimer *k, const struct ptimer_restore_opts *o)
{
	for (size_t i = 0; i < img->n; i++) {
		const struct pt_image_timer *t = &img->t[i];
		if (t->notify == SIGEV_THREAD)
			return pt_restore_refuse(o, EINVAL, "timer %d is SIGEV_THREAD: kernel timers cannot run a "
						 "function (restore it on the engine)", t->id);
		memset(&k[i], 0, sizeof(k[i]));
		k[i].id = t->id;
		k[i].clock = t->clockid;
		k[i].sev.sigev_notify = t->notify;
		k[i].sev.sigev_signo = t->signo;
		k[i].sev.sigev_value = t->value;
		k[i].sev._sigev_un._tid = t->tid;
		k[i].its.it_interval = pt_ns_to_ts(t->interval);
		k[i].its.it_value = pt_ns_to_ts(pt_image_timer_value(t));
		k[i].flags = t->absolute ? TIMER_ABSTIME : 0;
		struct itimerspec cur;
		if (ksys_gettime(t->id, &cur) == 0)
			return pt_restore_refuse(o, EBUSY, "kernel timer ID %d is in use", t->id);
	}
	return 0;
}

/* Arm every timer once all are made, so that none fires while the rest
 * are still being made (a long walk), and relative ones keep their time
 * from the end of the restore. */
static int kernel_arm_all(const struct ktimer *k, size_t n, int *made,
			  const struct ptimer_restore_opts *o)
{
	for (size_t i = 0; i < n; i++) {
		if (syscall(SYS_timer_settime, k[i].id, k[i].flags, &k[i].its, NULL) != 0) {
			int e = errno;
			kernel_delete(made, n);
			return pt_restore_refuse(o, e, "kernel timer %d: timer_settime: %s; nothing was restored",
				      k[i].id, strerror(e));
		}
	}
	return 0;
}

/* The kernel's restore mode: each ID asked for. */
static int kernel_by_prctl(const struct ktimer *k, size_t n, int *made, const struct ptimer_restore_opts *o)
{
	for (size_t i = 0; i < n; i++) {
		int id = k[i].id;
		if (syscall(SYS_timer_create, k[i].clock, &k[i].sev, &id) != 0) {
			int e = errno;
			kernel_delete(made, i);
			return pt_restore_refuse(o, e, "kernel timer %d: timer_create: %s; nothing was restored",
				      k[i].id, strerror(e));
		}
		made[i] = id;
		if (id != k[i].id) { /* the mode was turned off meanwhile */
			kernel_delete(made, i + 1);
			return pt_restore_refuse(o, EBUSY, "kernel timer %d: the kernel gave ID %d; nothing was "
				      "restored", k[i].id, id);
		}
	}
	return kernel_arm_all(k, n, made, o);
}

/* How far the kernel's ID counter must go from just after `from` to hand
 * out id: it counts up and wraps from INT_MAX to 0. */
static long walk_distance(int from, int id)
{
	return ((long)id - from - 1 + (long)INT_MAX + 1) % ((long)INT_MAX + 1) + 1;
}

#define CALIBRATE 256

/* The walk: create timers until the kernel's counter hands out each ID
 * wanted, deleting the others.  Every create takes the next ID, so the
 * first one also tells where the counter is; it is made with the lowest
 * wanted ID's settings and kept if that is the ID it got.  Up to
 * CALIBRATE more, short of the nearest wanted ID, time a step for the
 * estimate.  The IDs are then taken in the order the counter reaches
 * them: those above it, then, after the wrap at INT_MAX, those below.
 * made[] is filled in the order of k[]. */
static int kernel_walk(struct ktimer *k, size_t n, int *made, const struct ptimer_restore_opts *o)
{
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	bool *have = calloc(n ? n : 1, sizeof(bool));
	size_t nmade = 0;
	int at;
	if (!have)
		return pt_restore_refuse(o, ENOMEM, "no memory for the walk");
	if (n == 0)
		goto done;
	int64_t t0 = pt_clock_ns(CLOCK_MONOTONIC);
	if (syscall(SYS_timer_create, k[0].clock, &k[0].sev, &at) != 0) {
		free(have);
		return pt_restore_refuse(o, errno, "walk: timer_create: %s; nothing was restored", strerror(errno));
	}
	if (at == k[0].id) {
		made[0] = at;
		have[0] = true;
		nmade = 1;
	} else {
		syscall(SYS_timer_delete, at);
	}
	double step = (double)(pt_clock_ns(CLOCK_MONOTONIC) - t0) / 1e9;
	long nearest = LONG_MAX;
	for (size_t j = 0; j < n; j++)
		if (!have[j] && walk_distance(at, k[j].id) < nearest)
			nearest = walk_distance(at, k[j].id);
	long calib = nearest - 1 < CALIBRATE ? nearest - 1 : CALIBRATE;
	if (calib > 0) {
		t0 = pt_clock_ns(CLOCK_MONOTONIC);
		for (long c = 0; c < calib; c++) {
			int id;
			if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &none, &id) != 0)
				break;
			syscall(SYS_timer_delete, id);
			at = id;
		}
		step = (double)(pt_clock_ns(CLOCK_MONOTONIC) - t0) / 1e9 / (double)calib;
	}
	long total = 0; /* the farthest one sets the length */
	for (size_t j = 0; j < n; j++)
		if (!have[j] && walk_distance(at, k[j].id) > total)
			total = walk_distance(at, k[j].id);
	if (o->progress && o->progress(o->arg, 0, total, (double)total * step) != 0) {
		kernel_delete(made, nmade);
		free(have);
		return pt_restore_refuse(o, ECANCELED, "the walk of %ld timer_create calls (about %.0f s) was "
			      "cancelled before it started; nothing was restored", total, (double)total * step);
	}
	/* In the order the counter reaches them. */
	size_t start = 0;
	while (start < n && k[start].id <= at)
		start++;
	const int from = at;
	long done = 0;
	int64_t started = pt_clock_ns(CLOCK_MONOTONIC);
	for (size_t j = 0; j < n; j++) {
		size_t w = (start + j) % n;
		struct ktimer *want = &k[w];
		if (have[w])
			continue;
		long goal = walk_distance(from, want->id);
		for (;;) {
			int id;
			if (syscall(SYS_timer_create, want->clock, &want->sev, &id) != 0) {
				int e = errno;
				kernel_delete(made, nmade);
				free(have);
				return pt_restore_refuse(o, e, "walk: timer_create: %s; nothing was restored", strerror(e));
			}
			done++;
			if (id == want->id)
				break;
			syscall(SYS_timer_delete, id);
			if (walk_distance(from, id) > goal || done > total + 1024) {
				/* Passed it: another thread took the ID meanwhile. */
				kernel_delete(made, nmade);
				free(have);
				return pt_restore_refuse(o, EBUSY, "walk: kernel timer ID %d was taken meanwhile; nothing "
					      "was restored", want->id);
			}
			if (o->progress && done % 65536 == 0) {
				double per = (double)(pt_clock_ns(CLOCK_MONOTONIC) - started) / 1e9 / (double)done;
				if (o->progress(o->arg, done, total, (double)(total - done) * per) != 0) {
					kernel_delete(made, nmade);
					free(have);
					return pt_restore_refuse(o, ECANCELED, "the walk was cancelled after %ld of %ld "
						      "calls; nothing was restored", done, total);
				}
			}
		}
		made[nmade++] = want->id;
		have[w] = true;
	}
	if (o->progress)
		o->progress(o->arg, total, total, 0);
done:
	free(have);
	return kernel_arm_all(k, n, made, o);
}

int pt_kernel_restore_image(struct pt_image *img, const struct ptimer_restore_opts *o)
{
	struct ktimer *k = calloc(img->n ? img->n : 1, sizeof(*k));
	int *made = calloc(img->n ? img->n : 1, sizeof(int));
	int r = k && made ? 0 : pt_restore_refuse(o, ENOMEM, "no memory for %zu timers", img->n);
	if (!r)
		r = pt_restore_map_threads(img, o);
	if (!r)
		r = kernel_plan(img, k, o);
	if (!r) {
		long mode = -1;
		if (!(o->flags & PTIMER_RESTORE_WALK))
			mode = syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 2, 0, 0, 0);
		if (mode >= 0 && syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) == 0) {
			r = kernel_by_prctl(k, img->n, made, o);
			syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, mode, 0, 0, 0);
		} else {
			r = kernel_walk(k, img->n, made, o);
		}
	}
	free(k);
	free(made);
	return r ? -1 : (int)img->n;
}

int ptimer_kernel_restore(int fd, const struct ptimer_restore_opts *opts)
{
	return pt_restore_fd(fd, opts, pt_kernel_restore_image);
}
