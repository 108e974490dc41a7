/* SPDX-License-Identifier: MIT */
/*
 * The per-process timer ID space.
 *
 * IDs are 31-bit (0..INT_MAX) and index a three-level radix tree
 * (10 + 11 + 10 bits).  Each interior node keeps a bitmap of children that
 * are full, each leaf a bitmap of slots in use, so "lowest free ID at or
 * after X" is a handful of word scans.  That one search serves both
 * policies: Linux's (a counter that wraps at INT_MAX and skips IDs in use)
 * and the dense one (lowest free ID), and memory follows the timers alive,
 * not the largest ID: empty nodes are freed after a grace period.
 *
 * Readers (lookup, iteration) take no lock: they run under rcu_read_lock()
 * and see each pointer published with release order.  Writers serialise on
 * ids_lock.  A timer is inserted with its ID reserved but t->valid still
 * false; the caller publishes valid only when the timer is fully built, so
 * nobody acts on a half-built timer (the kernel's posix_timer_add_at()).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "rcu.h"

#define LEAF_BITS 10
#define MID_BITS 11
#define TOP_BITS 10
#define LEAF_SLOTS (1u << LEAF_BITS)
#define MID_SLOTS (1u << MID_BITS)
#define TOP_SLOTS (1u << TOP_BITS)
#define WORD_BITS 64

struct id_leaf {
	struct pt_timer *slot[LEAF_SLOTS];
	uint64_t used[LEAF_SLOTS / WORD_BITS];
	unsigned count;
	struct pt_limbo limbo;
};

struct id_mid {
	struct id_leaf *leaf[MID_SLOTS];
	uint64_t full[MID_SLOTS / WORD_BITS]; /* leaves with every slot used */
	unsigned nleaves;
	struct pt_limbo limbo;
};

static struct {
	pt_lock_t lock;
	struct id_mid *top[TOP_SLOTS];
	uint64_t top_full[TOP_SLOTS / WORD_BITS];
	unsigned next_id;     /* Linux policy counter */
	int policy;
	bool restore;
	size_t count;
	size_t max;
	/* The last leaf to become empty stays linked: a create/delete cycle
	 * must not allocate and clear a leaf every time.  At most one. */
	struct id_leaf *linger;
	unsigned linger_id;
	/* Deferred frees waiting for a grace period. */
	pt_lock_t limbo_lock;
	struct pt_limbo *limbo;
	unsigned nlimbo;
} ids = { .lock = PT_LOCK_INIT, .limbo_lock = PT_LOCK_INIT };

#define RECLAIM_BATCH 256

#ifdef __SANITIZE_THREAD__
char pt_rcu_tsan_sync;
#endif

static inline unsigned top_index(unsigned id) { return id >> (MID_BITS + LEAF_BITS); }
static inline unsigned mid_index(unsigned id) { return (id >> LEAF_BITS) & (MID_SLOTS - 1); }
static inline unsigned leaf_index(unsigned id) { return id & (LEAF_SLOTS - 1); }

static inline bool bit_test(const uint64_t *map, unsigned i)
{
	return map[i / WORD_BITS] >> (i % WORD_BITS) & 1;
}
static inline void bit_set(uint64_t *map, unsigned i) { map[i / WORD_BITS] |= 1ull << (i % WORD_BITS); }
static inline void bit_clear(uint64_t *map, unsigned i) { map[i / WORD_BITS] &= ~(1ull << (i % WORD_BITS)); }

/* First zero bit at index >= from in a map of n bits, or n. */
static unsigned first_zero(const uint64_t *map, unsigned n, unsigned from)
{
	while (from < n) {
		uint64_t w = ~map[from / WORD_BITS] & (~0ull << (from % WORD_BITS));
		if (w)
			return (from & ~(WORD_BITS - 1)) + (unsigned)__builtin_ctzll(w);
		from = (from & ~(WORD_BITS - 1)) + WORD_BITS;
	}
	return n;
}

/* Lowest free ID >= from, or -1 when every ID from there on is taken.
 * Caller holds ids.lock. */
