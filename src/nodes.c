/* SPDX-License-Identifier: MIT */
/*
 * The ID space's node memory (nodes.h): malloc, or a batch's region.
 *
 * A region is one mapping, 2 MiB-aligned and a multiple of 2 MiB long,
 * asked for transparent huge pages.  Its first pages hold its header: the
 * count of live nodes (plus one while its batch runs) and, for every
 * 4 KiB page, the nodes that touch it (plus one on the page the batch's
 * cursor is on, plus one on each of the header's own pages).  Only the
 * batch's thread moves the cursor, always forward; a page whose count
 * falls to zero is behind the cursor for good, so it is given back at
 * once and nothing is ever placed on it again.  The region is unmapped
 * with its last node.
 *
 * A free must tell a region's node from malloc's without looking at the
 * node: the regions are listed in slots, each one word (the base, whose
 * low 21 bits are zero, | the length in pages), so that a reader never
 * dereferences a region that is going away.  A slot is cleared before its
 * region is unmapped: a pointer malloc hands out later in that range is
 * then never taken for the region's.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "lsan.h"
#include "nodes.h"
#include "sys.h"

#define HUGE (2ul << 20)
#define PAGE 4096ul
#define NSLOTS 16
#define MAX_PAGES ((HUGE / PAGE) * 4096 - 1) /* 8 GiB: the length fits the base's low bits */
#define NODE_ALIGN 8ul
#define SEQ __ATOMIC_SEQ_CST
#define RLX __ATOMIC_RELAXED

struct region {
	char *base;
	size_t pages;     /* mapped (the batch's end trims what it left) */
	uint64_t live;    /* nodes, + 1 while the batch runs */
	size_t held;      /* bytes mapped and not given back */
	char *cur;        /* the batch's cursor */
	unsigned slot;
	uint16_t count[]; /* per page, see above */
};

static uintptr_t slots[NSLOTS];
static unsigned nregions;
static size_t held_bytes; /* all regions' */
static size_t live_bytes; /* their live nodes' */
static __thread struct region *batch __attribute__((tls_model("initial-exec")));

static inline size_t rounded(size_t n)
{
	return (n + NODE_ALIGN - 1) & ~(NODE_ALIGN - 1);
}

static inline size_t page_of(const struct region *r, const char *p)
{
	return (size_t)(p - r->base) / PAGE;
}

static struct region *region_of(const void *p)
{
	if (!__atomic_load_n(&nregions, SEQ))
		return NULL;
	for (unsigned i = 0; i < NSLOTS; i++) {
		uintptr_t s = __atomic_load_n(&slots[i], SEQ);
		uintptr_t base = s & ~(HUGE - 1), len = (s & (HUGE - 1)) * PAGE;
		if (s && (uintptr_t)p - base < len)
			return (struct region *)base;
	}
	return NULL;
}

bool pt_nodes_in_region(const void *p)
{
	return region_of(p) != NULL;
}

static void give_back(struct region *r, size_t bytes)
{
	__atomic_sub_fetch(&r->held, bytes, RLX);
	__atomic_sub_fetch(&held_bytes, bytes, RLX);
}

static void page_put(struct region *r, size_t pg)
{
	if (__atomic_sub_fetch(&r->count[pg], 1, SEQ) == 0) {
		(void)madvise(r->base + pg * PAGE, PAGE, MADV_DONTNEED);
		give_back(r, PAGE);
	}
}

static void region_put(struct region *r)
{
	if (__atomic_sub_fetch(&r->live, 1, SEQ) != 0)
		return;
	size_t len = __atomic_load_n(&r->pages, RLX) * PAGE;
	__atomic_store_n(&slots[r->slot], 0, SEQ);
	__atomic_sub_fetch(&nregions, 1, SEQ);
	__atomic_sub_fetch(&held_bytes, __atomic_load_n(&r->held, RLX), RLX);
	LSAN_UNROOT(r->base, len);
	munmap(r->base, len);
}

/* Pages [from, to] of r lose a node. */
static void pages_put(struct region *r, size_t from, size_t to)
{
	for (size_t pg = from; pg <= to; pg++)
		page_put(r, pg);
}

void *pt_nodes_alloc(size_t n, bool zeroed)
{
	struct region *r = batch;
	size_t need = rounded(n);
	if (r && n && (size_t)(r->base + r->pages * PAGE - r->cur) >= need) {
		char *p = r->cur;
		size_t first = page_of(r, p), last = page_of(r, p + need - 1);
		for (size_t pg = first; pg <= last; pg++)
			__atomic_add_fetch(&r->count[pg], 1, SEQ);
		__atomic_add_fetch(&r->live, 1, SEQ);
		__atomic_add_fetch(&live_bytes, need, RLX);
		r->cur = p + need;
		/* The cursor's pin moves with it (p's page keeps this node). */
		size_t now = r->cur < r->base + r->pages * PAGE ? page_of(r, r->cur) : r->pages - 1;
		if (now != first) {
			__atomic_add_fetch(&r->count[now], 1, SEQ);
			page_put(r, first);
		}
		return p; /* never handed out before: zero */
	}
	return zeroed ? calloc(1, n ? n : 1) : malloc(n ? n : 1);
}

