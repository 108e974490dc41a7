/* SPDX-License-Identifier: MIT */
/*
 * CPU clocks (cpu.h).
 *
 * Only the kernel sees CPU time pass, so each CPU clock in use is a base
 * whose kernel timer is a kernel CPU timer, armed at the earliest expiry
 * among the engine's timers on that clock, however many there are.  Its
 * signal is the engine's (dispatch.h), sent process-directed: the kernel
 * then hands it to the thread whose CPU time made it expire, exactly as
 * it picks the receiver of a process-CPU timer's signal.  The engine's
 * handler notes that thread and its signal mask in the base and wakes the
 * dispatcher, which fires what is due; the core sends each timer's own
 * signal to the same thread (or to the process, when that thread blocks
 * it), as the kernel would.  The hooks keep the engine's signal out of
 * every mask the program sets through libc, so that thread always takes
 * it, whatever it blocks of its own.
 *
 * A signal no program thread accepts still arrives: the dispatcher waits
 * for it too (the receiver is then unknown and the timers' signals go to
 * the process).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "base.h"
#include "cpu.h"
#include "dispatch.h"
#include "lock.h"
#include "private.h"
#include "sys.h"

#define MAX_CLOCKS (PT_MAX_BASES - 4)
#define RESTORED_BACK 1000000 /* ns a CPU clock went back: a restore */

struct cpu_clock {
	struct pt_base b;         /* first: the handler finds the clock from it */
	clockid_t clock;          /* explicit: no "calling thread" IDs */
	int users;                /* timers created on it */
	int ktimer;               /* the kernel timer, -1 when unused */
	int64_t seen;             /* the latest reading, on the engine's timeline */
};

static struct {
	pt_lock_t lock;           /* users, slots */
	struct cpu_clock *slot[MAX_CLOCKS]; /* never freed: the handler reads them */
	unsigned nslots;
} cpu = { .lock = PT_LOCK_INIT };

bool pt_cpu_is_clock(clockid_t c)
{
	return c == CLOCK_PROCESS_CPUTIME_ID || c == CLOCK_THREAD_CPUTIME_ID ||
	       (c < 0 && CPUCLOCK_WHICH(c) != 3);
}

/* The clock a CPU clock ID means, made explicit. */
static clockid_t canonical(clockid_t c)
{
	if (c == CLOCK_PROCESS_CPUTIME_ID)
		return MAKE_PROCESS_CPUCLOCK(0, CPUCLOCK_SCHED);
	if (c == CLOCK_THREAD_CPUTIME_ID)
		return MAKE_THREAD_CPUCLOCK(pt_gettid(), CPUCLOCK_SCHED);
	if (CPUCLOCK_PID(c) == pt_pid && !(c & CPUCLOCK_PERTHREAD_MASK))
		return MAKE_PROCESS_CPUCLOCK(0, CPUCLOCK_WHICH(c));
	if (CPUCLOCK_PID(c) == 0 && (c & CPUCLOCK_PERTHREAD_MASK))
		return MAKE_THREAD_CPUCLOCK(pt_gettid(), CPUCLOCK_WHICH(c));
	return c;
}

int pt_cpu_check(clockid_t c)
{
	struct timespec ts;

	/* The kernel's own test (pid_for_clock()): a thread clock must be
	 * of this process, a process clock of a live process. */
	return clock_getres(canonical(c), &ts) == 0 ? 0 : -EINVAL;
}

/* ---- the provider ---- */

/*
 * The clock read lower than the engine had seen: the process was restored
 * (CRIU), and its CPU time (and its threads') started again near zero.
 * The engine's deadlines keep the CPU time they had left: the kernel timer
 * of the base, which CRIU re-armed with the time it had left, says how
 * far the engine's clock had got; without one armed, the latest reading
 * does.  Returns the clock on the engine's new timeline.
 */