static long next_free(unsigned from)
{
	for (unsigned ti = top_index(from); ti < TOP_SLOTS;) {
		struct id_mid *mid = ids.top[ti];
		if (!mid)
			return from;
		unsigned mi = bit_test(ids.top_full, ti) ? MID_SLOTS : mid_index(from);
		for (; mi < MID_SLOTS; mi++) {
			mi = first_zero(mid->full, MID_SLOTS, mi);
			if (mi == MID_SLOTS)
				break;
			unsigned base = ti << (MID_BITS + LEAF_BITS) | mi << LEAF_BITS;
			if (base > from)
				from = base;
			struct id_leaf *leaf = mid->leaf[mi];
			if (!leaf)
				return from;
			unsigned li = first_zero(leaf->used, LEAF_SLOTS, leaf_index(from));
			if (li < LEAF_SLOTS)
				return base | li;
		}
		ti++;
		from = ti << (MID_BITS + LEAF_BITS);
	}
	return -1;
}

static void free_obj(void *p) { free(p); }

static int reserve_slot(unsigned id, struct pt_timer *t)
{
	unsigned ti = top_index(id), mi = mid_index(id), li = leaf_index(id);
	struct id_mid *mid = ids.top[ti];

	if (!mid) {
		mid = calloc(1, sizeof(*mid));
		if (!mid)
			return -ENOMEM;
		__atomic_store_n(&ids.top[ti], mid, __ATOMIC_RELEASE);
	}
	struct id_leaf *leaf = mid->leaf[mi];
	if (!leaf) {
		leaf = calloc(1, sizeof(*leaf));
		if (!leaf) {
			if (mid->nleaves == 0) {
				__atomic_store_n(&ids.top[ti], NULL, __ATOMIC_RELAXED);
				free(mid); /* never reachable by a reader with a leaf under it */
			}
			return -ENOMEM;
		}
		mid->nleaves++;
		__atomic_store_n(&mid->leaf[mi], leaf, __ATOMIC_RELEASE);
	}
	t->id = (int)id;
	bit_set(leaf->used, li);
	if (++leaf->count == LEAF_SLOTS) {
		bit_set(mid->full, mi);
		if (first_zero(mid->full, MID_SLOTS, 0) == MID_SLOTS)
			bit_set(ids.top_full, ti);
	}
	/* Release: a reader that finds the pointer sees the immutable fields.
	 * The timer is still !valid, so lookups ignore it until published. */
	__atomic_store_n(&leaf->slot[li], t, __ATOMIC_RELEASE);
	ids.count++;
	return (int)id;
}

int pt_ids_insert(struct pt_timer *t, int wanted)
{
	int ret;

	pt_lock(&ids.lock);
	if (ids.max && ids.count >= ids.max) {
		ret = -EAGAIN;
		goto out;
	}
	if (wanted >= 0) {
		struct id_mid *mid = ids.top[top_index((unsigned)wanted)];
		struct id_leaf *leaf = mid ? mid->leaf[mid_index((unsigned)wanted)] : NULL;
		if (leaf && bit_test(leaf->used, leaf_index((unsigned)wanted))) {
			ret = -EBUSY;
			goto out;
		}
		ret = reserve_slot((unsigned)wanted, t);
		/* Move the counter past the restored ID so that normal creation
		 * afterwards does not collide with the restored region. */
		if (ret >= 0)
			ids.next_id = ((unsigned)wanted + 1) & INT_MAX;
		goto out;
	}
	long id;
	if (ids.policy == PTIMER_IDS_DENSE) {
		id = next_free(0);
	} else {
		id = next_free(ids.next_id);
		if (id < 0 && ids.next_id)
			id = next_free(0); /* wrap at INT_MAX */
	}
	if (id < 0) {
		ret = -EAGAIN;
		goto out;
	}
	ret = reserve_slot((unsigned)id, t);
	if (ret >= 0 && ids.policy == PTIMER_IDS_LINUX)
		ids.next_id = ((unsigned)id + 1) & INT_MAX;
out:
	pt_unlock(&ids.lock);
	return ret;
}

/* Unlink the leaf holding id and, if that empties it, its mid; returns what
 * to free after a grace period.  ids.lock held. */
