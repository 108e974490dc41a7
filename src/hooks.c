/* SPDX-License-Identifier: MIT */
/*
 * The hooks: libc's signal-taking functions, wrapped so that the engine
 * learns the moment the program takes one of its signals.
 *
 * The kernel re-arms a periodic timer, fills in si_overrun and drops a
 * stale signal (one whose timer was re-armed or deleted since it was
 * queued) at the moment the signal is dequeued.  In user space that moment
 * is visible only where the program takes the signal, so the hooks sit in
 * those places:
 *
 *   - handlers: sigaction(), signal(), bsd_signal(), sysv_signal(),
 *     sigset(), sigignore() and siginterrupt() install the program's
 *     handler behind a trampoline (and say when a signal is ignored);
 *   - sigwaitinfo(), sigtimedwait() and sigwait();
 *   - signalfd(): read() on a signalfd (dup(), dup2(), dup3(),
 *     fcntl(F_DUPFD), close(), close_range() and closefrom() keep track
 *     of which descriptors are signalfds).
 *
 * And the engine's own signal (src/dispatch.h) is kept out of the
 * program's way: sigaction() refuses it as glibc refuses its own, and
 * pthread_sigmask(), sigprocmask() and sigaction()'s sa_mask never block
 * it (as glibc's never block its internal signals), so that a CPU-clock
 * expiry is always taken by the thread whose time made it expire.
 *
 * Each sees every signal and passes anything not sent by the engine
 * through untouched.  A stale engine signal is swallowed: a handler is not
 * called, a wait goes on waiting, a signalfd read leaves the record out.
 *
 * A signal may interrupt a thread that is inside the engine, holding locks
 * the delivery or the program's handler (timer_settime is async-signal-
 * safe) needs.  The trampoline then sets the signal aside, and it is
 * queued again to the same thread when the thread leaves the engine: a few
 * hundred nanoseconds later, as the kernel delivers signals only when it
 * leaves its own critical sections.  Faults (SIGSEGV and the like) and
 * SA_RESETHAND handlers are never set aside.
 *
 * This file is linked into the drop-in and into libptimers-hooks.so (for
 * programs linked with -lptimers that want exact delivery); libptimers.so
 * itself wraps nothing.  Programs that take signals where these cannot see
 * tell the engine with ptimer_signal_delivered().
 */
#define _GNU_SOURCE
/* fcntl and fcntl64 are two of libc's names, both wrapped: without
 * large-file redirection, each is its own symbol here. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "private.h"
#include "ptimers.h"

#define MAX_DEFERRED 4
#define NSEC 1000000000LL

static __thread siginfo_t deferred[MAX_DEFERRED] __attribute__((tls_model("initial-exec")));
static __thread unsigned ndeferred __attribute__((tls_model("initial-exec")));

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
	int (*close_range)(unsigned, unsigned, int);
	void (*closefrom)(int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
	int (*pthread_sigmask)(int, const sigset_t *, sigset_t *);
	int (*sigprocmask)(int, const sigset_t *, sigset_t *);
} next;

static void *lookup(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);
	if (!p) {
		/* libc always has these; without one there is nothing to
		 * stand in front of, and nothing sensible to do. */
		static const char msg[] = "ptimers: libc function missing behind the hooks\n";
		(void)!syscall(SYS_write, STDERR_FILENO, msg, sizeof(msg) - 1);
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

static void resend_deferred(void);

static void hooks_fork_child(void)
{
	ndeferred = 0; /* they were the parent's */
}

/* Resolved early so that a handler calling sigaction() need not dlsym(). */
__attribute__((constructor(104))) static void hooks_init(void)
{
	(void)NEXT(sigaction);
	(void)NEXT(sigtimedwait);
	(void)NEXT(signalfd);
	(void)NEXT(read);
	(void)NEXT(close);
	(void)NEXT(dup);
	(void)NEXT(dup2);
	(void)NEXT(dup3);
	(void)NEXT(close_range);
	(void)NEXT(closefrom);
	(void)NEXT(fcntl);
	(void)NEXT(fcntl64);
	(void)NEXT(pthread_sigmask);
	(void)NEXT(sigprocmask);
	ptimer__set_exit_hook(resend_deferred);
	pthread_atfork(NULL, NULL, hooks_fork_child);
}

