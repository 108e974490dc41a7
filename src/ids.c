/* SPDX-License-Identifier: MIT */
/*
 * The ID space (ids.h): a three-level radix tree over the 31-bit IDs,
 * top (10 bits) -> mid (11 bits) -> leaf (10 bits).
 *
 * Leaves come in two kinds.  A dense leaf is an array of 1024 slots with a
 * bitmap of the IDs in use and a count; the policies allocate from dense
 * leaves only, claiming an ID with one atomic OR on the bitmap, like the
 * kernel's atomic counter and hash.  A sparse leaf is an immutable, exact-
 * size array of (offset, object) pairs, replaced by a copy on every change
 * (under its mid's lock) and read without lock: restore mode puts IDs
 * anywhere in 0..INT_MAX, and a million random IDs must cost memory in
 * proportion to a million timers, not to 2^31 IDs.  A sparse leaf becomes
 * dense when it fills up, or when a policy allocates into its range.
 *
 * Memory follows the IDs in use: an emptied leaf is unlinked and freed
 * after a grace period (except the one the policy is allocating from, so
 * a create/delete cycle costs no allocation), and so is an emptied mid.
 * Nodes come from malloc, or, for a big batch (a restore), from a region
 * of huge pages that gives its pages back as their nodes go (nodes.h).
 * A dense leaf's count carries a DEAD bit: the remover claims a leaf at
 * count 0 with a compare-and-swap before unlinking it, and a claimer that
 * finds DEAD backs off and looks again, so nothing is ever claimed in a
 * leaf on its way out.
 *
 * The bitmaps "full" (per mid: which dense leaves are full; per top: which
 * mids have only full leaves) are hints that let the search for a free ID
 * skip full ranges.  Each writer that moves a count across "full"
 * re-derives the bit from the count until a re-read of the count agrees,
 * so the hints settle to the truth once writers are done.
 *
 * Lock order: ids.lock (mids) -> mid->lock (leaves of that mid).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "layout.h"
#include "lock.h"
#include "nodes.h"
#include "rcu.h"

#define LEAF_BITS PT_IDS_LEAF_BITS
#define MID_BITS PT_IDS_MID_BITS
#define TOP_BITS PT_IDS_TOP_BITS
#define LEAF_SLOTS (1u << LEAF_BITS)
#define MID_SLOTS (1u << MID_BITS)
#define TOP_SLOTS (1u << TOP_BITS)
#define SPARSE_MAX 64
#define DEAD 0x80000000u
#define SEQ __ATOMIC_SEQ_CST
#define ACQ __ATOMIC_ACQUIRE
#define REL __ATOMIC_RELEASE
#define RLX __ATOMIC_RELAXED

enum { DENSE = PT_IDS_DENSE, SPARSE = 2 };

struct dense {
	uint32_t kind;
	uint32_t count; /* IDs claimed (and being claimed), | DEAD */
	uint64_t used[LEAF_SLOTS / 64];
	void *slot[LEAF_SLOTS];
	struct rcu_head rcu;
};

/* Immutable once published; off[] follows obj[n]. */
struct sparse {
	uint32_t kind;
	uint32_t n;
	struct rcu_head rcu;
	void *obj[];
};

struct mid {
	void *leaf[MID_SLOTS];
	uint64_t full[MID_SLOTS / 64];
	uint32_t nfull;    /* bits set in full[] */
	uint32_t nleaves;  /* under lock */
	bool dead;         /* unlinked: under lock */
	pt_lock_t lock;
	struct rcu_head rcu;
};

static struct {
	pt_lock_t lock;
	uint64_t top_full[TOP_SLOTS / 64];
	unsigned counter;  /* Linux policy: next ID to try (masked at use) */
	unsigned hot;      /* leaf key (id >> LEAF_BITS) last allocated into */
	/* Low half: IDs allocated (and being allocated); high half: allocations
	 * ever made, the creation number of each (wraps).  One word, one atomic
	 * add per allocation. */
	uint64_t count;
	size_t max;
	size_t bytes;
	int policy;
	bool restore;
} ids = { .lock = PT_LOCK_INIT };

/* The top level, read by the inline lookup (ids.h) through its views. */
struct pt_ids_mid_view *pt_ids_top[TOP_SLOTS];
#define top_slot(ti) (((struct mid **)pt_ids_top)[ti])

_Static_assert(offsetof(struct mid, leaf) == offsetof(struct pt_ids_mid_view, leaf) &&
		       sizeof(((struct mid *)0)->leaf) == sizeof(((struct pt_ids_mid_view *)0)->leaf),
	       "ids.h's view of a mid level");
