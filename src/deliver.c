/* SPDX-License-Identifier: MIT */
/*
 * Delivery: learning the moment the program takes an engine signal.
 *
 * The kernel re-arms a periodic timer, fills in si_overrun and drops a
 * stale signal (one whose timer was re-armed or deleted since it was
 * queued) at the moment the signal is dequeued.  In user space that moment
 * is visible only where the program takes the signal, so the engine sits
 * in those places:
 *
 *   - handlers: sigaction(), signal(), bsd_signal() and sysv_signal()
 *     install the program's handler behind a trampoline;
 *   - sigwaitinfo(), sigtimedwait() and sigwait();
 *   - signalfd(): read() on a signalfd (dup(), dup2(), dup3() and close()
 *     keep track of which descriptors are signalfds).
 *
 * Each sees every signal and passes anything not sent by this engine
 * through untouched.  An engine signal carries a marker in si_errno (the
 * one field every way of taking a signal reports, signalfd included); the
 * program sees si_errno == 0 as from the kernel.  A stale engine signal is
 * swallowed: a handler is not called, a wait goes on waiting, a signalfd
 * read leaves the record out.
 *
 * A signal may interrupt a thread that is inside the engine, holding locks
 * the delivery or the program's handler (timer_settime is async-signal-
 * safe) needs.  The trampoline then sets the signal aside and it is queued
 * again to the same thread when the thread leaves the engine (see lock.h):
 * a few hundred nanoseconds later, as the kernel delivers signals only
 * when it leaves its own critical sections.  Faults (SIGSEGV and the like)
 * and SA_RESETHAND handlers are never set aside.
 *
 * Programs that take signals by raw system calls are not seen; for them the
 * dispatcher's probe (notify.c) learns delivery within one interval, and
 * ptimer_signal_delivered() lets them report it exactly.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define NSIG_KERNEL 64

__thread unsigned pt_lock_depth __attribute__((tls_model("initial-exec")));
__thread unsigned pt_deferred_count __attribute__((tls_model("initial-exec")));

#define MAX_DEFERRED 4
static __thread siginfo_t deferred[MAX_DEFERRED] __attribute__((tls_model("initial-exec")));

/* This engine's marker.  Mixing in an address keeps two engines in one
 * process (the drop-in over a program linked with -lptimers) apart. */
int pt_marker;

__attribute__((constructor(101))) static void marker_init(void)
{
	pt_marker = (int)(0x70740000u | ((uintptr_t)&pt_marker >> 4 & 0xffff));
}

bool pt_is_engine_signal(const siginfo_t *si)
{
	return si->si_code == SI_TIMER && si->si_errno == pt_marker && pt_marker != 0;
}

/* ---- the next definitions of what we wrap ---- */

static struct {
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	int (*sigtimedwait)(const sigset_t *, siginfo_t *, const struct timespec *);
	int (*signalfd)(int, const sigset_t *, int);
	ssize_t (*read)(int, void *, size_t);
	int (*close)(int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
} next;

static void *lookup(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);
	if (!p) {
		/* libc always has these; without one there is nothing to
		 * stand in front of, and nothing sensible to do. */
		static const char msg[] = "ptimers: libc function missing behind the engine\n";
		(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
		abort();
	}
	return p;
}

static void *next_fn(void **slot, const char *name)
{
	void *p = __atomic_load_n(slot, __ATOMIC_RELAXED);
	if (__builtin_expect(!p, 0)) {
		p = lookup(name);
		__atomic_store_n(slot, p, __ATOMIC_RELAXED);
	}
	return p;
}
#define NEXT(fn) ((__typeof__(next.fn))next_fn((void **)&next.fn, #fn))

/* Resolved early so that a handler calling sigaction() need not dlsym(). */
__attribute__((constructor(101))) static void next_init(void)
{
	(void)NEXT(sigaction);
	(void)NEXT(sigtimedwait);
	(void)NEXT(signalfd);
	(void)NEXT(read);
	(void)NEXT(close);
	(void)NEXT(dup);
	(void)NEXT(dup2);
	(void)NEXT(dup3);
}

int pt_real_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	return NEXT(sigaction)(sig, act, old);
}

