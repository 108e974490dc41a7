/* SPDX-License-Identifier: MIT */
/*
 * The bases and the queue (see base.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "dispatch.h"
#include "sys.h"

#define PROGRAMMING PT_BASE_PROGRAMMING
#define KICK_EVERY 4096       /* pushes between wakeups that keep batches small */
#define EXPIRE_BATCH 1024     /* expiries per base before the inbox gets a look */
#define FIRE_AHEAD 16         /* due timers brought in together (run_due) */
#define RETRY_NS 10000000     /* after a failed allocation */
#define LEAD_SAMPLES 32       /* wakeup delays the lead is learned from */
#define LEAD_MAX 150000       /* ns: never spin longer than this */
#define LEAD_START 30000
#define SPIN_DEFAULT 2        /* % of a CPU the spinning may take, PTIMERS_SPIN */
#define TOKENS_MAX (2 * LEAD_MAX)
#define SEQ __ATOMIC_SEQ_CST
#define END ((struct pt_qnode *)1) /* the inbox's last node points here */

static struct {
	struct pt_qnode *inbox;    /* lock-free stack */
	unsigned long pushes;
	unsigned nbases;           /* highest index + 1 */
	pt_lock_t lock;            /* registration */
	const struct pt_queue_ops *ops;
	struct pt_qnode *overflow; /* dispatcher: no memory to queue them yet */
	/* Dispatcher: the lead the delays ask for (learned from late[]),
	 * and the budget that bounds all spinning: spin_pct of the time
	 * that goes by accrues as tokens (ns of spinning allowed, up to
	 * TOKENS_MAX); a spin spends them, and without enough for the lead
	 * the kernel timers are set for the expiry itself. */
	int64_t lead;
	int64_t late[LEAD_SAMPLES];
	unsigned nlate;
	int spin_pct;
	int64_t tokens, refilled;
} q = { .lock = PT_LOCK_INIT, .lead = LEAD_START, .spin_pct = SPIN_DEFAULT };

/* PTIMERS_SPIN=N: the spinning may take N% of a CPU (0: none, the
 * dispatcher sleeps to each expiry; at most 50). */
__attribute__((constructor)) static void spin_init(void)
{
	const char *v = getenv("PTIMERS_SPIN");
	if (!v || !*v)
		return;
	char *end;
	long pct = strtol(v, &end, 10);
	if (*end || pct < 0)
		return; /* not a number: the default */
	q.spin_pct = pct > 50 ? 50 : (int)pct;
}

struct pt_base *pt_base_table[PT_MAX_BASES];
int64_t pt_base_shift[PT_MAX_BASES];

/* The tokens the time since the last refill has earned. */
static void refill(int64_t now)
{
	if (q.refilled && now > q.refilled) {
		int64_t t = q.tokens + (now - q.refilled) / 100 * q.spin_pct;
		__atomic_store_n(&q.tokens, t < TOKENS_MAX ? t : TOKENS_MAX, __ATOMIC_RELAXED);
	}
	q.refilled = now;
}

int64_t pt_queue_lead(void)
{
	int64_t lead = __atomic_load_n(&q.lead, __ATOMIC_RELAXED);
	return __atomic_load_n(&q.tokens, __ATOMIC_RELAXED) >= lead ? lead : 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

void pt_queue_woke(int64_t late_ns)
{
	if (!q.spin_pct)
		return;
	if (late_ns < 0)
		late_ns = 0;
	q.late[q.nlate++ % LEAD_SAMPLES] = late_ns;
	if (q.nlate < LEAD_SAMPLES || q.nlate % 8)
		return;
	/* The longest of the last LEAD_SAMPLES delays, and a little: a tail
	 * wakeup of the dispatcher would add to the program's own. */
	int64_t s[LEAD_SAMPLES];
	memcpy(s, q.late, sizeof(s));
	qsort(s, LEAD_SAMPLES, sizeof(s[0]), cmp_i64);
	int64_t lead = s[LEAD_SAMPLES - 1] + 2000;
	__atomic_store_n(&q.lead, lead < LEAD_MAX ? lead : LEAD_MAX, __ATOMIC_RELAXED);
}

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
			if (!pt_base_table[i]) {
				idx = (int)i;
				break;
			}
		}
	}
	if (idx >= 0) {
		b->index = (uint16_t)idx;
		__atomic_store_n(&pt_base_table[idx], b, __ATOMIC_RELEASE);
		if ((unsigned)idx >= q.nbases)
			__atomic_store_n(&q.nbases, (unsigned)idx + 1, __ATOMIC_RELEASE);
	}
	pt_unlock(&q.lock);
	return idx;
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

