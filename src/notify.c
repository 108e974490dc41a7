/* SPDX-License-Identifier: MIT */
/*
 * Notification: what happens when a timer expires.
 *
 * SIGEV_SIGNAL and SIGEV_THREAD_ID queue a real signal with the kernel's
 * SI_TIMER siginfo (si_timerid, si_overrun, si_value) through
 * rt_sigqueueinfo/rt_tgsigqueueinfo.  As in the kernel, a timer has at most
 * one signal in flight: an expiry while it is still pending is folded into
 * it, and a periodic timer is re-armed only when its signal is delivered,
 * so a blocked or slow receiver never faces a storm.
 *
 * Delivery is learned two ways.  Exactly, where the program takes the
 * signal (deliver.c: handlers, sigwaitinfo/sigtimedwait/sigwait, signalfd)
 * or hands it to ptimer_signal_delivered().  Otherwise by a probe: one
 * interval after the expiry the dispatcher asks the kernel whether the
 * signal is still pending and, once it is not, re-arms as if it had been
 * delivered at that boundary.
 *
 * The kernel does not queue a standard (non-realtime) signal twice, except
 * a timer's: each timer has its own queue entry.  rt_sigqueueinfo() cannot
 * do that, so a timer whose standard signal is already pending waits in a
 * per-signal line and is sent the moment the pending one is taken (which
 * deliver.c sees), in the order the kernel would deliver them.
 *
 * A signal the program ignores is not sent.  As in the kernel, a one-shot
 * timer's expiry is then lost, and a periodic timer is parked: no more
 * expiries until the program installs a handler, when its signal is queued
 * at once and the periods missed meanwhile are its overruns.
 *
 * SIGEV_THREAD runs the function in a new detached thread per expiry, with
 * the caller's thread attributes and every signal blocked, as glibc does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "rcu.h"

#define KERNEL_SIGRTMAX 64

static bool is_own_thread(pid_t tid)
{
	/* tgkill with signal 0 checks that tid is a thread of this process. */
	return tid > 0 && syscall(SYS_tgkill, pt_pid, tid, 0) == 0;
}

int pt_notify_check(const struct sigevent *sev, clockid_t clockid)
{
	(void)clockid;
	if (!sev)
		return 0;
	switch (sev->sigev_notify) {
	case SIGEV_SIGNAL | SIGEV_THREAD_ID:
		if (!is_own_thread(sev->_sigev_un._tid))
			return -EINVAL;
		/* fall through */
	case SIGEV_SIGNAL:
		if (sev->sigev_signo <= 0 || sev->sigev_signo > KERNEL_SIGRTMAX)
			return -EINVAL;
		return 0;
	case SIGEV_THREAD:
		/* glibc would call a NULL function and crash; refuse it. */
		return sev->sigev_notify_function ? 0 : -EINVAL;
	case SIGEV_NONE:
		return 0;
	default:
		return -EINVAL;
	}
}

/* glibc copies the caller's attributes at timer_create; so do we, and
 * force the threads detached as glibc does. */
static int copy_thread_attr(struct pt_timer *t, const pthread_attr_t *src)
{
	pthread_attr_t *a = malloc(sizeof(*a));

	if (!a || pthread_attr_init(a) != 0) {
		free(a);
		return -ENOMEM;
	}
	if (src) {
		size_t size;
		int v;
		struct sched_param sp;
		if (pthread_attr_getstacksize(src, &size) == 0)
			pthread_attr_setstacksize(a, size);
		if (pthread_attr_getguardsize(src, &size) == 0)
			pthread_attr_setguardsize(a, size);
		if (pthread_attr_getinheritsched(src, &v) == 0)
			pthread_attr_setinheritsched(a, v);
		if (pthread_attr_getschedpolicy(src, &v) == 0)
			pthread_attr_setschedpolicy(a, v);
		if (pthread_attr_getschedparam(src, &sp) == 0)
			pthread_attr_setschedparam(a, &sp);
		if (pthread_attr_getscope(src, &v) == 0)
			pthread_attr_setscope(a, v);
	}
	pthread_attr_setdetachstate(a, PTHREAD_CREATE_DETACHED);
	t->thread_attr = a;
	return 0;
}

