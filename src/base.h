/* SPDX-License-Identifier: MIT */
/*
 * Clock bases and the expiry queue.
 *
 * A base is one clock's queue: a heap of armed timers ordered by expiry
 * and one kernel timer set to the earliest of them (a timerfd, or a kernel
 * CPU timer).  Its provider (clocks.c, cpu.c) supplies two operations:
 * read the clock, and set the kernel timer.  Every clock, the CPU clocks
 * included, is a base behind that one interface, as every clock is a
 * struct k_clock in the kernel.
 *
 * The heaps belong to the dispatcher thread alone, so they need no lock.
 * A thread that arms or disarms a timer changes the timer's own state
 * (under the timer's lock) and then calls pt_queue_update(): the timer's
 * queue node goes onto a lock-free inbox unless it is there already, and
 * if the new expiry is earlier than the one the base's kernel timer holds,
 * the kernel timer is set earlier.  Arming is thus a few stores and one
 * compare-and-swap, with no system call unless it moves the base's
 * earliest expiry forward, and threads arming different timers never wait
 * for one another.  The dispatcher drains the inbox (asking the core,
 * under each timer's lock, where that timer should now be queued), runs
 * what is due, and sets each kernel timer for what remains.
 *
 * The race between an arming thread and the dispatcher setting the kernel
 * timer is closed by a handshake: the dispatcher marks the base as being
 * programmed, then checks that the inbox is empty, then sets the kernel
 * timer; an arming thread pushes first, then reads the mark.  With both
 * sides sequentially consistent, either the dispatcher sees the push, or
 * the arming thread sees the mark (or the new expiry) and checks under the
 * base's program lock.
 *
 * Lock order: timer lock -> base program lock.  The dispatcher takes a
 * program lock only while holding no timer lock.
 */
#ifndef PTIMERS_BASE_H
#define PTIMERS_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "heap.h"
#include "lock.h"

#define PT_BASE_NONE 0xffffu
#define PT_MAX_BASES 4100u /* the fixed bases and up to 4096 CPU clocks */

/*
 * Embedded in every timer: the queue's part of it.  A zeroed node is on
 * no queue.  `next` is non-NULL exactly while the node is on the inbox
 * (the last one there points to an end marker); the owner sets it, the
 * dispatcher clears it, both under the owner's lock.  The six bytes of
 * padding after in_base are the owner's: the queue never writes them.
 */
struct pt_qnode {
	struct pt_qnode *next;  /* inbox link */
	struct pt_heap_node hn; /* dispatcher: heap position */
	uint16_t in_base;       /* dispatcher: whose heap holds it (hn.pos != 0) */
};
#define PT_QNODE_OWNER_BYTES (offsetof(struct pt_qnode, in_base) + sizeof(uint16_t))

struct pt_base;

struct pt_base_ops {
	/* The clock, in ns; -1 when it is gone (a CPU clock's thread). */
	int64_t (*now)(struct pt_base *b);
	/* Set the kernel timer to `when` on this clock (PT_NEVER: off). */
	void (*program)(struct pt_base *b, int64_t when);
	/* Optional: an arm at `key` did not need the kernel timer moved. */
	void (*armed)(struct pt_base *b, int64_t key);
	/* Optional, dispatcher: a timer at `key` is due; true keeps it
	 * (and what follows) queued for now, and the provider has asked for
	 * a wakeup (a CPU base waits for the kernel to say whose time ran). */
	bool (*hold)(struct pt_base *b, int64_t key);
	/* Its kernel timer is set pt_queue_lead() early (see below). */
	bool leads;
};

struct pt_base {
	const struct pt_base_ops *ops;
	struct pt_heap heap;  /* dispatcher only */
	int64_t programmed;   /* the kernel timer's expiry (see the top) */
	pt_lock_t plock;
	bool reset;           /* the kernel timer was cancelled: set it again */
	uint16_t index;
	/* CPU bases: the thread whose CPU time made it expire, and its signal
	 * mask (cpu.c writes them from its signal handler). */
	pid_t via;
	uint64_t via_mask;
};

/* The core's side, registered once: all called on the dispatcher. */
struct pt_queue_ops {
	void (*lock)(struct pt_qnode *n);
	void (*unlock)(struct pt_qnode *n);
	/* n's owner locked: the base n should be queued on and its key, or
	 * PT_BASE_NONE. */
	uint16_t (*want)(struct pt_qnode *n, int64_t *key);
	/* n, queued by its latest time (its key): the earliest time it may
	 * fire, PT_NEVER when that is its key (no leeway).  Read without
	 * n's owner's lock. */
	int64_t (*earliest)(struct pt_qnode *n);
	/* n was due on b at now (it is off its heap): act on it, taking n's
	 * owner's lock, and call pt_queue_settle() before letting it go. */
	void (*expire)(struct pt_qnode *n, struct pt_base *b, int64_t now);
	/* The size of the object a node starts (its cache lines are brought
	 * in before expire() is called on it). */
	size_t span;
};
void pt_queue_set_ops(const struct pt_queue_ops *ops);