/* Set b's kernel timer, b->plock held.  A system call: outside the
 * time-slice extension the lock asked for. */
static void program_kernel(struct pt_base *b, int64_t when)
{
	pt_slice_pause();
	b->ops->program(b, when);
	pt_slice_resume();
}

void pt_queue_update_slow(struct pt_qnode *n, uint16_t base, int64_t key)
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
	/* The dispatcher is setting the kernel timer: it looks at the inbox
	 * once it has (reprogram()), and n is there, so nothing is to be
	 * waited for here.  (Waiting for its lock would hold this timer's
	 * lock across the dispatcher's system call, and the dispatcher
	 * waits for that lock next: two sleeps an expiry.) */
	if (p == PROGRAMMING)
		return;
	if (key >= p) {
		if (b->ops->armed)
			b->ops->armed(b, key);
		return;
	}
	pt_lock(&b->plock);
	if (key < b->programmed) {
		program_kernel(b, key);
		__atomic_store_n(&b->programmed, key, SEQ);
	}
	pt_unlock(&b->plock);
}

void pt_base_spent(struct pt_base *b)
{
	__atomic_store_n(&b->reset, true, __ATOMIC_RELAXED);
}

/* ---- the dispatcher's side ---- */

void pt_queue_settle(struct pt_qnode *n)
{
	int64_t key = 0;
	uint16_t want = q.ops->want(n, &key);
	if (n->hn.pos != 0) {
		struct pt_base *cur = pt_base_table[n->in_base];
		/* Still queued means it came off the inbox: a new arming,
		 * behind others at that key, as the kernel's re-queue puts
		 * it.  Without memory to move it, off and in again below. */
		if (want == n->in_base && pt_heap_update(&cur->heap, &n->hn, key) == 0)
			return;
		pt_heap_remove(&cur->heap, &n->hn);
	}
	if (want != PT_BASE_NONE) {
		struct pt_base *b = pt_base_table[want];
		if (pt_heap_insert(&b->heap, &n->hn, key) == 0) {
			n->in_base = want;
		} else {
			/* No memory for a heap block: try again later.  Linked,
			 * so its owner does not push it meanwhile. */
			set_link(n, q.overflow ? q.overflow : END);
			q.overflow = n;
		}
	}
}

/* Put n where its owner now wants it.  from_inbox: n came off the inbox
 * (or the overflow list), so it is no longer pushed. */
static void queue_sync(struct pt_qnode *n, bool from_inbox)
{
	q.ops->lock(n);
	if (from_inbox)
		set_link(n, NULL);
	pt_queue_settle(n);
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

/* Fire what is due on b, at most EXPIRE_BATCH; returns whether more is.
 *
 * The due timers are taken off the heap FIRE_AHEAD at a time and all
 * their lines asked for, before the first of them is expired: each
 * expiry makes a system call, after which (on the machines measured) a
 * line not yet brought in costs a full miss, even when it was prefetched
 * just before the call.  Brought in together, the batch's misses overlap
 * once instead of following each other. */
static bool run_due(struct pt_base *b)
{
	if (pt_heap_empty(&b->heap))
		return false;
	int64_t now = b->ops->now(b);
	if (now < 0)
		return false; /* its clock is gone: nothing there fires again */
	struct pt_qnode *early = NULL;
	for (int done = 0; done < EXPIRE_BATCH;) {
		struct pt_qnode *due[FIRE_AHEAD];
		int k = 0;
		bool more = true;
		while (k < FIRE_AHEAD) {
			if (pt_heap_empty(&b->heap)) {
				more = false;
				break;
			}
			struct pt_heap_ent e = pt_heap_top(&b->heap);
			struct pt_qnode *n = (struct pt_qnode *)((char *)e.node - offsetof(struct pt_qnode, hn));
			if (e.key > now) {
				/* Not at its latest time yet; within its leeway it
				 * goes now, with this wakeup (as the kernel's hrtimer
				 * runs a timer past its soft expiry).  Each once: one
				 * put back ends the look. */
				if (n == early || q.ops->earliest(n) > now) {
					more = false;
					break;
				}
				early = n;
			}
			if (b->ops->hold && b->ops->hold(b, e.key < now ? e.key : now)) {
				more = false;
				break;
			}
			/* The heap position is the dispatcher's own: no lock needed. */
			pt_heap_pop(&b->heap);
			due[k++] = n;
		}
		/* Loads, not prefetches: a prefetch may be dropped where a
		 * load waits, and these overlap all the same.  Relaxed atomic
		 * loads: owners write these bytes meanwhile (the inbox link). */
		unsigned sum = 0;
		for (int i = 0; i < k; i++)
			sum += __atomic_load_n((unsigned char *)due[i], __ATOMIC_RELAXED) +
			       __atomic_load_n((unsigned char *)due[i] + q.ops->span - 1, __ATOMIC_RELAXED);
		__asm__ volatile("" : : "r"(sum));
		for (int i = 0; i < k; i++)
			due[i]->hn.pos = 0;
		for (int i = 0; i < k; i++)
			q.ops->expire(due[i], b, now);
		done += k;
		if (!more)
			return false;
	}
	return true;
}

/* Set b's kernel timer for its earliest expiry, unless the inbox has news
 * (then false: drain first). */
static bool reprogram(struct pt_base *b)
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
		program_kernel(b, head);
	__atomic_store_n(&b->programmed, head, SEQ);
	pt_unlock(&b->plock);
	/* An arming that came while it was PROGRAMMING left its timer in the
	 * inbox without waiting (pt_queue_update_slow): look again. */
	return __atomic_load_n(&q.inbox, SEQ) == NULL;
}

