/* SPDX-License-Identifier: MIT */
/*
 * Notification (notify.h).
 *
 * SIGEV_SIGNAL and SIGEV_THREAD_ID queue a real signal with the kernel's
 * SI_TIMER siginfo (si_timerid, si_overrun, si_value) through
 * rt_sigqueueinfo/rt_tgsigqueueinfo.  si_errno carries the engine's
 * marker, so that the places where the program takes signals (hooks.c)
 * know an engine signal from any other.
 *
 * The kernel does not queue a standard (non-realtime) signal twice, except
 * a timer's: each timer has its own queue entry.  rt_sigqueueinfo() cannot
 * do that, so a timer whose standard signal is already pending waits in a
 * per-signal line and is sent the moment the pending one is taken (which
 * the hooks see), in the order the kernel would deliver them.
 *
 * When the kernel refuses a real-time signal because the user's queue is
 * full (RLIMIT_SIGPENDING, shared by every process of the user), the send
 * is put off, not lost: the timer waits in a line, first come first
 * served, and the dispatcher sends from its front; while the queue stays
 * full this file refuses further sends for a millisecond at a time without
 * asking the kernel, so a full queue costs one system call per millisecond.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dispatch.h"
#include "notify.h"
#include "private.h"
#include "sys.h"

#define NSTD 32
#define FULL_BACKOFF_NS 1000000
#define UNTRACKED_LOOK_NS 1000000

static struct {
	unsigned long signals, full;
} stats;
static uint64_t dispositions_asked; /* kernel_ignores(), ask_blocked() */
#define COUNT(field) __atomic_fetch_add(&stats.field, 1, __ATOMIC_RELAXED)

/* The dispatcher's own sends, counted without a locked instruction: at a
 * million signals a second, one on every send is measurable. */
static unsigned long dispatcher_signals;

static void count_signal(long n)
{
	if (pt_dispatch_is_self())
		__atomic_store_n(&dispatcher_signals, dispatcher_signals + n, __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&stats.signals, n, __ATOMIC_RELAXED);
}

void pt_notify_stats(struct pt_notify_stats *out)
{
	out->signals = __atomic_load_n(&stats.signals, __ATOMIC_RELAXED) +
		       __atomic_load_n(&dispatcher_signals, __ATOMIC_RELAXED);
	out->full = __atomic_load_n(&stats.full, __ATOMIC_RELAXED);
	out->asked = __atomic_load_n(&dispositions_asked, __ATOMIC_RELAXED);
}

/* This engine's marker.  Mixing in an address keeps two engines in one
 * process (the drop-in over a program linked with -lptimers) apart. */
int pt_marker;

__attribute__((constructor(101))) static void marker_init(void)
{
	pt_marker = (int)(0x70000000u | ((uintptr_t)&pt_marker >> 4 & 0xff) << 16);
}

bool pt_notify_is_engine_signal(const siginfo_t *si)
{
	return ptimer__marked(pt_marker, si->si_code, si->si_errno);
}

static bool is_own_thread(pid_t tid)
{
	/* tgkill with signal 0 checks that tid is a thread of this process. */
	return tid > 0 && syscall(SYS_tgkill, pt_pid, tid, 0) == 0;
}

