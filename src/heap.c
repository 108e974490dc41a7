/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"
#include "slice.h"

/* The unit test builds this file with PT_HEAP_FAULTS and fails chosen
 * allocations, to check that no failure loses or misorders an entry. */
#ifdef PT_HEAP_FAULTS
bool pt_heap_fault(void);
#define FAULT() pt_heap_fault()
#else
#define FAULT() false
#endif

/* ---- one 4-ary heap ---- */

#define ARITY 4
#define BLOCK_SHIFT 12
#define BLOCK_ENTS (1u << BLOCK_SHIFT) /* 4096 entries: 64 KiB */
#define BLOCK_MASK (BLOCK_ENTS - 1)
#define HEAP_MAX ((1u << 30) - 2) /* positions stay below the far heap's base */

/* Entry i sits at slot i + 3 of 64-byte-aligned blocks: then the four
 * children of a node, 4i+1..4i+4, fill one cache line (slots 4(i+1) to
 * 4(i+1)+3, 16 bytes each), and a step down the heap touches one line. */
#define SKEW 3

static inline struct pt_heap_ent *ent(const struct pt_iheap *h, uint32_t i)
{
	i += SKEW;
	return &h->block[i >> BLOCK_SHIFT][i & BLOCK_MASK];
}

/* a was queued before b (the counter wraps: compare distances). */
static inline bool order_before(const struct pt_heap_ent *a, const struct pt_heap_ent *b)
{
	return (int32_t)(a->node->order - b->node->order) < 0;
}

/* a goes before b: smaller key, or the same key queued earlier. */
static inline bool before(const struct pt_heap_ent *a, const struct pt_heap_ent *b)
{
	if (a->key != b->key)
		return a->key < b->key;
	return order_before(a, b);
}

/* The near heap keeps no positions while it is small (LAZY_MAX): its
 * nodes all say POS_LAZY, and the rare removal of one that is not at the
 * top looks for it.  Then a step of a sift writes the heap's own lines
 * and no timer's. */
#define POS_LAZY (1u << 30) /* never a position: the far heap's start at + 1 */
#define LAZY_MAX 4096

static inline void place(struct pt_iheap *h, uint32_t i, struct pt_heap_ent e)
{
	*ent(h, i) = e;
	if (!h->lazy)
		e.node->pos = h->posbase + i + 1;
}

static void sift_up(struct pt_iheap *h, uint32_t i, struct pt_heap_ent e)
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

static void sift_down(struct pt_iheap *h, uint32_t i, struct pt_heap_ent e)
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
static void settle(struct pt_iheap *h, uint32_t i, struct pt_heap_ent e)
{
	if (i > 0 && before(&e, ent(h, (i - 1) / ARITY)))
		sift_up(h, i, e);
	else
		sift_down(h, i, e);
}

/* Growing and shrinking may reach the kernel (brk, mmap): the caller's
 * lock has asked for a time-slice extension, withdrawn around them. */
