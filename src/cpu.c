/* SPDX-License-Identifier: MIT */
/*
 * CPU clocks: CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID and the
 * clocks of clock_getcpuclockid()/pthread_getcpuclockid().
 *
 * Only the kernel sees CPU time pass, so each CPU clock in use gets one
 * kernel CPU timer, armed at the earliest expiry among the engine's timers
 * on that clock, however many there are.  Its signal is a real-time signal
 * the engine takes from glibc's pool (__libc_allocate_rtsig, so SIGRTMAX
 * moves down by one for the program) and sends process-directed: the kernel
 * then hands it to the thread whose CPU time made it expire, if that thread
 * does not block it, exactly as it picks the receiver of a process-CPU
 * timer's signal.  The engine's handler notes that thread and its signal
 * mask and wakes the dispatcher, which fires what is due and sends each
 * timer's own signal to the same thread (or to the process, when that
 * thread blocks it), as the kernel would.
 *
 * The dispatcher waits with the engine's signal unblocked, so a signal no
 * program thread accepts still arrives (the receiver is then unknown and
 * the timer's signal goes to the process).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "internal.h"
#include "rcu.h"

#define CPUCLOCK_PERTHREAD_MASK 4
#define CPUCLOCK_WHICH(c) ((c) & 3)
#define CPUCLOCK_PID(c) ((pid_t)(~(c) >> 3))
#define MAKE_PROCESS_CPUCLOCK(pid, which) ((clockid_t)((unsigned)~(pid) << 3) | (which))
#define MAKE_THREAD_CPUCLOCK(tid, which) (MAKE_PROCESS_CPUCLOCK(tid, which) | CPUCLOCK_PERTHREAD_MASK)
#define CPUCLOCK_SCHED 2
#define MAX_CLOCKS 4096

struct pt_cpuclock {
	clockid_t clock;          /* explicit: no "calling thread" IDs */
	int users;                /* timers created on it */
	int ktimer;               /* the kernel timer, -1 when unused */
	int64_t programmed;       /* its expiry, PT_NEVER when disarmed */
	struct cpu_ent {
		int64_t at;
		struct pt_timer *t;
	} *q;                     /* armed timers, unordered; t->heap_idx indexes */
	unsigned n, cap;          /* cap >= users: arming never allocates */
	/* Written by the signal handler. */
	pid_t consumer;
	uint64_t consumer_mask;
};

static struct {
	pt_lock_t lock;           /* slots, users, queues */
	struct pt_cpuclock *slot[MAX_CLOCKS]; /* never freed: the handler reads them */
	unsigned nslots;
	int signo;                /* 0 until the first CPU timer */
} cpu = { .lock = PT_LOCK_INIT };

bool pt_is_cpu_clock(clockid_t c)
{
	return c == CLOCK_PROCESS_CPUTIME_ID || c == CLOCK_THREAD_CPUTIME_ID ||
	       (c < 0 && CPUCLOCK_WHICH(c) != 3);
}

/* The clock a CPU clock ID means, made explicit (0 on error). */
static clockid_t canonical(clockid_t c)
{
	if (c == CLOCK_PROCESS_CPUTIME_ID)
		return MAKE_PROCESS_CPUCLOCK(0, CPUCLOCK_SCHED);
	if (c == CLOCK_THREAD_CPUTIME_ID)
		return MAKE_THREAD_CPUCLOCK((pid_t)syscall(SYS_gettid), CPUCLOCK_SCHED);
	if (CPUCLOCK_PID(c) == pt_pid && !(c & CPUCLOCK_PERTHREAD_MASK))
		return MAKE_PROCESS_CPUCLOCK(0, CPUCLOCK_WHICH(c));
	if (CPUCLOCK_PID(c) == 0 && (c & CPUCLOCK_PERTHREAD_MASK))
		return MAKE_THREAD_CPUCLOCK((pid_t)syscall(SYS_gettid), CPUCLOCK_WHICH(c));
	return c;
}

int pt_cpu_check(clockid_t c)
{
	struct timespec ts;

	/* The kernel's own test (pid_for_clock()): a thread clock must be
	 * of this process, a process clock of a live process. */
	return clock_getres(canonical(c), &ts) == 0 ? 0 : -EINVAL;
}

int64_t pt_cpu_now(const struct pt_cpuclock *c)
{
	struct timespec ts;

	if (clock_gettime(c->clock, &ts) != 0)
		return -1; /* its thread is gone */
	return pt_ts_to_ns(&ts);
}

/* ---- the engine's signal ---- */