_Static_assert(offsetof(struct dense, kind) == offsetof(struct pt_ids_dense_view, kind) &&
		       offsetof(struct dense, slot) == offsetof(struct pt_ids_dense_view, slot) &&
		       sizeof(((struct dense *)0)->slot) == sizeof(((struct pt_ids_dense_view *)0)->slot),
	       "ids.h's view of a dense leaf");

static inline unsigned ti_of(unsigned id) { return id >> (MID_BITS + LEAF_BITS); }
static inline unsigned mi_of(unsigned id) { return (id >> LEAF_BITS) & (MID_SLOTS - 1); }
static inline unsigned li_of(unsigned id) { return id & (LEAF_SLOTS - 1); }
static inline unsigned id_of(unsigned ti, unsigned mi, unsigned li)
{
	return ti << (MID_BITS + LEAF_BITS) | mi << LEAF_BITS | li;
}

static inline uint32_t kind_of(const void *leaf) { return *(const uint32_t *)leaf; }
static inline uint16_t *offs(struct sparse *s) { return (uint16_t *)&s->obj[s->n]; }

static inline bool test_bit(const uint64_t *map, unsigned i)
{
	return __atomic_load_n(&map[i / 64], RLX) >> (i % 64) & 1;
}

/* Allocations happen under the table's lock, and may reach the kernel
 * (brk, mmap): outside the time-slice extension the lock asked for.
 * zeroed: cleared (a sparse leaf is written whole by its maker).  In a
 * big batch they come from the batch's region (nodes.h). */
static void *alloc_counted(size_t n, bool zeroed)
{
	pt_slice_pause();
	void *p = pt_nodes_alloc(n, zeroed);
	pt_slice_resume();
	if (p)
		__atomic_add_fetch(&ids.bytes, n, RLX);
	return p;
}

static void *alloc_bytes(size_t n)
{
	return alloc_counted(n, true);
}

static struct sparse *alloc_sparse(size_t n)
{
	return alloc_counted(n, false);
}

static size_t sparse_size(uint32_t n)
{
	return sizeof(struct sparse) + n * (sizeof(void *) + sizeof(uint16_t));
}

static void free_dense(struct rcu_head *h)
{
	PT_RCU_CALLBACK();
	pt_nodes_free((char *)h - offsetof(struct dense, rcu), sizeof(struct dense));
}

static void free_sparse(struct rcu_head *h)
{
	PT_RCU_CALLBACK();
	struct sparse *s = (struct sparse *)((char *)h - offsetof(struct sparse, rcu));
	pt_nodes_free(s, sparse_size(s->n));
}

static void free_mid(struct rcu_head *h)
{
	PT_RCU_CALLBACK();
	pt_nodes_free((char *)h - offsetof(struct mid, rcu), sizeof(struct mid));
}

/* A leaf that was never published: no reader can hold it. */
static void retire_now(void *leaf)
{
	size_t n = kind_of(leaf) == DENSE ? sizeof(struct dense) : sparse_size(((struct sparse *)leaf)->n);
	__atomic_sub_fetch(&ids.bytes, n, RLX);
	pt_nodes_free(leaf, n);
}

static void retire_leaf(void *leaf)
{
	if (kind_of(leaf) == DENSE) {
		__atomic_sub_fetch(&ids.bytes, sizeof(struct dense), RLX);
		pt_call_rcu(&((struct dense *)leaf)->rcu, free_dense);
	} else {
		struct sparse *s = leaf;
		__atomic_sub_fetch(&ids.bytes, sparse_size(s->n), RLX);
		pt_call_rcu(&s->rcu, free_sparse);
	}
}

/* ---- the "full" hints ---- */

static void fix_top_hint(unsigned ti, struct mid *m)
{
	uint64_t bit = 1ull << (ti % 64);
	for (;;) {
		uint32_t n = __atomic_load_n(&m->nfull, SEQ);
		if (n == MID_SLOTS)
			__atomic_fetch_or(&ids.top_full[ti / 64], bit, SEQ);
		else
			__atomic_fetch_and(&ids.top_full[ti / 64], ~bit, SEQ);
		if (__atomic_load_n(&m->nfull, SEQ) == n)
			return;
	}
}

/* Re-derive the hint for a dense leaf from its count (see the top). */
static void fix_leaf_hint(unsigned ti, struct mid *m, unsigned mi, struct dense *d)
{
	uint64_t bit = 1ull << (mi % 64);
	for (;;) {
		uint32_t c = __atomic_load_n(&d->count, SEQ) & ~DEAD;
		bool full = c == LEAF_SLOTS, changed = false;
		if (full && !(__atomic_fetch_or(&m->full[mi / 64], bit, SEQ) & bit)) {
			__atomic_add_fetch(&m->nfull, 1, SEQ);
			changed = true;
		} else if (!full && (__atomic_fetch_and(&m->full[mi / 64], ~bit, SEQ) & bit)) {
			__atomic_sub_fetch(&m->nfull, 1, SEQ);
			changed = true;
		}
		if (changed)
			fix_top_hint(ti, m);
		if ((__atomic_load_n(&d->count, SEQ) & ~DEAD) == c)
			return;
	}
}