static int grow_blocks(struct pt_iheap *h)
{
	if (h->nblocks == h->cap_blocks) {
		uint32_t cap = h->cap_blocks ? h->cap_blocks * 2 : 4;
		struct pt_heap_ent **t = FAULT() ? NULL : realloc(h->block, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		h->block = t;
		__atomic_store_n(&h->cap_blocks, cap, __ATOMIC_RELAXED); /* pt_heap_bytes reads it */
	}
	struct pt_heap_ent *b = FAULT() ? NULL : aligned_alloc(64, BLOCK_ENTS * sizeof(*b));
	if (!b)
		return -ENOMEM;
	h->block[h->nblocks] = b;
	__atomic_store_n(&h->nblocks, h->nblocks + 1, __ATOMIC_RELAXED);
	return 0;
}

/* Room for k more entries: 0, or -ENOMEM (what was had is kept). */
static int iheap_reserve(struct pt_iheap *h, uint32_t k)
{
	if (k > HEAP_MAX - h->n)
		return -ENOMEM;
	uint64_t need = (uint64_t)h->n + k + SKEW;
	if (need <= (uint64_t)h->nblocks * BLOCK_ENTS)
		return 0;
	pt_slice_pause();
	int r = 0;
	while (r == 0 && need > (uint64_t)h->nblocks * BLOCK_ENTS)
		r = grow_blocks(h);
	pt_slice_resume();
	return r;
}

/* Keep one spare block beyond what is used, so that a heap hovering at a
 * block boundary does not allocate and free on every change, and never
 * give back the first (the tiers count on it: heap.h). */
static void shrink(struct pt_iheap *h)
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

/* Room reserved. */
static void iheap_push(struct pt_iheap *h, struct pt_heap_ent e)
{
	if (h->lazy) {
		if (h->n < LAZY_MAX) {
			e.node->pos = POS_LAZY;
		} else {
			/* Big now: positions kept from here until it empties. */
			h->lazy = false;
			for (uint32_t i = 0; i < h->n; i++)
				ent(h, i)->node->pos = h->posbase + i + 1;
		}
	}
	sift_up(h, h->n++, e);
}

/* The index of a queued node. */
static uint32_t iheap_index(const struct pt_iheap *h, const struct pt_heap_node *node)
{
	if (!h->lazy)
		return node->pos - h->posbase - 1;
	uint32_t i = 0;
	while (ent(h, i)->node != node)
		i++;
	return i;
}

static void iheap_take(struct pt_iheap *h, uint32_t i)
{
	if (--h->n != i)
		settle(h, i, *ent(h, h->n));
	if (h->n == 0 && h->posbase == 0)
		h->lazy = true;
	shrink(h);
}

static void iheap_release(struct pt_iheap *h)
{
	for (uint32_t i = 0; i < h->nblocks; i++)
		free(h->block[i]);
	free(h->block);
	uint32_t base = h->posbase;
	*h = (struct pt_iheap){ .posbase = base, .lazy = base == 0 };
}

static uint64_t iheap_bytes(const struct pt_iheap *h)
{
	return (uint64_t)__atomic_load_n(&h->nblocks, __ATOMIC_RELAXED) * BLOCK_ENTS *
		       sizeof(struct pt_heap_ent) +
	       (uint64_t)__atomic_load_n(&h->cap_blocks, __ATOMIC_RELAXED) * sizeof(struct pt_heap_ent *);
}

/* ---- the tiers ---- */

#define L1_SHIFT 20   /* an L1 bucket: 2^20 ns */
#define L2_SHIFT 28   /* an L2 bucket, and the L1 window: 2^28 ns */
#define WIN_SHIFT 36  /* the L2 window: 2^36 ns */
#define NSLOTS 256
#define IDX_BITS 21
#define BUCKET_MAX ((1u << IDX_BITS) - 1)
#define POS_RING (1u << 31) /* | level << 29 | slot << 21 | index */
#define POS_FAR (1u << 30)  /* the far heap's posbase (and POS_LAZY) */
#define DIRECT_MAX (2 * BLOCK_ENTS) /* an L2 bucket this small goes straight to the near heap */
#define AHEAD 32 /* a move asks for the node this many entries on: a miss is ~200 ns here */

struct bucket {
	struct pt_heap_ent *e;
	uint32_t n, cap;
};

struct level {
	struct bucket b[NSLOTS];
	uint64_t map[NSLOTS / 64]; /* buckets that hold entries */
	uint32_t count;
};

struct pt_heap_tiers {
	struct level lv[2];
	uint64_t w1, w2; /* the L1 and L2 windows' starts (biased keys, aligned) */
	/* The last spread's forwarding: entry i of L2 bucket fwd_slot went
	 * to L1 at fwd[i] (slot << IDX_BITS | index) without its node being
	 * told, so that a spread touches no timer (locate()). */
	uint32_t *fwd;
	uint32_t fwd_n, fwd_cap;
	unsigned fwd_slot;
	/* A small bucket moved down, sorted (the run, below): taken from
	 * head on, entries whose node is NULL removed. */
	struct pt_heap_ent *run;
	uint32_t run_head, run_n;
};

/* Keys biased so that unsigned order is signed order. */
static inline uint64_t ukey(int64_t k)
{
	return (uint64_t)k ^ (1ull << 63);
}

static inline uint64_t align_down(uint64_t k, unsigned shift)
{
	return k & ~((1ull << shift) - 1);
}

static inline uint32_t ring_pos(unsigned lvl, unsigned slot, uint32_t i)
{
	return POS_RING | lvl << 29 | slot << IDX_BITS | i;
}

static void add_bytes(struct pt_heap *h, int64_t d)
{
	__atomic_store_n(&h->tier_bytes, h->tier_bytes + (uint64_t)d, __ATOMIC_RELAXED);
}

static int bucket_grow(struct pt_heap *h, struct bucket *b, uint32_t want)
{
	if (want <= b->cap)
		return 0;
	if (want > BUCKET_MAX)
		return -ENOMEM;
	uint32_t cap = b->cap ? b->cap : 8;
	while (cap < want)
		cap *= 2;
	pt_slice_pause();
	struct pt_heap_ent *e = FAULT() ? NULL : realloc(b->e, cap * sizeof(*e));
	pt_slice_resume();
	if (!e)
		return -ENOMEM;
	add_bytes(h, (int64_t)(cap - b->cap) * (int64_t)sizeof(*e));
	b->e = e;
	b->cap = cap;
	return 0;
}

static void bucket_free(struct pt_heap *h, struct level *l, unsigned slot)
{
	struct bucket *b = &l->b[slot];
	add_bytes(h, -(int64_t)b->cap * (int64_t)sizeof(*b->e));
	pt_slice_pause();
	free(b->e);
	pt_slice_resume();
	*b = (struct bucket){ 0 };
	l->map[slot / 64] &= ~(1ull << (slot % 64));
}

/* Room reserved.  Returns its index there; the node is not told. */
static uint32_t bucket_append(struct pt_heap_tiers *t, unsigned lvl, unsigned slot, struct pt_heap_ent e)
{
	struct level *l = &t->lv[lvl];
	struct bucket *b = &l->b[slot];
	b->e[b->n] = e;
	l->count++;
	l->map[slot / 64] |= 1ull << (slot % 64);
	return b->n++;
}

/* Room reserved. */
static void bucket_push(struct pt_heap_tiers *t, unsigned lvl, unsigned slot, struct pt_heap_ent e)
{
	e.node->pos = ring_pos(lvl, slot, bucket_append(t, lvl, slot, e));
}

static void bucket_take(struct pt_heap *h, unsigned lvl, unsigned slot, uint32_t i)
{
	struct level *l = &h->tiers->lv[lvl];
	struct bucket *b = &l->b[slot];
	if (--b->n != i) {
		b->e[i] = b->e[b->n];
		b->e[i].node->pos = ring_pos(lvl, slot, i);
	}
	l->count--;
	if (b->n == 0)
		bucket_free(h, l, slot);
}

static int first_slot(const struct level *l)
{
	for (unsigned w = 0; w < NSLOTS / 64; w++)
		if (l->map[w])
			return (int)(w * 64 + (unsigned)__builtin_ctzll(l->map[w]));
	return -1;
}

/* Where an entry at k goes. */
enum tier { NEAR, L1, L2, FAR, RUN };

static enum tier route(const struct pt_heap *h, uint64_t k, unsigned *slot)
{
	const struct pt_heap_tiers *t = h->tiers;
	if (!t || k < h->near_end)
		return NEAR;
	if (k < t->w1 + (1ull << L2_SHIFT)) {
		*slot = (unsigned)(k >> L1_SHIFT) % NSLOTS;
		return L1;
	}
	if (k < t->w2 + (1ull << WIN_SHIFT)) {
		*slot = (unsigned)(k >> L2_SHIFT) % NSLOTS;
		return L2;
	}
	return FAR;
}

/* Room for one entry where route() said (a full bucket sends it to the
 * far heap: the far heap may hold anything not due before near_end). */
static int reserve(struct pt_heap *h, enum tier *where, unsigned slot)
{
	if (*where == NEAR)
		return iheap_reserve(&h->near, 1);
	if (*where != FAR) {
		struct bucket *b = &h->tiers->lv[*where == L2].b[slot];
		if (bucket_grow(h, b, b->n + 1) == 0)
			return 0;
		*where = FAR;
	}
	return iheap_reserve(&h->far, 1);
}

static void put(struct pt_heap *h, enum tier where, unsigned slot, struct pt_heap_ent e)
{
	switch (where) {
	case NEAR:
		iheap_push(&h->near, e);
		break;
	case FAR:
		iheap_push(&h->far, e);
		break;
	default:
		bucket_push(h->tiers, where == L2, slot, e);
	}
}

static int place_entry(struct pt_heap *h, struct pt_heap_ent e)
{
	unsigned slot = 0;
	enum tier where = route(h, ukey(e.key), &slot);
	int r = reserve(h, &where, slot);
	if (r == 0)
		put(h, where, slot, e);
	return r;
}

/* ---- the run ----
 *
 * A bucket of at most RUN_MAX entries moves down sorted, into an array
 * taken from the front: a pop is then a step along it, where the near
 * heap's was a sift down its levels (most of what a pop cost, its
 * comparisons mispredicted as often as not).  The sort is a radix sort
 * on the keys' bits that differ within the bucket (three passes of a
 * byte for a 1 ms bucket), equal keys then put in insertion order.  An
 * entry taken out of the middle leaves a hole (node NULL) that the front
 * steps over.  What is armed into the window meanwhile goes to the near
 * heap, and the queue's front is the earlier of the two fronts.  The
 * run's nodes keep the ring positions they had (none is touched); a
 * removal looks for its entry, as one from the lazy near heap does. */
#define RUN_MAX LAZY_MAX

static inline bool run_any(const struct pt_heap *h)
{
	return h->tiers && h->tiers->run_head < h->tiers->run_n;
}

/* The near heap and the run are both empty. */
static inline bool near_empty(const struct pt_heap *h)
{
	return h->near.n == 0 && !run_any(h);
}

static bool run_index(const struct pt_heap *h, const struct pt_heap_node *node, uint32_t *i)
{
	if (!run_any(h))
		return false;
	const struct pt_heap_tiers *t = h->tiers;
	for (uint32_t j = t->run_head; j < t->run_n; j++)
		if (t->run[j].node == node) {
			*i = j;
			return true;
		}
	return false;
}

static void run_take(struct pt_heap_tiers *t, uint32_t i)
{
	t->run[i].node = NULL;
	while (t->run_head < t->run_n && !t->run[t->run_head].node)
		t->run_head++;
}

/* The run's storage, had once the queue is tiered: false without it
 * (then buckets move into the near heap, as before there was a run). */
static bool run_room(struct pt_heap *h)
{
	struct pt_heap_tiers *t = h->tiers;
	if (t->run)
		return true;
	pt_slice_pause();
	t->run = FAULT() ? NULL : malloc(RUN_MAX * sizeof(*t->run));
	pt_slice_resume();
	if (!t->run)
		return false;
	add_bytes(h, RUN_MAX * sizeof(*t->run));
	return true;
}

/* n entries of equal keys into insertion order, tmp (as many) for
 * scratch: a merge sort, nothing allocated (the dispatcher may hold a
 * time-slice extension here), stable and n log n however they lie. */
static void sort_by_order(struct pt_heap_ent *a, struct pt_heap_ent *tmp, uint32_t n)
{
	for (uint32_t lo = 0; lo < n; lo += 8) {
		uint32_t hi = lo + 8 < n ? lo + 8 : n;
		for (uint32_t i = lo + 1; i < hi; i++) {
			struct pt_heap_ent e = a[i];
			uint32_t j = i;
			for (; j > lo && order_before(&e, &a[j - 1]); j--)
				a[j] = a[j - 1];
			a[j] = e;
		}
	}
	for (uint32_t w = 8; w < n; w *= 2) {
		for (uint32_t lo = 0; lo < n; lo += 2 * w) {
			uint32_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
			uint32_t i = lo, j = mid, k = lo;
			while (i < mid && j < hi)
				tmp[k++] = order_before(&a[j], &a[i]) ? a[j++] : a[i++];
			while (i < mid)
				tmp[k++] = a[i++];
			while (j < hi)
				tmp[k++] = a[j++];
		}
		memcpy(a, tmp, n * sizeof(*a));
	}
}

/* n entries of src into dst, in queue order; src is scratch. */
static void sort_run(struct pt_heap_ent *dst, struct pt_heap_ent *src, uint32_t n)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t k = ukey(src[i].key);
		lo = k < lo ? k : lo;
		hi = k > hi ? k : hi;
	}
	unsigned passes = hi > lo ? (unsigned)(64 - __builtin_clzll(hi - lo) + 7) / 8 : 0;
	struct pt_heap_ent *from = src, *to = dst;
	for (unsigned p = 0; p < passes; p++) {
		uint32_t count[256] = { 0 };
		unsigned shift = p * 8;
		for (uint32_t i = 0; i < n; i++)
			count[(ukey(from[i].key) - lo) >> shift & 0xff]++;
		uint32_t at = 0;
		for (unsigned d = 0; d < 256; d++) {
			uint32_t c = count[d];
			count[d] = at;
			at += c;
		}
		for (uint32_t i = 0; i < n; i++)
			to[count[(ukey(from[i].key) - lo) >> shift & 0xff]++] = from[i];
		struct pt_heap_ent *x = from;
		from = to;
		to = x;
	}
	if (from != dst)
		memcpy(dst, from, n * sizeof(*dst));
	/* Equal keys: insertion order (the radix sort kept the bucket's,
	 * which removals reshuffle). */
	for (uint32_t i = 0; i + 1 < n;) {
		uint32_t j = i + 1;
		while (j < n && dst[j].key == dst[i].key)
			j++;
		if (j - i > 1)
			sort_by_order(dst + i, src + i, j - i);
		i = j;
	}
}

