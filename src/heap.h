/* SPDX-License-Identifier: MIT */
/*
 * One generic expiry queue for every clock base: smallest key first, and
 * entries with equal keys leave in the order they went in (each insert
 * takes the next value of a per-queue counter), as the kernel's timer
 * queues do: two timers armed for the same instant fire in arming order.
 * A node is embedded in the queued object and remembers where its entry
 * is, so any entry can be removed or re-keyed without a search.
 *
 * A small queue is one 4-ary heap of (key, node) entries.  A big one
 * (PT_HEAP_TIERS entries or more) is tiered, as the kernel's timer wheel
 * is, because a pop from a heap of a million walks a path of cache misses
 * and writes the new position into ten timers nobody else is touching:
 *
 *   near   what is due before near_end: a bucket moved down whole, sorted
 *          (the run, when it has at most 4096 entries: a pop is a step
 *          along it), and a 4-ary heap of the rest (what is armed into
 *          that window meanwhile, or a bucket too big for the run);
 *   L1     256 buckets of 2^20 ns (about 1 ms) for the rest of the
 *          current 2^28 ns window (268 ms);
 *   L2     256 buckets of 2^28 ns for the rest of the current 2^36 ns
 *          window (69 s);
 *   far    a second 4-ary heap for anything later.
 *
 * A bucket is an unsorted array: arming into it is an append, removing a
 * swap with its last entry.  When the near tier runs dry, the earliest L1
 * bucket moves into it; when L1 runs dry, the earliest L2 bucket is
 * spread over L1; when both have, the far heap's earliest window comes
 * down.  Those moves go through each bucket in order, so their cache
 * misses overlap, where a heap's come one after another.
 *
 * The entries live in blocks (64 KiB for the heaps), so the queue grows
 * without moving what it holds and gives memory back as it shrinks.  Not
 * thread-safe: each queue has one owner (the dispatcher).
 */
#ifndef PTIMERS_HEAP_H
#define PTIMERS_HEAP_H

#include <stdbool.h>
#include <stdint.h>

struct pt_heap_node {
	uint32_t pos;   /* where its entry is (heap.c); 0 when not queued (so a zeroed node is not) */
	uint32_t order; /* insertion order, for equal keys */
};

struct pt_heap_ent {
	int64_t key;
	struct pt_heap_node *node;
};

/* One 4-ary heap (heap.c's). */
struct pt_iheap {
	struct pt_heap_ent **block;
	uint32_t nblocks, cap_blocks;
	uint32_t n;
	uint32_t posbase; /* node->pos = posbase + index + 1 */
	bool lazy;        /* the near heap, while small: positions not kept (heap.c) */
};

struct pt_heap_tiers;

struct pt_heap {
	struct pt_iheap near, far;
	struct pt_heap_tiers *tiers; /* NULL while small */
	uint64_t near_end;           /* tiered: the near heap holds what is due before (biased keys) */
	uint64_t tier_bytes;         /* held by the tiers (pt_heap_bytes) */
	uint32_t n;                  /* entries queued, all tiers */
	uint32_t order;
};

/* The queue turns tiered when it reaches this many entries, and back
 * when it empties. */
#define PT_HEAP_TIERS 512

#define PT_HEAP_INIT { .near = { .lazy = true }, .far = { .posbase = 1u << 30 } }

static inline bool pt_heap_empty(const struct pt_heap *h)
{
	return h->n == 0;
}

/* The smallest entry; the queue must not be empty.  May move entries
 * between tiers to find it (never fails: see heap.c). */
struct pt_heap_ent pt_heap_top(struct pt_heap *h);

/* The key a queued node has. */
int64_t pt_heap_key(const struct pt_heap *h, const struct pt_heap_node *node);

/* Queue node at key (node->pos must be 0): 0, or -ENOMEM. */
int pt_heap_insert(struct pt_heap *h, struct pt_heap_node *node, int64_t key);

/* Give a queued node a new key; it goes behind entries already at that
 * key, as a fresh insert would.  0, or -ENOMEM with the node left as it
 * was. */
int pt_heap_update(struct pt_heap *h, struct pt_heap_node *node, int64_t key);

/* Take a queued node out (node->pos becomes 0). */
void pt_heap_remove(struct pt_heap *h, struct pt_heap_node *node);

/* Take out the entry pt_heap_top() gave without touching its node: the
 * caller sets node->pos to 0 before anything else looks at the node (a
 * store to a line not in the cache holds up every store behind it). */
void pt_heap_pop(struct pt_heap *h);

/* Free the storage of an empty queue (or drop it after fork). */
void pt_heap_release(struct pt_heap *h);

/* Bytes held.  Any thread may ask. */
uint64_t pt_heap_bytes(const struct pt_heap *h);
#endif