int ptimer_hooks_linked(void)
{
	return 1;
}

/* ---- handlers ---- */

/* The program's handler per signal, while the trampoline stands in. */
static struct {
	void *fn;
	struct sigaction act; /* as the program gave it, for oldact */
} user[KERNEL_SIGRTMAX + 1];

/* A fault must be handled where it happened: running on would fault again. */
static bool synchronous(int sig, const siginfo_t *si)
{
	return si && si->si_code > 0 &&
	       (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL ||
		sig == SIGTRAP || sig == SIGSYS);
}

static void trampoline(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;

	if (ptimer__in_engine() && si && !synchronous(sig, si) &&
	    !(user[sig].act.sa_flags & SA_RESETHAND) && ndeferred < MAX_DEFERRED) {
		/* This thread is inside the engine: set it aside. */
		deferred[ndeferred++] = *si;
		ptimer__defer();
		errno = saved_errno;
		return;
	}
	if (ptimer__in_engine()) {
		/* Nowhere left to set it aside: pass it on as it is. */
		if (si && ptimer__is_engine_signal(si))
			si->si_errno = 0;
	} else if (si && !ptimer__taken(si, uc)) {
		errno = saved_errno;
		return; /* stale: dropped, as the kernel drops it */
	}
	void *fn = __atomic_load_n(&user[sig].fn, __ATOMIC_ACQUIRE);
	errno = saved_errno;
	if (fn == (void *)SIG_IGN || fn == (void *)SIG_DFL || !fn)
		return; /* changed under us while this signal was on its way */
	/* With or without SA_SIGINFO, as the kernel calls a handler on
	 * x86-64: the siginfo and context are in the argument registers
	 * either way (some programs read them from a one-argument handler).
	 * The handler runs under a mask of its own, and may leave by
	 * siglongjmp() with yet another. */
	ptimer__mask_changed();
	((void (*)(int, siginfo_t *, void *))fn)(sig, si, uc);
	ptimer__mask_changed();
	/* The interrupted code finds errno as it left it, whatever the
	 * handler's calls (into the engine, too) did to it. */
	errno = saved_errno;
}

/* The thread left the engine: the signals set aside meanwhile go to it
 * again.  The kernel takes sender codes (kill, tkill) only from the main
 * thread; elsewhere tgkill() is the next best thing. */
static void resend_deferred(void)
{
	int saved_errno = errno;
	pid_t pid = getpid(), tid = (pid_t)syscall(SYS_gettid);

	while (ndeferred) {
		siginfo_t info = deferred[--ndeferred];
		if (syscall(SYS_rt_tgsigqueueinfo, pid, tid, info.si_signo, &info) != 0)
			syscall(SYS_tgkill, pid, tid, info.si_signo);
	}
	errno = saved_errno;
}

static bool is_handler(const struct sigaction *act)
{
	return act->sa_handler != SIG_IGN && act->sa_handler != SIG_DFL;
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
	struct sigaction kact, kold;

	int esig = ptimer__engine_signo();
	if (act && sig > 0 && sig == esig) {
		/* The engine's own (dispatch.c), outside SIGRTMIN..SIGRTMAX:
		 * refused as glibc refuses its own. */
		errno = EINVAL;
		return -1;
	}
	struct sigaction stripped;
	if (act && esig && sigismember(&act->sa_mask, esig) == 1) {
		stripped = *act;
		sigdelset(&stripped.sa_mask, esig);
		act = &stripped;
	}
	if (sig == SIGSEGV || sig == SIGBUS) {
		/* The engine's fault handler stays in front (bad pointers it is
		 * given are EFAULT) and passes the program's faults on. */
		return ptimer__fault_action(sig, act, oldact);
	}
	bool wrap = act && sig >= 1 && sig <= KERNEL_SIGRTMAX && is_handler(act) &&
		    sig != SIGKILL && sig != SIGSTOP;
	struct sigaction prev_user = sig >= 1 && sig <= KERNEL_SIGRTMAX ? user[sig].act
								   : (struct sigaction){ 0 };

	if (wrap) {
		kact = *act;
		kact.sa_sigaction = trampoline;
		kact.sa_flags |= SA_SIGINFO;
		/* Publish the handler before the trampoline can run for it. */
		user[sig].act = *act;
		__atomic_store_n(&user[sig].fn, (void *)act->sa_handler, __ATOMIC_RELEASE);
	}
	int r = NEXT(sigaction)(sig, wrap ? &kact : act, &kold);
	if (r != 0) {
		if (wrap)
			__atomic_store_n(&user[sig].fn, (void *)prev_user.sa_handler, __ATOMIC_RELEASE);
		return r;
	}
	if (act && !wrap && sig >= 1 && sig <= KERNEL_SIGRTMAX)
		__atomic_store_n(&user[sig].fn, (void *)act->sa_handler, __ATOMIC_RELEASE);
	if (oldact)
		*oldact = kold.sa_sigaction == trampoline ? prev_user : kold;
	if (act)
		ptimer__disposition(sig, (void *)kold.sa_handler, (void *)act->sa_handler);
	return 0;
}