int pt_notify_init(struct pt_timer *t, const struct sigevent *sev)
{
	if (!sev) {
		/* The kernel's default: SIGALRM with the timer ID as value. */
		t->notify = SIGEV_SIGNAL;
		t->signo = SIGALRM;
		t->value.sival_ptr = NULL;
		t->value.sival_int = t->id;
		t->target = pt_pid;
		return 0;
	}
	t->notify = sev->sigev_notify;
	t->signo = sev->sigev_signo;
	t->value = sev->sigev_value;
	t->target = sev->sigev_notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID) ? sev->_sigev_un._tid
									   : pt_pid;
	if (sev->sigev_notify == SIGEV_THREAD) {
		t->thread_fn = sev->sigev_notify_function;
		return copy_thread_attr(t, sev->sigev_notify_attributes);
	}
	return 0;
}

void pt_notify_fini(struct pt_timer *t)
{
	if (t->thread_attr) {
		pthread_attr_destroy(t->thread_attr);
		free(t->thread_attr);
		t->thread_attr = NULL;
	}
}

/* Is bit signo set in the hex mask of a line ("\nSigPnd:") of a status file? */
static bool status_sigmask(const char *path, const char *field, int signo)
{
	char buf[2048];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false; /* the thread is gone: nothing can be pending */
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	const char *p = strstr(buf, field);
	if (!p)
		return false;
	unsigned long long mask = strtoull(p + strlen(field), NULL, 16);
	return mask >> (signo - 1) & 1;
}

/*
 * Is the timer's signal still waiting in the kernel?  Process-directed
 * signals sit in the shared queue, which sigpending() shows to the
 * dispatcher (it blocks every signal).  Thread-directed ones are in that
 * thread's queue, which only its status file shows.
 */
/* Is bit signo set in a mask line of a thread's status file? */
static bool task_sigmask(pid_t tid, const char *field, int signo)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	return status_sigmask(path, field, signo);
}

/* Is signo pending for thread tid, or (tid 0) in the process's queue?
 * The dispatcher blocks every signal: its sigpending() is that queue. */
static bool pending_at(pid_t tid, int signo)
{
	if (tid)
		return task_sigmask(tid, "\nSigPnd:", signo);
	sigset_t set;
	return sigpending(&set) == 0 && sigismember(&set, signo) == 1;
}

static bool signal_still_pending(const struct pt_timer *t)
{
	return pending_at((t->notify & SIGEV_THREAD_ID) ? t->target : t->sent_tid, t->signo);
}

/* Would the kernel drop this signal as ignored (its sig_ignored())?
 * Blocked signals are queued even when ignored. */
static bool signal_ignored(const struct pt_timer *t)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	} ka;

	if (syscall(SYS_rt_sigaction, t->signo, NULL, &ka, sizeof(ka.mask)) != 0 ||
	    !pt_disposition_ignores(t->signo, ka.handler))
		return false;
	return !task_sigmask(t->target, "\nSigBlk:", t->signo);
}

struct pt_stats pt_stats;

/* ---- the line of timers waiting on a pending standard signal ---- */

#define NSTD 32
static struct {
	pt_lock_t lock;
	struct pt_timer *head[NSTD], *tail[NSTD];
	int count[NSTD];
} legacy = { .lock = PT_LOCK_INIT };

static void legacy_push(struct pt_timer *t)
{
	int sig = t->signo;

	t->legacy_seq = t->signal_seq;
	pt_lock(&legacy.lock);
	t->legacy_queued = true;
	t->legacy_next = NULL;
	t->legacy_prev = legacy.tail[sig];
	if (legacy.tail[sig])
		legacy.tail[sig]->legacy_next = t;
	else
		legacy.head[sig] = t;
	legacy.tail[sig] = t;
	__atomic_store_n(&legacy.count[sig], legacy.count[sig] + 1, __ATOMIC_RELAXED);
	pt_unlock(&legacy.lock);
}

/* legacy.lock held. */
static void legacy_unlink(struct pt_timer *t)
{
	int sig = t->signo;

	if (!t->legacy_queued)
		return;
	if (t->legacy_prev)
		t->legacy_prev->legacy_next = t->legacy_next;
	else
		legacy.head[sig] = t->legacy_next;
	if (t->legacy_next)
		t->legacy_next->legacy_prev = t->legacy_prev;
	else
		legacy.tail[sig] = t->legacy_prev;
	t->legacy_queued = false;
	__atomic_store_n(&legacy.count[sig], legacy.count[sig] - 1, __ATOMIC_RELAXED);
}