int pt_notify_check(const struct sigevent *sev)
{
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

/* ---- asking the kernel ---- */

/* The hex mask of a line ("\nSigPnd:") of a thread's status file; 0 when
 * the thread is gone. */
static uint64_t task_mask(pid_t tid, const char *field)
{
	char path[64], buf[2048];

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	/* Three system calls, and callers hold a timer's lock: outside the
	 * time-slice extension, as every question to the kernel here. */
	pt_slice_pause();
	ssize_t n = pt_sys_read_file(path, buf, sizeof(buf));
	pt_slice_resume();
	if (n <= 0) /* no file: the thread is gone, nothing can be pending */
		return 0;
	const char *p = strstr(buf, field);
	if (!p)
		return 0;
	return strtoull(p + strlen(field), NULL, 16);
}

/* Is bit signo set in that mask? */
static bool task_sigmask(pid_t tid, const char *field, int signo)
{
	return task_mask(tid, field) >> (signo - 1) & 1;
}

/* Is signo pending for thread tid, or (tid 0) in the process's queue?
 * Process-directed signals sit in the shared queue, which sigpending()
 * shows (on the dispatcher, which blocks every signal, that is all it
 * shows).  A thread's own queue only its status file shows. */
static bool pending_at(pid_t tid, int signo)
{
	if (tid)
		return task_sigmask(tid, "\nSigPnd:", signo);
	sigset_t set;
	pt_slice_pause();
	int r = sigpending(&set);
	pt_slice_resume();
	return r == 0 && sigismember(&set, signo) == 1;
}

/* ---- the line of timers waiting on a pending standard signal ---- */

struct line_ent {
	struct pt_timer *t;
	uint32_t seq;
};

static struct {
	pt_lock_t lock;
	struct line_ent *ent[NSTD];
	unsigned head[NSTD], len[NSTD], cap[NSTD];
} line = { .lock = PT_LOCK_INIT };

static bool line_push(struct pt_timer *t)
{
	int sig = t->signo;
	bool ok = true;

	pt_lock(&line.lock);
	if (line.len[sig] == line.cap[sig]) {
		unsigned cap = line.cap[sig] ? line.cap[sig] * 2 : 8;
		struct line_ent *e = malloc(cap * sizeof(*e));
		if (!e) {
			ok = false;
			goto out;
		}
		for (unsigned i = 0; i < line.len[sig]; i++)
			e[i] = line.ent[sig][(line.head[sig] + i) % line.cap[sig]];
		free(line.ent[sig]);
		line.ent[sig] = e;
		line.head[sig] = 0;
		line.cap[sig] = cap;
	}
	line.ent[sig][(line.head[sig] + line.len[sig]) % line.cap[sig]] =
		(struct line_ent){ t, t->signal_seq };
	__atomic_store_n(&line.len[sig], line.len[sig] + 1, __ATOMIC_RELAXED);
out:
	pt_unlock(&line.lock);
	return ok;
}

void pt_notify_unline(const struct pt_timer *t)
{
	int sig = t->signo;

	pt_lock(&line.lock);
	unsigned n = line.len[sig], cap = line.cap[sig], h = line.head[sig], kept = 0;
	for (unsigned i = 0; i < n; i++) {
		struct line_ent e = line.ent[sig][(h + i) % cap];
		if (e.t != t)
			line.ent[sig][(h + kept++) % cap] = e;
	}
	__atomic_store_n(&line.len[sig], kept, __ATOMIC_RELAXED);
	pt_unlock(&line.lock);
}

bool pt_notify_lined(int sig)
{
	return sig > 0 && sig < NSTD && __atomic_load_n(&line.len[sig], __ATOMIC_RELAXED);
}

struct pt_timer *pt_notify_line_pop(int sig, uint32_t *seq)
{
	struct pt_timer *t = NULL;

	if (!pt_notify_lined(sig))
		return NULL;
	pt_lock(&line.lock);
	if (line.len[sig]) {
		struct line_ent e = line.ent[sig][line.head[sig]];
		line.head[sig] = (line.head[sig] + 1) % line.cap[sig];
		__atomic_store_n(&line.len[sig], line.len[sig] - 1, __ATOMIC_RELAXED);
		t = e.t;
		*seq = e.seq;
	}
	pt_unlock(&line.lock);
	return t;
}

/* The timer whose signal the dispatcher sends after letting go of its
 * lock (pt_notify_send_begin()), 1 added once the send failed and until
 * its record is put right; 0 for none. */
static uintptr_t sending;

void pt_notify_send_begin(const struct pt_timer *t)
{
	__atomic_store_n(&sending, (uintptr_t)t, __ATOMIC_RELEASE);
}

void pt_notify_send_end(bool went)
{
	__atomic_store_n(&sending, went ? 0 : __atomic_load_n(&sending, __ATOMIC_RELAXED) | 1,
			 __ATOMIC_RELEASE);
}

void pt_notify_send_settled(void)
{
	__atomic_store_n(&sending, 0, __ATOMIC_RELEASE);
}

bool pt_notify_pending(const struct pt_timer *t)
{
	if (t->flags & PT_F_LINED)
		return true;
	/* The dispatcher sends it now: once the system call returns, the
	 * kernel's queue says whether it is still there, or it did not go
	 * (not taken, then: pending as far as the program can tell).  The
	 * sender takes no lock meanwhile, and may be put aside on this CPU. */
	uintptr_t v = __atomic_load_n(&sending, __ATOMIC_ACQUIRE);
	if (v == (uintptr_t)t) {
		pt_slice_pause();
		while ((v = __atomic_load_n(&sending, __ATOMIC_ACQUIRE)) == (uintptr_t)t)
			sched_yield();
		pt_slice_resume();
	}
	if (v == ((uintptr_t)t | 1))
		return true;
	return pending_at((t->notify & SIGEV_THREAD_ID) ? t->target : t->sent_tid, t->signo);
}

/* Signals whose default action is to do nothing (the kernel's
 * sig_kernel_ignore()). */
static bool default_ignored(int sig)
{
	return sig == SIGCHLD || sig == SIGCONT || sig == SIGURG || sig == SIGWINCH;
}

/* Per signal: 0 not known, 1 acted on (caught or a default action), 2
 * ignored.  Kept only while the hooks report every change. */
static uint8_t disposition[KERNEL_SIGRTMAX + 1];
static bool tracked;

void pt_notify_track_dispositions(void)
{
	__atomic_store_n(&tracked, true, __ATOMIC_RELEASE);
}

bool pt_notify_tracks_dispositions(void)
{
	return __atomic_load_n(&tracked, __ATOMIC_ACQUIRE);
}

void pt_notify_disposition(int sig, bool ignored)
{
	if (sig > 0 && sig <= KERNEL_SIGRTMAX)
		__atomic_store_n(&disposition[sig], ignored ? 2 : 1, __ATOMIC_RELEASE);
}

static bool kernel_ignores(int sig)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	} ka;

	__atomic_fetch_add(&dispositions_asked, 1, __ATOMIC_RELAXED);
	pt_slice_pause(); /* as task_sigmask() */
	long r = syscall(SYS_rt_sigaction, sig, NULL, &ka, sizeof(ka.mask));
	pt_slice_resume();
	if (r != 0)
		return false;
	return ka.handler == (void *)SIG_IGN || (ka.handler == (void *)SIG_DFL && default_ignored(sig));
}