static void unlink_leaf(unsigned id, struct id_leaf **leafp, struct id_mid **midp)
{
	unsigned ti = top_index(id), mi = mid_index(id);
	struct id_mid *mid = ids.top[ti];

	*leafp = mid->leaf[mi];
	*midp = NULL;
	__atomic_store_n(&mid->leaf[mi], NULL, __ATOMIC_RELAXED);
	if (--mid->nleaves == 0) {
		__atomic_store_n(&ids.top[ti], NULL, __ATOMIC_RELAXED);
		*midp = mid;
	}
}

void pt_ids_remove(struct pt_timer *t)
{
	unsigned id = (unsigned)t->id;
	unsigned ti = top_index(id), mi = mid_index(id), li = leaf_index(id);
	struct id_leaf *free_leaf = NULL;
	struct id_mid *free_mid = NULL;

	pt_lock(&ids.lock);
	struct id_mid *mid = ids.top[ti];
	struct id_leaf *leaf = mid->leaf[mi];
	__atomic_store_n(&leaf->slot[li], NULL, __ATOMIC_RELAXED);
	bit_clear(leaf->used, li);
	bit_clear(mid->full, mi);
	bit_clear(ids.top_full, ti);
	ids.count--;
	if (--leaf->count == 0 && ids.linger != leaf) {
		/* Keep this one; let the previous lingering leaf go if it is
		 * still empty.  Memory stays within one leaf of the live set. */
		if (ids.linger && ids.linger->count == 0)
			unlink_leaf(ids.linger_id, &free_leaf, &free_mid);
		ids.linger = leaf;
		ids.linger_id = id;
	}
	pt_unlock(&ids.lock);
	/* Readers may still be walking the unlinked nodes: free them only
	 * after a grace period. */
	if (free_leaf)
		pt_defer_free(&free_leaf->limbo, free_leaf, free_obj);
	if (free_mid)
		pt_defer_free(&free_mid->limbo, free_mid, free_obj);
}

struct pt_timer *pt_ids_lookup(int id)
{
	if (id < 0)
		return NULL;
	struct id_mid *mid = __atomic_load_n(&ids.top[top_index((unsigned)id)], __ATOMIC_ACQUIRE);
	if (!mid)
		return NULL;
	struct id_leaf *leaf = __atomic_load_n(&mid->leaf[mid_index((unsigned)id)], __ATOMIC_ACQUIRE);
	if (!leaf)
		return NULL;
	struct pt_timer *t = __atomic_load_n(&leaf->slot[leaf_index((unsigned)id)], __ATOMIC_ACQUIRE);
	if (!t || !__atomic_load_n(&t->valid, __ATOMIC_ACQUIRE))
		return NULL;
	return t;
}

struct pt_timer *pt_ids_next(int *idp)
{
	if (*idp < 0)
		return NULL;
	for (unsigned id = (unsigned)*idp; id <= INT_MAX;) {
		struct id_mid *mid = __atomic_load_n(&ids.top[top_index(id)], __ATOMIC_ACQUIRE);
		if (!mid) {
			id = (top_index(id) + 1) << (MID_BITS + LEAF_BITS);
			if (id == 0)
				break;
			continue;
		}
		struct id_leaf *leaf = __atomic_load_n(&mid->leaf[mid_index(id)], __ATOMIC_ACQUIRE);
		if (!leaf) {
			id = (id | (LEAF_SLOTS - 1)) + 1;
			continue;
		}
		for (unsigned li = leaf_index(id); li < LEAF_SLOTS; li++, id++) {
			struct pt_timer *t = __atomic_load_n(&leaf->slot[li], __ATOMIC_ACQUIRE);
			if (t && __atomic_load_n(&t->valid, __ATOMIC_ACQUIRE)) {
				*idp = (int)id;
				return t;
			}
		}
	}
	return NULL;
}

int pt_ids_restore_mode(unsigned long mode)
{
	int ret = 0;

	pt_lock(&ids.lock);
	switch (mode) {
	case PTIMER_RESTORE_IDS_OFF:
	case PTIMER_RESTORE_IDS_ON:
		__atomic_store_n(&ids.restore, mode == PTIMER_RESTORE_IDS_ON, __ATOMIC_RELAXED);
		break;
	case PTIMER_RESTORE_IDS_GET:
		ret = ids.restore;
		break;
	default:
		ret = -EINVAL;
	}
	pt_unlock(&ids.lock);
	return ret;
}

