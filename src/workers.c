/* SPDX-License-Identifier: MIT */
/*
 * SIGEV_THREAD workers (workers.h).
 *
 * The calls waiting to run are a ring under the pool's lock; idle workers
 * sleep on a futex word that every new call bumps.  The dispatcher only
 * queues and wakes.  A worker that takes a call when no other is idle
 * first starts a spare (a worker runs in the program's descriptor table,
 * so its threads do too).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lock.h"
#include "slice.h"
#include "sys.h"
#include "workers.h"

#define IDLE_NS 1000000000LL /* a worker idle this long ends (but the last) */

struct call {
	void (*fn)(union sigval);
	union sigval value;
	struct pt_thread_attrs attrs;
};

static struct {
	pt_lock_t lock;
	struct call *ring;
	unsigned head, len, cap;
	unsigned workers;    /* alive */
	unsigned idle;       /* asleep, waiting for a call */
	unsigned starting;   /* being started */
	unsigned needed;     /* SIGEV_THREAD timers alive: keep one worker */
	uint32_t bell;       /* futex word: bumped for each call queued */
	unsigned long calls;
} w = { .lock = PT_LOCK_INIT };

unsigned long pt_workers_calls(void)
{
	return __atomic_load_n(&w.calls, __ATOMIC_RELAXED);
}

static void *worker(void *arg);

/* Start one worker, from a thread of the program or a worker.  Every
 * signal blocked in it from its first instruction, as in glibc's notify
 * threads.  0 or -EAGAIN. */
static int start_worker(void)
{
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t th;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pt_sys_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&th, &attr, worker, NULL);
	pt_sys_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return r == 0 ? 0 : -EAGAIN;
}

/* A new thread with the timer's attributes, for one call. */
struct lone {
	void (*fn)(union sigval);
	union sigval value;
};

static void *lone_thread(void *arg)
{
	struct lone l = *(struct lone *)arg;
	free(arg);
	l.fn(l.value);
	return NULL;
}

static void run_with_attrs(const struct call *c)
{
	pthread_attr_t attr;
	pthread_t th;
	struct lone *l = malloc(sizeof(*l));

	if (!l)
		return; /* as glibc: an expiry whose thread cannot start is lost */
	l->fn = c->fn;
	l->value = c->value;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, c->attrs.stack);
	pthread_attr_setguardsize(&attr, c->attrs.guard);
	pthread_attr_setinheritsched(&attr, c->attrs.inherit);
	pthread_attr_setschedpolicy(&attr, c->attrs.policy);
	pthread_attr_setschedparam(&attr, &c->attrs.param);
	pthread_attr_setscope(&attr, c->attrs.scope);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, lone_thread, l) != 0)
		free(l);
	pthread_attr_destroy(&attr);
}

/* w.lock held: let it go, starting a worker on the way if start (counted
 * as starting meanwhile, so that no other thread starts one for the same
 * need). */
static void unlock_starting(bool start)
{
	if (start)
		w.starting++;
	pt_unlock(&w.lock);
	if (start && start_worker() != 0) {
		pt_lock(&w.lock);
		w.starting--;
		pt_unlock(&w.lock);
	}
}

/* A worker leaves (idle too long, or its function called pthread_exit). */
static void worker_gone(void *arg)
{
	(void)arg;
	pt_lock(&w.lock);
	w.workers--;
	/* The last one of a pool still needed: the program's function ended
	 * it, so it starts its successor on its way out. */
	unlock_starting(w.workers + w.starting == 0 && (w.needed || w.len));
}

static void run_call(struct call *c)
{
	if (c->attrs.given) {
		run_with_attrs(c);
		return;
	}
	pthread_cleanup_push(worker_gone, NULL);
	c->fn(c->value);
	pthread_cleanup_pop(0);
}

static void *worker(void *arg)
{
	(void)arg;
	pt_lock(&w.lock);
	w.starting--;
	w.workers++;
	for (;;) {
		int64_t idle_since = pt_clock_ns(CLOCK_MONOTONIC);
		while (w.len == 0) {
			int64_t idle = pt_clock_ns(CLOCK_MONOTONIC) - idle_since;
			if (idle >= IDLE_NS && w.workers > (w.needed ? 1u : 0u)) {
				w.workers--;
				pt_unlock(&w.lock);
				return NULL;
			}
			uint32_t bell = w.bell;
			w.idle++;
			pt_unlock(&w.lock);
			struct timespec ts = pt_ns_to_ts(IDLE_NS - (idle < IDLE_NS ? idle : 0) + 1);
			syscall(SYS_futex, &w.bell, FUTEX_WAIT_PRIVATE, bell, &ts, NULL, 0);
			pt_lock(&w.lock);
			w.idle--;
		}
		struct call c = w.ring[w.head];
		w.head = (w.head + 1) % w.cap;
		w.len--;
		/* Nobody else idle: a spare, for a call that comes while this
		 * one runs. */
		unlock_starting(w.idle == 0 && w.starting == 0);
		run_call(&c);
		pt_lock(&w.lock);
	}
}