/* glibc's signal() family calls its own sigaction internally, so each is
 * written again here on top of ours, with glibc's flags. */
static sighandler_t signal_with(int sig, sighandler_t handler, int flags)
{
	struct sigaction act, old;

	if (handler == SIG_ERR || sig < 1 || sig > KERNEL_SIGRTMAX) {
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

/* glibc's System V and BSD calls set dispositions with its internal
 * sigaction, which the hooks would not see: written again on top of the
 * hooked one, as glibc writes them. */
sighandler_t sigset(int sig, sighandler_t disp)
{
	sigset_t set, oset;
	if (disp == SIG_ERR || sig < 1 || sig > KERNEL_SIGRTMAX) {
		errno = EINVAL;
		return SIG_ERR;
	}
	sigemptyset(&set);
	sigaddset(&set, sig);
	if (disp == SIG_HOLD) {
		struct sigaction oact;
		if (NEXT(sigprocmask)(SIG_BLOCK, &set, &oset) < 0)
			return SIG_ERR;
		if (sigismember(&oset, sig))
			return SIG_HOLD;
		if (sigaction(sig, NULL, &oact) < 0)
			return SIG_ERR;
		return oact.sa_handler;
	}
	struct sigaction act, oact;
	memset(&act, 0, sizeof(act));
	act.sa_handler = disp;
	sigemptyset(&act.sa_mask);
	if (sigaction(sig, &act, &oact) < 0 || NEXT(sigprocmask)(SIG_UNBLOCK, &set, &oset) < 0)
		return SIG_ERR;
	return sigismember(&oset, sig) ? SIG_HOLD : oact.sa_handler;
}

int sigignore(int sig)
{
	struct sigaction act;
	memset(&act, 0, sizeof(act));
	act.sa_handler = SIG_IGN;
	sigemptyset(&act.sa_mask);
	return sigaction(sig, &act, NULL);
}

int siginterrupt(int sig, int interrupt)
{
	struct sigaction act;
	if (sigaction(sig, NULL, &act) < 0)
		return -1;
	if (interrupt)
		act.sa_flags &= ~SA_RESTART;
	else
		act.sa_flags |= SA_RESTART;
	return sigaction(sig, &act, NULL);
}

/* ---- signal masks ---- */

/* The mask a program's call asks for, with the engine's signal as it is
 * now in the thread: never blocked newly (SIG_BLOCK), never changed by
 * a SIG_SETMASK.  Program threads thus never block it, and the engine's
 * own threads, which block it, keep it blocked when a library restores a
 * mask it saved (liburcu does, on the engine's threads). */
static const sigset_t *engine_as_is(int how, const sigset_t *set, sigset_t *buf)
{
	int esig = ptimer__engine_signo();
	if (!set || !esig || how == SIG_UNBLOCK || sigismember(set, esig) != 1)
		return set;
	*buf = *set;
	uint64_t cur = 0;
	if (how == SIG_BLOCK || syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &cur, sizeof(cur)) != 0 ||
	    !(cur >> (esig - 1) & 1))
		sigdelset(buf, esig);
	return buf;
}

int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	sigset_t buf;
	int r = NEXT(pthread_sigmask)(how, engine_as_is(how, set, &buf), old);
	if (set)
		ptimer__mask_changed();
	return r;
}