/* A bucket's entries into the (empty) run (move_down()). */
static void bucket_to_run(struct pt_heap_tiers *t, struct bucket *b)
{
	sort_run(t->run, b->e, b->n);
	t->run_head = 0;
	t->run_n = b->n;
}

/* Where a queued node's entry is: its tier, and its slot and index there.
 * A ring position is believed only when that bucket's entry is the
 * node's: a bucket moved on leaves its nodes' ring positions behind,
 * sparing a cache miss on each timer.  An L2 bucket spread over L1 left
 * where each entry went (fwd); an L1 bucket moved into the lazy near heap
 * (bucket_to_near) left nothing, and such a node is in the near heap. */
static enum tier locate(const struct pt_heap *h, const struct pt_heap_node *node, unsigned *slot,
			uint32_t *i)
{
	uint32_t pos = node->pos;
	if (pos & POS_RING) {
		const struct pt_heap_tiers *t = h->tiers;
		unsigned lvl = pos >> 29 & 1;
		*slot = pos >> IDX_BITS & (NSLOTS - 1);
		*i = pos & BUCKET_MAX;
		const struct bucket *b = &t->lv[lvl].b[*slot];
		if (*i < b->n && b->e[*i].node == node)
			return lvl ? L2 : L1;
		if (lvl == 1 && t->fwd && *slot == t->fwd_slot && *i < t->fwd_n) {
			uint32_t f = t->fwd[*i];
			b = &t->lv[0].b[f >> IDX_BITS];
			if ((f & BUCKET_MAX) < b->n && b->e[f & BUCKET_MAX].node == node) {
				*slot = f >> IDX_BITS;
				*i = f & BUCKET_MAX;
				return L1;
			}
		}
		/* Not where its ring position says: moved down, into the run
		 * (a bucket's nodes all have ring positions) or the near heap. */
		if (run_index(h, node, i))
			return RUN;
	} else if (pos > POS_FAR) {
		*i = pos - POS_FAR - 1;
		return FAR;
	}
	*i = iheap_index(&h->near, node);
	return NEAR;
}