/* w.lock held: room for one more call. */
static bool ring_room(void)
{
	if (w.len < w.cap)
		return true;
	unsigned cap = w.cap ? w.cap * 2 : 16;
	struct call *r = malloc(cap * sizeof(*r));
	if (!r)
		return false;
	for (unsigned i = 0; i < w.len; i++)
		r[i] = w.ring[(w.head + i) % w.cap];
	free(w.ring);
	w.ring = r;
	w.head = 0;
	w.cap = cap;
	return true;
}

static void push_call(void (*fn)(union sigval), union sigval value, const struct pt_thread_attrs *attrs)
{
	bool wake;

	pt_lock(&w.lock);
	if (!ring_room()) {
		pt_unlock(&w.lock);
		return; /* as glibc: an expiry whose thread cannot start is lost */
	}
	w.ring[(w.head + w.len) % w.cap] = (struct call){ fn, value, *attrs };
	w.len++;
	w.bell++;
	wake = w.idle > 0;
	pt_unlock(&w.lock);
	__atomic_fetch_add(&w.calls, 1, __ATOMIC_RELAXED);
	if (wake) {
		pt_slice_pause();
		syscall(SYS_futex, &w.bell, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
		pt_slice_resume();
	}
}

void pt_workers_run(const struct pt_thread_notify *thr, union sigval value)
{
	push_call(thr->fn, value, &thr->attrs);
}

/* ---- carriers ---- */

struct pt_carrier {
	void (*fn)(union sigval);
	union sigval value;
	clockid_t clock;
	int id;      /* the timer's */
	pid_t tid;   /* the worker carrying it, once it has taken it up */
	int kid;     /* its kernel timer, -1 until made */
	int stop;    /* atomic: no longer wanted */
};

static const struct pt_thread_attrs no_attrs; /* the pool's own threads */

static bool (*carry_start)(struct pt_carrier *c, int id, int kid);
static bool (*carry_lost)(struct pt_carrier *c, int id);

void pt_workers_set_carry_fns(bool (*start)(struct pt_carrier *c, int id, int kid),
			      bool (*lost)(struct pt_carrier *c, int id))
{
	carry_start = start;
	carry_lost = lost;
}

/* A carrier is not one of the pool's workers: the pool keeps its own for
 * the calls (the timer's missed ones among them), so one that is idle is
 * started now if there is none, and the idle ones' end (down to one while
 * SIGEV_THREAD timers exist) does not count the carrier. */
static void pool_leave(void)
{
	pt_lock(&w.lock);
	w.workers--;
	unlock_starting(w.idle == 0 && w.starting == 0);
}

static void pool_return(void)
{
	pt_lock(&w.lock);
	w.workers++;
	pt_unlock(&w.lock);
}

/* The function called pthread_exit on the carrier's thread (the pool's
 * own handler, worker_gone(), runs next and counts it out). */
static void carry_gone(void *arg)
{
	struct pt_carrier *c = arg;
	pool_return();
	if (carry_lost(c, c->id))
		syscall(SYS_timer_delete, c->kid);
	/* else stopped already: the stop deleted it */
	free(c);
}

/* A worker's call: carry until stopped, then back to the pool. */
static void carry(union sigval v)
{
	struct pt_carrier *c = v.sival_ptr;
	struct sigevent sev;
	sigset_t own;
	int kid = -1;

	__atomic_store_n(&c->tid, pt_gettid(), __ATOMIC_RELEASE);
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = pt_own_signo;
	sev.sigev_value.sival_int = -1;
	sev._sigev_un._tid = pt_gettid();
	if (__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE))
		goto out; /* stopped before it was taken up: nobody waits on it */
	if (!pt_own_signo || pt_sys_timer_create(c->clock, &sev, &kid) != 0)
		kid = -1;
	c->kid = kid;
	/* Under the timer's lock: armed and carried, or given up (and the
	 * timer no longer points here). */
	if (!carry_start(c, c->id, kid)) {
		if (kid >= 0)
			syscall(SYS_timer_delete, kid); /* never armed: ours to delete */
		goto out;
	}
	/* From here the kernel timer is deleted by whoever stops us, and
	 * this thread is the timer's, not the pool's. */
	pool_leave();
	sigemptyset(&own);
	sigaddset(&own, pt_own_signo);
	for (;;) {
		siginfo_t si;
		long r = syscall(SYS_rt_sigtimedwait, &own, &si, NULL, sizeof(uint64_t));
		if (__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE))
			break;
		if (r != pt_own_signo || si.si_code != SI_TIMER)
			continue;
		for (int i = 0; i < si.si_overrun; i++)
			push_call(c->fn, c->value, &no_attrs); /* missed while a call ran */
		__atomic_fetch_add(&w.calls, 1, __ATOMIC_RELAXED);
		pthread_cleanup_push(carry_gone, c);
		c->fn(c->value);
		pthread_cleanup_pop(0);
	}
	/* The stop's wakeup may still be here (it came while a call ran):
	 * take it, so that it does not wait on this worker. */
	struct timespec zero = { 0, 0 };
	while (syscall(SYS_rt_sigtimedwait, &own, NULL, &zero, sizeof(uint64_t)) > 0)
		;
	pool_return();
