/* SPDX-License-Identifier: MIT */
/*
 * The per-process timer ID space: IDs 0..INT_MAX, each naming one object
 * (a timer; this file never looks inside it).
 *
 * Memory ordering: pt_ids_alloc() publishes the object pointer with
 * release order, and lookups read it with acquire order, so a reader that
 * finds an object sees what was written to it before the allocation.  The
 * object is not yet in use then (the caller publishes its own "valid"
 * flag when it is fully built); lookups and iteration run under
 * rcu_read_lock() and take no lock.  Allocation runs in a read-side
 * section of its own too: it may meet a node that a free elsewhere is
 * retiring.  Allocation and freeing are lock-free for IDs the policies
 * hand out; only restore-mode IDs in sparse regions and the creation or
 * removal of whole tree nodes take a lock.
 */
#ifndef PTIMERS_IDS_H
#define PTIMERS_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { PT_IDS_LINUX = 0, PT_IDS_DENSE = 1 };

/* Allocate an ID for obj under the current policy, or exactly `wanted`
 * when wanted >= 0 (restore mode).  Returns the ID, or -EAGAIN (no ID
 * free, or the cap reached), -EBUSY (wanted is in use), -ENOMEM.  *gen
 * (if not NULL) gets the allocation's creation number: see pt_ids_made(). */
int pt_ids_alloc(void *obj, int wanted, uint32_t *gen);

/* Allocate ids[k] to objs[k] for every k, or none: the IDs must be
 * ascending (ids[k] at (char *)idv + k * stride).  0, or -EBUSY with *bad
 * the index of an ID in use, -EAGAIN (the cap), -ENOMEM.  Builds each
 * leaf once, where one claim at a time would copy a sparse leaf per ID. */
int pt_ids_alloc_batch(void *const *objs, const int *idv, size_t stride, size_t n, size_t *bad,
		       uint32_t *gen); /* *gen + 1 + k: objs[k]'s creation number */

/* Give back an ID allocated to obj. */
void pt_ids_free(int id);

/* The tree's first two levels and a dense leaf, as far as a lookup reads
 * them: the start of ids.c's own structures (it asserts so), here so that
 * the lookup of every call on a timer is inline. */
#define PT_IDS_LEAF_BITS 10
#define PT_IDS_MID_BITS 11
#define PT_IDS_TOP_BITS 10
#define PT_IDS_DENSE 1

struct pt_ids_mid_view {
	void *leaf[1u << PT_IDS_MID_BITS];
};

struct pt_ids_dense_view {
	uint32_t kind;
	uint32_t count;
	uint64_t used[(1u << PT_IDS_LEAF_BITS) / 64];
	void *slot[1u << PT_IDS_LEAF_BITS];
};

extern struct pt_ids_mid_view *pt_ids_top[1u << PT_IDS_TOP_BITS];

/* A sparse leaf's object at offset li, or NULL. */
void *pt_ids_lookup_sparse(void *leaf, unsigned li);

/* The leaf that holds this ID, or NULL.  Caller in an RCU read-side
 * section. */
static inline void *pt_ids_leaf(int id)
{
	if (id < 0)
		return NULL;
	unsigned u = (unsigned)id;
	struct pt_ids_mid_view *m =
		__atomic_load_n(&pt_ids_top[u >> (PT_IDS_MID_BITS + PT_IDS_LEAF_BITS)], __ATOMIC_ACQUIRE);
	if (!m)
		return NULL;
	return __atomic_load_n(&m->leaf[(u >> PT_IDS_LEAF_BITS) & ((1u << PT_IDS_MID_BITS) - 1)],
			       __ATOMIC_ACQUIRE);
}

/* The slot of this ID in a dense leaf, or NULL (no leaf, or a sparse one).
 * Caller in an RCU read-side section. */
static inline void *const *pt_ids_dense_slot(int id)
{
	void *leaf = pt_ids_leaf(id);
	if (!leaf || *(const uint32_t *)leaf != PT_IDS_DENSE)
		return NULL;
	return &((struct pt_ids_dense_view *)leaf)->slot[(unsigned)id & ((1u << PT_IDS_LEAF_BITS) - 1)];
}

/* The object with this ID, or NULL.  Caller in an RCU read-side section. */
static inline void *pt_ids_lookup(int id)
{
	void *leaf = pt_ids_leaf(id);
	if (!leaf)
		return NULL;
	unsigned li = (unsigned)id & ((1u << PT_IDS_LEAF_BITS) - 1);
	if (*(const uint32_t *)leaf == PT_IDS_DENSE)
		return __atomic_load_n(&((struct pt_ids_dense_view *)leaf)->slot[li], __ATOMIC_ACQUIRE);
	return pt_ids_lookup_sparse(leaf, li);
}

/* The object with the lowest ID >= *id (which is updated), or NULL.
 * Caller in an RCU read-side section. */
void *pt_ids_next(int *id);

/* PR_TIMER_CREATE_RESTORE_IDS: OFF/ON return 0, GET the mode, else
 * -EINVAL. */
int pt_ids_restore_mode(unsigned long mode);
bool pt_ids_restore_on(void);

/* Policy: only while no ID is allocated (-EBUSY), -EINVAL if unknown. */
int pt_ids_set_policy(int policy);
int pt_ids_get_policy(void);

/* Cap on allocated IDs, 0 for none. */
void pt_ids_set_max(size_t max);
size_t pt_ids_count(void);

/* Creation numbers: every allocation takes the next (wrapping at 2^32),
 * in the same atomic add that counts it.  An object whose number is at
 * most what pt_ids_made() said when a listing began was being made, or
 * alive, then: a listing that leaves out later ones never holds more than
 * were alive at its start.  The word holding both halves (the count low,
 * the number high) is published for readers outside the process. */
uint32_t pt_ids_made(void);
const uint64_t *pt_ids_count_word(void);

/* Where the count word, the counter and the policy are (layout.h). */
struct pt_root;
void pt_ids_describe(struct pt_root *r);

/* The Linux policy's counter: the next ID it will try. */
unsigned pt_ids_counter(void);
void pt_ids_set_counter(unsigned next);

/* Bytes the tree holds. */
size_t pt_ids_bytes(void);

void pt_ids_fork_prepare(void);
void pt_ids_fork_parent(void);
/* The child has no timers: free the tree (the objects are the caller's),
 * counter back to 0, restore mode off; policy and cap stay. */
void pt_ids_fork_child(void);
#endif
