/* SPDX-License-Identifier: MIT */
/*
 * The pool (see pool.h).  A chunk is owned by at most one thread, which
 * allocates from it and frees into it without atomic instructions (its
 * local list).  Any other free into a chunk is a push onto the chunk's
 * remote stack: one compare-and-swap on a word holding the top object's
 * index and the stack's length.  The owner takes the whole remote stack
 * with one exchange when its local list runs dry, so the stack is never
 * popped one by one and has no ABA problem.
 *
 * Chunks that nobody owns and that have free objects sit on the partial
 * list, from which a thread whose chunk is used up takes its next one.
 * "listed" is claimed with an exchange by whoever puts a chunk there (the
 * releasing owner, or the first remote free into an unowned chunk), so a
 * chunk is listed once; whoever takes it off sets "owned" first, under the
 * pool lock, and a remote freer that raced with it sees that under the
 * same lock.  Every access to owned, listed and the remote stack is
 * sequentially consistent: a release that misses a concurrent remote free
 * is then always followed by that freer listing the chunk itself.
 *
 * A small pool maps each chunk by itself.  Once it holds HUGE_AFTER
 * chunks, it carves new ones out of 2 MiB arenas that the kernel is asked
 * to back with transparent huge pages (MADV_HUGEPAGE; the system's THP
 * setting, or prctl(PR_SET_THP_DISABLE), says no for the process): the
 * timers of a million then sit in 50 TLB entries instead of 24,000, and
 * the kernel faults them in 2 MiB at a time (measured on a virtual
 * machine: creating a million took about half the time, restoring a
 * million sparse IDs a third less).  A program with fewer timers never
 * gets a 2 MiB page.  What an arena has not handed out yet counts as the
 * pool's, and goes back once the pool is small again.
 *
 * Lock order: the pool lock is a leaf.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "lock.h"
#include "layout.h"
#include "lsan.h"
#include "pool.h"
#include "rcu.h"
#include "sys.h"

#define CHUNK_SIZE (64u << 10)
#define ARENA_SIZE (2u << 20)
#define HUGE_AFTER (ARENA_SIZE / CHUNK_SIZE) /* chunks mapped one by one first */
#define HEADER_SIZE 128u
#define TRIM_EVERY 16 /* empty chunks gathered between trim requests */
#define SEQ __ATOMIC_SEQ_CST

struct chunk {
	struct chunk *next, *prev; /* every chunk, under the pool lock */
	struct chunk *pnext;       /* the partial list, under the pool lock */
	uint64_t remote;           /* index+1 of the top (16 bits) | length << 16 */
	uint16_t local_head;       /* index+1, 0: empty; owner only */
	uint16_t local_count;      /* owner writes; others read when unowned */
	uint16_t bump;             /* objects from here on were never handed out */
	uint8_t owned;
	uint8_t listed;
	uint32_t magic;            /* PT_CHUNK_MAGIC while a chunk: readers outside check it */
	struct rcu_head rcu;
};

_Static_assert(sizeof(struct chunk) <= HEADER_SIZE, "chunk header");

static struct {
	pt_lock_t lock;
	size_t size, link;
	uint16_t nobj;
	struct chunk *all;
	struct chunk *partial;
	size_t nchunks;
	char *arena;       /* what the current arena has not handed out, up to */
	char *arena_end;   /* here; both under the lock */
	size_t arena_left; /* arena_end - arena, for pt_pool_bytes() */
	unsigned empty; /* empty chunks seen since the last trim (a hint) */
	void (*trim_hook)(void);
	pthread_key_t key;
} pool = { .lock = PT_LOCK_INIT };

static __thread struct chunk *current __attribute__((tls_model("initial-exec")));

static inline struct chunk *chunk_of(void *obj)
{
	return (struct chunk *)((uintptr_t)obj & ~(uintptr_t)(CHUNK_SIZE - 1));
}

static inline char *obj_at(struct chunk *c, unsigned idx1)
{
	return (char *)c + HEADER_SIZE + (size_t)(idx1 - 1) * pool.size;
}

static inline uint16_t idx1_of(struct chunk *c, void *obj)
{
	return (uint16_t)(((char *)obj - (char *)c - HEADER_SIZE) / pool.size + 1);
}

/* The link lives in the object: late readers may look at those bytes, so
 * they are written and read as relaxed atomics. */
static inline void set_link(struct chunk *c, uint16_t idx1, uint16_t next)
{
	__atomic_store_n((uint16_t *)(obj_at(c, idx1) + pool.link), next, __ATOMIC_RELAXED);
}

static inline uint16_t get_link(struct chunk *c, uint16_t idx1)
{
	return __atomic_load_n((uint16_t *)(obj_at(c, idx1) + pool.link), __ATOMIC_RELAXED);
}