/* The base that leads with the nearest expiry due within what the budget
 * allows to spin (the lead at most, and an eighth more for the clock
 * reads between), or NULL; *head gets that expiry. */
static struct pt_base *due_soon(unsigned nb, int64_t *head)
{
	struct pt_base *soon = NULL;
	int64_t best = PT_NEVER;

	if (!q.spin_pct)
		return NULL;
	refill(pt_clock_ns(CLOCK_MONOTONIC));
	int64_t allowed = q.lead + q.lead / 8;
	if (allowed > q.tokens)
		allowed = q.tokens;
	for (unsigned i = 0; i < nb; i++) {
		struct pt_base *b = pt_base_table[i];
		if (!b || !b->ops->leads || pt_heap_empty(&b->heap))
			continue;
		int64_t now = b->ops->now(b), key = pt_heap_top(&b->heap).key;
		if (key - now <= allowed && key - now < best) {
			best = key - now;
			soon = b;
			*head = key;
		}
	}
	return soon;
}

/* Spin until b's expiry at head is due, unless an arming comes in (it may
 * be earlier), and pay for it from the budget. */
static void spin_until(struct pt_base *b, int64_t head)
{
	int64_t t0 = pt_clock_ns(CLOCK_MONOTONIC);
	while (b->ops->now(b) < head && !__atomic_load_n(&q.inbox, __ATOMIC_RELAXED))
		for (int i = 0; i < 16; i++)
			__builtin_ia32_pause();
	int64_t t1 = pt_clock_ns(CLOCK_MONOTONIC);
	refill(t1);
	__atomic_store_n(&q.tokens, q.tokens - (t1 - t0), __ATOMIC_RELAXED);
}

void pt_queue_run(void)
{
	unsigned nb = __atomic_load_n(&q.nbases, __ATOMIC_ACQUIRE);

	for (;;) {
		drain();
		bool more = false;
		for (unsigned i = 0; i < nb; i++)
			if (pt_base_table[i] && run_due(pt_base_table[i]))
				more = true;
		if (more || __atomic_load_n(&q.inbox, SEQ))
			continue;
		/* Woken early on purpose (the lead): be running when it is due. */
		int64_t head;
		struct pt_base *soon = due_soon(nb, &head);
		if (soon) {
			spin_until(soon, head);
			continue;
		}
		bool settled = true;
		for (unsigned i = 0; i < nb && settled; i++)
			if (pt_base_table[i])
				settled = reprogram(pt_base_table[i]);
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
		struct pt_base *b = pt_base_table[i];
		if (!b)
			continue;
		pt_heap_release(&b->heap);
		b->programmed = PT_NEVER;
		b->reset = false;
		pt_lock_reset(&b->plock);
	}
}