/* ---- handlers ---- */

/* The program's handler per signal, while the trampoline stands in. */
static struct {
	void *fn;
	bool siginfo;
	struct sigaction act; /* as the program gave it, for oldact */
} user[NSIG_KERNEL + 1];

/* A fault must be handled where it happened: running on would fault again. */
static bool synchronous(int sig, const siginfo_t *si)
{
	return si && si->si_code > 0 &&
	       (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL ||
		sig == SIGTRAP || sig == SIGSYS);
}

/* The program has taken a signal: a handler outside the engine, a wait,
 * a signalfd record.  Returns 1 when the program gets it (an engine signal
 * then counts as delivered: si_overrun filled in, marker cleared), 0 when
 * it is swallowed: stale, or the engine's own (cpu.c). */
static int taken(siginfo_t *si)
{
	pt_legacy_taken(si->si_signo); /* a standard signal's slot is free again */
	if (pt_cpu_signal(si, NULL))
		return 0;
	return pt_is_engine_signal(si) ? pt_deliver(si) : 1;
}

static void trampoline(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;

	if (pt_lock_depth != 0 && si && !synchronous(sig, si) &&
	    !(user[sig].act.sa_flags & SA_RESETHAND) && pt_deferred_count < MAX_DEFERRED) {
		/* This thread is inside the engine: set it aside. */
		deferred[pt_deferred_count++] = *si;
		errno = saved_errno;
		return;
	}
	if (pt_lock_depth != 0) {
		/* Nowhere left to set it aside: pass it on as it is. */
		if (si && pt_is_engine_signal(si))
			si->si_errno = 0;
	} else if (si && !taken(si)) {
		errno = saved_errno;
		return; /* stale: dropped, as the kernel drops it */
	}
	void *fn = __atomic_load_n(&user[sig].fn, __ATOMIC_ACQUIRE);
	errno = saved_errno;
	if (fn == (void *)SIG_IGN || fn == (void *)SIG_DFL || !fn)
		return; /* changed under us while this signal was on its way */
	if (user[sig].siginfo)
		((void (*)(int, siginfo_t *, void *))fn)(sig, si, uc);
	else
		((void (*)(int))fn)(sig);
}

void pt_deliver_deferred(void)
{
	while (pt_deferred_count) {
		siginfo_t info = deferred[--pt_deferred_count];
		pid_t tid = (pid_t)syscall(SYS_gettid);
		/* The same siginfo to the same thread.  The kernel takes sender
		 * codes (kill, tkill) only from the main thread; elsewhere
		 * tgkill() is the next best thing. */
		if (syscall(SYS_rt_tgsigqueueinfo, pt_pid, tid, info.si_signo, &info) != 0)
			syscall(SYS_tgkill, pt_pid, tid, info.si_signo);
	}
}

static bool is_handler(const struct sigaction *act)
{
	return act->sa_handler != SIG_IGN && act->sa_handler != SIG_DFL;
}

/* Signals whose default action is to do nothing (the kernel's
 * sig_kernel_ignore()). */
static bool default_ignored(int sig)
{
	return sig == SIGCHLD || sig == SIGCONT || sig == SIGURG || sig == SIGWINCH;
}

