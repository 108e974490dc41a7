/* SPDX-License-Identifier: MIT */
/* Unit tests of the generic expiry queue (src/heap.c) on its own, against
 * a reference model: smallest key first, equal keys in insertion order.
 * Built with PT_HEAP_FAULTS: the queue asks pt_heap_fault() before each
 * allocation, and the tests fail some. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "heap.h"

/* Every fail_every-th allocation of the queue fails (0: none). */
static unsigned fail_every, allocations, faults;

bool pt_heap_fault(void)
{
	if (!fail_every || ++allocations % fail_every != 0)
		return false;
	faults++;
	return true;
}

struct item {
	struct pt_heap_node hn;
	int64_t key;
	uint64_t when;   /* model: insertion order */
	int queued;
};

static struct item *item_of(struct pt_heap_node *n)
{
	return (struct item *)((char *)n - offsetof(struct item, hn));
}

/* The model's minimum among queued items: smallest key, then earliest. */
static struct item *model_min(struct item *it, int n)
{
	struct item *best = NULL;
	for (int i = 0; i < n; i++) {
		if (!it[i].queued)
			continue;
		if (!best || it[i].key < best->key || (it[i].key == best->key && it[i].when < best->when))
			best = &it[i];
	}
	return best;
}

static void test_fifo_on_equal_keys(void **state)
{
	(void)state;
	struct pt_heap h = PT_HEAP_INIT;
	struct item it[100];
	memset(it, 0, sizeof(it));
	for (int i = 0; i < 100; i++)
		assert_int_equal(pt_heap_insert(&h, &it[i].hn, i % 3 == 0 ? 5 : 7), 0);
	/* The 5s first, in insertion order, then the 7s, in insertion order. */
	int last5 = -1, last7 = -1;
	for (int n = 0; n < 100; n++) {
		struct pt_heap_ent e = pt_heap_top(&h);
		int i = (int)(item_of(e.node) - it);
		if (e.key == 5) {
			assert_true(i > last5);
			assert_int_equal(last7, -1);
			last5 = i;
		} else {
			assert_int_equal(e.key, 7);
			assert_true(i > last7);
			last7 = i;
		}
		pt_heap_remove(&h, e.node);
		assert_int_equal(e.node->pos, 0);
	}
	assert_true(pt_heap_empty(&h));
	pt_heap_release(&h);
}

static void test_update_goes_behind(void **state)
{
	(void)state;
	struct pt_heap h = PT_HEAP_INIT;
	struct item a = { 0 }, b = { 0 };
	pt_heap_insert(&h, &a.hn, 10);
	pt_heap_insert(&h, &b.hn, 10);
	assert_ptr_equal(pt_heap_top(&h).node, &a.hn);
	pt_heap_update(&h, &a.hn, 10); /* re-armed at the same instant: now behind b */
	assert_ptr_equal(pt_heap_top(&h).node, &b.hn);
	assert_int_equal(pt_heap_key(&h, &a.hn), 10);
	pt_heap_update(&h, &a.hn, 3);
	assert_ptr_equal(pt_heap_top(&h).node, &a.hn);
	pt_heap_release(&h);
}

/* Random inserts, removals and re-keyings across several 4096-entry
 * blocks, checked against the model after every step. */
