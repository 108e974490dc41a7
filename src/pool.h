/* SPDX-License-Identifier: MIT */
/*
 * A pool of fixed-size, type-stable objects: the memory of a freed object
 * stays an object of the same kind until its whole chunk is given back,
 * and that happens only after an RCU grace period.  A reader that found an
 * object under rcu_read_lock() may therefore lock it and look at it even
 * if it was freed (and perhaps handed out again) meanwhile; it must check,
 * under the object's own lock or seqcount, that it is the one it looked
 * for.  That is the kernel's SLAB_TYPESAFE_BY_RCU, and it spares every
 * delete a grace period: an object is reused at once.
 *
 * The pool never writes an object's bytes except the two at link_offset
 * (its free-list link): whatever else the caller left in a freed object
 * (a lock word, a "valid" flag) stays there for late readers to see.
 * Fresh objects are zero-filled.
 *
 * Objects come in 64 KiB chunks.  Each thread allocates from a chunk of
 * its own (no atomic instruction on that path) and frees into it the same
 * way; frees into other chunks are one compare-and-swap.  Chunks in which
 * every object is free are given back to the system by pt_pool_trim().
 *
 * The engine has one pool: its timers.
 */
#ifndef PTIMERS_POOL_H
#define PTIMERS_POOL_H

#include <stdbool.h>
#include <stddef.h>

/* Once, before any allocation: the object size (a multiple of 8) and the
 * offset of two bytes the pool may use while an object is free. */
void pt_pool_init(size_t obj_size, size_t link_offset);

/* A zero-filled or previously freed object, or NULL when out of memory. */
void *pt_pool_alloc(void);
void pt_pool_free(void *obj);

/* Called (from any thread, never inside a lock of the pool) when enough
 * empty chunks have gathered to be worth a trim. */
void pt_pool_set_trim_hook(void (*fn)(void));
bool pt_pool_trim_wanted(void);

/* Give back every chunk whose objects are all free and none busy (busy:
 * still referenced by its caller, e.g. queued).  Each goes back to the
 * system after a grace period.  Returns the number of chunks released. */
size_t pt_pool_trim(bool (*busy)(void *obj));

/* Bytes held from the system, and the object size. */
size_t pt_pool_bytes(void);

/* Where the chunks are, for readers outside the process (layout.h). */
struct pt_root;
void pt_pool_describe(struct pt_root *r);

void pt_pool_fork_prepare(void);
void pt_pool_fork_parent(void);
void pt_pool_fork_child(void); /* the child holds no objects: all is freed */
#endif
