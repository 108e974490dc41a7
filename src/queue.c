/* SPDX-License-Identifier: MIT */
/*
 * Expiry queues: one 4-ary min-heap per clock base, each with one kernel
 * timer (a timerfd) programmed to the earliest expiry.  Arming a timer is a
 * heap insert under the base's lock; the kernel timer is reprogrammed only
 * when the new expiry is earlier than the one it holds, so most arms make
 * no system call.  The dispatcher pops expired entries and reprograms.
 *
 * CLOCK_TAI has no timerfd: its deadlines are converted to CLOCK_REALTIME
 * (TAI = REALTIME + the TAI offset), and like the REALTIME base it uses
 * TFD_TIMER_CANCEL_ON_SET so that a clock change wakes the dispatcher.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "internal.h"

#define HEAP_ARITY 4

struct heap_ent {
	int64_t expires;
	struct pt_timer *t;
};

struct pt_base {
	pt_lock_t lock;
	struct heap_ent *heap;
	unsigned n, cap;
	unsigned reserved; /* slots owed to the timers alive */
	int fd;
	int64_t programmed; /* expiry the kernel timer holds, PT_NEVER if none */
};

static struct pt_base bases[PT_NR_BASES];

static inline void heap_set(struct pt_base *b, unsigned i, struct heap_ent e)
{
	b->heap[i] = e;
	PT_WRITE(e.t->heap_idx, (int)i);
}

static void sift_up(struct pt_base *b, unsigned i)
{
	struct heap_ent e = b->heap[i];

	while (i > 0) {
		unsigned parent = (i - 1) / HEAP_ARITY;
		if (b->heap[parent].expires <= e.expires)
			break;
		heap_set(b, i, b->heap[parent]);
		i = parent;
	}
	heap_set(b, i, e);
}

static void sift_down(struct pt_base *b, unsigned i)
{
	struct heap_ent e = b->heap[i];

	for (;;) {
		unsigned first = i * HEAP_ARITY + 1, best = i;
		int64_t best_exp = e.expires;
		for (unsigned c = first; c < first + HEAP_ARITY && c < b->n; c++) {
			if (b->heap[c].expires < best_exp) {
				best = c;
				best_exp = b->heap[c].expires;
			}
		}
		if (best == i)
			break;
		heap_set(b, i, b->heap[best]);
		i = best;
	}
	heap_set(b, i, e);
}

static void heap_remove_at(struct pt_base *b, unsigned i)
{
	PT_WRITE(b->heap[i].t->heap_idx, -1);
	if (--b->n == i)
		return;
	b->heap[i] = b->heap[b->n];
	PT_WRITE(b->heap[i].t->heap_idx, (int)i);
	if (i > 0 && b->heap[(i - 1) / HEAP_ARITY].expires > b->heap[i].expires)
		sift_up(b, i);
	else
		sift_down(b, i);
}

/* Program the base's kernel timer for its earliest expiry.  b->lock held. */
static void program(struct pt_base *b, int base, int64_t expires)
{
	struct itimerspec its = { 0 };
	int64_t when = expires;

	if (when != PT_NEVER && base == PT_BASE_TAI) {
		struct timespec rt, tai;
		clock_gettime(CLOCK_REALTIME, &rt);
		clock_gettime(CLOCK_TAI, &tai);
		when -= pt_ts_to_ns(&tai) - pt_ts_to_ns(&rt);
	}
	if (when != PT_NEVER) {
		/* it_value zero would disarm: an expiry at or before the epoch
		 * is simply due, so ask for the smallest non-zero time. */
		its.it_value = when > 0 ? pt_ns_to_ts(when) : (struct timespec){ 0, 1 };
	}
	int flags = TFD_TIMER_ABSTIME;
	if (base == PT_BASE_REALTIME || base == PT_BASE_TAI)
		flags |= TFD_TIMER_CANCEL_ON_SET;
	if (b->fd >= 0)
		timerfd_settime(b->fd, flags, &its, NULL);
	b->programmed = expires;
}

int pt_queue_init(void)
{
	for (int i = 0; i < PT_NR_BASES; i++) {
		clockid_t clk = i == PT_BASE_TAI ? CLOCK_REALTIME : pt_base_clock(i);
		int fd = timerfd_create(clk, TFD_CLOEXEC | TFD_NONBLOCK);
		if (fd < 0) {
			int err = -errno;
			for (int j = 0; j < i; j++) {
				close(bases[j].fd);
				bases[j].fd = -1;
			}
			return err;
		}
		pt_lock(&bases[i].lock);
		bases[i].fd = fd;
		bases[i].programmed = PT_NEVER;
		/* Timers armed before the dispatcher existed. */
		if (bases[i].n)
			program(&bases[i], i, bases[i].heap[0].expires);
		pt_unlock(&bases[i].lock);
	}
	return 0;
}