static void test_random_against_model(void **state)
{
	(void)state;
	enum { N = 20000, STEPS = 200000 };
	struct pt_heap h = PT_HEAP_INIT;
	struct item *it = calloc(N, sizeof(*it));
	uint64_t clock = 0, rnd = 42;
	int queued = 0;
	assert_non_null(it);
	for (int s = 0; s < STEPS; s++) {
		rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
		struct item *x = &it[(rnd >> 33) % N];
		int op = (int)(rnd >> 20) % 4;
		int64_t key = (int64_t)((rnd >> 40) % 1000); /* many ties */
		if (!x->queued) {
			assert_int_equal(pt_heap_insert(&h, &x->hn, key), 0);
			x->key = key;
			x->when = clock++;
			x->queued = 1;
			queued++;
		} else if (op == 0) {
			pt_heap_update(&h, &x->hn, key);
			x->key = key;
			x->when = clock++;
		} else if (op == 1) {
			struct pt_heap_ent e = pt_heap_top(&h);
			struct item *m = model_min(it, N);
			assert_ptr_equal(item_of(e.node), m);
			assert_int_equal(e.key, m->key);
			if (rnd >> 60 & 1) {
				pt_heap_remove(&h, e.node);
			} else {
				/* The dispatcher's way: off the top, then the
				 * node's position cleared by the caller. */
				pt_heap_pop(&h);
				e.node->pos = 0;
			}
			m->queued = 0;
			queued--;
		} else {
			pt_heap_remove(&h, &x->hn);
			x->queued = 0;
			queued--;
		}
		if (s % 1000 == 0 && queued) {
			struct item *m = model_min(it, N);
			assert_ptr_equal(item_of(pt_heap_top(&h).node), m);
		}
		assert_int_equal(h.n, queued);
	}
	/* Drain in order; the storage shrinks as it goes. */
	uint64_t peak = pt_heap_bytes(&h);
	while (!pt_heap_empty(&h)) {
		struct pt_heap_ent e = pt_heap_top(&h);
		struct item *m = model_min(it, N);
		assert_ptr_equal(item_of(e.node), m);
		pt_heap_remove(&h, e.node);
		m->queued = 0;
	}
	assert_true(pt_heap_bytes(&h) < peak || peak <= 2 * 4096 * sizeof(struct pt_heap_ent) + 64);
	pt_heap_release(&h);
	free(it);
}

/* A tiered queue's near bucket of thousands of equal keys, its order
 * shuffled by re-keyings and removals (a bucket is unsorted), moves down
 * sorted: equal keys must still leave in arming order, and entries
 * re-keyed or removed while it is being taken must leave or stay as the
 * model says. */
static void test_equal_keys_moved_down(void **state)
{
	(void)state;
	enum { FAR = 700, TIED = 3000, NEAR = 300, N = FAR + TIED + NEAR };
	const int64_t k0 = 1000000000000ll, tied = k0 + 5 * (1 << 20);
	struct pt_heap h = PT_HEAP_INIT;
	struct item *it = calloc(N, sizeof(*it));
	uint64_t clock = 0;
	assert_non_null(it);
	for (int i = 0; i < N; i++) {
		/* The first sets the near window (the queue turns tiered at
		 * the 512th): the tied keys then go to a bucket of their own. */
		int64_t key = i == 0 ? k0 : i < FAR ? k0 + (10ll << 30) + (int64_t)i * (1 << 20) :
			      i < FAR + TIED ? tied : tied - 1000 + (i % 7) * 500;
		assert_int_equal(pt_heap_insert(&h, &it[i].hn, key), 0);
		it[i] = (struct item){ .hn = it[i].hn, .key = key, .when = clock++, .queued = 1 };
	}
	assert_non_null(h.tiers);
	for (int i = FAR; i < FAR + TIED; i += 5) {
		assert_int_equal(pt_heap_update(&h, &it[i].hn, tied), 0);
		it[i].when = clock++;
	}
	for (int i = FAR + 3; i < FAR + TIED; i += 7) {
		pt_heap_remove(&h, &it[i].hn);
		it[i].queued = 0;
	}
	for (int taken = 0; !pt_heap_empty(&h); taken++) {
		if (taken == 400) {
			/* Partway through the tied keys: some go behind the
			 * rest, some leave. */
			for (int i = FAR + 1; i < FAR + TIED; i += 11)
				if (it[i].queued) {
					assert_int_equal(pt_heap_update(&h, &it[i].hn, tied), 0);
					it[i].when = clock++;
				}
			for (int i = FAR + 2; i < FAR + TIED; i += 13)
				if (it[i].queued) {
					assert_int_equal(pt_heap_key(&h, &it[i].hn), tied);
					pt_heap_remove(&h, &it[i].hn);
					it[i].queued = 0;
				}
		}
		struct pt_heap_ent e = pt_heap_top(&h);
		struct item *m = model_min(it, N);
		assert_ptr_equal(item_of(e.node), m);
		assert_int_equal(e.key, m->key);
		pt_heap_pop(&h);
		e.node->pos = 0;
		m->queued = 0;
	}
	assert_null(h.tiers);
	pt_heap_release(&h);
	free(it);
}