/* ---- mids ---- */

static struct mid *get_mid(unsigned ti, bool create)
{
	struct mid *m = __atomic_load_n(&top_slot(ti), ACQ);

	if (m || !create)
		return m;
	pt_lock(&ids.lock);
	m = top_slot(ti);
	if (!m) {
		m = alloc_bytes(sizeof(*m));
		if (m)
			__atomic_store_n(&top_slot(ti), m, REL);
	}
	pt_unlock(&ids.lock);
	return m;
}

/* A mid lost its last leaf: unlink it, unless a leaf came back meanwhile. */
static void mid_emptied(unsigned ti)
{
	pt_lock(&ids.lock);
	struct mid *m = top_slot(ti);
	bool gone = false;
	if (m) {
		pt_lock(&m->lock);
		if (m->nleaves == 0 && !m->dead) {
			m->dead = true;
			__atomic_store_n(&top_slot(ti), NULL, REL);
			gone = true;
		}
		pt_unlock(&m->lock);
	}
	pt_unlock(&ids.lock);
	if (gone) {
		__atomic_sub_fetch(&ids.bytes, sizeof(*m), RLX);
		pt_call_rcu(&m->rcu, free_mid);
	}
}

/* Unlink leaf mi of m.  m->lock held; returns whether m is now empty. */
static bool unlink_leaf(struct mid *m, unsigned ti, unsigned mi)
{
	void *leaf = m->leaf[mi];
	uint64_t bit = 1ull << (mi % 64);

	__atomic_store_n(&m->leaf[mi], NULL, REL);
	if (__atomic_fetch_and(&m->full[mi / 64], ~bit, SEQ) & bit) {
		__atomic_sub_fetch(&m->nfull, 1, SEQ);
		fix_top_hint(ti, m);
	}
	retire_leaf(leaf);
	return --m->nleaves == 0;
}

/* Free the dense leaf with this key if it is empty and not the one the
 * policy allocates from. */
static void try_free_dense(unsigned key)
{
	unsigned ti = key >> MID_BITS, mi = key & (MID_SLOTS - 1);
	struct mid *m = __atomic_load_n(&top_slot(ti), ACQ);
	bool empty_mid = false;

	if (!m)
		return;
	pt_lock(&m->lock);
	struct dense *d = m->leaf[mi];
	uint32_t zero = 0;
	if (!m->dead && d && kind_of(d) == DENSE && key != __atomic_load_n(&ids.hot, RLX) &&
	    __atomic_compare_exchange_n(&d->count, &zero, DEAD, false, SEQ, SEQ))
		empty_mid = unlink_leaf(m, ti, mi);
	pt_unlock(&m->lock);
	if (empty_mid)
		mid_emptied(ti);
}

/* The policy now allocates in the leaf with this key: the one it left,
 * if empty, can go. */
static void set_hot(unsigned id)
{
	unsigned key = id >> LEAF_BITS;

	if (__atomic_load_n(&ids.hot, RLX) == key)
		return;
	unsigned old = __atomic_exchange_n(&ids.hot, key, SEQ);
	if (old != key)
		try_free_dense(old);
}

/* ---- dense leaves ---- */

static struct dense *new_dense(void)
{
	struct dense *d = alloc_bytes(sizeof(*d));
	if (d)
		d->kind = DENSE;
	return d;
}

/* Drop a claim on d's count; the last one out may free it. */
static void dense_put(unsigned ti, struct mid *m, unsigned mi, struct dense *d)
{
	uint32_t c = __atomic_sub_fetch(&d->count, 1, SEQ);

	if (c == LEAF_SLOTS - 1)
		fix_leaf_hint(ti, m, mi, d);
	/* Empty: free it, unless allocation is going on in it (checked again
	 * under the lock; looking first spares a create/delete cycle the
	 * lock). */
	if (c == 0 && ((ti << MID_BITS) | mi) != __atomic_load_n(&ids.hot, RLX))
		try_free_dense((ti << MID_BITS) | mi);
}