/* Nothing tells the engine that a program without the hooks stopped
 * ignoring a signal (a handler installed through libc): its parked timers
 * ask here at their period boundaries (timer.c), and a thousand of them
 * on one signal still make one system call a millisecond. */
bool pt_notify_untracked_ignores(int sig)
{
	static int64_t asked[KERNEL_SIGRTMAX + 1];
	static bool answer[KERNEL_SIGRTMAX + 1];

	if (pt_notify_tracks_dispositions() || sig <= 0 || sig > KERNEL_SIGRTMAX)
		return false;
	int64_t now = pt_clock_ns(CLOCK_MONOTONIC);
	if (!asked[sig] || now - asked[sig] >= UNTRACKED_LOOK_NS) {
		answer[sig] = kernel_ignores(sig);
		asked[sig] = now;
	}
	return answer[sig];
}

/*
 * Without the hooks, the answer for the expiries the dispatcher finds due
 * in one look.  The kernel asks at each expiry, when the timer falls due;
 * every expiry of a look fell due at or before that look's clock reading,
 * and the answer is asked after it, so one answer is as late as the
 * kernel's for each of them (as the engine's sends always are).  A burst
 * of a thousand expiries then costs one system call, not a thousand.  The
 * dispatcher's alone: the cache is its own.
 */
static struct {
	struct pt_when when;
	bool ignored, valid;
} look[KERNEL_SIGRTMAX + 1];

static bool same_look(const struct pt_when *a, const struct pt_when *b)
{
	return a->now == b->now && a->base == b->base;
}

static bool look_ignores(int sig, const struct pt_when *when)
{
	if (!when || !pt_dispatch_is_self())
		return kernel_ignores(sig);
	typeof(&look[0]) l = &look[sig];
	if (!l->valid || !same_look(&l->when, when)) {
		l->ignored = kernel_ignores(sig);
		l->when = *when;
		l->valid = true;
	}
	return l->ignored;
}

/*
 * Does thread tid block sig?  Only its status file says (three system
 * calls, some 8 us here): for an ignored signal that was a read for every
 * expiry, with or without the hooks.  The dispatcher keeps the last
 * thread's mask for the rest of a look, by the argument above (a thread
 * blocking the signal after the look took the expiries too late for the
 * kernel as well).
 */
static struct {
	struct pt_when when;
	pid_t tid;
	uint64_t mask;
} blocked_look;

static uint64_t ask_blocked(pid_t tid)
{
	__atomic_fetch_add(&dispositions_asked, 1, __ATOMIC_RELAXED);
	return task_mask(tid, "\nSigBlk:");
}