/* A clock's queue: keys near a "now" that moves on as the earliest go,
 * spread from the past to days ahead, so that every tier and every move
 * between them is used (the queue turns tiered at PT_HEAP_TIERS), with
 * ties, and starting either side of zero.  fail: every fail-th allocation
 * fails; an insert or update that fails must leave the queue as it was. */
static void tiers_against_model(int64_t start, unsigned fail, int narrow)
{
	enum { STEPS = 120000 };
	/* narrow: 12,000 items due within half a millisecond, so that the
	 * near heap outgrows the size below which it keeps no positions. */
	const int N = narrow ? 12000 : 3000;
	struct pt_heap h = PT_HEAP_INIT;
	struct item *it = calloc(N, sizeof(*it));
	uint64_t clock = 0, rnd = 7 + (uint64_t)start;
	int64_t now = start;
	int queued = 0, failed = 0;
	assert_non_null(it);
	fail_every = fail;
	allocations = faults = 0;
	for (int s = 0; s < STEPS; s++) {
		rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
		struct item *x = &it[(rnd >> 33) % N];
		unsigned pick = (unsigned)(rnd >> 16) % 100;
		/* Insert and re-key more often than pop while small, so the
		 * queue grows past the tiers' threshold and stays there. */
		int op = queued < N / 2 ? (int)(rnd >> 24) % 8 : (int)(rnd >> 24) % 4;
		int64_t span = pick < 10 ? -(1 << 20) : pick < 40 ? 1 << 20 : pick < 60 ? 1 << 28 :
			       pick < 80 ? 1ll << 36 : pick < 90 ? 1ll << 44 : 0;
		if (narrow && span)
			span = 1 << 19;
		int64_t key = span ? now + (int64_t)((rnd >> 11) % (uint64_t)(span < 0 ? -span : span)) * (span < 0 ? -1 : 1)
				   : it[(rnd >> 40) % N].queued ? it[(rnd >> 40) % N].key : now;
		if (!x->queued) {
			int r = pt_heap_insert(&h, &x->hn, key);
			if (r != 0) {
				assert_int_equal(r, -ENOMEM);
				assert_int_equal(x->hn.pos, 0);
				failed++;
				continue;
			}
			x->key = key;
			x->when = clock++;
			x->queued = 1;
			queued++;
		} else if (op == 0 || op >= 4) {
			if (pt_heap_update(&h, &x->hn, key) != 0) {
				failed++;
				assert_int_equal(pt_heap_key(&h, &x->hn), x->key);
				continue;
			}
			x->key = key;
			x->when = clock++;
		} else if (op == 1) {
			struct pt_heap_ent e = pt_heap_top(&h);
			struct item *m = model_min(it, N);
			assert_ptr_equal(item_of(e.node), m);
			assert_int_equal(e.key, m->key);
			if (rnd >> 60 & 1) {
				pt_heap_remove(&h, e.node);
			} else {
				/* The dispatcher's way: off the top, then the
				 * node's position cleared by the caller. */
				pt_heap_pop(&h);
				e.node->pos = 0;
			}
			m->queued = 0;
			queued--;
			if (e.key > now)
				now = e.key;
		} else {
			assert_int_equal(pt_heap_key(&h, &x->hn), x->key);
			pt_heap_remove(&h, &x->hn);
			x->queued = 0;
			queued--;
		}
		assert_int_equal(h.n, queued);
	}
	fail_every = 0;
	if (fail)
		assert_true(faults > 0);
	(void)failed;
	while (!pt_heap_empty(&h)) {
		struct pt_heap_ent e = pt_heap_top(&h);
		struct item *m = model_min(it, N);
		assert_ptr_equal(item_of(e.node), m);
		pt_heap_remove(&h, e.node);
		m->queued = 0;
	}
	/* Empty: the tiers and the far heap are gone, the near heap keeps a
	 * block and a spare. */
	assert_null(h.tiers);
	assert_true(pt_heap_bytes(&h) <= 2 * 4096 * sizeof(struct pt_heap_ent) + 64 * sizeof(void *));
	pt_heap_release(&h);
	assert_int_equal(pt_heap_bytes(&h), 0);
	free(it);
}