/* 0, -EBUSY, or -EAGAIN when the leaf is on its way out (look again). */
static int dense_claim(unsigned ti, struct mid *m, unsigned mi, struct dense *d, unsigned li,
		       void *obj)
{
	uint32_t c = __atomic_fetch_add(&d->count, 1, SEQ);
	if (c & DEAD) {
		__atomic_sub_fetch(&d->count, 1, SEQ);
		return -EAGAIN;
	}
	uint64_t bit = 1ull << (li % 64);
	if (__atomic_fetch_or(&d->used[li / 64], bit, SEQ) & bit) {
		dense_put(ti, m, mi, d);
		return -EBUSY;
	}
	__atomic_store_n(&d->slot[li], obj, REL);
	if (c + 1 == LEAF_SLOTS)
		fix_leaf_hint(ti, m, mi, d);
	return 0;
}

static void dense_free(unsigned ti, struct mid *m, unsigned mi, struct dense *d, unsigned li)
{
	__atomic_store_n(&d->slot[li], NULL, REL);
	__atomic_fetch_and(&d->used[li / 64], ~(1ull << (li % 64)), SEQ);
	dense_put(ti, m, mi, d);
}

/* ---- sparse leaves (under the mid's lock) ---- */

static int sparse_find(struct sparse *s, unsigned li)
{
	uint16_t *off = offs(s);
	int lo = 0, hi = (int)s->n - 1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		if (off[mid] == li)
			return mid;
		if (off[mid] < li)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -(lo + 1); /* where it would go */
}

/* s with (li, obj) added at position pos (s may be NULL: a new leaf). */
static struct sparse *sparse_with(struct sparse *s, int pos, unsigned li, void *obj)
{
	uint32_t n = s ? s->n : 0;
	struct sparse *t = alloc_sparse(sparse_size(n + 1));

	if (!t)
		return NULL;
	t->kind = SPARSE;
	t->n = n + 1;
	uint16_t *to = offs(t);
	for (uint32_t i = 0, j = 0; i < n + 1; i++) {
		if ((int)i == pos) {
			t->obj[i] = obj;
			to[i] = (uint16_t)li;
		} else {
			t->obj[i] = s->obj[j];
			to[i] = offs(s)[j];
			j++;
		}
	}
	return t;
}

static struct sparse *sparse_without(struct sparse *s, int pos)
{
	struct sparse *t = alloc_sparse(sparse_size(s->n - 1));

	if (!t)
		return NULL;
	t->kind = SPARSE;
	t->n = s->n - 1;
	for (uint32_t i = 0, j = 0; i < s->n; i++) {
		if ((int)i == pos)
			continue;
		t->obj[j] = s->obj[i];
		offs(t)[j] = offs(s)[i];
		j++;
	}
	return t;
}

static struct dense *dense_from(struct sparse *s)
{
	struct dense *d = new_dense();

	if (!d)
		return NULL;
	for (uint32_t i = 0; i < s->n; i++) {
		unsigned li = offs(s)[i];
		d->slot[li] = s->obj[i];
		d->used[li / 64] |= 1ull << (li % 64);
	}
	d->count = s->n;
	return d;
}

/* ---- claiming one ID ---- */

/* Claim id for obj: 0, -EBUSY, -ENOMEM.  sparse_ok: a new or sparse
 * leaf may stay sparse (restore mode); otherwise the range goes dense. */
static int claim(unsigned id, void *obj, bool sparse_ok)
{
	unsigned ti = ti_of(id), mi = mi_of(id), li = li_of(id);

	for (;;) {
		struct mid *m = get_mid(ti, true);
		if (!m)
			return -ENOMEM;
		void *leaf = __atomic_load_n(&m->leaf[mi], ACQ);
		if (leaf && kind_of(leaf) == DENSE) {
			int r = dense_claim(ti, m, mi, leaf, li, obj);
			if (r != -EAGAIN)
				return r;
			continue;
		}
		pt_lock(&m->lock);
		if (m->dead) {
			pt_unlock(&m->lock);
			continue;
		}
		leaf = m->leaf[mi];
		void *next = NULL;
		int r = 0;
		if (leaf && kind_of(leaf) == DENSE) {
			pt_unlock(&m->lock);
			continue; /* became dense meanwhile: claim it lock-free */
		}
		int pos = leaf ? sparse_find(leaf, li) : -1;
		if (pos >= 0) {
			struct sparse *sl = leaf;
			if (sl->obj[pos]) {
				r = -EBUSY;
			} else {
				/* A hole left by a free that had no memory for a
				 * smaller copy: fill it in place. */
				__atomic_store_n(&sl->obj[pos], obj, REL);
			}
		} else if (sparse_ok && (!leaf || ((struct sparse *)leaf)->n < SPARSE_MAX)) {
			next = sparse_with(leaf, -pos - 1, li, obj);
			r = next ? 0 : -ENOMEM;
		} else {
			next = leaf ? (void *)dense_from(leaf) : (void *)new_dense();
			r = next ? -EAGAIN : -ENOMEM; /* then claim in it */
		}
		if (next) {
			__atomic_store_n(&m->leaf[mi], next, REL);
			if (leaf)
				retire_leaf(leaf);
			else
				m->nleaves++;
		}
		pt_unlock(&m->lock);
		if (r != -EAGAIN)
			return r;
	}
}