static bool blocks(pid_t tid, int sig, const struct pt_when *when)
{
	if (!when || !pt_dispatch_is_self())
		return ask_blocked(tid) >> (sig - 1) & 1;
	if (blocked_look.tid != tid || !same_look(&blocked_look.when, when)) {
		blocked_look.mask = ask_blocked(tid);
		blocked_look.when = *when;
		blocked_look.tid = tid;
	}
	return blocked_look.mask >> (sig - 1) & 1;
}

bool pt_notify_ignored(const struct pt_timer *t, const struct pt_when *when)
{
	int sig = t->signo;
	uint8_t d = __atomic_load_n(&disposition[sig], __ATOMIC_ACQUIRE);
	if (!d || !__atomic_load_n(&tracked, __ATOMIC_ACQUIRE)) {
		d = look_ignores(sig, when) ? 2 : 1;
		if (__atomic_load_n(&tracked, __ATOMIC_ACQUIRE)) {
			uint8_t unknown = 0;
			__atomic_compare_exchange_n(&disposition[sig], &unknown, d, false, __ATOMIC_ACQ_REL,
						    __ATOMIC_RELAXED);
		}
	}
	if (d != 2)
		return false;
	/* Blocked signals are queued even when ignored. */
	return !blocks(t->target, t->signo, when);
}

/* ---- the line of timers whose send the full queue put off ---- */

/* First come, first served: a timer that waits here is sent before any
 * timer whose expiry comes later, and a fresh expiry joins the back
 * while anyone waits, so that every waiting timer gets its turn however
 * busy the machine.  A ring of (timer, signal_seq) under its own lock;
 * the dispatcher takes from the front. */
static struct {
	pt_lock_t lock;
	struct line_ent *ent;
	unsigned head, len, cap;
} waiting = { .lock = PT_LOCK_INIT };

bool pt_notify_wait_push(struct pt_timer *t, bool front)
{
	bool ok = true;

	pt_lock(&waiting.lock);
	if (waiting.len == waiting.cap) {
		unsigned cap = waiting.cap ? waiting.cap * 2 : 64;
		struct line_ent *e = malloc(cap * sizeof(*e));
		if (!e) {
			ok = false;
			goto out;
		}
		for (unsigned i = 0; i < waiting.len; i++)
			e[i] = waiting.ent[(waiting.head + i) % waiting.cap];
		free(waiting.ent);
		waiting.ent = e;
		waiting.head = 0;
		waiting.cap = cap;
	}
	struct line_ent e = { t, t->signal_seq };
	if (front) {
		waiting.head = (waiting.head + waiting.cap - 1) % waiting.cap;
		waiting.ent[waiting.head] = e;
	} else {
		waiting.ent[(waiting.head + waiting.len) % waiting.cap] = e;
	}
	__atomic_store_n(&waiting.len, waiting.len + 1, __ATOMIC_RELAXED);
out:
	pt_unlock(&waiting.lock);
	return ok;
}

bool pt_notify_waiting(void)
{
	return __atomic_load_n(&waiting.len, __ATOMIC_RELAXED) != 0;
}

struct pt_timer *pt_notify_wait_pop(uint32_t *seq)
{
	struct pt_timer *t = NULL;

	if (!pt_notify_waiting())
		return NULL;
	pt_lock(&waiting.lock);
	if (waiting.len) {
		struct line_ent e = waiting.ent[waiting.head];
		waiting.head = (waiting.head + 1) % waiting.cap;
		__atomic_store_n(&waiting.len, waiting.len - 1, __ATOMIC_RELAXED);
		t = e.t;
		*seq = e.seq;
	}
	pt_unlock(&waiting.lock);
	return t;
}

/* ---- sending ---- */

static int64_t full_until; /* CLOCK_MONOTONIC: the queue was full until then */

int64_t pt_notify_full_until(void)
{
	return __atomic_load_n(&full_until, __ATOMIC_RELAXED);
}

/* Linux 6.15's name for the caller's own process, to pidfd_send_signal():
 * no descriptor and no PID to look up (here it costs what rt_sigqueueinfo()
 * does, ~2 us a signal with a thread taking them).  Where it is unknown
 * (an older kernel, a seccomp filter) the first refusal turns to
 * rt_sigqueueinfo() for good. */
#define SELF_THREAD_GROUP (-10001)
static bool self_unknown;

static long send_process(int sig, siginfo_t *info)
{
	if (!__atomic_load_n(&self_unknown, __ATOMIC_RELAXED)) {
		long r = syscall(SYS_pidfd_send_signal, SELF_THREAD_GROUP, sig, info, 0);
		if (r == 0 || (errno != EBADF && errno != ENOSYS && errno != EINVAL && errno != EPERM))
			return r;
		__atomic_store_n(&self_unknown, true, __ATOMIC_RELAXED);
	}
	return syscall(SYS_rt_sigqueueinfo, pt_pid, sig, info);
}

