/* SPDX-License-Identifier: MIT */
/*
 * The dispatcher and the engine's signal (see dispatch.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/close_range.h>
#include <linux/futex.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "dispatch.h"
#include "lock.h"
#include "private.h"
#include "sys.h"

/* Under valgrind, the last real-time signal is valgrind's own, sent to end
 * every thread when the program exits: the dispatcher must let it in, or
 * the program never ends.  (Without valgrind's header, no test.) */
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define ON_VALGRIND() RUNNING_ON_VALGRIND
#else
#define ON_VALGRIND() 0
#endif

#define SEQ __ATOMIC_SEQ_CST

static struct {
	pt_lock_t lock;     /* start, fork */
	/* Held while the thread works (a plain mutex: no time-slice request
	 * for what may take milliseconds): a fork waits for the work to
	 * end, so that the child never inherits a lock the dispatcher held
	 * halfway through, its allocator's included. */
	pthread_mutex_t working;
	bool started;
	int signo;          /* the engine's signal, 0: none */
	pid_t tid;          /* the dispatcher thread */
	int kick_kid;       /* the kernel timer that wakes it, -1: none (tgkill) */
	int kick_pending;   /* a kick is on its way: no other is sent */
	void (*work)(void);
	void (*source)(int value, pid_t via, const sigset_t *mask, bool woke);
	int64_t wake_within;
	uint64_t wakeups;   /* returns from the wait (the dispatcher's own) */
	void (*on_start[4])(void);
	int non_start;
} disp = { .lock = PT_LOCK_INIT, .working = PTHREAD_MUTEX_INITIALIZER, .kick_kid = -1 };

/* ---- the engine's signal ---- */

extern int __libc_allocate_rtsig(int high);

static void on_engine_signal(int sig, siginfo_t *si, void *ucv);

/*
 * The handler goes in through libc's internal sigaction, past any wrapper
 * of the program's (the hooks refuse this signal to the program).  Under
 * TSan it goes in through TSan instead: a process-directed signal can
 * land on a thread that has been cloned but not yet started by TSan (a
 * CPU-clock expiry on the thread being born), and instrumented code run
 * there, as this handler is, faults on TSan's empty per-thread state.
 * TSan's own entry sets that state up first (and may hold the signal
 * until the thread reaches a call it intercepts).
 */
#ifdef __SANITIZE_THREAD__
int __interceptor_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
#endif
static int install_handler(int sig, const struct sigaction *sa)
{
#ifdef __SANITIZE_THREAD__
	return __interceptor_sigaction(sig, sa, NULL);
#else
	return pt_sys_sigaction(sig, sa, NULL);
#endif
}

/* Taken when the library is loaded, before the program's main can have
 * looked at SIGRTMAX: from the top, so SIGRTMIN stays where it was.  Its
 * handler is installed at once (an engine signal that reaches a program
 * thread must never meet the default action, which would end the
 * process).  A signal that cannot be had (valgrind keeps the topmost for
 * itself) is passed over. */
__attribute__((constructor(101))) static void signal_init(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_engine_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	/* Every signal held off meanwhile, but those a fault raises: one in
	 * the handler must still be taken (a blocked one kills). */
	sigfillset(&sa.sa_mask);
	static const int sync_sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS };
	for (unsigned i = 0; i < sizeof(sync_sigs) / sizeof(sync_sigs[0]); i++)
		sigdelset(&sa.sa_mask, sync_sigs[i]);
	for (int tries = 0; tries < 4; tries++) {
		int sig = __libc_allocate_rtsig(0);
		if (sig < 0)
			return;
		if (install_handler(sig, &sa) == 0) {
			disp.signo = sig;
			__atomic_store_n(&pt_own_signo, sig, __ATOMIC_RELAXED);
			return;
		}
	}
}

int pt_dispatch_signo(void)
{
	return disp.signo;
}

void pt_dispatch_set_source_hook(void (*fn)(int value, pid_t via, const sigset_t *mask, bool woke))
{
	disp.source = fn;
}

/* A source's signal, from the dispatcher's wait or a program thread. */
static void source_fired(const siginfo_t *si, pid_t via, const sigset_t *mask, bool woke)
{
	if (si->si_code != SI_TIMER || si->si_value.sival_int == PT_SRC_KICK) {
		/* A kick (or anyone's signal of our number): a wakeup. */
		if (via)
			pt_dispatch_kick();
		return;
	}
	if (disp.source)
		disp.source(si->si_value.sival_int, via, mask, woke);
}

/*
 * Did the handler interrupt a system call that slept?  Then the kernel
 * restarts it (the instruction pointer is back on the system call), or it
 * returns EINTR (just past one).  A thread the kernel woke for the signal
 * was not the one running when it was sent.  Where this cannot be told,
 * false.
 */
