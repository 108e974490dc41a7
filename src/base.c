/* SPDX-License-Identifier: MIT */
/*
 * The bases and the queue (see base.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>

#include "base.h"
#include "dispatch.h"
#include "sys.h"

#define PROGRAMMING INT64_MIN /* the dispatcher is setting the kernel timer */
#define KICK_EVERY 4096       /* pushes between wakeups that keep batches small */
#define EXPIRE_BATCH 1024     /* expiries per base before the inbox gets a look */
#define RETRY_NS 10000000     /* after a failed allocation */
#define SEQ __ATOMIC_SEQ_CST
#define END ((struct pt_qnode *)1) /* the inbox's last node points here */

static struct {
	struct pt_qnode *inbox;    /* lock-free stack */
	unsigned long pushes;
	struct pt_base *base[PT_MAX_BASES];
	unsigned nbases;           /* highest index + 1 */
	pt_lock_t lock;            /* registration */
	const struct pt_queue_ops *ops;
	struct pt_qnode *overflow; /* dispatcher: no memory to queue them yet */
} q = { .lock = PT_LOCK_INIT };

void pt_queue_set_ops(const struct pt_queue_ops *ops)
{
	q.ops = ops;
}

int pt_base_register(struct pt_base *b, const struct pt_base_ops *ops, int fixed)
{
	int idx = -EAGAIN;

	b->ops = ops;
	b->heap = (struct pt_heap)PT_HEAP_INIT;
	b->programmed = PT_NEVER;
	b->plock = (pt_lock_t)PT_LOCK_INIT;
	b->reset = false;
	pt_lock(&q.lock);
	if (fixed >= 0) {
		idx = fixed;
	} else {
		for (unsigned i = 0; i < PT_MAX_BASES; i++) {
			if (!q.base[i]) {
				idx = (int)i;
				break;
			}
		}
	}
	if (idx >= 0) {
		b->index = (uint16_t)idx;
		__atomic_store_n(&q.base[idx], b, __ATOMIC_RELEASE);
		if ((unsigned)idx >= q.nbases)
			__atomic_store_n(&q.nbases, (unsigned)idx + 1, __ATOMIC_RELEASE);
	}
	pt_unlock(&q.lock);
	return idx;
}

struct pt_base *pt_base_get(uint16_t index)
{
	return __atomic_load_n(&q.base[index], __ATOMIC_ACQUIRE);
}

int64_t pt_base_now(uint16_t index)
{
	struct pt_base *b = pt_base_get(index);
	return b->ops->now(b);
}

/* A node's link is read by its owner (is it pushed?) while the dispatcher
 * may be relinking the inbox it is on: relaxed atomics, as every value it
 * can have there is non-NULL; the inbox's own atomics order the rest. */
static inline struct pt_qnode *link_of(const struct pt_qnode *n)
{
	return __atomic_load_n(&n->next, __ATOMIC_RELAXED);
}

static inline void set_link(struct pt_qnode *n, struct pt_qnode *next)
{
	__atomic_store_n(&n->next, next, __ATOMIC_RELAXED);
}

bool pt_queue_busy(const struct pt_qnode *n)
{
	return n->hn.pos != 0 || link_of(n) != NULL;
}

void pt_queue_update(struct pt_qnode *n, uint16_t base, int64_t key)
{
	if (link_of(n) == NULL) {
		struct pt_qnode *head = __atomic_load_n(&q.inbox, __ATOMIC_RELAXED);
		do
			set_link(n, head ? head : END);
		while (!__atomic_compare_exchange_n(&q.inbox, &head, n, false, SEQ, __ATOMIC_RELAXED));
		if (__atomic_add_fetch(&q.pushes, 1, __ATOMIC_RELAXED) % KICK_EVERY == 0)
			pt_dispatch_kick();
	}
	if (base == PT_BASE_NONE)
		return;
	struct pt_base *b = pt_base_get(base);
	int64_t p = __atomic_load_n(&b->programmed, SEQ);
	if (p != PROGRAMMING && key >= p) {
		if (b->ops->armed)
			b->ops->armed(b, key);
		return;
	}
	pt_lock(&b->plock);
	if (key < b->programmed) {
		b->ops->program(b, key);
		__atomic_store_n(&b->programmed, key, SEQ);
	}
	pt_unlock(&b->plock);
}

void pt_base_cancelled(struct pt_base *b)
{
	__atomic_store_n(&b->reset, true, __ATOMIC_RELAXED);
}

/* ---- the dispatcher's side ---- */

/* Put n where its owner now wants it.  from_inbox: n came off the inbox
 * (or the overflow list), so it is no longer pushed. */