static struct pt_heap_ent *find(const struct pt_heap *h, const struct pt_heap_node *node)
{
	unsigned slot = 0;
	uint32_t i;
	enum tier where = locate(h, node, &slot, &i);
	if (where == NEAR || where == FAR)
		return ent(where == NEAR ? &h->near : &h->far, i);
	if (where == RUN)
		return &h->tiers->run[i];
	return &h->tiers->lv[where == L2].b[slot].e[i];
}

static void detach(struct pt_heap *h, struct pt_heap_node *node)
{
	unsigned slot = 0;
	uint32_t i;
	enum tier where = locate(h, node, &slot, &i);
	if (where == L1 || where == L2)
		bucket_take(h, where == L2, slot, i);
	else if (where == RUN)
		run_take(h->tiers, i);
	else
		iheap_take(where == FAR ? &h->far : &h->near, i);
	node->pos = 0;
}

/* ---- moving entries down the tiers ---- */

static inline void near_end_at_least(struct pt_heap *h, uint64_t k)
{
	if (h->near_end < k)
		h->near_end = k;
}

/* The last resort, when memory for a move cannot be had: the single
 * earliest entry outside the near heap goes in, found by a look through
 * the first bucket of each level and the far heap's top.  The near heap
 * always has room for it: it is empty and keeps its first block. */