void pt_nodes_free(void *p, size_t n)
{
	struct region *r = p ? region_of(p) : NULL;
	if (!r) {
		free(p);
		return;
	}
	size_t need = rounded(n);
	pages_put(r, page_of(r, p), page_of(r, (char *)p + need - 1));
	__atomic_sub_fetch(&live_bytes, need, RLX);
	region_put(r);
}

void pt_nodes_shrink(void *p, size_t n, size_t to)
{
	struct region *r = region_of(p);
	size_t was = rounded(n), now = rounded(to);
	if (!r || now >= was)
		return;
	size_t keep = now ? page_of(r, (char *)p + now - 1) : page_of(r, p) - 1;
	size_t last = page_of(r, (char *)p + was - 1);
	if (last > keep)
		pages_put(r, keep + 1, last);
	__atomic_sub_fetch(&live_bytes, was - now, RLX);
}

bool pt_nodes_batch_begin(size_t bytes)
{
	if (batch || !bytes)
		return false;
	/* The header's pages, then the nodes', rounded up to huge pages. */
	size_t pages = (bytes + PAGE - 1) / PAGE, total = pages;
	for (;;) {
		size_t head = (sizeof(struct region) + total * sizeof(uint16_t) + PAGE - 1) / PAGE;
		size_t want = (head + pages + HUGE / PAGE - 1) / (HUGE / PAGE) * (HUGE / PAGE);
		if (want <= total)
			break;
		total = want;
	}
	if (total > MAX_PAGES)
		return false;
	size_t len = total * PAGE;
	char *base = pt_sys_map_aligned(len, HUGE);
	if (!base)
		return false;
	unsigned slot = 0;
	for (; slot < NSLOTS; slot++) {
		uintptr_t free_slot = 0;
		if (__atomic_compare_exchange_n(&slots[slot], &free_slot, (uintptr_t)base | total, false,
						SEQ, SEQ))
			break;
	}
	if (slot == NSLOTS) {
		munmap(base, len);
		return false; /* many batches at once: the rest use malloc */
	}
	(void)madvise(base, len, MADV_HUGEPAGE); /* EINVAL without THP: small pages */
	struct region *r = (struct region *)base;
	r->base = base;
	r->pages = total;
	r->live = 1;
	r->held = len;
	r->slot = slot;
	size_t head = (sizeof(struct region) + total * sizeof(uint16_t) + PAGE - 1) / PAGE;
	for (size_t pg = 0; pg < head; pg++)
		r->count[pg] = 1;
	r->cur = base + head * PAGE;
	r->count[head] = 1; /* the cursor's */
	LSAN_ROOT(base, len);
	__atomic_add_fetch(&held_bytes, len, RLX);
	__atomic_add_fetch(&nregions, 1, SEQ);
	batch = r;
	return true;
}

void pt_nodes_batch_end(void)
{
	struct region *r = batch;
	if (!r)
		return;
	batch = NULL;
	size_t at = r->cur < r->base + r->pages * PAGE ? page_of(r, r->cur) : r->pages - 1;
	size_t keep = at + 1;
	if (keep < r->pages) {
		/* What the batch did not use goes back now, and leaves the
		 * region's slot before it leaves the address space. */
		size_t old = r->pages;
		LSAN_UNROOT(r->base, old * PAGE);
		__atomic_store_n(&slots[r->slot], (uintptr_t)r->base | keep, SEQ);
		__atomic_store_n(&r->pages, keep, RLX);
		munmap(r->base + keep * PAGE, (old - keep) * PAGE);
		give_back(r, (old - keep) * PAGE);
		LSAN_ROOT(r->base, keep * PAGE);
	}
	page_put(r, at);
	region_put(r);
}

size_t pt_nodes_overhead(void)
{
	size_t held = __atomic_load_n(&held_bytes, RLX), live = __atomic_load_n(&live_bytes, RLX);
	return held > live ? held - live : 0;
}

/* Alone in the child, but with the parent's threads' last writes (the
 * stores are atomic for ThreadSanitizer, which may not see the fork). */
void pt_nodes_fork_child(void)
{
	for (unsigned i = 0; i < NSLOTS; i++) {
		uintptr_t s = __atomic_load_n(&slots[i], SEQ);
		if (!s)
			continue;
		char *base = (char *)(s & ~(HUGE - 1));
		size_t len = (s & (HUGE - 1)) * PAGE;
		__atomic_store_n(&slots[i], 0, SEQ);
		LSAN_UNROOT(base, len);
		munmap(base, len);
	}
	__atomic_store_n(&nregions, 0, SEQ);
	__atomic_store_n(&held_bytes, 0, RLX);
	__atomic_store_n(&live_bytes, 0, RLX);
	batch = NULL;
}