static bool legacy_waiting(struct pt_timer *t)
{
	if (t->signo >= NSTD)
		return false;
	pt_lock(&legacy.lock);
	bool q = t->legacy_queued;
	pt_unlock(&legacy.lock);
	return q;
}

/* Is the timer's last signal still on its way: in the kernel's queue, or
 * waiting in line to be sent? */
static bool signal_in_flight(struct pt_timer *t)
{
	return t->sig_queued && (legacy_waiting(t) || signal_still_pending(t));
}

static bool send_signal(struct pt_timer *t);

void pt_legacy_taken(int sig)
{
	if (sig <= 0 || sig >= NSTD || !__atomic_load_n(&legacy.count[sig], __ATOMIC_RELAXED) ||
	    pt_lock_depth != 0)
		return;
	pt_rcu_read_lock();
	pt_lock(&legacy.lock);
	struct pt_timer *t = legacy.head[sig];
	if (t)
		legacy_unlink(t);
	pt_unlock(&legacy.lock);
	if (t) {
		/* Deleted since?  RCU keeps it readable; valid tells. */
		pt_lock(&t->lock);
		if (t->valid && t->sig_queued && t->legacy_seq == t->signal_seq) {
			pt_timer_seq_begin(t);
			if (!send_signal(t))
				PT_WRITE(t->sig_queued, false);
			pt_timer_seq_end(t);
		}
		pt_unlock(&t->lock);
	}
	pt_rcu_read_unlock();
}

/* Is a standard signal the kernel would merge already pending where this
 * timer's goes?  A CPU-clock signal is the process's, whichever thread
 * takes it. */
static bool legacy_would_merge(const struct pt_timer *t)
{
	return t->signo < NSTD &&
	       pending_at((t->notify & SIGEV_THREAD_ID) ? t->target : 0, t->signo);
}

static bool send_signal(struct pt_timer *t)
{
	siginfo_t info;

	PT_COUNT(signals);

	memset(&info, 0, sizeof(info));
	info.si_signo = t->signo;
	info.si_code = SI_TIMER;
	info.si_errno = pt_marker; /* cleared again where the program takes it */
	info.si_timerid = t->id;
	info.si_overrun = 0;       /* filled in at delivery */
	info.si_value = t->value;
	long r;
	t->sent_tid = 0;
	if (legacy_would_merge(t)) {
		legacy_push(t); /* sent when the pending one is taken */
		return true;
	}
	if (t->notify & SIGEV_THREAD_ID)
		return syscall(SYS_rt_tgsigqueueinfo, pt_pid, t->target, t->signo, &info) == 0;
	/* A CPU clock's signal goes to the thread that used the time, as
	 * the kernel prefers it (cpu.c); if that thread is gone, to the
	 * process. */
	pid_t via = t->via_tid;
	t->via_tid = 0;
	if (via) {
		r = syscall(SYS_rt_tgsigqueueinfo, pt_pid, via, t->signo, &info);
		if (r == 0) {
			t->sent_tid = via;
			return true;
		}
	}
	return syscall(SYS_rt_sigqueueinfo, pt_pid, t->signo, &info) == 0;
}

/* Probe for delivery one interval after an expiry whose signal is out. */
static void queue_probe(struct pt_timer *t, int64_t now)
{
	int64_t at = t->expires;

	if (at <= now)
		at += ((now - at) / t->interval + 1) * t->interval;
	t->probe = true;
	pt_queue_add(t, t->base, at);
}

static long parked; /* timers parked because their signal is ignored */

static void park(struct pt_timer *t)
{
	PT_WRITE(t->ignored, true);
	__atomic_fetch_add(&parked, 1, __ATOMIC_RELAXED);
}

static void unpark(struct pt_timer *t)
{
	if (t->ignored) {
		PT_WRITE(t->ignored, false);
		__atomic_fetch_sub(&parked, 1, __ATOMIC_RELAXED);
	}
}

void pt_notify_reset(struct pt_timer *t)
{
	unpark(t);
	if (t->signo > 0 && t->signo < NSTD) {
		pt_lock(&legacy.lock);
		legacy_unlink(t);
		pt_unlock(&legacy.lock);
	}
}

void pt_notify_fork_child(void)
{
	parked = 0;
	memset(legacy.head, 0, sizeof(legacy.head));
	memset(legacy.tail, 0, sizeof(legacy.tail));
	memset(legacy.count, 0, sizeof(legacy.count));
	pt_lock_reset(&legacy.lock);
}