static void extract_min(struct pt_heap *h)
{
	struct pt_heap_tiers *t = h->tiers;
	struct pt_heap_ent *best = NULL;
	unsigned blvl = 0, bslot = 0;
	uint32_t bi = 0;
	for (unsigned lvl = 0; lvl < 2; lvl++) {
		int s = first_slot(&t->lv[lvl]);
		if (s < 0)
			continue;
		struct bucket *b = &t->lv[lvl].b[s];
		for (uint32_t i = 0; i < b->n; i++)
			if (!best || before(&b->e[i], best)) {
				best = &b->e[i];
				blvl = lvl, bslot = (unsigned)s, bi = i;
			}
	}
	struct pt_heap_ent e;
	if (!best && !h->far.n)
		return;
	if (h->far.n && (!best || before(ent(&h->far, 0), best))) {
		e = *ent(&h->far, 0);
		iheap_take(&h->far, 0);
	} else {
		e = *best;
		bucket_take(h, blvl, bslot, bi);
	}
	near_end_at_least(h, ukey(e.key));
	if (iheap_reserve(&h->near, 1) == 0)
		iheap_push(&h->near, e);
}

/* A bucket's entries into the near heap, room reserved (move_down()). */
static void bucket_to_near(struct pt_heap *h, const struct bucket *b)
{
	uint32_t i = 0;
	/* While the near heap is lazy, its nodes keep their ring positions
	 * (locate()): no timer is touched. */
	if (h->near.lazy)
		for (; i < b->n && h->near.n < LAZY_MAX; i++)
			sift_up(&h->near, h->near.n++, b->e[i]);
	for (; i < b->n; i++) {
		if (i + AHEAD < b->n)
			__builtin_prefetch(b->e[i + AHEAD].node, 1);
		iheap_push(&h->near, b->e[i]);
	}
}