bool pt_disposition_ignores(int sig, void *handler)
{
	return handler == (void *)SIG_IGN || (handler == (void *)SIG_DFL && default_ignored(sig));
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
	struct sigaction kact, kold;

	if (act && sig > 0 && sig == pt_cpu_signo()) {
		/* The engine's own (cpu.c), outside SIGRTMIN..SIGRTMAX now:
		 * refused as glibc refuses its own. */
		errno = EINVAL;
		return -1;
	}
	bool wrap = act && sig >= 1 && sig <= NSIG_KERNEL && is_handler(act) &&
		    sig != SIGKILL && sig != SIGSTOP;
	struct sigaction prev_user = sig >= 1 && sig <= NSIG_KERNEL ? user[sig].act
								   : (struct sigaction){ 0 };

	if (wrap) {
		kact = *act;
		kact.sa_sigaction = trampoline;
		kact.sa_flags |= SA_SIGINFO;
		/* Publish the handler before the trampoline can run for it. */
		user[sig].act = *act;
		user[sig].siginfo = act->sa_flags & SA_SIGINFO;
		__atomic_store_n(&user[sig].fn, (void *)act->sa_handler, __ATOMIC_RELEASE);
	}
	int r = NEXT(sigaction)(sig, wrap ? &kact : act, &kold);
	if (r != 0) {
		if (wrap)
			__atomic_store_n(&user[sig].fn, (void *)prev_user.sa_handler, __ATOMIC_RELEASE);
		return r;
	}
	if (act && !wrap && sig >= 1 && sig <= NSIG_KERNEL)
		__atomic_store_n(&user[sig].fn, (void *)act->sa_handler, __ATOMIC_RELEASE);
	if (oldact) {
		if (kold.sa_sigaction == trampoline)
			*oldact = prev_user;
		else
			*oldact = kold;
	}
	/* Timers whose signal was ignored get it now that it is not (the
	 * kernel's posixtimer_sig_unignore()). */
	if (act && pt_disposition_ignores(sig, (void *)kold.sa_handler) &&
	    !pt_disposition_ignores(sig, (void *)act->sa_handler))
		pt_sig_unignore(sig);
	return 0;
}

/* glibc's signal() family calls its own sigaction internally, so each is
 * written again here on top of ours, with glibc's flags. */
static sighandler_t signal_with(int sig, sighandler_t handler, int flags)
{
	struct sigaction act, old;

	if (handler == SIG_ERR || sig < 1 || sig > NSIG_KERNEL) {
		errno = EINVAL;
		return SIG_ERR;
	}
	memset(&act, 0, sizeof(act));
	act.sa_handler = handler;
	sigemptyset(&act.sa_mask);
	if (!(flags & SA_NODEFER))
		sigaddset(&act.sa_mask, sig);
	act.sa_flags = flags;
	if (sigaction(sig, &act, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}

sighandler_t signal(int sig, sighandler_t handler)
{
	return signal_with(sig, handler, SA_RESTART);
}

sighandler_t bsd_signal(int sig, sighandler_t handler)
{
	return signal_with(sig, handler, SA_RESTART);
}

sighandler_t sysv_signal(int sig, sighandler_t handler)
{
	return signal_with(sig, handler, SA_RESETHAND | SA_NODEFER);
}

/* ---- sigwaitinfo and friends ---- */

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return pt_ts_to_ns(&ts);
}

int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *timeout)
{
	siginfo_t local;
	siginfo_t *si = info ? info : &local;
	int64_t end = 0;
	struct timespec left;

	if (timeout && timeout->tv_nsec >= 0 && timeout->tv_nsec < PT_NSEC_PER_SEC &&
	    timeout->tv_sec >= 0)
		end = pt_add_sat(mono_ns(), pt_ts_to_ns(timeout) > 0 ? pt_ts_to_ns(timeout) : 0);
	const struct timespec *ts = timeout;
	for (;;) {
		int r = NEXT(sigtimedwait)(set, si, ts);
		if (r <= 0 || taken(si))
			return r;
		/* Swallowed: the kernel would not have returned it. */
		if (timeout && end) {
			int64_t rest = end - mono_ns();
			left = pt_ns_to_ts(rest > 0 ? rest : 0);
			ts = &left;
		}
	}
}

int sigwaitinfo(const sigset_t *set, siginfo_t *info)
{
	return sigtimedwait(set, info, NULL);
}