static int64_t rebase(struct cpu_clock *c, int64_t raw, int64_t old_shift, int64_t seen)
{
	int64_t now = seen;
	int64_t programmed = __atomic_load_n(&c->b.programmed, __ATOMIC_SEQ_CST);
	int kt = __atomic_load_n(&c->ktimer, __ATOMIC_RELAXED);
	struct itimerspec cur;
	if (kt >= 0 && programmed != PT_NEVER && programmed != PT_BASE_PROGRAMMING &&
	    syscall(SYS_timer_gettime, kt, &cur) == 0 && pt_ts_to_ns(&cur.it_value) > 0)
		now = programmed - pt_ts_to_ns(&cur.it_value);
	int64_t want = now - raw;
	if (!__atomic_compare_exchange_n(&pt_base_shift[c->b.index], &old_shift, want, false,
					 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		return raw + old_shift; /* another thread rebased it first: its view */
	__atomic_store_n(&c->seen, now, __ATOMIC_RELAXED);
	pt_base_spent(&c->b); /* its kernel timer set again, on the new clock */
	pt_dispatch_kick();
	return now;
}

/* A CPU clock is read by a system call (the vDSO has none), often under
 * a timer's lock: outside the time-slice extension. */
static int64_t cpu_now(struct pt_base *b)
{
	struct cpu_clock *c = (struct cpu_clock *)b;
	pt_slice_pause();
	int64_t raw = pt_clock_ns(__atomic_load_n(&c->clock, __ATOMIC_RELAXED));
	int64_t now = raw;
	if (raw >= 0) {
		int64_t shift = pt_base_shift_of(b->index), seen = __atomic_load_n(&c->seen, __ATOMIC_RELAXED);
		now = raw + shift;
		if (now < seen - RESTORED_BACK) {
			now = rebase(c, raw, shift, seen);
		} else {
			while (now > seen && !__atomic_compare_exchange_n(&c->seen, &seen, now, true,
									  __ATOMIC_RELAXED, __ATOMIC_RELAXED))
				;
		}
	}
	pt_slice_resume();
	return now;
}

static void cpu_program(struct pt_base *b, int64_t when)
{
	struct cpu_clock *c = (struct cpu_clock *)b;

	int kt = __atomic_load_n(&c->ktimer, __ATOMIC_RELAXED);

	if (kt < 0)
		return;
	if (when != PT_NEVER)
		when -= pt_base_shift_of(b->index); /* on the kernel's clock */
	struct itimerspec its = { .it_value = pt_ns_to_ts(when == PT_NEVER ? 0 : when > 0 ? when : 1) };
	syscall(SYS_timer_settime, kt, TIMER_ABSTIME, &its, NULL);
}

/* An arm that left the kernel timer alone.  If that timer went off and
 * nobody saw its signal (taken by a raw system call), nothing would ever
 * run the base again: have the dispatcher look. */
static void cpu_armed(struct pt_base *b, int64_t key)
{
	(void)key;
	int64_t p = __atomic_load_n(&b->programmed, __ATOMIC_RELAXED);
	if (p != PT_NEVER && p <= cpu_now(b))
		pt_dispatch_kick();
}

static const struct pt_base_ops cpu_ops = {
	.now = cpu_now,
	.program = cpu_program,
	.armed = cpu_armed,
};

/* ---- the kernel timer went off ---- */

void pt_cpu_fired(int slot, pid_t via, const sigset_t *mask)
{
	struct cpu_clock *c = slot >= 0 && slot < (int)MAX_CLOCKS
			      ? __atomic_load_n(&cpu.slot[slot], __ATOMIC_ACQUIRE) : NULL;
	if (c) {
		/* Taken by the dispatcher or a wait: that says nothing of who
		 * used the time, so the timers' signals go to the process. */
		uint64_t m = 0;
		if (mask)
			memcpy(&m, mask, sizeof(m));
		__atomic_store_n(&c->b.via_mask, m, __ATOMIC_RELAXED);
		__atomic_store_n(&c->b.via, via, __ATOMIC_RELEASE);
		pt_base_spent(&c->b);
	}
	if (via)
		pt_dispatch_kick();
}

/* ---- clocks in use ---- */

int pt_cpu_attach(clockid_t clockid)
{
	clockid_t clock = canonical(clockid);
	struct cpu_clock *c = NULL, *free_slot = NULL;
	unsigned free_idx = 0;
	int err;

	pt_slice_pause(); /* kernel timers are set up under the lock */
	pt_lock(&cpu.lock);
	for (unsigned i = 0; i < cpu.nslots; i++) {
		struct cpu_clock *s = cpu.slot[i];
		if (s->users && s->clock == clock) {
			c = s;
			break;
		}
		if (!s->users && !free_slot) {
			free_slot = s;
			free_idx = i;
		}
	}
	if (!c) {
		bool fresh = !free_slot;
		if (fresh) {
			if (cpu.nslots == MAX_CLOCKS || !(free_slot = calloc(1, sizeof(*free_slot)))) {
				err = -EAGAIN;
				goto out;
			}
			free_idx = cpu.nslots;
			free_slot->ktimer = -1;
			if (pt_base_register(&free_slot->b, &cpu_ops, -1) < 0) {
				free(free_slot);
				err = -EAGAIN;
				goto out;
			}
		}
		int kid = 0;
		err = pt_dispatch_ktimer(clock, PT_SRC_CPU + (int)free_idx, true, &kid);
		if (err) {
			/* Kept, if fresh: its base index is taken for good. */
			err = err == -EINVAL ? -EINVAL : -EAGAIN;
			if (fresh) {
				__atomic_store_n(&cpu.slot[free_idx], free_slot, __ATOMIC_RELEASE);
				__atomic_store_n(&cpu.nslots, cpu.nslots + 1, __ATOMIC_RELEASE);
			}
			goto out;
		}
		__atomic_store_n(&free_slot->clock, clock, __ATOMIC_RELAXED);
		__atomic_store_n(&free_slot->ktimer, kid, __ATOMIC_RELAXED);
		__atomic_store_n(&free_slot->seen, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&pt_base_shift[free_slot->b.index], 0, __ATOMIC_RELAXED);
		__atomic_store_n(&free_slot->b.via, 0, __ATOMIC_RELAXED);
		/* A new kernel timer holds nothing yet. */
		pt_lock(&free_slot->b.plock);
		__atomic_store_n(&free_slot->b.programmed, PT_NEVER, __ATOMIC_SEQ_CST);
		pt_unlock(&free_slot->b.plock);
		if (fresh) {
			__atomic_store_n(&cpu.slot[free_idx], free_slot, __ATOMIC_RELEASE);
			__atomic_store_n(&cpu.nslots, cpu.nslots + 1, __ATOMIC_RELEASE);
		}
		c = free_slot;
	}
	c->users++;
out:
	pt_unlock(&cpu.lock);
	pt_slice_resume();
	return err ? err : c->b.index;
}

void pt_cpu_detach(uint16_t base)
{
	struct cpu_clock *c = (struct cpu_clock *)pt_base_get(base);

	pt_slice_pause(); /* a kernel timer is deleted under the lock */
	pt_lock(&cpu.lock);
	if (--c->users == 0 && c->ktimer >= 0) {
		/* Its heap is empty by now (every timer on it is deleted, and
		 * the dispatcher takes them out); a new user re-arms it. */
		syscall(SYS_timer_delete, c->ktimer);
		__atomic_store_n(&c->ktimer, -1, __ATOMIC_RELAXED);
	}
	pt_unlock(&cpu.lock);
	pt_slice_resume();
}

int pt_cpu_describe(uint16_t base, clockid_t *clock, pid_t *tid)
{
	struct cpu_clock *c = (struct cpu_clock *)pt_base_get(base);
	clockid_t k = __atomic_load_n(&c->clock, __ATOMIC_RELAXED);

	*clock = k;
	*tid = CPUCLOCK_PID(k);
	if (!(k & CPUCLOCK_PERTHREAD_MASK)) {
		*tid = 0;
		return 1;
	}
	return 2;
}

void pt_cpu_fork_prepare(void)
{
	pt_lock(&cpu.lock);
}

void pt_cpu_fork_parent(void)
{
	pt_unlock(&cpu.lock);
}

/* The child has none of the parent's kernel timers or engine timers. */
void pt_cpu_fork_child(void)
{
	for (unsigned i = 0; i < cpu.nslots; i++) {
		struct cpu_clock *c = cpu.slot[i];
		c->users = 0;
		c->ktimer = -1;
		c->b.via = 0;
		c->seen = 0;
		pt_base_shift[c->b.index] = 0; /* the child's CPU clocks are its own */
	}
	pt_lock_reset(&cpu.lock);
}

uint32_t pt_cpu_clock_offset(void)
{
	return offsetof(struct cpu_clock, clock);
}