/* A bucket due before end moves down whole, when the near tier is empty:
 * into the run when it fits, else into the near heap.  False when the
 * memory for neither can be had (nothing moved). */
static bool move_down(struct pt_heap *h, unsigned lvl, unsigned slot, uint64_t end)
{
	struct level *l = &h->tiers->lv[lvl];
	struct bucket *b = &l->b[slot];
	if (b->n <= RUN_MAX && run_room(h))
		bucket_to_run(h->tiers, b);
	else if (iheap_reserve(&h->near, b->n) == 0)
		bucket_to_near(h, b);
	else
		return false;
	near_end_at_least(h, end);
	l->count -= b->n;
	bucket_free(h, l, slot);
	return true;
}

/* Room in fwd for n entries, the last spread's forgotten: 0, or -ENOMEM
 * (then the spread tells each node, as it did before fwd).  When a spread
 * runs, the near heap and L1 are empty, so no queued node still counts on
 * the last one's fwd. */
static int fwd_reserve(struct pt_heap *h, uint32_t n)
{
	struct pt_heap_tiers *t = h->tiers;
	t->fwd_n = 0;
	if (n <= t->fwd_cap && n >= t->fwd_cap / 4)
		return 0; /* kept from the last spread, not much too big */
	pt_slice_pause();
	uint32_t *f = FAULT() ? NULL : realloc(t->fwd, n * sizeof(*f));
	pt_slice_resume();
	if (!f)
		return n <= t->fwd_cap ? 0 : -ENOMEM;
	add_bytes(h, ((int64_t)n - (int64_t)t->fwd_cap) * (int64_t)sizeof(*f));
	t->fwd = f;
	t->fwd_cap = n;
	return 0;
}

/* An L2 bucket spread over the (empty) L1 level, which takes its window:
 * the buckets it needs are sized first, so that a failure moves nothing. */
static int spread(struct pt_heap *h, unsigned slot)
{
	struct pt_heap_tiers *t = h->tiers;
	struct bucket *src = &t->lv[1].b[slot];
	uint32_t count[NSLOTS] = { 0 };
	for (uint32_t i = 0; i < src->n; i++)
		count[(ukey(src->e[i].key) >> L1_SHIFT) % NSLOTS]++;
	for (unsigned s = 0; s < NSLOTS; s++)
		if (count[s] && bucket_grow(h, &t->lv[0].b[s], count[s]) != 0) {
			for (unsigned u = 0; u <= s; u++)
				if (t->lv[0].b[u].e)
					bucket_free(h, &t->lv[0], u);
			return -ENOMEM;
		}
	uint64_t start = t->w2 + ((uint64_t)slot << L2_SHIFT);
	t->w1 = start;
	near_end_at_least(h, start);
	if (fwd_reserve(h, src->n) == 0) {
		/* Entries only: each node keeps its L2 position, and fwd says
		 * where its entry went (telling the node is a cache miss on
		 * its timer, one for each of hundreds of thousands, which
		 * also takes the line from whichever core holds it). */
		for (uint32_t i = 0; i < src->n; i++) {
			struct pt_heap_ent e = src->e[i];
			unsigned s = (unsigned)(ukey(e.key) >> L1_SHIFT) % NSLOTS;
			t->fwd[i] = s << IDX_BITS | bucket_append(t, 0, s, e);
		}
		t->fwd_n = src->n;
		t->fwd_slot = slot;
	} else {
		for (uint32_t i = 0; i < src->n; i++) {
			if (i + AHEAD < src->n)
				__builtin_prefetch(src->e[i + AHEAD].node, 1);
			struct pt_heap_ent e = src->e[i];
			bucket_push(t, 0, (unsigned)(ukey(e.key) >> L1_SHIFT) % NSLOTS, e);
		}
	}
	t->lv[1].count -= src->n;
	bucket_free(h, &t->lv[1], slot);
	return 0;
}