static inline unsigned rd16(const uint16_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void wr16(uint16_t *p, unsigned v)
{
	__atomic_store_n(p, (uint16_t)v, __ATOMIC_RELAXED);
}

static void release(struct chunk *c);

static void thread_exit(void *arg)
{
	struct chunk *c = arg;

	if (c) {
		pt_lock(&pool.lock);
		release(c);
		pt_unlock(&pool.lock);
	}
}

void pt_pool_init(size_t obj_size, size_t link_offset)
{
	pool.size = obj_size;
	pool.link = link_offset;
	pool.nobj = (uint16_t)((CHUNK_SIZE - HEADER_SIZE) / obj_size);
	pthread_key_create(&pool.key, thread_exit);
}

void pt_pool_set_trim_hook(void (*fn)(void))
{
	__atomic_store_n(&pool.trim_hook, fn, __ATOMIC_RELEASE);
}

static size_t free_count(struct chunk *c)
{
	return rd16(&c->local_count) + (__atomic_load_n(&c->remote, SEQ) >> 16) + pool.nobj -
	       rd16(&c->bump);
}

static void set_arena(char *start, char *end)
{
	pool.arena = start;
	pool.arena_end = end;
	__atomic_store_n(&pool.arena_left, (size_t)(end - start), __ATOMIC_RELAXED);
}

/* The memory of a new chunk: from an arena once the pool is big (a new
 * arena when the current one is used up), else mapped by itself, or
 * NULL.  Pool lock held. */
static char *chunk_memory(void)
{
	if (pool.nchunks < HUGE_AFTER)
		return pt_sys_map_aligned(CHUNK_SIZE, CHUNK_SIZE);
	if (pool.arena == pool.arena_end) {
		char *a = pt_sys_map_aligned(ARENA_SIZE, ARENA_SIZE);
		if (!a)
			return pt_sys_map_aligned(CHUNK_SIZE, CHUNK_SIZE); /* no room for 4 MiB: a chunk may still fit */
		(void)madvise(a, ARENA_SIZE, MADV_HUGEPAGE); /* EINVAL without THP: small pages */
		set_arena(a, a + ARENA_SIZE);
	}
	char *p = pool.arena;
	set_arena(p + CHUNK_SIZE, pool.arena_end);
	return p;
}

/* A 64 KiB chunk aligned to its size, zero-filled.  Pool lock held. */
static struct chunk *new_chunk(void)
{
	char *aligned = chunk_memory();

	if (!aligned)
		return NULL;
	struct chunk *c = (struct chunk *)aligned;
	LSAN_ROOT(c, CHUNK_SIZE);
	c->magic = PT_CHUNK_MAGIC;
	c->next = pool.all;
	if (pool.all)
		pool.all->prev = c;
	pool.all = c;
	__atomic_add_fetch(&pool.nchunks, 1, __ATOMIC_RELAXED);
	return c;
}

/* Pool lock held. */
static void list_partial(struct chunk *c)
{
	c->pnext = pool.partial;
	pool.partial = c;
}

/* Give up ownership of a chunk.  Pool lock held. */
static void release(struct chunk *c)
{
	__atomic_store_n(&c->owned, 0, SEQ);
	if (free_count(c) && !__atomic_exchange_n(&c->listed, 1, SEQ))
		list_partial(c);
}

/* A chunk to allocate from: a partial one, or a new one.  Pool lock held. */
static struct chunk *acquire(void)
{
	struct chunk *c = pool.partial;

	if (c) {
		pool.partial = c->pnext;
		__atomic_store_n(&c->owned, 1, SEQ);
		__atomic_store_n(&c->listed, 0, SEQ);
		return c;
	}
	pt_slice_pause(); /* mmap: outside the extension */
	c = new_chunk();
	pt_slice_resume();
	if (c)
		__atomic_store_n(&c->owned, 1, SEQ);
	return c;
}

/* The owner's allocation from c, or NULL when c has nothing left. */
static void *take(struct chunk *c)
{
	unsigned head = c->local_head;

	if (!head) {
		uint64_t r = __atomic_exchange_n(&c->remote, 0, SEQ);
		head = r & 0xffff;
		wr16(&c->local_count, (unsigned)(r >> 16));
	}
	if (head) {
		c->local_head = get_link(c, (uint16_t)head);
		wr16(&c->local_count, c->local_count - 1);
		return obj_at(c, head);
	}
	if (c->bump < pool.nobj) {
		wr16(&c->bump, c->bump + 1u);
		return obj_at(c, c->bump);
	}
	return NULL;
}

void *pt_pool_alloc(void)
{
	struct chunk *c = current;
	void *obj;

	if (c && (obj = take(c)) != NULL)
		return obj;
	pt_lock(&pool.lock);
	if (c)
		release(c);
	c = acquire();
	pt_unlock(&pool.lock);
	current = c;
	pthread_setspecific(pool.key, c);
	return c ? take(c) : NULL;
}

static void remote_free(struct chunk *c, uint16_t idx1)
{
	uint64_t old = __atomic_load_n(&c->remote, SEQ), new;

	do {
		set_link(c, idx1, (uint16_t)(old & 0xffff));
		new = idx1 | (((old >> 16) + 1) << 16);
	} while (!__atomic_compare_exchange_n(&c->remote, &old, new, false, SEQ, SEQ));
	if (__atomic_load_n(&c->owned, SEQ))
		return;
	if (!__atomic_exchange_n(&c->listed, 1, SEQ)) {
		pt_lock(&pool.lock);
		if (__atomic_load_n(&c->owned, SEQ))
			__atomic_store_n(&c->listed, 0, SEQ); /* taken meanwhile */
		else
			list_partial(c);
		pt_unlock(&pool.lock);
	}
	if (free_count(c) == pool.nobj &&
	    __atomic_add_fetch(&pool.empty, 1, __ATOMIC_RELAXED) % TRIM_EVERY == 0) {
		void (*hook)(void) = __atomic_load_n(&pool.trim_hook, __ATOMIC_ACQUIRE);
		if (hook)
			hook();
	}
}

void pt_pool_free(void *obj)
{
	struct chunk *c = chunk_of(obj);
	uint16_t idx1 = idx1_of(c, obj);

	if (c == current) {
		set_link(c, idx1, c->local_head);
		c->local_head = idx1;
		wr16(&c->local_count, c->local_count + 1u);
		return;
	}
	remote_free(c, idx1);
}

bool pt_pool_trim_wanted(void)
{
	return __atomic_load_n(&pool.empty, __ATOMIC_RELAXED) != 0;
}

static void unmap_chunk(struct rcu_head *head)
{
	PT_RCU_CALLBACK();
	struct chunk *c = (struct chunk *)((char *)head - offsetof(struct chunk, rcu));
	LSAN_UNROOT(c, CHUNK_SIZE);
	munmap(c, CHUNK_SIZE);
}

static bool chunk_busy(struct chunk *c, bool (*busy)(void *obj))
{
	for (unsigned i = 1; i <= c->bump; i++)
		if (busy(obj_at(c, i)))
			return true;
	return false;
}

size_t pt_pool_trim(bool (*busy)(void *obj))
{
	struct chunk *empty = NULL, **pp;
	size_t released = 0;

	__atomic_store_n(&pool.empty, 0, __ATOMIC_RELAXED);
	/* Take every unowned, wholly free chunk off the partial list.  With
	 * all its objects free nobody can free into it, and off the list
	 * nobody can allocate from it. */
	pt_lock(&pool.lock);
	for (pp = &pool.partial; *pp;) {
		struct chunk *c = *pp;
		if (!__atomic_load_n(&c->owned, SEQ) && free_count(c) == pool.nobj) {
			*pp = c->pnext;
			c->pnext = empty;
			empty = c;
		} else {
			pp = &c->pnext;
		}
	}
	pt_unlock(&pool.lock);
	/* Whether the caller still refers to one of their objects is asked
	 * outside the lock: it may take a while. */
	while (empty) {
		struct chunk *c = empty;
		empty = c->pnext;
		bool keep = chunk_busy(c, busy);
		pt_lock(&pool.lock);
		if (keep) {
			list_partial(c);
		} else {
			if (c->prev)
				c->prev->next = c->next;
			else
				pool.all = c->next;
			if (c->next)
				c->next->prev = c->prev;
			__atomic_sub_fetch(&pool.nchunks, 1, __ATOMIC_RELAXED);
			released++;
		}
		pt_unlock(&pool.lock);
		if (!keep)
			pt_call_rcu(&c->rcu, unmap_chunk); /* late readers may still look */
	}
	/* Small again: what the arena never handed out goes back (no reader
	 * can know of it). */
	pt_lock(&pool.lock);
	char *rest = pool.arena;
	size_t left = (size_t)(pool.arena_end - pool.arena);
	if (pool.nchunks >= HUGE_AFTER || !left)
		rest = NULL;
	else
		set_arena(NULL, NULL);
	pt_unlock(&pool.lock);
	if (rest)
		munmap(rest, left);
	return released;
}

size_t pt_pool_bytes(void)
{
	return __atomic_load_n(&pool.nchunks, __ATOMIC_RELAXED) * CHUNK_SIZE +
	       __atomic_load_n(&pool.arena_left, __ATOMIC_RELAXED);
}

void pt_pool_fork_prepare(void)
{
	pt_lock(&pool.lock);
}

void pt_pool_fork_parent(void)
{
	pt_unlock(&pool.lock);
}

void pt_pool_fork_child(void)
{
	for (struct chunk *c = pool.all, *next; c; c = next) {
		next = c->next;
		LSAN_UNROOT(c, CHUNK_SIZE);
		munmap(c, CHUNK_SIZE);
	}
	if (pool.arena != pool.arena_end)
		munmap(pool.arena, (size_t)(pool.arena_end - pool.arena));
	set_arena(NULL, NULL);
	pool.all = pool.partial = NULL;
	pool.nchunks = 0;
	pool.empty = 0;
	current = NULL;
	pthread_setspecific(pool.key, NULL);
	pt_lock_reset(&pool.lock);
}

void pt_pool_describe(struct pt_root *r)
{
	r->chunks = (uint64_t)(uintptr_t)&pool.all;
	r->chunk_size = CHUNK_SIZE;
	r->chunk_header = HEADER_SIZE;
	r->chunk_next_off = offsetof(struct chunk, next);
	r->chunk_bump_off = offsetof(struct chunk, bump);
	r->chunk_magic_off = offsetof(struct chunk, magic);
	r->timer_size = (uint32_t)pool.size;
}