enum pt_send pt_notify_prepare(struct pt_timer *t, pid_t via, uint64_t via_mask, struct pt_sending *s)
{
	/* Is a standard signal the kernel would merge already pending where
	 * this timer's goes?  A CPU-clock signal is the process's, whichever
	 * thread takes it. */
	if (t->signo < NSTD && pending_at((t->notify & SIGEV_THREAD_ID) ? t->target : 0, t->signo) &&
	    line_push(t))
		return PT_LINED;
	int64_t until = __atomic_load_n(&full_until, __ATOMIC_RELAXED);
	if (until && pt_clock_ns(CLOCK_MONOTONIC) < until) {
		COUNT(full);
		return PT_FULL;
	}
	memset(&s->info, 0, sizeof(s->info));
	s->info.si_signo = t->signo;
	s->info.si_code = SI_TIMER;
	s->info.si_errno = pt_marker | t->stamp; /* cleared where the program takes it */
	s->info.si_timerid = t->id;
	s->info.si_overrun = 0;       /* filled in at delivery */
	s->info.si_value = t->value;
	s->thread = (t->notify & SIGEV_THREAD_ID) ? t->target : 0;
	/* A CPU clock's signal goes to the thread that used the time, as
	 * the kernel prefers it (cpu.c), unless that thread blocks it or is
	 * gone: then to the process. */
	s->via = !s->thread && via && !(via_mask >> (t->signo - 1) & 1) ? via : 0;
	return PT_SENT;
}

enum pt_send pt_notify_fire(struct pt_sending *s, pid_t *sent_tid)
{
	long r;
	int sig = s->info.si_signo;

	/* Counted before it goes: its receiver may look at the count before
	 * the sender runs again. */
	count_signal(1);
	*sent_tid = 0;
	if (s->thread) {
		r = syscall(SYS_rt_tgsigqueueinfo, pt_pid, s->thread, sig, &s->info);
	} else {
		bool to_process = true;
		if (s->via) {
			r = syscall(SYS_rt_tgsigqueueinfo, pt_pid, s->via, sig, &s->info);
			if (r == 0)
				*sent_tid = s->via;
			to_process = r != 0 && errno == ESRCH;
		}
		if (to_process)
			r = send_process(sig, &s->info);
	}
	if (r == 0) {
		if (__atomic_load_n(&full_until, __ATOMIC_RELAXED))
			__atomic_store_n(&full_until, 0, __ATOMIC_RELAXED);
		return PT_SENT;
	}
	count_signal(-1);
	if (errno == EAGAIN) {
		__atomic_store_n(&full_until, pt_clock_ns(CLOCK_MONOTONIC) + FULL_BACKOFF_NS,
				 __ATOMIC_RELAXED);
		COUNT(full);
		return PT_FULL;
	}
	return PT_GONE;
}

/* Sending is a system call: the caller holds the timer's lock, and the
 * extension it asked for is withdrawn around it. */
enum pt_send pt_notify_send(struct pt_timer *t, pid_t via, uint64_t via_mask, pid_t *sent_tid)
{
	struct pt_sending s;

	*sent_tid = 0;
	pt_slice_pause();
	enum pt_send r = pt_notify_prepare(t, via, via_mask, &s);
	if (r == PT_SENT)
		r = pt_notify_fire(&s, sent_tid);
	pt_slice_resume();
	return r;
}

void pt_notify_fork_prepare(void)
{
	pt_lock(&line.lock);
	pt_lock(&waiting.lock);
}

void pt_notify_fork_parent(void)
{
	pt_unlock(&waiting.lock);
	pt_unlock(&line.lock);
}

void pt_notify_fork_child(void)
{
	for (int i = 0; i < NSTD; i++) {
		free(line.ent[i]);
		line.ent[i] = NULL;
		line.head[i] = line.len[i] = line.cap[i] = 0;
	}
	free(waiting.ent);
	waiting.ent = NULL;
	waiting.head = waiting.len = waiting.cap = 0;
	pt_lock_reset(&waiting.lock);
	full_until = 0;
	pt_lock_reset(&line.lock);
	memset(&look, 0, sizeof(look));
	memset(&blocked_look, 0, sizeof(blocked_look));
	sending = 0;
}