static bool woke_from_syscall(const ucontext_t *uc)
{
#if defined(__x86_64__)
	const unsigned char *ip = (const unsigned char *)uc->uc_mcontext.gregs[REG_RIP];
	if (ip[0] == 0x0f && ip[1] == 0x05)
		return true;
	return ((uintptr_t)ip & 4095) >= 2 && ip[-2] == 0x0f && ip[-1] == 0x05 &&
	       uc->uc_mcontext.gregs[REG_RAX] == -EINTR;
#elif defined(__aarch64__)
	const uint32_t *pc = (const uint32_t *)uc->uc_mcontext.pc;
	if (*pc == 0xd4000001u)
		return true;
	return ((uintptr_t)pc & 4095) >= 4 && pc[-1] == 0xd4000001u && (long)uc->uc_mcontext.regs[0] == -EINTR;
#else
	(void)uc;
	return false;
#endif
}

bool pt_dispatch_signal(const siginfo_t *si, const void *ucv)
{
	if (disp.signo == 0 || si->si_signo != disp.signo)
		return false;
	const ucontext_t *uc = ucv;
	if (uc)
		source_fired(si, pt_gettid(), &uc->uc_sigmask, woke_from_syscall(uc));
	else
		source_fired(si, 0, NULL, false);
	return true;
}

/* On a program thread, maybe inside a section that asked for a
 * time-slice extension (the program's own, or the engine's): its system
 * calls (the thread's ID, the kick) are made with the request withdrawn,
 * as everywhere in the engine. */
static void on_engine_signal(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	int saved = errno;
	pt_slice_pause();
	pt_dispatch_signal(si, ucv);
	pt_slice_resume();
	errno = saved;
}

int pt_dispatch_ktimer(clockid_t clock, int value, pid_t to, int *kid)
{
	struct sigevent sev;
	pid_t tid = to == PT_TO_DISPATCHER ? __atomic_load_n(&disp.tid, __ATOMIC_ACQUIRE) : to;

	if (!disp.signo || !tid)
		return -EAGAIN;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = to == PT_TO_PROCESS ? SIGEV_SIGNAL : SIGEV_SIGNAL | SIGEV_THREAD_ID;
	sev.sigev_signo = disp.signo;
	sev.sigev_value.sival_int = value;
	sev._sigev_un._tid = tid;
	pt_slice_pause(); /* callers may hold a lock */
	int r = pt_sys_timer_create(clock, &sev, kid);
	int err = errno;
	pt_slice_resume();
	return r == 0 ? 0 : -err;
}

/* ---- waking the dispatcher ---- */

void pt_dispatch_on_start(void (*fn)(void))
{
	if (disp.non_start < 4)
		disp.on_start[disp.non_start++] = fn;
}

void pt_dispatch_set_work(void (*fn)(void))
{
	disp.work = fn;
}

/* Its own kernel timer, set to go off at once: no descriptor to write,
 * nothing charged to the user's signal queue (the timer's signal is
 * allocated with it), and kicks while one is on its way cost nothing. */
void pt_dispatch_kick(void)
{
	if (!__atomic_load_n(&disp.started, __ATOMIC_ACQUIRE) ||
	    __atomic_exchange_n(&disp.kick_pending, 1, SEQ))
		return;
	int saved = errno;
	int kid = __atomic_load_n(&disp.kick_kid, __ATOMIC_RELAXED);
	pt_slice_pause(); /* callers may hold a lock: the system call is outside the extension */
	if (kid >= 0) {
		static const struct itimerspec now = { .it_value = { 0, 1 } };
		syscall(SYS_timer_settime, kid, TIMER_ABSTIME, &now, NULL);
	} else {
		syscall(SYS_tgkill, pt_pid, disp.tid, disp.signo);
	}
	pt_slice_resume();
	errno = saved;
}

uint64_t pt_dispatch_wakeups(void)
{
	return __atomic_load_n(&disp.wakeups, __ATOMIC_RELAXED);
}

bool pt_dispatch_is_self(void)
{
	return __atomic_load_n(&disp.tid, __ATOMIC_RELAXED) == pt_gettid();
}

void pt_dispatch_wake_within(int64_t ns)
{
	if (disp.wake_within < 0 || ns < disp.wake_within)
		disp.wake_within = ns;
}

/* ---- the thread ---- */

static long wait_signal(const uint64_t *set, siginfo_t *si, const struct timespec *ts)
{
	return syscall(SYS_rt_sigtimedwait, set, si, ts, sizeof(*set));
}

/* A descriptor table of its own, empty: what this thread opens for a
 * moment (a thread's status file) never takes a number the program is
 * about to get or dup2() onto, and the program's files are not held open
 * by it.  (CLOSE_RANGE_UNSHARE copies nothing of the range it closes;
 * without it, Linux before 5.9, the copy's descriptors are closed.) */
static void own_descriptor_table(void)
{
	if (syscall(SYS_close_range, 0, ~0U, CLOSE_RANGE_UNSHARE) == 0)
		return;
	if (syscall(SYS_unshare, CLONE_FILES) != 0)
		return;
	for (int fd = 0; fd < 65536; fd++)
		pt_sys_close(fd);
}