/* ---- the search for a free ID ---- */

/* First zero bit at index >= from in a map of n bits, or n. */
static unsigned first_zero(const uint64_t *map, unsigned n, unsigned from)
{
	while (from < n) {
		uint64_t w = ~__atomic_load_n(&map[from / 64], RLX) & (~0ull << (from % 64));
		if (w)
			return (from & ~63u) + (unsigned)__builtin_ctzll(w);
		from = (from & ~63u) + 64;
	}
	return n;
}

/* A free ID in the leaf at or after li, or LEAF_SLOTS. */
static unsigned leaf_free_from(void *leaf, unsigned li)
{
	if (kind_of(leaf) == DENSE)
		return first_zero(((struct dense *)leaf)->used, LEAF_SLOTS, li);
	struct sparse *s = leaf;
	int pos = sparse_find(s, li);
	if (pos < 0)
		return li;
	for (uint32_t i = (uint32_t)pos; i < s->n && offs(s)[i] == li; i++)
		li++;
	return li < LEAF_SLOTS ? li : LEAF_SLOTS;
}

/* The lowest ID >= from that looks free (racy: a candidate to claim), or
 * -1 when none up to INT_MAX. */
static long next_free(unsigned from)
{
	for (unsigned ti = ti_of(from); ti < TOP_SLOTS; ti++, from = ti << (MID_BITS + LEAF_BITS)) {
		if (test_bit(ids.top_full, ti))
			continue;
		struct mid *m = __atomic_load_n(&top_slot(ti), ACQ);
		if (!m)
			return from;
		for (unsigned mi = mi_of(from), li = li_of(from); mi < MID_SLOTS; mi++, li = 0) {
			if (test_bit(m->full, mi))
				continue;
			void *leaf = __atomic_load_n(&m->leaf[mi], ACQ);
			if (!leaf)
				return id_of(ti, mi, li);
			unsigned f = leaf_free_from(leaf, li);
			if (f < LEAF_SLOTS)
				return id_of(ti, mi, f);
		}
	}
	return -1;
}

/* ---- the calls ---- */

static int alloc_policy(void *obj)
{
	bool dense = __atomic_load_n(&ids.policy, RLX) == PT_IDS_DENSE;
	unsigned start = dense ? 0 : __atomic_fetch_add(&ids.counter, 1, SEQ) & INT_MAX;
	unsigned id = start;
	bool wrapped = false;

	if (dense) {
		long f = next_free(0);
		if (f < 0)
			return -EAGAIN;
		id = (unsigned)f;
	}
	for (;;) {
		int r = claim(id, obj, false);
		if (r == 0) {
			if (!dense && id != start) {
				/* Like the kernel's one increment per ID tried. */
				unsigned expect = start + 1;
				__atomic_compare_exchange_n(&ids.counter, &expect, id + 1, false, SEQ, RLX);
			}
			set_hot(id);
			return (int)id;
		}
		if (r != -EBUSY)
			return r;
		long f = id < INT_MAX ? next_free(id + 1) : -1;
		if (f < 0) {
			/* Wrap at INT_MAX, once. */
			if (wrapped || dense)
				return -EAGAIN;
			wrapped = true;
			f = next_free(0);
		}
		if (f < 0 || (wrapped && (unsigned)f >= start))
			return -EAGAIN;
		id = (unsigned)f;
	}
}

#define COUNT_MASK 0xffffffffull
#define ONE_MORE (1ull | 1ull << 32) /* one allocated, one made */

int pt_ids_alloc(void *obj, int wanted, uint32_t *gen)
{
	size_t max = __atomic_load_n(&ids.max, RLX);
	uint64_t was = __atomic_fetch_add(&ids.count, ONE_MORE, SEQ);
	size_t n = (size_t)(was & COUNT_MASK);

	if (gen)
		*gen = (uint32_t)(was >> 32) + 1;
	if (max && n >= max) {
		__atomic_sub_fetch(&ids.count, 1, SEQ);
		return -EAGAIN;
	}
	int r;
	/* A read-side section: a claim may meet a leaf or mid that a free
	 * elsewhere is retiring, and must not touch freed memory. */
	pt_rcu_read_lock();
	if (wanted >= 0) {
		r = claim((unsigned)wanted, obj, true);
		if (r == 0) {
			/* Past the restored ID, so that normal creation later
			 * does not collide with the restored region. */
			__atomic_store_n(&ids.counter, (unsigned)wanted + 1, SEQ);
			r = wanted;
		}
	} else {
		r = alloc_policy(obj);
	}
	pt_rcu_read_unlock();
	if (r < 0)
		__atomic_sub_fetch(&ids.count, 1, SEQ);
	return r;
}