int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	sigset_t buf;
	int r = NEXT(sigprocmask)(how, engine_as_is(how, set, &buf), old);
	if (set)
		ptimer__mask_changed();
	return r;
}

/* set without the engine's signal, in *buf if it had it.  Read as the
 * kernel reads it (its 64 signals) and never by a fault: a set that
 * cannot be read goes on as it is, for the kernel to say EFAULT. */
static const sigset_t *without_engine(const sigset_t *set, sigset_t *buf)
{
	int esig = ptimer__engine_signo();
	if (!set || !esig)
		return set;
	sigemptyset(buf);
	if (ptimer__copy_in(buf, set, KERNEL_SIGRTMAX / 8) != 0 || sigismember(buf, esig) != 1)
		return set;
	sigdelset(buf, esig);
	return buf;
}

/* ---- sigwaitinfo and friends ---- */

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *timeout)
{
	siginfo_t local;
	siginfo_t *si = info ? info : &local;
	int64_t end = 0;
	struct timespec left;

	if (timeout) {
		struct timespec t;
		if (ptimer__copy_in(&t, timeout, sizeof(t)) != 0)
			return NEXT(sigtimedwait)(set, info, timeout); /* EFAULT, by the kernel */
		if (t.tv_nsec >= 0 && t.tv_nsec < NSEC && t.tv_sec >= 0)
			end = mono_ns() + (t.tv_sec > INT32_MAX ? INT64_MAX / 2
							  : (int64_t)t.tv_sec * NSEC + t.tv_nsec);
	}
	const struct timespec *ts = timeout;
	sigset_t buf;
	set = without_engine(set, &buf); /* the engine's signal is never waited for */
	for (;;) {
		int r = NEXT(sigtimedwait)(set, si, ts);
		if (r <= 0 || ptimer__taken(si, NULL))
			return r;
		/* Swallowed: the kernel would not have returned it. */
		if (timeout && end) {
			int64_t rest = end - mono_ns();
			if (rest < 0)
				rest = 0;
			left = (struct timespec){ rest / NSEC, rest % NSEC };
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
#define BITS_PER (8 * sizeof(unsigned long))
static unsigned long sfd_bits[MAX_TRACKED_FD / BITS_PER];

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
	else if (__atomic_load_n(&sfd_bits[fd / BITS_PER], __ATOMIC_RELAXED) & bit)
		__atomic_fetch_and(&sfd_bits[fd / BITS_PER], ~bit, __ATOMIC_RELAXED);
}

int signalfd(int fd, const sigset_t *mask, int flags)
{
	int r = NEXT(signalfd)(fd, mask, flags);
	if (r >= 0)
		sfd_set(r, true);
	return r;
}

/* A signalfd closed behind libc's back (the raw close_range system call)
 * leaves its bit set for a number the program may since have given to
 * another file: only an anonymous inode, as a signalfd is, is read as
 * signal records. */
static bool still_signalfd(int fd)
{
	struct stat st;
	if (syscall(SYS_fstat, fd, &st) == 0 && (st.st_mode & S_IFMT) == 0)
		return true;
	sfd_set(fd, false);
	return false;
}

/* The timers of the next (up to) 16 engine timer records from *from on
 * are brought in together; *from moves past them. */
static void prefetch_group(const struct ptimer__marks *m, const struct signalfd_siginfo *rec, size_t n,
			   size_t *from)
{
	int ids[16];
	size_t nids = 0, i = *from;
	for (; i < n && nids < 16; i++)
		if (ptimer__concerns(m, (int)rec[i].ssi_signo, rec[i].ssi_code, rec[i].ssi_errno) ==
		    PT_CONCERNS_TIMER)
			ids[nids++] = (int)rec[i].ssi_tid;
	*from = i;
	if (nids > 1)
		ptimer__prefetch(ids, nids);
}

/* Each record of a signalfd read is a signal taken: keep what the program
 * gets, in *bytes.  A first look says what the engine has to do with the
 * records at all (the program's own signals pass as read).  The timers
 * they name are brought in sixteen at a time, a group ahead of the one
 * being delivered, so that their misses overlap.  The descriptor is asked
 * about (a system call) only where it matters: before any record the
 * engine could act on beyond an engine timer's signal, and before a
 * record is taken out.  False: the read is passed as it came (nothing of
 * the engine's, or no signalfd after all). */
static bool filter_records(int fd, struct signalfd_siginfo *rec, size_t n, size_t *bytes)
{
	struct ptimer__marks m;
	ptimer__marks(&m);
	int worst = PT_CONCERNS_NONE;
	for (size_t i = 0; i < n; i++) {
		int c = ptimer__concerns(&m, (int)rec[i].ssi_signo, rec[i].ssi_code, rec[i].ssi_errno);
		if (c > worst)
			worst = c;
	}
	if (worst == PT_CONCERNS_NONE || (worst == PT_CONCERNS_ANY && !still_signalfd(fd)))
		return false;
	bool checked = worst == PT_CONCERNS_ANY;
	size_t group_end = 0;
	prefetch_group(&m, rec, n, &group_end);
	size_t ahead_end = group_end;
	prefetch_group(&m, rec, n, &ahead_end);

	size_t out = 0;
	for (size_t i = 0; i < n; i++) {
		struct signalfd_siginfo *s = &rec[i];
		if (i == group_end) {
			group_end = ahead_end;
			prefetch_group(&m, rec, n, &ahead_end);
		}
		if (ptimer__concerns(&m, (int)s->ssi_signo, s->ssi_code, s->ssi_errno) != PT_CONCERNS_NONE) {
			siginfo_t si;
			memset(&si, 0, sizeof(si));
			si.si_signo = (int)s->ssi_signo;
			si.si_code = s->ssi_code;
			si.si_errno = s->ssi_errno;
			si.si_timerid = (int)s->ssi_tid;
			si.si_overrun = (int)s->ssi_overrun;
			si.si_ptr = (void *)(uintptr_t)s->ssi_ptr;
			if (!ptimer__taken(&si, NULL)) {
				if (!checked && !still_signalfd(fd))
					return false;
				checked = true;
				continue;
			}
			if (si.si_code == SI_TIMER) {
				s->ssi_overrun = (uint32_t)si.si_overrun;
				s->ssi_errno = si.si_errno;
			}
		}
		if (out != i)
			rec[out] = *s;
		out++;
	}
	*bytes = out * sizeof(*rec);
	return true;
}

ssize_t read(int fd, void *buf, size_t count)
{
	for (;;) {
		ssize_t r = NEXT(read)(fd, buf, count);
		size_t kept;
		if (r <= 0 || !sfd_is(fd) || r % sizeof(struct signalfd_siginfo) ||
		    !filter_records(fd, buf, (size_t)r / sizeof(struct signalfd_siginfo), &kept))
			return r;
		if (kept)
			return (ssize_t)kept;
		/* Every record was stale: the kernel would have had nothing. */
		int fl = NEXT(fcntl)(fd, F_GETFL);
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

static void sfd_clear_range(unsigned first, unsigned last)
{
	for (unsigned fd = first; fd <= last && fd < MAX_TRACKED_FD; fd++)
		if (__atomic_load_n(&sfd_bits[fd / BITS_PER], __ATOMIC_RELAXED))
			sfd_set((int)fd, false);
		else
			fd |= BITS_PER - 1; /* the whole word is clear */
}

int close_range(unsigned first, unsigned last, int flags)
{
	int r = NEXT(close_range)(first, last, flags);
	/* With CLOSE_RANGE_CLOEXEC nothing is closed now. */
	if (r == 0 && !(flags & CLOSE_RANGE_CLOEXEC))
		sfd_clear_range(first, last);
	return r;
}

void closefrom(int lowfd)
{
	NEXT(closefrom)(lowfd);
	if (lowfd >= 0)
		sfd_clear_range((unsigned)lowfd, ~0u);
}

/* fcntl's third argument, whatever the command, as glibc reads it. */
static int fcntl_with(int (*fn)(int, int, ...), int fd, int cmd, va_list ap)
{
	void *arg = va_arg(ap, void *);
	int r = fn(fd, cmd, arg);
	if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		sfd_set(r, sfd_is(fd));
	return r;
}

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	int r = fcntl_with(NEXT(fcntl), fd, cmd, ap);
	va_end(ap);
	return r;
}

int fcntl64(int fd, int cmd, ...);
int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	int r = fcntl_with(NEXT(fcntl64), fd, cmd, ap);
	va_end(ap);
	return r;
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