/* The far heap's earliest entry, at f, comes before what the rings have
 * next: its millisecond moves from the far heap into its L1 bucket (the
 * windows moved up to f first where the levels they hold are empty).  So
 * timers armed beyond the L2 window leave the far heap a millisecond's
 * worth at a time, as they fall due, never a window's worth at once.
 * Returns false when a bucket could not grow (nothing is lost). */
static bool pull_far(struct pt_heap *h, uint64_t f)
{
	struct pt_heap_tiers *t = h->tiers;
	if (f >= t->w1 + (1ull << L2_SHIFT)) {
		/* Past the L1 window, so L1 is empty (and L2 too when past
		 * its window): both may move on. */
		if (f >= t->w2 + (1ull << WIN_SHIFT))
			t->w2 = align_down(f, WIN_SHIFT);
		t->w1 = align_down(f, L2_SHIFT);
		near_end_at_least(h, t->w1);
	}
	unsigned slot = (unsigned)(f >> L1_SHIFT) % NSLOTS;
	uint64_t lim = align_down(f, L1_SHIFT) + (1ull << L1_SHIFT);
	struct bucket *b = &t->lv[0].b[slot];
	while (h->far.n && ukey(ent(&h->far, 0)->key) < lim) {
		if (bucket_grow(h, b, b->n + 1) != 0)
			return false;
		struct pt_heap_ent e = *ent(&h->far, 0);
		iheap_take(&h->far, 0);
		bucket_push(t, 0, slot, e);
	}
	return true;
}

/* The near tier (heap and run) is empty and the queue is not: bring
 * down what is due next.  Every entry outside the near tier goes after
 * every entry in it (all at or past near_end); the far heap may hold anything past
 * near_end (what was armed beyond the L2 window stays there until due),
 * so it is asked first each time. */
static void advance(struct pt_heap *h)
{
	struct pt_heap_tiers *t = h->tiers;
	while (near_empty(h) && h->n) {
		uint64_t f = h->far.n ? ukey(ent(&h->far, 0)->key) : UINT64_MAX;
		int s = first_slot(&t->lv[0]);
		if (s >= 0) {
			uint64_t end = t->w1 + ((uint64_t)(s + 1) << L1_SHIFT);
			if (f < end) {
				if (!pull_far(h, f))
					extract_min(h);
			} else if (!move_down(h, 0, (unsigned)s, end)) {
				extract_min(h);
			}
			continue;
		}
		s = first_slot(&t->lv[1]);
		if (s >= 0) {
			uint64_t start = t->w2 + ((uint64_t)s << L2_SHIFT), end = start + (1ull << L2_SHIFT);
			struct bucket *b = &t->lv[1].b[s];
			if (f < start) {
				if (!pull_far(h, f))
					extract_min(h);
			} else if (f >= end && b->n <= DIRECT_MAX && move_down(h, 1, (unsigned)s, end)) {
				/* Few: straight in, the L1 window passed over. */
				t->w1 = start;
			} else if (spread(h, (unsigned)s) != 0) {
				extract_min(h);
			}
			continue;
		}
		if (!h->far.n)
			break; /* cannot be: n counts what is queued */
		if (!pull_far(h, f))
			extract_min(h);
	}
}

/* The queue has grown big: tiers, and what the near heap holds beyond
 * its first bucket's worth goes out to them (latest first, so that if
 * memory runs out halfway, what stays is all earlier than what left). */
static int desc(const void *a, const void *b)
{
	return before(b, a) ? -1 : before(a, b) ? 1 : 0;
}