static inline unsigned id_at(const int *idv, size_t stride, size_t k)
{
	return (unsigned)*(const int *)((const char *)idv + k * stride);
}

/* Claim ids [k, g) of one leaf.  0, or -EBUSY (*bad: which) / -ENOMEM,
 * with nothing of the group claimed. */
static int claim_group(void *const *objs, const int *idv, size_t stride, size_t k, size_t g,
		       size_t *bad)
{
	unsigned first = id_at(idv, stride, k);
	unsigned ti = ti_of(first), mi = mi_of(first);

	for (;;) {
		struct mid *m = get_mid(ti, true);
		if (!m)
			return -ENOMEM;
		void *leaf = __atomic_load_n(&m->leaf[mi], ACQ);
		if (leaf && kind_of(leaf) == DENSE) {
			/* Claimed one by one, lock-free, as the policies do. */
			int r = 0;
			size_t j = k;
			for (; j < g && r == 0; j++)
				r = dense_claim(ti, m, mi, leaf, li_of(id_at(idv, stride, j)), objs[j]);
			if (r == 0)
				return 0;
			j--; /* the one that failed */
			for (size_t u = k; u < j; u++)
				dense_free(ti, m, mi, leaf, li_of(id_at(idv, stride, u)));
			if (r == -EAGAIN)
				continue; /* the leaf is on its way out: look again */
			*bad = j;
			return r;
		}
		pt_lock(&m->lock);
		if (m->dead || (m->leaf[mi] && kind_of(m->leaf[mi]) == DENSE)) {
			pt_unlock(&m->lock);
			continue;
		}
		struct sparse *s = m->leaf[mi];
		uint32_t had = s ? s->n : 0, add = (uint32_t)(g - k), total = had + add;
		/* Merge what the leaf has with the group, both ascending. */
		struct sparse *t = NULL;
		struct dense *d = NULL;
		if (total <= SPARSE_MAX) {
			t = alloc_sparse(sparse_size(total));
			if (t) {
				t->kind = SPARSE;
				t->n = total;
			}
		} else {
			d = new_dense();
		}
		if (!t && !d) {
			pt_unlock(&m->lock);
			return -ENOMEM;
		}
		uint32_t a = 0, o = 0;
		size_t b = k;
		int err = 0;
		while (a < had || b < g) {
			unsigned li;
			void *obj;
			if (b == g || (a < had && offs(s)[a] < li_of(id_at(idv, stride, b)))) {
				li = offs(s)[a];
				obj = s->obj[a++];
				if (!obj)
					continue; /* a hole: leave it out */
			} else {
				li = li_of(id_at(idv, stride, b));
				if (a < had && offs(s)[a] == li && s->obj[a]) {
					*bad = b;
					err = -EBUSY;
					break;
				}
				if (a < had && offs(s)[a] == li)
					a++; /* a hole at this very ID */
				obj = objs[b++];
			}
			if (t) {
				t->obj[o] = obj;
				offs(t)[o] = (uint16_t)li;
			} else {
				d->slot[li] = obj;
				d->used[li / 64] |= 1ull << (li % 64);
			}
			o++;
		}
		if (err) {
			pt_unlock(&m->lock);
			retire_now(t ? (void *)t : (void *)d);
			return err;
		}
		if (t && o != total) {
			/* Holes left out: the offsets follow the objects. */
			memmove(&t->obj[o], &t->obj[total], o * sizeof(uint16_t));
			t->n = o;
			__atomic_sub_fetch(&ids.bytes, sparse_size(total) - sparse_size(o), RLX);
			pt_nodes_shrink(t, sparse_size(total), sparse_size(o));
		}
		if (d)
			d->count = o;
		__atomic_store_n(&m->leaf[mi], t ? (void *)t : (void *)d, REL);
		if (s)
			retire_leaf(s);
		else
			m->nleaves++;
		if (d && o == LEAF_SLOTS)
			fix_leaf_hint(ti, m, mi, d);
		pt_unlock(&m->lock);
		return 0;
	}
}

/* The end of the group of IDs from k that share k's leaf. */
static size_t group_end(const int *idv, size_t stride, size_t n, size_t k)
{
	unsigned key = id_at(idv, stride, k) >> LEAF_BITS;
	size_t g = k + 1;
	while (g < n && id_at(idv, stride, g) >> LEAF_BITS == key)
		g++;
	return g;
}

/* From this many IDs a batch's nodes come from a region (nodes.h). */
#define BATCH_REGION_FROM 4096

/* The bytes of the nodes a batch makes, if no leaf it meets has IDs yet
 * (more: some from malloc after all; fewer: the region gives back the
 * rest). */
