/* SPDX-License-Identifier: MIT */
/* Unit tests of the generic heap (src/heap.c) on its own, against a
 * reference model: smallest key first, equal keys in insertion order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "heap.h"

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
			pt_heap_remove(&h, e.node);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fifo_on_equal_keys),
		cmocka_unit_test(test_update_goes_behind),
		cmocka_unit_test(test_random_against_model),
	};
	return cmocka_run_group_tests_name("heap", tests, NULL, NULL);
}
