/* SPDX-License-Identifier: MIT */
/*
 * The dispatcher: the engine's one thread, and the engine's signal.
 *
 * The engine holds no file descriptor.  What wakes its thread is a
 * signal of its own (a real-time signal taken from glibc's pool when the
 * library is loaded: SIGRTMAX is one lower for the program from its
 * start), sent by kernel POSIX timers -- one per clock base in use, one
 * per CPU clock in use, one to be woken on request -- and the thread
 * waits for it with rt_sigtimedwait().  Kernel timers are not
 * descriptors: a program that closes or replaces every descriptor it did
 * not open (close_range, closefrom, a close loop, dup2 onto low numbers,
 * the raw system calls, in a fork child, after exec) cannot reach them.
 *
 * Each such kernel timer carries a value in its signal saying what fired
 * (PT_SRC_*).  Those aimed at the dispatcher (SIGEV_THREAD_ID) are taken
 * by its wait; a CPU clock's is process-directed, so that the kernel
 * hands it to the thread whose CPU time made it expire, where the
 * engine's handler notes that thread.
 *
 * The thread blocks every signal but its own, which it only waits for:
 * process-directed signals go to the program's threads.  Started on
 * first need; the fork child starts its own.
 */
#ifndef PTIMERS_DISPATCH_H
#define PTIMERS_DISPATCH_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* What an engine signal's value says fired. */
#define PT_SRC_INTERRUPTED (-1) /* no signal: the wait was interrupted (a restore?) */
#define PT_SRC_KICK 0          /* pt_dispatch_kick() */
#define PT_SRC_BASE 1          /* + a fixed base's index */
#define PT_SRC_CPU 64          /* + a CPU clock's slot */

/* The engine's signal, 0 if none could be had (then the engine cannot
 * start: every timer that would fire is refused with EAGAIN). */
int pt_dispatch_signo(void);

/* Start the thread (idempotent): 0 or -errno. */
int pt_dispatch_start(void);
bool pt_dispatch_started(void);

/* A kernel timer on clock whose signal is the engine's, carrying value;
 * aimed at `to`: the dispatcher (which must be started), the process (a
 * process CPU clock's: the kernel picks the thread that ran), or a thread
 * of the process (a thread CPU clock's: that thread).  0 and *kid, or
 * -errno. */
#define PT_TO_DISPATCHER 0
#define PT_TO_PROCESS (-1)
int pt_dispatch_ktimer(clockid_t clock, int value, pid_t to, int *kid);

/* What the dispatcher (or the handler) does with a source's signal:
 * value as above; via the thread that took it in a handler (0: the
 * dispatcher, or a wait), mask that thread's signal mask, woke: the
 * handler interrupted a system call that slept (the thread was not
 * running when the signal was sent).  Set once, at init.  Called in a
 * signal handler too: async-signal-safe. */
void pt_dispatch_set_source_hook(void (*fn)(int value, pid_t via, const sigset_t *mask, bool woke));

/* A program thread took the engine's signal (the handler, with its
 * context; or a wait the hooks see, uc NULL): pass it on.  False if si is
 * not the engine's. */
bool pt_dispatch_signal(const siginfo_t *si, const void *uc);

/* Run fn on the dispatcher thread when it starts, before it first waits.
 * Register at start-up; at most a few. */
void pt_dispatch_on_start(void (*fn)(void));

/* What the dispatcher does after every wakeup (set once, at init). */
void pt_dispatch_set_work(void (*fn)(void));

/* Sleep at most this long before running the work again (ns, a hint
 * reset after every wakeup; the dispatcher thread only). */
void pt_dispatch_wake_within(int64_t ns);

/* Wake it to run its work now.  Async-signal-safe; from any thread. */
void pt_dispatch_kick(void);

/* Is the caller the dispatcher thread? */
bool pt_dispatch_is_self(void);

/* How many times the dispatcher has come back from its wait (it alone
 * asks: a leap in its clock readings within one wakeup, clocks.c). */
uint64_t pt_dispatch_wakeups(void);

void pt_dispatch_fork_quiesce(void); /* before every other engine lock */
void pt_dispatch_fork_prepare(void);
void pt_dispatch_fork_parent(void);
void pt_dispatch_fork_child(void);
#endif