static void fire_signal(struct pt_timer *t, int64_t now)
{
	pt_timer_seq_begin(t);
	PT_WRITE(t->status, t->interval ? PT_REQUEUE_PENDING : PT_DISARMED);
	t->probe_took = false;
	bool in_flight = signal_in_flight(t);
	if (!in_flight && signal_ignored(t)) {
		/* The kernel's posixtimer_sig_ignore(): a one-shot expiry is
		 * lost, a periodic timer waits for the signal to matter. */
		PT_WRITE(t->sig_queued, false);
		if (t->interval)
			park(t);
		pt_timer_seq_end(t);
		return;
	}
	if (in_flight) {
		/* At most one signal per timer: the one pending now stands for
		 * this expiry (the kernel updates its sequence the same way). */
		t->sigqueue_seq = t->signal_seq;
	} else if (send_signal(t)) {
		PT_WRITE(t->sig_queued, true);
		t->sigqueue_seq = t->signal_seq;
	} else {
		/* The target thread is gone: like the kernel, stop notifying. */
		PT_WRITE(t->sig_queued, false);
	}
	if (t->interval && t->sig_queued)
		queue_probe(t, now);
	pt_timer_seq_end(t);
}

static void fire_thread(struct pt_timer *t, int64_t now, struct pt_spawn *spawn)
{
	spawn->fn = t->thread_fn;
	spawn->value = t->value;
	spawn->attr = t->thread_attr;
	pt_timer_seq_begin(t);
	if (t->interval) {
		/* glibc's helper thread takes the signal at once, so the kernel
		 * re-arms right away: overruns are the periods already missed. */
		PT_WRITE(t->overrun_last, pt_timer_forward(t, now, false) - 1);
		PT_WRITE(t->overrun, -1);
		t->signal_seq++;
		pt_queue_add(t, t->base, t->expires);
	} else {
		PT_WRITE(t->status, PT_DISARMED);
	}
	pt_timer_seq_end(t);
}

void pt_notify_fire(struct pt_timer *t, int64_t now, struct pt_spawn *spawn)
{
	spawn->fn = NULL;
	if (t->probe) {
		/* Delivery check for a periodic timer whose signal is out. */
		t->probe = false;
		if (t->status != PT_REQUEUE_PENDING)
			return;
		if (signal_in_flight(t)) {
			queue_probe(t, now);
			return;
		}
		PT_WRITE(t->sig_queued, false);
		pt_timer_rearm_queued(t); /* expires <= now: fires on the next pass */
		t->probe_took = true;
		t->probe_seq = t->signal_seq;
		return;
	}
	if (t->status != PT_ARMED)
		return;
	if (t->notify == SIGEV_THREAD)
		fire_thread(t, now, spawn);
	else
		fire_signal(t, now);
}

/* The kernel's posixtimer_sig_unignore(): every timer parked on sig gets
 * its signal now, and is re-armed when that is delivered. */
void pt_sig_unignore(int sig)
{
	if (__atomic_load_n(&parked, __ATOMIC_RELAXED) == 0 || pt_lock_depth != 0)
		return;
	int id = 0;
	pt_rcu_read_lock();
	for (struct pt_timer *t; (t = pt_ids_next(&id)) != NULL; id++) {
		if (!PT_READ(t->ignored) || t->signo != sig)
			continue;
		pt_lock(&t->lock);
		if (t->valid && t->ignored) {
			unpark(t);
			pt_timer_seq_begin(t);
			if (t->status == PT_REQUEUE_PENDING && send_signal(t)) {
				PT_WRITE(t->sig_queued, true);
				t->sigqueue_seq = t->signal_seq;
				pt_queue_del(t);
				queue_probe(t, pt_now(t->base, t));
			}
			pt_timer_seq_end(t);
		}
		pt_unlock(&t->lock);
	}
	pt_rcu_read_unlock();
}

static void *thread_trampoline(void *arg)
{
	struct pt_spawn *s = arg;
	void (*fn)(union sigval) = s->fn;
	union sigval v = s->value;

	free(s);
	fn(v);
	return NULL;
}

void pt_notify_spawn(const struct pt_spawn *spawn)
{
	struct pt_spawn *s = malloc(sizeof(*s));
	pthread_t th;

	if (!s)
		return; /* as glibc: an expiry whose thread cannot start is lost */
	PT_COUNT(threads);
	*s = *spawn;
	if (pthread_create(&th, s->attr, thread_trampoline, s) != 0)
		free(s);
}