/* Dispatcher, n's owner locked: queue n where want() now says. */
void pt_queue_settle(struct pt_qnode *n);

/* A provider's base, ready for use: returns its index, or -EAGAIN when
 * every slot is taken.  fixed >= 0 asks for that index. */
int pt_base_register(struct pt_base *b, const struct pt_base_ops *ops, int fixed);
int64_t pt_base_now(uint16_t index);

/* The registered bases by index (base.c's; read through pt_base_get). */
extern struct pt_base *pt_base_table[PT_MAX_BASES];

/*
 * A base's clock as the engine reads it: the kernel's clock plus the
 * base's shift, zero until the process is restored by CRIU without the
 * clocks it had (a CPU clock starts again near zero in the new process; a
 * monotonic one differs by the gap when restored without a time
 * namespace, or on another machine).  The providers notice (clocks.c,
 * cpu.c) and set the shift so that every deadline keeps the time it had
 * left, as CRIU keeps a kernel timer's.  Kernel timers are set on the
 * kernel's clock: the shift is taken off again.  Published (layout.h).
 */
extern int64_t pt_base_shift[PT_MAX_BASES];

static inline int64_t pt_base_shift_of(uint16_t index)
{
	return __atomic_load_n(&pt_base_shift[index], __ATOMIC_RELAXED);
}

static inline struct pt_base *pt_base_get(uint16_t index)
{
	return __atomic_load_n(&pt_base_table[index], __ATOMIC_ACQUIRE);
}

#define PT_BASE_PROGRAMMING INT64_MIN /* the dispatcher is setting the kernel timer */

void pt_queue_update_slow(struct pt_qnode *n, uint16_t base, int64_t key);

/* Owner, under its lock, after a change of what want() reports: have the
 * dispatcher look at n, and make sure `base` wakes by `key` (PT_BASE_NONE:
 * n leaves its queue; nothing to wake for).  Inline, the case of every
 * re-arming and disarming before the dispatcher has looked: n is on the
 * inbox already, and the base's kernel timer is set no later than key
 * (the same reads, in the same order, as the slow path makes). */
static inline void pt_queue_update(struct pt_qnode *n, uint16_t base, int64_t key)
{
	if (__atomic_load_n(&n->next, __ATOMIC_RELAXED) != NULL) {
		if (base == PT_BASE_NONE)
			return;
		struct pt_base *b = pt_base_get(base);
		int64_t p = __atomic_load_n(&b->programmed, __ATOMIC_SEQ_CST);
		if (p == PT_BASE_PROGRAMMING || (key >= p && !b->ops->armed))
			return; /* programming: the dispatcher looks at the inbox after */
	}
	pt_queue_update_slow(n, base, key);
}

/* Is n still referenced by the queue (queued, or on the inbox)? */
bool pt_queue_busy(const struct pt_qnode *n);

/* A provider's kernel timer went off or was cancelled: it is not set any
 * more, whatever the base last asked for; the dispatcher sets it again. */
void pt_base_spent(struct pt_base *b);

/*
 * Waking early.  A sleeping thread runs some tens of microseconds after
 * its kernel timer expires; the engine's chain (kernel timer, dispatcher,
 * signal, the program's thread) would pay that twice where the kernel's
 * own timer (kernel timer, signal, the program's thread) pays it once.
 * So a provider sets its kernel timer pt_queue_lead() before the expiry,
 * reports how late each wakeup was (pt_queue_woke()), and the dispatcher
 * spins the remaining few microseconds: it is running when the expiry is
 * due.  The lead is learned: a high percentile of the recent wakeup
 * delays, within bounds.  And all spinning is paid from a budget that
 * accrues at PTIMERS_SPIN percent (default 2) of the time going by:
 * without enough for the lead, the kernel timer is set for the expiry
 * itself, and nothing spins.  So the spinning never takes more than that
 * share of a CPU, however many timers fire; PTIMERS_SPIN=0 turns it off
 * (the dispatcher sleeps to each expiry, and the program's signal comes
 * a wakeup later).
 * Dispatcher only.
 */
int64_t pt_queue_lead(void);
void pt_queue_woke(int64_t late_ns);

/* The dispatcher's work after every wakeup: drain the inbox, fire what
 * is due, set the kernel timers. */
void pt_queue_run(void);

/* Bytes the heaps hold. */
uint64_t pt_queue_bytes(void);

void pt_queue_fork_prepare(void);
void pt_queue_fork_parent(void);
void pt_queue_fork_child(void);
#endif