out:
	free(c);
}

struct pt_carrier *pt_workers_carry(void (*fn)(union sigval), union sigval value, clockid_t clock, int id)
{
	struct pt_carrier *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->fn = fn;
	c->value = value;
	c->clock = clock;
	c->id = id;
	c->kid = -1;
	push_call(carry, (union sigval){ .sival_ptr = c }, &no_attrs);
	__atomic_fetch_sub(&w.calls, 1, __ATOMIC_RELAXED); /* not the program's */
	return c;
}

void pt_workers_carry_stop(struct pt_carrier *c, bool carried)
{
	if (!carried) {
		/* Not started yet, or starting: it sees this under the
		 * timer's lock (its start) or before, and goes. */
		__atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
		return;
	}
	pid_t tid = __atomic_load_n(&c->tid, __ATOMIC_ACQUIRE);
	pt_slice_pause(); /* the caller holds the timer's lock */
	syscall(SYS_timer_delete, c->kid);
	__atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
	/* c may be gone from here: it leaves once it sees stop. */
	syscall(SYS_tgkill, pt_pid, tid, pt_own_signo);
	pt_slice_resume();
}

void pt_workers_carry_forget(struct pt_carrier *c)
{
	free(c);
}

int pt_workers_notify_new(const struct sigevent *sev, struct pt_thread_notify **out)
{
	struct pt_thread_notify *thr = calloc(1, sizeof(*thr));
	const pthread_attr_t *src = sev->sigev_notify_attributes;

	if (!thr)
		return -ENOMEM;
	thr->fn = sev->sigev_notify_function;
	if (src) {
		/* glibc copies the attributes a thread can be given; the rest
		 * (detach state: always detached) is the engine's. */
		struct pt_thread_attrs *a = &thr->attrs;
		a->given = true;
		pthread_attr_t def;
		pthread_attr_init(&def);
		if (pthread_attr_getstacksize(src, &a->stack) != 0)
			pthread_attr_getstacksize(&def, &a->stack);
		if (pthread_attr_getguardsize(src, &a->guard) != 0)
			pthread_attr_getguardsize(&def, &a->guard);
		if (pthread_attr_getinheritsched(src, &a->inherit) != 0)
			pthread_attr_getinheritsched(&def, &a->inherit);
		if (pthread_attr_getschedpolicy(src, &a->policy) != 0)
			pthread_attr_getschedpolicy(&def, &a->policy);
		if (pthread_attr_getschedparam(src, &a->param) != 0)
			pthread_attr_getschedparam(&def, &a->param);
		if (pthread_attr_getscope(src, &a->scope) != 0)
			pthread_attr_getscope(&def, &a->scope);
		pthread_attr_destroy(&def);
	}
	/* A worker, started here on the caller's thread if there is none. */
	pt_slice_pause(); /* a thread may be started under the lock */
	pt_lock(&w.lock);
	w.needed++;
	bool start = w.workers + w.starting == 0;
	if (start)
		w.starting++;
	pt_unlock(&w.lock);
	int err = start ? start_worker() : 0;
	if (err) {
		pt_lock(&w.lock);
		w.starting--;
		w.needed--;
		pt_unlock(&w.lock);
		free(thr);
	}
	pt_slice_resume();
	if (!err)
		*out = thr;
	return err;
}

static void notify_free_rcu(struct rcu_head *h)
{
	PT_RCU_CALLBACK();
	free((char *)h - offsetof(struct pt_thread_notify, rcu));
}

void pt_workers_notify_free(struct pt_thread_notify *thr)
{
	pt_lock(&w.lock);
	w.needed--;
	pt_unlock(&w.lock);
	/* The dispatcher may be reading it (under the RCU read lock). */
	pt_call_rcu(&thr->rcu, notify_free_rcu);
}

void pt_workers_fork_prepare(void)
{
	pt_lock(&w.lock);
}

void pt_workers_fork_parent(void)
{
	pt_unlock(&w.lock);
}

/* The child has no timers and no workers. */
void pt_workers_fork_child(void)
{
	free(w.ring);
	w.ring = NULL;
	w.head = w.len = w.cap = 0;
	w.workers = w.idle = w.starting = w.needed = 0;
	w.bell = 0;
	pt_lock_reset(&w.lock);
}