static void test_tiers_against_model(void **state)
{
	(void)state;
	tiers_against_model(1000000000000ll, 0, 0);
	tiers_against_model(-(1ll << 36) - 12345, 0, 0); /* across zero */
	tiers_against_model(INT64_MAX - (1ll << 46), 0, 0);
	tiers_against_model(1000000000000ll, 0, 1);
}

static void test_tiers_without_memory(void **state)
{
	(void)state;
	tiers_against_model(5000000000ll, 3, 0);
	tiers_against_model(5000000000ll, 17, 0);
	tiers_against_model(-(1ll << 40), 101, 0);
	tiers_against_model(5000000000ll, 13, 1);
}

/* Queue n items at start + step * k for k a permutation of 0..n-1: keys
 * all different, in an order unrelated to the items'.  Returns how many
 * went in. */
static int queue_spread(struct pt_heap *h, struct item *it, int n, int64_t start, int64_t step)
{
	int queued = 0;
	for (int i = 0; i < n; i++) {
		int64_t key = start + (int64_t)(((uint64_t)i * 2654435761u) % (uint64_t)n) * step;
		if (pt_heap_insert(h, &it[i].hn, key) == 0)
			queued++;
		it[i].key = key;
	}
	return queued;
}

/* Take everything, each after the one before (the keys are all
 * different) and with its own key.  *most_far (if not NULL): the most
 * entries a single pt_heap_top() took from the far heap.  Returns how
 * many came out. */
static int take_in_order(struct pt_heap *h, uint32_t *most_far)
{
	int64_t last = INT64_MIN;
	int taken = 0;
	while (!pt_heap_empty(h)) {
		uint32_t far = h->far.n;
		struct pt_heap_ent e = pt_heap_top(h);
		if (most_far && far - h->far.n > *most_far)
			*most_far = far - h->far.n;
		assert_true(e.key > last);
		assert_int_equal(e.key, item_of(e.node)->key);
		assert_true(pt_heap_bytes(h) < 1ull << 32); /* no count gone below zero */
		last = e.key;
		pt_heap_remove(h, e.node);
		taken++;
	}
	return taken;
}

/* 300,000 entries spread over a second, taken in order: the shape of
 * the expiry bench, through the tiers. */
static void test_million_in_order(void **state)
{
	(void)state;
	enum { N = 300000 };
	struct pt_heap h = PT_HEAP_INIT;
	struct item *it = calloc(N, sizeof(*it));
	assert_non_null(it);
	fail_every = 0;
	assert_int_equal(queue_spread(&h, it, N, 700000000, 3333), N);
	assert_non_null(h.tiers);
	assert_int_equal(take_in_order(&h, NULL), N);
	pt_heap_release(&h);
	free(it);
}

/* Buckets too big to go straight to the near heap, spread while
 * allocations fail: every entry still comes out, in order. */
static void test_spread_without_memory(void **state)
{
	(void)state;
	enum { N = 40000 };
	struct pt_heap h = PT_HEAP_INIT;
	struct item *it = calloc(N, sizeof(*it));
	assert_non_null(it);
	for (unsigned every = 2; every <= 11; every += 4) {
		fail_every = 0;
		int queued = queue_spread(&h, it, N, 2000000000, 25000);
		fail_every = every;
		allocations = faults = 0;
		assert_int_equal(take_in_order(&h, NULL), queued);
		assert_true(faults > 0);
	}
	fail_every = 0;
	pt_heap_release(&h);
	free(it);
}

/* A bucket too big to go straight to the near heap is spread over L1
 * without its nodes being told (the spread keeps where each entry went):
 * after it, entries are found, re-keyed within their bucket, moved to
 * other buckets and tiers, and removed, and the rest come out in order;
 * then a smaller bucket is spread (the record shrinks).  fail: as above,
 * for the spread's own allocations too. */
