/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "heap.h"
#include "slice.h"

#define ARITY 4
#define BLOCK_SHIFT 12
#define BLOCK_ENTS (1u << BLOCK_SHIFT) /* 4096 entries: 64 KiB */
#define BLOCK_MASK (BLOCK_ENTS - 1)

/* Entry i sits at slot i + 3 of 64-byte-aligned blocks: then the four
 * children of a node, 4i+1..4i+4, fill one cache line (slots 4(i+1) to
 * 4(i+1)+3, 16 bytes each), and a step down the heap touches one line. */
#define SKEW 3

static inline struct pt_heap_ent *ent(const struct pt_heap *h, uint32_t i)
{
	i += SKEW;
	return &h->block[i >> BLOCK_SHIFT][i & BLOCK_MASK];
}

/* a goes before b: smaller key, or the same key queued earlier (the
 * counter wraps: compare distances). */
static inline bool before(const struct pt_heap_ent *a, const struct pt_heap_ent *b)
{
	if (a->key != b->key)
		return a->key < b->key;
	return (int32_t)(a->node->order - b->node->order) < 0;
}

static inline void place(struct pt_heap *h, uint32_t i, struct pt_heap_ent e)
{
	*ent(h, i) = e;
	e.node->pos = i + 1;
}

static void sift_up(struct pt_heap *h, uint32_t i, struct pt_heap_ent e)
{
	while (i > 0) {
		uint32_t parent = (i - 1) / ARITY;
		struct pt_heap_ent *p = ent(h, parent);
		if (!before(&e, p))
			break;
		place(h, i, *p);
		i = parent;
	}
	place(h, i, e);
}

static void sift_down(struct pt_heap *h, uint32_t i, struct pt_heap_ent e)
{
	for (;;) {
		uint32_t first = i * ARITY + 1;
		if (first >= h->n)
			break;
		uint32_t last = first + ARITY < h->n ? first + ARITY : h->n;
		/* Ask for the grandchildren's lines (one per child) while
		 * these four are compared: in a big heap each step down is
		 * otherwise a cache miss waited for. */
		for (uint32_t c = first; c < last && c * ARITY + 1 < h->n; c++)
			__builtin_prefetch(ent(h, c * ARITY + 1));
		uint32_t best = first;
		struct pt_heap_ent *b = ent(h, first);
		for (uint32_t c = first + 1; c < last; c++) {
			struct pt_heap_ent *x = ent(h, c);
			if (before(x, b)) {
				best = c;
				b = x;
			}
		}
		if (!before(b, &e))
			break;
		place(h, i, *b);
		i = best;
	}
	place(h, i, e);
}

/* Put e at i, which was emptied, wherever it belongs from there. */
static void settle(struct pt_heap *h, uint32_t i, struct pt_heap_ent e)
{
	if (i > 0 && before(&e, ent(h, (i - 1) / ARITY)))
		sift_up(h, i, e);
	else
		sift_down(h, i, e);
}

struct pt_heap_ent pt_heap_top(const struct pt_heap *h)
{
	return *ent(h, 0);
}

int64_t pt_heap_key(const struct pt_heap *h, const struct pt_heap_node *node)
{
	return ent(h, node->pos - 1)->key;
}

/* Growing and shrinking may reach the kernel (brk, mmap): the caller's
 * lock has asked for a time-slice extension, withdrawn around them. */
static int grow_blocks(struct pt_heap *h);
static int grow(struct pt_heap *h)
{
	pt_slice_pause();
	int r = grow_blocks(h);
	pt_slice_resume();
	return r;
}

static int grow_blocks(struct pt_heap *h)
{
	if (h->nblocks == h->cap_blocks) {
		uint32_t cap = h->cap_blocks ? h->cap_blocks * 2 : 4;
		struct pt_heap_ent **t = realloc(h->block, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		h->block = t;
		__atomic_store_n(&h->cap_blocks, cap, __ATOMIC_RELAXED); /* pt_heap_bytes reads it */
	}
	struct pt_heap_ent *b = aligned_alloc(64, BLOCK_ENTS * sizeof(*b));
	if (!b)
		return -ENOMEM;
	h->block[h->nblocks] = b;
	__atomic_store_n(&h->nblocks, h->nblocks + 1, __ATOMIC_RELAXED);
	return 0;
}

/* Keep one spare block beyond what is used, so that a heap hovering at a
 * block boundary does not allocate and free on every change. */
static void shrink(struct pt_heap *h)
{
	if (h->nblocks > 1 && (h->nblocks - 2) * BLOCK_ENTS >= h->n + SKEW) {
		pt_slice_pause();
		while (h->nblocks > 1 && (h->nblocks - 2) * BLOCK_ENTS >= h->n + SKEW)
		{
			__atomic_store_n(&h->nblocks, h->nblocks - 1, __ATOMIC_RELAXED);
			free(h->block[h->nblocks]);
		}
		pt_slice_resume();
	}
}

int pt_heap_insert(struct pt_heap *h, struct pt_heap_node *node, int64_t key)
{
	if (h->n + SKEW == h->nblocks * BLOCK_ENTS && grow(h) != 0)
		return -ENOMEM;
	if (h->nblocks == 0 && grow(h) != 0)
		return -ENOMEM;
	node->order = h->order++;
	sift_up(h, h->n++, (struct pt_heap_ent){ key, node });
	return 0;
}

void pt_heap_update(struct pt_heap *h, struct pt_heap_node *node, int64_t key)
{
	node->order = h->order++;
	settle(h, node->pos - 1, (struct pt_heap_ent){ key, node });
}

void pt_heap_remove(struct pt_heap *h, struct pt_heap_node *node)
{
	uint32_t i = node->pos - 1;

	node->pos = 0;
	if (--h->n != i)
		settle(h, i, *ent(h, h->n));
	shrink(h);
}

void pt_heap_release(struct pt_heap *h)
{
	for (uint32_t i = 0; i < h->nblocks; i++)
		free(h->block[i]);
	free(h->block);
	*h = (struct pt_heap)PT_HEAP_INIT;
}

uint64_t pt_heap_bytes(const struct pt_heap *h)
{
	/* Any thread (the statistics): the owner changes these as it runs. */
	return (uint64_t)__atomic_load_n(&h->nblocks, __ATOMIC_RELAXED) * BLOCK_ENTS *
		       sizeof(struct pt_heap_ent) +
	       (uint64_t)__atomic_load_n(&h->cap_blocks, __ATOMIC_RELAXED) * sizeof(struct pt_heap_ent *);
}