bool pt_ids_restore_on(void)
{
	return __atomic_load_n(&ids.restore, __ATOMIC_RELAXED);
}

int pt_ids_set_policy(int policy)
{
	int ret = 0;

	if (policy != PTIMER_IDS_LINUX && policy != PTIMER_IDS_DENSE)
		return -EINVAL;
	pt_lock(&ids.lock);
	if (ids.count)
		ret = -EBUSY;
	else
		ids.policy = policy;
	pt_unlock(&ids.lock);
	return ret;
}

int pt_ids_get_policy(void)
{
	return __atomic_load_n(&ids.policy, __ATOMIC_RELAXED);
}

void pt_ids_set_max(size_t max)
{
	pt_lock(&ids.lock);
	ids.max = max;
	pt_unlock(&ids.lock);
}

size_t pt_ids_count(void)
{
	pt_lock(&ids.lock);
	size_t n = ids.count;
	pt_unlock(&ids.lock);
	return n;
}

/* ---- deferred frees ---- */

void pt_defer_free(struct pt_limbo *l, void *obj, void (*free_fn)(void *))
{
	l->obj = obj;
	l->free_fn = free_fn;
	pt_lock(&ids.limbo_lock);
	l->next = ids.limbo;
	ids.limbo = l;
	unsigned n = ++ids.nlimbo;
	pt_unlock(&ids.limbo_lock);
	if (n >= RECLAIM_BATCH)
		pt_reclaim(false);
}

/*
 * Free what was deferred, after a grace period.  The caller must not be in
 * a read-side section.  Batching keeps synchronize_rcu() (a membarrier
 * and a scan of the readers) off the per-delete cost.
 */
void pt_reclaim(bool force)
{
	pt_lock(&ids.limbo_lock);
	if (!force && ids.nlimbo < RECLAIM_BATCH) {
		pt_unlock(&ids.limbo_lock);
		return;
	}
	struct pt_limbo *l = ids.limbo;
	ids.limbo = NULL;
	ids.nlimbo = 0;
	pt_unlock(&ids.limbo_lock);
	if (!l)
		return;
	pt_synchronize_rcu();
	while (l) {
		struct pt_limbo *next = l->next;
		l->free_fn(l->obj);
		l = next;
	}
}

/* ---- fork ---- */

void pt_ids_fork_prepare(void)
{
	pt_lock(&ids.lock);
	pt_lock(&ids.limbo_lock);
}

void pt_ids_fork_parent(void)
{
	pt_unlock(&ids.limbo_lock);
	pt_unlock(&ids.lock);
}

/* The child has no timers (the kernel gives it a new signal_struct): free
 * the parent's, which nobody in the child can be reading, and start over
 * with a zero counter and restore mode off. */
void pt_ids_fork_child(void)
{
	for (unsigned ti = 0; ti < TOP_SLOTS; ti++) {
		struct id_mid *mid = ids.top[ti];
		if (!mid)
			continue;
		for (unsigned mi = 0; mi < MID_SLOTS; mi++) {
			struct id_leaf *leaf = mid->leaf[mi];
			if (!leaf)
				continue;
			for (unsigned li = 0; li < LEAF_SLOTS; li++) {
				struct pt_timer *t = leaf->slot[li];
				if (t) {
					pt_notify_fini(t);
					free(t);
				}
			}
			free(leaf);
		}
		free(mid);
	}
	for (struct pt_limbo *l = ids.limbo, *next; l; l = next) {
		next = l->next;
		l->free_fn(l->obj);
	}
	int policy = ids.policy;
	size_t max = ids.max;
	memset(&ids, 0, sizeof(ids));
	ids.policy = policy; /* a setting of the program, not state of the timers */
	ids.max = max;
}

/* At exit, free what waits for a grace period, so that memory checkers see
 * only what live timers hold (still reachable).  The dispatcher may still
 * be running: the grace period covers it. */
__attribute__((destructor)) static void ids_exit(void)
{
	pt_reclaim(true);
}
