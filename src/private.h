/* SPDX-License-Identifier: MIT */
/*
 * What is private to ptimers yet crosses a file or a library: one home
 * for each of the kernel's facts that libc does not give, and for the
 * ptimer__* functions.
 *
 * The ptimer__* functions are the engine as the hooks (hooks.c) see it,
 * exported from libptimers.so under the version PTIMERS_PRIVATE for
 * libptimers-hooks.so only; not an API.  Each may run in a signal
 * handler, on a thread that is not inside the engine (ptimer__in_engine()
 * false): they take only the locks the kernel's signal delivery would, a
 * timer's own and short leaf locks.  The stand-in kernel's entry points
 * (ptimer__slice_emulate...) exist only in test builds (slice.c).
 */
#ifndef PTIMERS_PRIVATE_H
#define PTIMERS_PRIVATE_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

/* ---- the kernel's ABI ---- */

/* prctl: create the next timers with the IDs asked for (Linux 6.15). */
#ifndef PR_TIMER_CREATE_RESTORE_IDS
#define PR_TIMER_CREATE_RESTORE_IDS 77
#endif

/* The kernel's last signal (glibc's SIGRTMAX is lower by what it keeps). */
#define KERNEL_SIGRTMAX 64

/* A clockid_t below 0 names a CPU clock or a dynamic clock (the kernel's
 * include/linux/posix-timers.h): bits 0-1 which CPU clock (or CLOCKFD),
 * bit 2 a thread's rather than a process's, the rest ~pid (0: the caller). */
#define CPUCLOCK_PROF 0
#define CPUCLOCK_VIRT 1
#define CPUCLOCK_SCHED 2
#define CLOCKFD 3
#define CPUCLOCK_PERTHREAD_MASK 4
#define CPUCLOCK_CLOCK_MASK 3
#define CLOCKFD_MASK (CPUCLOCK_PERTHREAD_MASK | CPUCLOCK_CLOCK_MASK)
#define CPUCLOCK_WHICH(c) ((c) & CPUCLOCK_CLOCK_MASK)
#define CPUCLOCK_PID(c) ((pid_t)(~(c) >> 3))
#define MAKE_PROCESS_CPUCLOCK(pid, which) ((clockid_t)((unsigned)~(pid) << 3) | (which))
#define MAKE_THREAD_CPUCLOCK(tid, which) (MAKE_PROCESS_CPUCLOCK(tid, which) | CPUCLOCK_PERTHREAD_MASK)

/* ---- the engine as the hooks see it (engine.c) ---- */

/* A signal has been taken by the program (handler, wait or signalfd
 * record): 1 when the program gets it (an engine signal then counts as
 * delivered: si_overrun filled in, si_errno cleared), 0 when it must be
 * swallowed (a stale engine signal, or the engine's own CPU-clock signal).
 * uc: the handler's context, or NULL when the signal was waited for. */
int ptimer__taken(siginfo_t *si, const void *uc);

/* What the hooks sort a signalfd read's records by, fetched once a read
 * rather than asked about each record: the engine's own signal (0: none
 * yet) and the marker in the high 16 bits of every engine signal's
 * si_errno (0: no engine signal can have been sent). */
struct ptimer__marks {
	int engine_signo;
	int marker;
};
void ptimer__marks(struct ptimer__marks *m);

/* Is this an engine timer's signal?  Its code is SI_TIMER and its errno
 * carries the marker (notify.h): no other sender's record does, short of
 * a copy of one. */
static inline bool ptimer__marked(int marker, int code, int err)
{
	return code == SI_TIMER && marker != 0 && (err & ~0xffff) == marker;
}

/* What ptimer__taken() could do with a signal of this number, code and
 * errno: PT_CONCERNS_NONE nothing (the program's own signal),
 * PT_CONCERNS_TIMER an engine timer's real-time signal, PT_CONCERNS_ANY
 * more (a standard signal timers may wait in line for, the engine's own
 * signal). */
enum { PT_CONCERNS_NONE, PT_CONCERNS_TIMER, PT_CONCERNS_ANY };
static inline int ptimer__concerns(const struct ptimer__marks *m, int signo, int code, int err)
{
	if (signo < 32 || signo == m->engine_signo)
		return PT_CONCERNS_ANY;
	return ptimer__marked(m->marker, code, err) ? PT_CONCERNS_TIMER : PT_CONCERNS_NONE;
}

/* The timers with these IDs are about to be delivered to: bring their
 * lines in, all at once (a signalfd read takes several). */
void ptimer__prefetch(const int *ids, size_t n);

/* sig's disposition went from old_handler to new_handler. */
void ptimer__disposition(int sig, void *old_handler, void *new_handler);

/* The program sets SIGSEGV's or SIGBUS's action: the engine's fault
 * handler (bad pointers given to the engine are EFAULT) stays in front and
 * passes other faults to act.  Like sigaction(): 0, or -1 with errno. */
int ptimer__fault_action(int sig, const struct sigaction *act, struct sigaction *old);

/* The engine's own signal (dispatch.h; 0: none): the program may neither
 * set its action nor block it. */
int ptimer__engine_signo(void);

/* The calling thread's signal mask may have changed (the program set it,
 * or a handler starts or ends): whether it blocks SIGSEGV or SIGBUS is
 * learned again before the engine next touches the program's memory
 * (uaccess.h). */
void ptimer__mask_changed(void);

/* n bytes of the program's memory at src into dst, as the engine reads
 * every pointer it is given: 0, or -EFAULT where src cannot be read
 * (never a fault). */
int ptimer__copy_in(void *dst, const void *src, size_t n);

/* Is this signal one of the engine's?  (si_errno carries its marker.) */
bool ptimer__is_engine_signal(const siginfo_t *si);

/* Is the calling thread inside the engine?  Then a handler must not run
 * now: set the signal aside, call ptimer__defer(), and re-send it from the
 * exit hook, which runs when the thread leaves the engine. */
bool ptimer__in_engine(void);
void ptimer__defer(void);
void ptimer__set_exit_hook(void (*fn)(void));

/* Tests: fn runs on the dispatcher's thread as it starts. */
int ptimer__dispatch_on_start(void (*fn)(void));

/* Tests and the bench: hand at most max hot periodic timers to kernel
 * timers of their IDs (handoff.h), as PTIMERS_HANDOFF=max would; -1 with
 * EOPNOTSUPP when this kernel cannot create a timer with a given ID. */
int ptimer__handoff(int max);

/* ---- the stand-in kernel's entry points (test builds of slice.c) ---- */

/* The calling thread uses area (32 bytes, 32-aligned) as its rseq area,
 * driven by a stand-in for the kernel (tests/emu); NULL: a thread without
 * rseq.  0, or -1 with errno. */
int ptimer__slice_emulate(void *area);
/* Back to what the process probed at start (no thread in a section). */
void ptimer__slice_emulate_end(void);
/* The calling thread's nesting depth. */
unsigned ptimer__slice_depth(void);
#endif
