/* SPDX-License-Identifier: MIT */
/*
 * The memory of the ID space's nodes (ids.c's mids and leaves).
 *
 * A node comes from malloc, except while the calling thread runs a batch
 * (a restore of many IDs at once): then it is carved from a region, one
 * mapping sized for the batch and asked for transparent huge pages.  On
 * a virtual machine, where every page fault and TLB miss costs a trip
 * through the hypervisor, the IDs of a million-timer restore (random ones:
 * 780,000 leaves, 1,024 mids) took 37-44 ms that way, 167 ms with a
 * malloc each and a 4 KiB fault every hundred leaves.
 *
 * A region counts the nodes on each of its 4 KiB pages: a page whose last
 * node is freed goes back to the system (MADV_DONTNEED), and the region is
 * unmapped with its last node, so the memory still follows the IDs in use.
 * Memory behind a batch's cursor is never handed out again.
 *
 * Every call may be made from any thread.  pt_nodes_free() and
 * pt_nodes_shrink() are told the size the node has (its kind says it).
 */
#ifndef PTIMERS_NODES_H
#define PTIMERS_NODES_H

#include <stdbool.h>
#include <stddef.h>

/* n bytes: zero-filled when zeroed (a region's always are), or NULL. */
void *pt_nodes_alloc(size_t n, bool zeroed);
void pt_nodes_free(void *p, size_t n);

/* A node not yet published was made smaller, from n to to bytes. */
void pt_nodes_shrink(void *p, size_t n, size_t to);

/* Is p in a region (not malloc's)? */
bool pt_nodes_in_region(const void *p);

/* The calling thread's next allocations, up to about bytes in all, come
 * from a region of their own (false: from malloc, as without a batch);
 * end gives back what the batch did not use. */
bool pt_nodes_batch_begin(size_t bytes);
void pt_nodes_batch_end(void);

/* What regions hold beyond the bytes of their live nodes (headers, the
 * slack of pages partly in use), for the statistics. */
size_t pt_nodes_overhead(void);

/* The child of fork(): every region unmapped (the ID space frees its
 * malloc'd nodes and forgets the rest). */
void pt_nodes_fork_child(void);

#endif