static void on_cpu_signal(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	int saved = errno;
	pt_cpu_signal(si, ucv ? &((ucontext_t *)ucv)->uc_sigmask : NULL);
	errno = saved;
}

/* Note who got the kernel timer's signal; returns whether it was one.
 * mask is the receiver's signal mask when a handler took it there; NULL
 * when it was waited for (sigwaitinfo, signalfd), which says nothing of
 * who used the time: the timers' signals then go to the process. */
bool pt_cpu_signal(const siginfo_t *si, const sigset_t *mask)
{
	if (si->si_signo != cpu.signo || cpu.signo == 0 || si->si_code != SI_TIMER)
		return false;
	int idx = si->si_value.sival_int;
	struct pt_cpuclock *c = idx >= 0 && idx < MAX_CLOCKS
				? __atomic_load_n(&cpu.slot[idx], __ATOMIC_ACQUIRE) : NULL;
	if (c && mask) {
		uint64_t m;
		memcpy(&m, mask, sizeof(m));
		__atomic_store_n(&c->consumer_mask, m, __ATOMIC_RELAXED);
		__atomic_store_n(&c->consumer, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	}
	pt_dispatch_kick();
	return true;
}

int pt_cpu_signo(void)
{
	return __atomic_load_n(&cpu.signo, __ATOMIC_ACQUIRE);
}

extern int __libc_allocate_rtsig(int high);

/* cpu.lock held. */
static int signal_init(void)
{
	if (cpu.signo)
		return 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_cpu_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigfillset(&sa.sa_mask);
	/* From the top: SIGRTMAX moves down.  A signal that cannot be had
	 * (valgrind keeps the topmost for itself) is passed over. */
	int sig;
	for (int tries = 0;; tries++) {
		sig = __libc_allocate_rtsig(0);
		if (sig < 0 || tries == 4)
			return -EAGAIN;
		if (pt_real_sigaction(sig, &sa, NULL) == 0)
			break;
	}
	__atomic_store_n(&cpu.signo, sig, __ATOMIC_RELEASE);
	pt_dispatch_kick(); /* its wait now lets the signal in */
	return 0;
}

/* ---- clocks in use ---- */

static void detach_locked(struct pt_cpuclock *c);

struct pt_cpuclock *pt_cpu_attach(clockid_t clockid, int *err)
{
	clockid_t clock = canonical(clockid);
	struct pt_cpuclock *c = NULL, *free_slot = NULL;
	unsigned free_idx = 0;

	pt_lock(&cpu.lock);
	*err = signal_init();
	if (*err)
		goto out;
	for (unsigned i = 0; i < cpu.nslots; i++) {
		struct pt_cpuclock *s = cpu.slot[i];
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
		if (!free_slot) {
			if (cpu.nslots == MAX_CLOCKS) {
				*err = -EAGAIN;
				goto out;
			}
			free_slot = calloc(1, sizeof(*free_slot));
			if (!free_slot) {
				*err = -EAGAIN;
				goto out;
			}
			free_idx = cpu.nslots;
			free_slot->ktimer = -1;
		}
		struct sigevent sev;
		memset(&sev, 0, sizeof(sev));
		sev.sigev_notify = SIGEV_SIGNAL;
		sev.sigev_signo = cpu.signo;
		sev.sigev_value.sival_int = (int)free_idx;
		int kid;
		if (syscall(SYS_timer_create, clock, &sev, &kid) != 0) {
			*err = errno == EINVAL ? -EINVAL : -EAGAIN;
			if (free_idx == cpu.nslots)
				free(free_slot);
			goto out;
		}
		free_slot->clock = clock;
		free_slot->ktimer = kid;
		free_slot->programmed = PT_NEVER;
		free_slot->n = 0;
		if (free_idx == cpu.nslots) {
			__atomic_store_n(&cpu.slot[free_idx], free_slot, __ATOMIC_RELEASE);
			__atomic_store_n(&cpu.nslots, cpu.nslots + 1, __ATOMIC_RELEASE);
		}
		c = free_slot;
	}
	if (c->users == (int)c->cap) {
		unsigned cap = c->cap ? c->cap * 2 : 4;
		struct cpu_ent *q = realloc(c->q, cap * sizeof(*q));
		if (!q) {
			*err = -EAGAIN;
			if (!c->users)
				detach_locked(c);
			c = NULL;
			goto out;
		}
		c->q = q;
		c->cap = cap;
	}
	c->users++;
out:
	pt_unlock(&cpu.lock);
	return *err ? NULL : c;
}

/* cpu.lock held. */
static void detach_locked(struct pt_cpuclock *c)
{
	if (c->users > 0)
		c->users--;
	if (c->users == 0 && c->ktimer >= 0) {
		syscall(SYS_timer_delete, c->ktimer);
		c->ktimer = -1;
		c->programmed = PT_NEVER;
	}
}

void pt_cpu_detach(struct pt_cpuclock *c)
{
	pt_lock(&cpu.lock);
	detach_locked(c);
	pt_unlock(&cpu.lock);
}

/* cpu.lock held. */
static void program(struct pt_cpuclock *c, int64_t at)
{
	if (at == c->programmed || c->ktimer < 0)
		return;
	struct itimerspec its = { .it_value = pt_ns_to_ts(at == PT_NEVER ? 0 : at > 0 ? at : 1) };
	syscall(SYS_timer_settime, c->ktimer, TIMER_ABSTIME, &its, NULL);
	c->programmed = at;
}

/* Queue t on its clock.  t->lock held, t not queued. */
void pt_cpu_add(struct pt_timer *t, int64_t expires)
{
	struct pt_cpuclock *c = t->cpu;

	pt_lock(&cpu.lock);
	t->queue_gen++;
	PT_WRITE(t->heap_idx, (int)c->n);
	c->q[c->n++] = (struct cpu_ent){ expires, t };
	if (expires < c->programmed)
		program(c, expires);
	else if (c->programmed != PT_NEVER && c->programmed <= pt_cpu_now(c))
		/* The kernel timer went off and nobody saw its signal (taken by
		 * a raw system call): have the dispatcher fire what is due and
		 * program it again, or it would never go off. */
		pt_dispatch_kick();
	pt_unlock(&cpu.lock);
}

static void remove_at(struct pt_cpuclock *c, unsigned i)
{
	PT_WRITE(c->q[i].t->heap_idx, -1);
	c->q[i] = c->q[--c->n];
	if (i < c->n)
		PT_WRITE(c->q[i].t->heap_idx, (int)i);
}

void pt_cpu_del(struct pt_timer *t)
{
	pt_lock(&cpu.lock);
	int idx = PT_READ(t->heap_idx);
	if (idx >= 0)
		remove_at(t->cpu, (unsigned)idx);
	pt_unlock(&cpu.lock);
}

#define BATCH 64

/* The dispatcher's part: fire every CPU timer that is due. */
void pt_cpu_process(void)
{
	unsigned nslots = __atomic_load_n(&cpu.nslots, __ATOMIC_ACQUIRE);

	for (unsigned i = 0; i < nslots; i++) {
		struct pt_cpuclock *c = __atomic_load_n(&cpu.slot[i], __ATOMIC_ACQUIRE);
		struct pt_expired batch[BATCH];
		int n;
		/* Who took the kernel timer's signal, if it came since last time. */
		pid_t consumer = __atomic_exchange_n(&c->consumer, 0, __ATOMIC_ACQUIRE);
		uint64_t mask = __atomic_load_n(&c->consumer_mask, __ATOMIC_RELAXED);
		do {
			n = 0;
			pt_rcu_read_lock();
			pt_lock(&cpu.lock);
			int64_t now = c->n ? pt_cpu_now(c) : -1;
			for (unsigned j = 0; j < c->n && n < BATCH;) {
				struct pt_timer *t = c->q[j].t;
				if (now >= 0 && c->q[j].at <= now) {
					batch[n++] = (struct pt_expired){ t, t->queue_gen };
					remove_at(c, j);
				} else {
					j++;
				}
			}
			int64_t next = PT_NEVER;
			for (unsigned j = 0; j < c->n; j++)
				if (c->q[j].at < next)
					next = c->q[j].at;
			if (n < BATCH)
				program(c, next);
			pt_unlock(&cpu.lock);
			for (int k = 0; k < n; k++) {
				/* The consumer takes it unless it blocks it. */
				int sig = batch[k].t->signo; /* immutable */
				bool takes = consumer > 0 && sig > 0 && !(mask >> (sig - 1) & 1);
				pt_dispatch_fire(&batch[k], now, takes ? consumer : 0);
			}
			pt_rcu_read_unlock();
		} while (n == BATCH);
	}
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
		struct pt_cpuclock *c = cpu.slot[i];
		c->users = 0;
		c->ktimer = -1;
		c->programmed = PT_NEVER;
		c->n = 0;
		c->consumer = 0;
	}
	pt_lock_reset(&cpu.lock);
}