static size_t batch_bytes(const int *idv, size_t stride, size_t n)
{
	size_t bytes = 0;
	unsigned last_ti = TOP_SLOTS;
	for (size_t k = 0; k < n;) {
		size_t g = group_end(idv, stride, n, k);
		unsigned ti = ti_of(id_at(idv, stride, k));
		if (ti != last_ti && !__atomic_load_n(&top_slot(ti), ACQ))
			bytes += sizeof(struct mid) + 8;
		last_ti = ti;
		bytes += (g - k > SPARSE_MAX ? sizeof(struct dense) : sparse_size((uint32_t)(g - k))) + 8;
		k = g;
	}
	return bytes;
}

int pt_ids_alloc_batch(void *const *objs, const int *idv, size_t stride, size_t n, size_t *bad,
		       uint32_t *gen)
{
	size_t max = __atomic_load_n(&ids.max, RLX);
	uint64_t was = __atomic_fetch_add(&ids.count, (uint64_t)n * ONE_MORE, SEQ);
	size_t had = (size_t)(was & COUNT_MASK);

	if (gen)
		*gen = (uint32_t)(was >> 32); /* the first made is *gen + 1 */

	if (max && had + n > max) {
		__atomic_sub_fetch(&ids.count, n, SEQ);
		*bad = max > had ? max - had : 0;
		return -EAGAIN;
	}
	bool region = n >= BATCH_REGION_FROM && pt_nodes_batch_begin(batch_bytes(idv, stride, n));
	for (size_t k = 0; k < n;) {
		size_t g = group_end(idv, stride, n, k);
		pt_rcu_read_lock(); /* as in pt_ids_alloc */
		int r = claim_group(objs, idv, stride, k, g, bad);
		pt_rcu_read_unlock();
		if (r) {
			if (region)
				pt_nodes_batch_end();
			/* Give back what was claimed: all or nothing. */
			for (size_t j = 0; j < k; j++) {
				__atomic_add_fetch(&ids.count, 1, SEQ); /* pt_ids_free counts one down */
				pt_ids_free((int)id_at(idv, stride, j));
			}
			__atomic_sub_fetch(&ids.count, n, SEQ);
			return r;
		}
		k = g;
	}
	if (region)
		pt_nodes_batch_end();
	return 0;
}

static void free_id(int id);

/* In a read-side section as allocation is: once this ID's leaf count is
 * given back, another thread may empty the leaf and its mid, and the
 * emptiness check that follows here must not find them freed. */
void pt_ids_free(int id)
{
	pt_rcu_read_lock();
	free_id(id);
	pt_rcu_read_unlock();
}

static void free_id(int id)
{
	unsigned ti = ti_of((unsigned)id), mi = mi_of((unsigned)id), li = li_of((unsigned)id);
	struct mid *m = __atomic_load_n(&top_slot(ti), ACQ);
	void *leaf = __atomic_load_n(&m->leaf[mi], ACQ);

	__atomic_sub_fetch(&ids.count, 1, SEQ);
	if (kind_of(leaf) == DENSE) {
		dense_free(ti, m, mi, leaf, li);
		return;
	}
	pt_lock(&m->lock);
	leaf = m->leaf[mi];
	if (kind_of(leaf) == DENSE) {
		pt_unlock(&m->lock);
		dense_free(ti, m, mi, leaf, li);
		return;
	}
	struct sparse *s = leaf;
	int pos = sparse_find(s, li);
	bool empty_mid = false;
	uint32_t others = 0;
	for (uint32_t i = 0; i < s->n; i++)
		others += (int)i != pos && s->obj[i];
	if (others == 0) {
		empty_mid = unlink_leaf(m, ti, mi);
	} else {
		struct sparse *t = sparse_without(s, pos);
		if (t) {
			__atomic_store_n(&m->leaf[mi], t, REL);
			retire_leaf(s);
		} else {
			/* No memory for the smaller copy: empty the slot in place
			 * (readers see the object or NULL, both fine). */
			__atomic_store_n(&s->obj[pos], NULL, REL);
		}
	}
	pt_unlock(&m->lock);
	if (empty_mid)
		mid_emptied(ti);
}

void *pt_ids_lookup_sparse(void *leaf, unsigned li)
{
	int pos = sparse_find(leaf, li);
	return pos < 0 ? NULL : __atomic_load_n(&((struct sparse *)leaf)->obj[pos], ACQ);
}