static void spread_then_change(unsigned fail)
{
	enum { N = 40000, M = 9000 }; /* both spread; M under a quarter of N */
	const int64_t base = 3700ll << 28, step = 5000; /* an L2 bucket's start; 5 us */
	struct pt_heap h = PT_HEAP_INIT;
	struct item *it = calloc(N + M + 1, sizeof(*it));
	assert_non_null(it);
	fail_every = 0;
	/* One due now, N in the next L2 bucket (300-500 ms on), M in the one
	 * after (537-762 ms on). */
	assert_int_equal(pt_heap_insert(&h, &it[N + M].hn, base), 0);
	assert_int_equal(queue_spread(&h, it, N, base + 300000000, step), N);
	assert_int_equal(queue_spread(&h, it + N, M, base + (2ll << 28) + 500, 25000), M);
	for (int i = 0; i < N + M; i++)
		it[i].queued = 1;
	assert_ptr_equal(item_of(pt_heap_top(&h).node), &it[N + M]);
	pt_heap_pop(&h);
	it[N + M].hn.pos = 0;
	uint64_t before = pt_heap_bytes(&h);
	fail_every = fail;
	allocations = faults = 0;
	assert_int_equal(pt_heap_top(&h).key, base + 300000000); /* the spread */
	/* The record: 4 bytes an entry at most. */
	assert_true(pt_heap_bytes(&h) <= before + N * (4 + 2 * sizeof(struct pt_heap_ent)) + 4096);
	int queued = N + M;
	for (int i = 0; i < N; i++) {
		if (i % 3)
			continue;
		assert_int_equal(pt_heap_key(&h, &it[i].hn), it[i].key);
		/* Within its bucket, 4 ms on, 1 ms back, minutes on: each off
		 * the 5 us grid by its own 1-4 us, so all keys stay different. */
		int64_t key = it[i].key + (i % 4 == 0 ? 1000 : i % 4 == 1 ? 4002000 : i % 4 == 2 ? -997000
											: 600000004000ll);
		if (i % 5 == 0) {
			pt_heap_remove(&h, &it[i].hn);
			it[i].queued = 0;
			queued--;
		} else if (pt_heap_update(&h, &it[i].hn, key) == 0) {
			it[i].key = key;
		} else {
			assert_int_equal(pt_heap_key(&h, &it[i].hn), it[i].key);
		}
	}
	for (int i = 0; i < N + M; i++)
		if (it[i].queued)
			assert_int_equal(pt_heap_key(&h, &it[i].hn), it[i].key);
	fail_every = 0;
	assert_int_equal(take_in_order(&h, NULL), queued);
	assert_null(h.tiers);
	pt_heap_release(&h);
	free(it);
}

static void test_spread_then_change(void **state)
{
	(void)state;
	spread_then_change(0);
	spread_then_change(5); /* the spread's record, or a bucket, not had */
	spread_then_change(2);
}

/* Timers armed minutes ahead (beyond the L2 window) stay in the far heap
 * until their millisecond comes: taking the earliest brings down that
 * millisecond only, not the window's worth at once (which would stall
 * the engine's thread for as long as a hundred thousand heap pops). */
static void test_far_leaves_by_the_millisecond(void **state)
{
	(void)state;
	enum { N = 100000 };
	struct pt_heap h = PT_HEAP_INIT;
	struct item *it = calloc(N, sizeof(*it));
	assert_non_null(it);
	fail_every = 0;
	/* From 300 s on, over 100 s. */
	assert_int_equal(queue_spread(&h, it, N, 300000000000ll, 1000000), N);
	assert_non_null(h.tiers);
	uint32_t most = 0;
	assert_int_equal(take_in_order(&h, &most), N);
	assert_true(h.far.n == 0 && most > 0 && most <= 10); /* one a millisecond here */
	pt_heap_release(&h);
	free(it);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fifo_on_equal_keys),
		cmocka_unit_test(test_update_goes_behind),
		cmocka_unit_test(test_random_against_model),
		cmocka_unit_test(test_tiers_against_model),
		cmocka_unit_test(test_equal_keys_moved_down),
		cmocka_unit_test(test_tiers_without_memory),
		cmocka_unit_test(test_million_in_order),
		cmocka_unit_test(test_spread_without_memory),
		cmocka_unit_test(test_spread_then_change),
		cmocka_unit_test(test_far_leaves_by_the_millisecond),
	};
	return cmocka_run_group_tests_name("heap", tests, NULL, NULL);
}
