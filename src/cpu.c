/* SPDX-License-Identifier: MIT */
/*
 * CPU clocks (cpu.h).
 *
 * Only the kernel sees CPU time pass, so each CPU clock in use is a base
 * whose kernel timer is a kernel CPU timer, armed at the earliest expiry
 * among the engine's timers on that clock, however many there are.  Its
 * signal is the engine's (dispatch.h).  A process clock's is sent
 * process-directed: the kernel then hands it to the thread whose CPU time
 * made it expire, exactly as it picks the receiver of a process-CPU
 * timer's signal.  A thread clock's goes to that thread, the only one
 * whose time it counts.  The engine's handler notes the thread and its
 * signal mask in the base (the report) and wakes the dispatcher, which
 * fires what is due; the core sends each timer's own signal to the same
 * thread (or to the process, when that thread blocks it), as the kernel
 * would.  The hooks keep the engine's signal out of every mask the
 * program sets through libc, so that thread always takes it, whatever it
 * blocks of its own.
 *
 * The dispatcher reads the clock too, whenever it wakes, and may find a
 * timer due before the kernel's tick has seen the clock pass it (CPU
 * timers are looked at on the tick of a thread that runs).  It does not
 * fire it then: whose time made it expire is not known yet.  It waits
 * for the report, which says how far the clock had got when it was
 * taken, and fires what that covers; after HOLD_NS of wall time without
 * one (taken by a raw wait the hooks do not see), the timers' signals go
 * to the process.  The dispatcher never sets the kernel timer in the
 * past: the kernel would fire it at once, on the dispatcher, and hand its
 * signal to some other thread.
 *
 * Some takers say nothing of who ran (pt_cpu_fired()): the dispatcher's
 * own wait, which can take a process-directed signal between the kernel's
 * choice and the chosen thread's taking it, and a thread woken from a
 * sleep, which is where the kernel sends it when the thread that ran (the
 * dispatcher) blocks it.  The kernel timer is then set again, just ahead,
 * for the next tick.  When that is how the program takes it every time
 * (no thread of it accepts the engine's signal), it counts.
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
#define HOLD_NS 1000000000    /* wall ns a due timer waits for the kernel's report */
#define AHEAD_NS 200000       /* CPU ns ahead the dispatcher sets a due kernel timer */
#define DOUBTS 3              /* doubtful takers in a row that count (pt_cpu_fired) */

struct cpu_clock {
	struct pt_base b;         /* first: the handler finds the clock from it */
	clockid_t clock;          /* explicit: no "calling thread" IDs */
	int users;                /* timers created on it */
	int ktimer;               /* the kernel timer, -1 when unused */
	int64_t seen;             /* the latest reading, on the engine's timeline */
	int64_t reported;         /* the clock when the kernel timer's signal was
				   * last taken (b.via its taker), INT64_MIN: never */
	int64_t held_since;       /* dispatcher: wall clock a hold began, 0: none */
	int doubted;              /* takers in a row that were a wait or a sleeper */
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
	if (when != PT_NEVER) {
		when -= pt_base_shift_of(b->index); /* on the kernel's clock */
		if (pt_dispatch_is_self()) {
			int64_t raw = pt_clock_ns(__atomic_load_n(&c->clock, __ATOMIC_RELAXED));
			if (raw >= 0 && when < raw + AHEAD_NS)
				when = raw + AHEAD_NS;
		}
	}
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

static bool cpu_hold(struct pt_base *b, int64_t key)
{
	struct cpu_clock *c = (struct cpu_clock *)b;
	if (__atomic_load_n(&c->reported, __ATOMIC_ACQUIRE) >= key) {
		__atomic_store_n(&c->held_since, 0, __ATOMIC_RELAXED);
		return false;
	}
	int64_t t = pt_clock_ns(CLOCK_MONOTONIC);
	int64_t since = __atomic_load_n(&c->held_since, __ATOMIC_RELAXED);
	if (!since)
		__atomic_store_n(&c->held_since, since = t, __ATOMIC_RELAXED);
	if (t - since >= HOLD_NS) {
		__atomic_store_n(&c->held_since, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&b->via, 0, __ATOMIC_RELEASE); /* no word: the process */
		return false;
	}
	pt_dispatch_wake_within(since + HOLD_NS - t);
	return true;
}

static const struct pt_base_ops cpu_ops = {
	.now = cpu_now,
	.program = cpu_program,
	.armed = cpu_armed,
	.hold = cpu_hold,
};

/* ---- the kernel timer went off ---- */

void pt_cpu_fired(int slot, pid_t via, const sigset_t *mask, bool woke)
{
	struct cpu_clock *c = slot >= 0 && slot < (int)MAX_CLOCKS
			      ? __atomic_load_n(&cpu.slot[slot], __ATOMIC_ACQUIRE) : NULL;
	if (!c)
		return;
	/* Whose time ran out?  Not known when the signal was taken by a
	 * wait (the dispatcher's, between the kernel's choice of the thread
	 * that ran and that thread's taking it), nor, on the process's clock,
	 * by a thread that slept (the kernel's pick when the one that ran,
	 * the dispatcher, blocks the signal).  A thread's clock signals that
	 * thread alone.  Then the kernel timer is set again, just ahead, and
	 * the next tick asks again.  Taken that way DOUBTS times running,
	 * that is how this program's threads take it (none that runs accepts
	 * the engine's signal, say): it counts, until a thread that ran
	 * takes it again. */
	clockid_t clock = __atomic_load_n(&c->clock, __ATOMIC_RELAXED);
	bool doubt = !via || (woke && !(clock & CPUCLOCK_PERTHREAD_MASK));
	int doubts = doubt ? __atomic_load_n(&c->doubted, __ATOMIC_RELAXED) + 1 : 0;
	__atomic_store_n(&c->doubted, doubts < DOUBTS ? doubts : DOUBTS, __ATOMIC_RELAXED);
	if (!doubt || doubts >= DOUBTS) {
		uint64_t m = 0;
		if (mask)
			memcpy(&m, mask, sizeof(m));
		/* How far the clock had got: the expiries this covers. */
		int64_t raw = pt_clock_ns(clock);
		int64_t at = raw >= 0 ? raw + pt_base_shift_of(c->b.index) : INT64_MAX;
		__atomic_store_n(&c->b.via_mask, m, __ATOMIC_RELAXED);
		__atomic_store_n(&c->b.via, via, __ATOMIC_RELEASE);
		__atomic_store_n(&c->reported, at, __ATOMIC_RELEASE);
	}
	pt_base_spent(&c->b);
	if (!pt_dispatch_is_self())
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
		/* A thread's clock runs only while that thread does: its
		 * signal goes to it alone, and no other thread's wait (the
		 * dispatcher's) can take it first. */
		pid_t to = clock & CPUCLOCK_PERTHREAD_MASK ? CPUCLOCK_PID(clock) : PT_TO_PROCESS;
		err = pt_dispatch_ktimer(clock, PT_SRC_CPU + (int)free_idx, to, &kid);
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
		__atomic_store_n(&free_slot->reported, INT64_MIN, __ATOMIC_RELAXED);
		__atomic_store_n(&free_slot->held_since, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&free_slot->doubted, 0, __ATOMIC_RELAXED);
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
		c->reported = INT64_MIN;
		c->held_since = 0;
		c->doubted = 0;
		c->seen = 0;
		pt_base_shift[c->b.index] = 0; /* the child's CPU clocks are its own */
	}
	pt_lock_reset(&cpu.lock);
}

uint32_t pt_cpu_clock_offset(void)
{
	return offsetof(struct cpu_clock, clock);
}