int pt_queue_fd(int base)
{
	return bases[base].fd;
}

static void pt_queue_unreserve_one(int i);

static int heap_grow(struct pt_base *b)
{
	unsigned cap = b->cap ? b->cap * 2 : 64;

	if (cap < b->cap)
		return -ENOMEM;
	struct heap_ent *h = realloc(b->heap, cap * sizeof(*h));

	if (!h)
		return -ENOMEM;
	b->heap = h;
	b->cap = cap;
	return 0;
}

/*
 * Every timer alive owns a slot in every base's heap, reserved when it is
 * created: arming can then never fail for want of memory (the kernel's
 * timer_settime has no ENOMEM), and a timer sits in one base at a time.
 */
int pt_queue_reserve(void)
{
	int i, err = 0;

	for (i = 0; i < PT_NR_BASES; i++) {
		struct pt_base *b = &bases[i];
		pt_lock(&b->lock);
		if (b->reserved == b->cap)
			err = heap_grow(b);
		if (!err)
			b->reserved++;
		pt_unlock(&b->lock);
		if (err)
			break;
	}
	while (err && i-- > 0)
		pt_queue_unreserve_one(i);
	return err;
}

static void pt_queue_unreserve_one(int i)
{
	pt_lock(&bases[i].lock);
	bases[i].reserved--;
	pt_unlock(&bases[i].lock);
}

void pt_queue_unreserve(void)
{
	for (int i = 0; i < PT_NR_BASES; i++)
		pt_queue_unreserve_one(i);
}

/* Queue t to expire at `expires` on `base`.  t->lock held, t not queued. */
void pt_queue_add(struct pt_timer *t, int base, int64_t expires)
{
	if (base == PT_BASE_CPU) {
		pt_cpu_add(t, expires);
		return;
	}
	struct pt_base *b = &bases[base];

	pt_lock(&b->lock);
	t->queue_gen++;
	b->heap[b->n] = (struct heap_ent){ expires, t };
	PT_WRITE(t->heap_idx, (int)b->n);
	sift_up(b, b->n++);
	if (expires < b->programmed)
		program(b, base, expires);
	pt_unlock(&b->lock);
}

/* Dequeue t if queued.  t->lock held: only its holder queues it, so a
 * -1 read without the base lock cannot be stale; a stale index can (the
 * dispatcher pops without t->lock), hence the recheck under the lock. */
void pt_queue_del(struct pt_timer *t)
{
	if (PT_READ(t->heap_idx) < 0)
		return;
	if (t->base == PT_BASE_CPU) {
		pt_cpu_del(t);
		return;
	}
	struct pt_base *b = &bases[t->base];
	pt_lock(&b->lock);
	int idx = PT_READ(t->heap_idx);
	if (idx >= 0)
		heap_remove_at(b, (unsigned)idx);
	/* The kernel timer keeps its expiry: when it fires early the
	 * dispatcher finds nothing due and programs the next one.  That
	 * spares a system call on every disarm. */
	pt_unlock(&b->lock);
}

/*
 * Pop up to max expired timers of a base, each with the queue generation it
 * was popped at (the dispatcher fires it only if that is still current),
 * then program the kernel timer for what remains.
 */
int pt_queue_pop_expired(int base, struct pt_expired *out, int max)
{
	struct pt_base *b = &bases[base];
	int n = 0;

	pt_lock(&b->lock);
	int64_t now = pt_base_now(base);
	while (b->n && b->heap[0].expires <= now && n < max) {
		struct pt_timer *t = b->heap[0].t;
		out[n++] = (struct pt_expired){ t, t->queue_gen };
		heap_remove_at(b, 0);
	}
	if (n < max)
		program(b, base, b->n ? b->heap[0].expires : PT_NEVER);
	pt_unlock(&b->lock);
	return n;
}

void pt_queue_fork_prepare(void)
{
	for (int i = 0; i < PT_NR_BASES; i++)
		pt_lock(&bases[i].lock);
}

void pt_queue_fork_parent(void)
{
	for (int i = PT_NR_BASES - 1; i >= 0; i--)
		pt_unlock(&bases[i].lock);
}

/* The child's timerfds are the parent's open files: arming them would move
 * the parent's timers.  Close them; the child's dispatcher makes new ones. */
void pt_queue_fork_child(void)
{
	for (int i = 0; i < PT_NR_BASES; i++) {
		if (bases[i].fd >= 0)
			close(bases[i].fd);
		free(bases[i].heap);
		bases[i] = (struct pt_base){ .fd = -1, .programmed = PT_NEVER };
	}
}

__attribute__((constructor)) static void queue_ctor(void)
{
	for (int i = 0; i < PT_NR_BASES; i++) {
		bases[i].fd = -1;
		bases[i].programmed = PT_NEVER;
	}
}