/* The first object in leaf at offset >= li; *li is updated. */
static void *leaf_next(void *leaf, unsigned *li)
{
	if (kind_of(leaf) == SPARSE) {
		struct sparse *s = leaf;
		int pos = sparse_find(s, *li);
		for (uint32_t i = (uint32_t)(pos < 0 ? -pos - 1 : pos); i < s->n; i++) {
			void *o = __atomic_load_n(&s->obj[i], ACQ);
			if (o) {
				*li = offs(s)[i];
				return o;
			}
		}
		return NULL;
	}
	struct dense *d = leaf;
	for (unsigned i = *li; i < LEAF_SLOTS;) {
		uint64_t w = __atomic_load_n(&d->used[i / 64], RLX) & (~0ull << (i % 64));
		if (!w) {
			i = (i & ~63u) + 64;
			continue;
		}
		i = (i & ~63u) + (unsigned)__builtin_ctzll(w);
		void *o = __atomic_load_n(&d->slot[i], ACQ);
		if (o) {
			*li = i;
			return o;
		}
		i++;
	}
	return NULL;
}

void *pt_ids_next(int *idp)
{
	if (*idp < 0)
		return NULL;
	unsigned from = (unsigned)*idp;
	for (unsigned ti = ti_of(from); ti < TOP_SLOTS; ti++, from = ti << (MID_BITS + LEAF_BITS)) {
		struct mid *m = __atomic_load_n(&top_slot(ti), ACQ);
		if (!m)
			continue;
		for (unsigned mi = mi_of(from), li = li_of(from); mi < MID_SLOTS; mi++, li = 0) {
			void *leaf = __atomic_load_n(&m->leaf[mi], ACQ);
			if (!leaf)
				continue;
			void *o = leaf_next(leaf, &li);
			if (o) {
				*idp = (int)id_of(ti, mi, li);
				return o;
			}
		}
	}
	return NULL;
}

int pt_ids_restore_mode(unsigned long mode)
{
	switch (mode) {
	case 0:
	case 1:
		__atomic_store_n(&ids.restore, mode == 1, SEQ);
		return 0;
	case 2:
		return __atomic_load_n(&ids.restore, SEQ);
	default:
		return -EINVAL;
	}
}

bool pt_ids_restore_on(void)
{
	return __atomic_load_n(&ids.restore, RLX);
}

int pt_ids_set_policy(int policy)
{
	if (policy != PT_IDS_LINUX && policy != PT_IDS_DENSE)
		return -EINVAL;
	if (__atomic_load_n(&ids.count, SEQ) & COUNT_MASK)
		return -EBUSY;
	__atomic_store_n(&ids.policy, policy, RLX);
	return 0;
}

int pt_ids_get_policy(void)
{
	return __atomic_load_n(&ids.policy, RLX);
}

void pt_ids_set_max(size_t max)
{
	__atomic_store_n(&ids.max, max, RLX);
}

size_t pt_ids_count(void)
{
	return (size_t)(__atomic_load_n(&ids.count, RLX) & COUNT_MASK);
}

uint32_t pt_ids_made(void)
{
	return (uint32_t)(__atomic_load_n(&ids.count, SEQ) >> 32);
}

const uint64_t *pt_ids_count_word(void)
{
	return &ids.count;
}

unsigned pt_ids_counter(void)
{
	return __atomic_load_n(&ids.counter, RLX) & INT_MAX;
}

void pt_ids_set_counter(unsigned next)
{
	__atomic_store_n(&ids.counter, next & INT_MAX, SEQ);
}

size_t pt_ids_bytes(void)
{
	return __atomic_load_n(&ids.bytes, RLX) + pt_nodes_overhead() + sizeof(ids) + sizeof(pt_ids_top);
}

void pt_ids_fork_prepare(void)
{
	pt_lock(&ids.lock);
}

void pt_ids_fork_parent(void)
{
	pt_unlock(&ids.lock);
}

void pt_ids_fork_child(void)
{
	for (unsigned ti = 0; ti < TOP_SLOTS; ti++) {
		struct mid *m = top_slot(ti);
		if (!m)
			continue;
		/* What regions hold goes with them, below. */
		for (unsigned mi = 0; mi < MID_SLOTS; mi++)
			if (!pt_nodes_in_region(m->leaf[mi]))
				free(m->leaf[mi]);
		if (!pt_nodes_in_region(m))
			free(m);
	}
	pt_nodes_fork_child();
	int policy = ids.policy;
	size_t max = ids.max;
	memset(&ids, 0, sizeof(ids));
	memset(pt_ids_top, 0, sizeof(pt_ids_top));
	ids.policy = policy; /* settings of the program, not state of its timers */
	ids.max = max;
}

void pt_ids_describe(struct pt_root *r)
{
	r->count_word = (uint64_t)(uintptr_t)&ids.count;
	r->id_counter = (uint64_t)(uintptr_t)&ids.counter;
	r->id_policy = (uint64_t)(uintptr_t)&ids.policy;
}
