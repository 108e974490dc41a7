/* SPDX-License-Identifier: MIT */
/*
 * One generic min-heap for every clock base: a 4-ary heap of (key, node)
 * entries, where the node is embedded in the queued object and remembers
 * its position, so any entry can be removed or re-keyed in O(log n).
 * Entries with equal keys leave in the order they went in (each insert
 * takes the next value of a per-heap counter), as the kernel's timer
 * queues do: two timers armed for the same instant fire in arming order.
 *
 * The entries live in 64 KiB blocks reached through a small table, so the
 * heap grows without moving what it holds and gives blocks back as it
 * shrinks: memory follows what is queued.  Not thread-safe: each heap has
 * one owner (the dispatcher).
 */
#ifndef PTIMERS_HEAP_H
#define PTIMERS_HEAP_H

#include <stdbool.h>
#include <stdint.h>

struct pt_heap_node {
	uint32_t pos;   /* position + 1; 0 when not in a heap (so a zeroed node is not) */
	uint32_t order; /* insertion order, for equal keys */
};

struct pt_heap_ent {
	int64_t key;
	struct pt_heap_node *node;
};

struct pt_heap {
	struct pt_heap_ent **block;
	uint32_t nblocks, cap_blocks;
	uint32_t n;
	uint32_t order;
};

#define PT_HEAP_INIT { 0 }

static inline bool pt_heap_empty(const struct pt_heap *h)
{
	return h->n == 0;
}

/* The smallest entry; the heap must not be empty. */
struct pt_heap_ent pt_heap_top(const struct pt_heap *h);

/* The key a queued node has. */
int64_t pt_heap_key(const struct pt_heap *h, const struct pt_heap_node *node);

/* Queue node at key (node->pos must be 0): 0, or -ENOMEM. */
int pt_heap_insert(struct pt_heap *h, struct pt_heap_node *node, int64_t key);

/* Give a queued node a new key; it goes behind entries already at that
 * key, as a fresh insert would. */
void pt_heap_update(struct pt_heap *h, struct pt_heap_node *node, int64_t key);

/* Take a queued node out (node->pos becomes 0). */
void pt_heap_remove(struct pt_heap *h, struct pt_heap_node *node);

/* Free the storage of an empty heap (or drop it after fork). */
void pt_heap_release(struct pt_heap *h);

/* Bytes held. */
uint64_t pt_heap_bytes(const struct pt_heap *h);
#endif