static void activate(struct pt_heap *h)
{
	uint32_t n = h->near.n;
	struct pt_heap_tiers *t = FAULT() ? NULL : calloc(1, sizeof(*t));
	struct pt_heap_ent *all = FAULT() ? NULL : malloc(n * sizeof(*all));
	if (!t || !all || n == 0) {
		free(t);
		free(all);
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		all[i] = *ent(&h->near, i);
	qsort(all, n, sizeof(*all), desc);
	uint64_t m = ukey(all[n - 1].key);
	t->w2 = align_down(m, WIN_SHIFT);
	t->w1 = align_down(m, L2_SHIFT);
	h->tiers = t;
	h->near_end = align_down(m, L1_SHIFT) + (1ull << L1_SHIFT);
	add_bytes(h, sizeof(*t));
	h->near.n = 0; /* its blocks stay: room for every entry it had */
	bool out = true;
	for (uint32_t i = 0; i < n; i++) {
		struct pt_heap_ent e = all[i];
		if (out && ukey(e.key) >= h->near_end) {
			unsigned slot = 0;
			enum tier where = route(h, ukey(e.key), &slot);
			if (reserve(h, &where, slot) == 0) {
				put(h, where, slot, e);
				continue;
			}
			out = false;
			h->near_end = ukey(e.key);
		}
		iheap_push(&h->near, e);
	}
	free(all);
}

static void deactivate(struct pt_heap *h)
{
	struct pt_heap_tiers *t = h->tiers;
	for (unsigned lvl = 0; lvl < 2; lvl++)
		for (unsigned s = 0; s < NSLOTS; s++)
			if (t->lv[lvl].b[s].e)
				bucket_free(h, &t->lv[lvl], s);
	h->tiers = NULL;
	free(t->fwd);
	free(t->run);
	free(t);
	__atomic_store_n(&h->tier_bytes, 0, __ATOMIC_RELAXED);
	iheap_release(&h->far);
}

/* ---- the queue ---- */

/* Is the run's front the queue's? */
static inline bool run_first(const struct pt_heap *h)
{
	return run_any(h) && (h->near.n == 0 || before(&h->tiers->run[h->tiers->run_head], ent(&h->near, 0)));
}

struct pt_heap_ent pt_heap_top(struct pt_heap *h)
{
	if (near_empty(h))
		advance(h);
	return run_first(h) ? h->tiers->run[h->tiers->run_head] : *ent(&h->near, 0);
}

int64_t pt_heap_key(const struct pt_heap *h, const struct pt_heap_node *node)
{
	return find(h, node)->key;
}

int pt_heap_insert(struct pt_heap *h, struct pt_heap_node *node, int64_t key)
{
	if (!h->tiers && h->n + 1 >= PT_HEAP_TIERS)
		activate(h);
	node->order = h->order++;
	int r = place_entry(h, (struct pt_heap_ent){ key, node });
	if (r == 0)
		h->n++;
	return r;
}

int pt_heap_update(struct pt_heap *h, struct pt_heap_node *node, int64_t key)
{
	unsigned slot = 0, cslot = 0;
	uint32_t ci;
	enum tier where = route(h, ukey(key), &slot), cur = locate(h, node, &cslot, &ci);
	struct pt_heap_ent e = { key, node };

	if (where == cur && (where == NEAR || where == FAR)) {
		node->order = h->order++;
		settle(where == NEAR ? &h->near : &h->far, ci, e);
		return 0;
	}
	if (where == cur && cslot == slot) {
		/* The same bucket: buckets are unsorted. */
		node->order = h->order++;
		h->tiers->lv[where == L2].b[slot].e[ci].key = key;
		return 0;
	}
	/* Another tier: room there first, so that a failure changes nothing. */
	if (reserve(h, &where, slot) != 0)
		return -ENOMEM;
	detach(h, node);
	node->order = h->order++;
	put(h, where, slot, e);
	return 0;
}

/* An entry has left: an empty queue is small again. */
static void one_less(struct pt_heap *h)
{
	if (--h->n == 0 && h->tiers)
		deactivate(h);
}

void pt_heap_remove(struct pt_heap *h, struct pt_heap_node *node)
{
	detach(h, node);
	one_less(h);
}

void pt_heap_pop(struct pt_heap *h)
{
	if (run_first(h))
		run_take(h->tiers, h->tiers->run_head);
	else
		iheap_take(&h->near, 0);
	one_less(h);
}

void pt_heap_release(struct pt_heap *h)
{
	if (h->tiers)
		deactivate(h);
	iheap_release(&h->near);
	iheap_release(&h->far);
	*h = (struct pt_heap)PT_HEAP_INIT;
}

uint64_t pt_heap_bytes(const struct pt_heap *h)
{
	/* Any thread (the statistics): the owner changes these as it runs. */
	return iheap_bytes(&h->near) + iheap_bytes(&h->far) +
	       __atomic_load_n(&h->tier_bytes, __ATOMIC_RELAXED);
}