static void *dispatcher(void *arg)
{
	(void)arg;
	own_descriptor_table();
	/* Its timer slack at the minimum: a wait with a timeout ends when
	 * asked, not up to 50 us later. */
	syscall(SYS_prctl, PR_SET_TIMERSLACK, 1, 0, 0, 0);
	syscall(SYS_prctl, PR_SET_NAME, "ptimers", 0, 0, 0); /* not libc's prctl: the drop-in's */
	if (ON_VALGRIND() && disp.signo != KERNEL_SIGRTMAX) {
		sigset_t vg;
		sigemptyset(&vg);
		sigaddset(&vg, KERNEL_SIGRTMAX);
		pt_sys_sigmask(SIG_UNBLOCK, &vg, NULL);
	}
	disp.wake_within = -1;
	for (int i = 0; i < disp.non_start; i++)
		disp.on_start[i]();
	/* Known to its starter, which waits for it (its kernel timers name
	 * this thread), and for the start hooks: nothing of the start is
	 * still under way when the program's call returns (a fork then would
	 * find it half-done). */
	__atomic_store_n(&disp.tid, pt_gettid(), __ATOMIC_RELEASE);
	syscall(SYS_futex, &disp.tid, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	uint64_t set = 1ull << (disp.signo - 1);
	for (;;) {
		struct timespec ts, *tsp = NULL;
		if (disp.wake_within >= 0) {
			ts = pt_ns_to_ts(disp.wake_within);
			tsp = &ts;
		}
		disp.wake_within = -1;
		siginfo_t si;
		long r = wait_signal(&set, &si, tsp);
		__atomic_fetch_add(&disp.wakeups, 1, __ATOMIC_RELAXED); /* read by ptimer_get_stats */
		pthread_mutex_lock(&disp.working);
		/* From here a kick wakes it again: what it asks for may come
		 * after the work below has looked. */
		__atomic_store_n(&disp.kick_pending, 0, SEQ);
		if (r == disp.signo) {
			/* One source a wakeup: another one pending ends the
			 * next wait at once, and a look for it here would cost
			 * every wakeup a system call. */
			source_fired(&si, 0, NULL, false);
		} else if (r < 0 && errno == EINTR && disp.source) {
			/* Every signal is blocked here: only a stop, a tracer or
			 * a restore interrupts the wait.  After a restore the
			 * clocks may have moved under the deadlines. */
			disp.source(PT_SRC_INTERRUPTED, 0, NULL, false);
		}
		/* After a wakeup of any kind (a source, a kick, a timeout),
		 * the work looks at everything. */
		if (disp.work)
			disp.work();
		pthread_mutex_unlock(&disp.working);
	}
	return NULL;
}

bool pt_dispatch_started(void)
{
	return __atomic_load_n(&disp.started, __ATOMIC_ACQUIRE);
}

int pt_dispatch_start(void)
{
	int err = 0;

	if (pt_dispatch_started())
		return 0;
	if (!disp.signo)
		return -EAGAIN;
	pt_slice_pause(); /* a thread is started and waited for under the lock */
	pt_lock(&disp.lock);
	if (disp.started)
		goto out;
	/* The thread inherits the creator's mask: block everything first. */
	sigset_t all, old;
	sigfillset(&all);
	pt_sys_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t th;
	int r = pthread_create(&th, &attr, dispatcher, NULL);
	pthread_attr_destroy(&attr);
	pt_sys_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		err = -EAGAIN;
		goto out;
	}
	while (!__atomic_load_n(&disp.tid, __ATOMIC_ACQUIRE))
		syscall(SYS_futex, &disp.tid, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	int kid;
	if (pt_dispatch_ktimer(CLOCK_MONOTONIC, PT_SRC_KICK, PT_TO_DISPATCHER, &kid) == 0)
		__atomic_store_n(&disp.kick_kid, kid, __ATOMIC_RELAXED);
	__atomic_store_n(&disp.started, true, __ATOMIC_RELEASE);
out:
	pt_unlock(&disp.lock);
	pt_slice_resume();
	return err;
}

/* First of the engine's fork handlers: the dispatcher finishes what it
 * is doing, then waits (it takes no other lock while it waits). */
void pt_dispatch_fork_quiesce(void)
{
	pthread_mutex_lock(&disp.working);
}

void pt_dispatch_fork_prepare(void)
{
	pt_lock(&disp.lock);
}

void pt_dispatch_fork_parent(void)
{
	pt_unlock(&disp.lock);
	pthread_mutex_unlock(&disp.working);
}

/* The parent's thread and kernel timers do not exist here: the child
 * starts afresh on first need.  Its signal and handler stay. */
void pt_dispatch_fork_child(void)
{
	disp.started = false;
	disp.tid = 0;
	disp.kick_kid = -1;
	disp.kick_pending = 0;
	pt_lock_reset(&disp.lock);
	pthread_mutex_unlock(&disp.working); /* taken by this very thread, before fork */
}