static void queue_sync(struct pt_qnode *n, bool from_inbox)
{
	int64_t key = 0;

	q.ops->lock(n);
	if (from_inbox)
		set_link(n, NULL);
	uint16_t want = q.ops->want(n, &key);
	if (n->hn.pos != 0) {
		struct pt_base *cur = q.base[n->in_base];
		if (want == n->in_base) {
			/* A push means a new arming: behind others at that key,
			 * as the kernel's re-queue puts it. */
			if (from_inbox || key != pt_heap_key(&cur->heap, &n->hn))
				pt_heap_update(&cur->heap, &n->hn, key);
			goto out;
		}
		pt_heap_remove(&cur->heap, &n->hn);
	}
	if (want != PT_BASE_NONE) {
		struct pt_base *b = q.base[want];
		if (pt_heap_insert(&b->heap, &n->hn, key) == 0) {
			n->in_base = want;
		} else {
			/* No memory for a heap block: try again later.  Linked,
			 * so its owner does not push it meanwhile. */
			set_link(n, q.overflow ? q.overflow : END);
			q.overflow = n;
		}
	}
out:
	q.ops->unlock(n);
}

/* Drain the inbox (and what waited for memory), oldest first. */
static void drain(void)
{
	struct pt_qnode *list = q.overflow, *rev = END;

	q.overflow = NULL;
	while (list && list != END) {
		struct pt_qnode *n = list;
		list = link_of(n);
		queue_sync(n, true);
	}
	/* The inbox is a stack: turn it round, so that timers armed for the
	 * same instant keep their arming order.  Relinking in place is safe:
	 * the links stay non-NULL, and owners leave a pushed node's link
	 * alone. */
	list = __atomic_exchange_n(&q.inbox, NULL, SEQ);
	while (list && list != END) {
		struct pt_qnode *n = list;
		list = link_of(n);
		set_link(n, rev);
		rev = n;
	}
	while (rev != END) {
		struct pt_qnode *n = rev;
		rev = link_of(n);
		queue_sync(n, true);
	}
}

/* Fire what is due on b, at most EXPIRE_BATCH; returns whether more is. */
static bool run_due(struct pt_base *b)
{
	if (pt_heap_empty(&b->heap))
		return false;
	int64_t now = b->ops->now(b);
	if (now < 0)
		return false; /* its clock is gone: nothing there fires again */
	for (int i = 0; i < EXPIRE_BATCH; i++) {
		if (pt_heap_empty(&b->heap))
			return false;
		struct pt_heap_ent e = pt_heap_top(&b->heap);
		if (e.key > now)
			return false;
		struct pt_qnode *n = (struct pt_qnode *)((char *)e.node - offsetof(struct pt_qnode, hn));
		q.ops->lock(n);
		pt_heap_remove(&b->heap, &n->hn);
		q.ops->unlock(n);
		q.ops->expire(n, b, now);
		queue_sync(n, false);
	}
	return true;
}

/* Set b's kernel timer for its earliest expiry, unless the inbox has news
 * (then false: drain first). */
static bool program(struct pt_base *b)
{
	pt_lock(&b->plock);
	int64_t old = b->programmed;
	__atomic_store_n(&b->programmed, PROGRAMMING, SEQ);
	if (__atomic_load_n(&q.inbox, SEQ) != NULL) {
		__atomic_store_n(&b->programmed, old, SEQ);
		pt_unlock(&b->plock);
		return false;
	}
	int64_t head = pt_heap_empty(&b->heap) ? PT_NEVER : pt_heap_top(&b->heap).key;
	if (__atomic_exchange_n(&b->reset, false, __ATOMIC_RELAXED) || head != old)
		b->ops->program(b, head);
	__atomic_store_n(&b->programmed, head, SEQ);
	pt_unlock(&b->plock);
	return true;
}

void pt_queue_run(void)
{
	unsigned nb = __atomic_load_n(&q.nbases, __ATOMIC_ACQUIRE);

	for (;;) {
		drain();
		bool more = false;
		for (unsigned i = 0; i < nb; i++)
			if (q.base[i] && run_due(q.base[i]))
				more = true;
		if (more || __atomic_load_n(&q.inbox, SEQ))
			continue;
		bool settled = true;
		for (unsigned i = 0; i < nb && settled; i++)
			if (q.base[i])
				settled = program(q.base[i]);
		if (settled)
			break;
	}
	if (q.overflow)
		pt_dispatch_wake_within(RETRY_NS);
}

uint64_t pt_queue_bytes(void)
{
	uint64_t total = 0;
	unsigned nb = __atomic_load_n(&q.nbases, __ATOMIC_ACQUIRE);

	for (unsigned i = 0; i < nb; i++) {
		struct pt_base *b = pt_base_get((uint16_t)i);
		if (b)
			total += pt_heap_bytes(&b->heap);
	}
	return total;
}

void pt_queue_fork_prepare(void)
{
	pt_lock(&q.lock);
}

void pt_queue_fork_parent(void)
{
	pt_unlock(&q.lock);
}

void pt_queue_fork_child(void)
{
	q.inbox = NULL;
	q.overflow = NULL;
	q.pushes = 0;
	pt_lock_reset(&q.lock);
	for (unsigned i = 0; i < q.nbases; i++) {
		struct pt_base *b = q.base[i];
		if (!b)
			continue;
		pt_heap_release(&b->heap);
		b->programmed = PT_NEVER;
		b->reset = false;
		pt_lock_reset(&b->plock);
	}
}