int sigwait(const sigset_t *set, int *sig)
{
	int r;

	do
		r = sigtimedwait(set, NULL, NULL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno;
	*sig = r;
	return 0;
}

/* ---- signalfd ---- */

#define MAX_TRACKED_FD 65536
static unsigned long sfd_bits[MAX_TRACKED_FD / (8 * sizeof(unsigned long))];
#define BITS_PER (8 * sizeof(unsigned long))

static bool sfd_is(int fd)
{
	return fd >= 0 && fd < MAX_TRACKED_FD &&
	       (__atomic_load_n(&sfd_bits[fd / BITS_PER], __ATOMIC_RELAXED) >> (fd % BITS_PER) & 1);
}

static void sfd_set(int fd, bool on)
{
	if (fd < 0 || fd >= MAX_TRACKED_FD)
		return;
	unsigned long bit = 1UL << (fd % BITS_PER);
	if (on)
		__atomic_fetch_or(&sfd_bits[fd / BITS_PER], bit, __ATOMIC_RELAXED);
	else if (sfd_bits[fd / BITS_PER] & bit)
		__atomic_fetch_and(&sfd_bits[fd / BITS_PER], ~bit, __ATOMIC_RELAXED);
}

int signalfd(int fd, const sigset_t *mask, int flags)
{
	int r = NEXT(signalfd)(fd, mask, flags);
	if (r >= 0)
		sfd_set(r, true);
	return r;
}

/* Each record of a signalfd read is a signal taken: keep what the program
 * gets.  Returns the new byte count. */
static size_t filter_records(struct signalfd_siginfo *rec, size_t n)
{
	size_t out = 0;

	for (size_t i = 0; i < n; i++) {
		struct signalfd_siginfo *s = &rec[i];
		siginfo_t si;
		memset(&si, 0, sizeof(si));
		si.si_signo = (int)s->ssi_signo;
		si.si_code = s->ssi_code;
		si.si_errno = s->ssi_errno;
		si.si_timerid = (int)s->ssi_tid;
		si.si_overrun = (int)s->ssi_overrun;
		si.si_ptr = (void *)(uintptr_t)s->ssi_ptr;
		if (!taken(&si))
			continue;
		if (si.si_code == SI_TIMER) {
			s->ssi_overrun = (uint32_t)si.si_overrun;
			s->ssi_errno = si.si_errno;
		}
		if (out != i)
			rec[out] = *s;
		out++;
	}
	return out * sizeof(*rec);
}

ssize_t read(int fd, void *buf, size_t count)
{
	for (;;) {
		ssize_t r = NEXT(read)(fd, buf, count);
		if (r <= 0 || !sfd_is(fd) || r % sizeof(struct signalfd_siginfo))
			return r;
		size_t kept = filter_records(buf, (size_t)r / sizeof(struct signalfd_siginfo));
		if (kept)
			return (ssize_t)kept;
		/* Every record was stale: the kernel would have had nothing. */
		int fl = fcntl(fd, F_GETFL);
		if (fl >= 0 && (fl & O_NONBLOCK)) {
			errno = EAGAIN;
			return -1;
		}
	}
}

int close(int fd)
{
	sfd_set(fd, false);
	return NEXT(close)(fd);
}

int dup(int fd)
{
	int r = NEXT(dup)(fd);
	if (r >= 0)
		sfd_set(r, sfd_is(fd));
	return r;
}

int dup2(int fd, int fd2)
{
	int r = NEXT(dup2)(fd, fd2);
	if (r >= 0)
		sfd_set(r, sfd_is(fd));
	return r;
}

int dup3(int fd, int fd2, int flags)
{
	int r = NEXT(dup3)(fd, fd2, flags);
	if (r >= 0)
		sfd_set(r, sfd_is(fd));
	return r;
}

void pt_deliver_fork_child(void)
{
	pt_lock_depth = 0;
	pt_deferred_count = 0; /* they were the parent's */
}
