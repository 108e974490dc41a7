/* SPDX-License-Identifier: MIT */
/*
 * The engine as the hooks (hooks.c) see it: what they call when the
 * program takes a signal or changes a disposition.  Exported from
 * libptimers.so under the version PTIMERS_PRIVATE for libptimers-hooks.so
 * only; not an API.
 *
 * Each of these may run in a signal handler, on a thread that is not
 * inside the engine (ptimer__in_engine() false): they take only the locks
 * the kernel's signal delivery would, a timer's own and short leaf locks.
 */
#ifndef PTIMERS_ENGINE_H
#define PTIMERS_ENGINE_H

#include <signal.h>
#include <stdbool.h>

/* A signal has been taken by the program (handler, wait or signalfd
 * record): 1 when the program gets it (an engine signal then counts as
 * delivered: si_overrun filled in, si_errno cleared), 0 when it must be
 * swallowed (a stale engine signal, or the engine's own CPU-clock signal).
 * mask: the handler's signal mask, or NULL when the signal was waited for. */
int ptimer__taken(siginfo_t *si, const sigset_t *mask);

/* sig's disposition went from old_handler to new_handler. */
void ptimer__disposition(int sig, void *old_handler, void *new_handler);

/* The program sets SIGSEGV's or SIGBUS's action: the engine's fault
 * handler (bad pointers given to the engine are EFAULT) stays in front and
 * passes other faults to act.  Like sigaction(): 0, or -1 with errno. */
int ptimer__fault_action(int sig, const struct sigaction *act, struct sigaction *old);

/* The engine's own signal (dispatch.h; 0: none): the program may neither
 * set its action nor block it. */
int ptimer__engine_signo(void);

/* Is this signal one of the engine's?  (si_errno carries its marker.) */
bool ptimer__is_engine_signal(const siginfo_t *si);

/* Is the calling thread inside the engine?  Then a handler must not run
 * now: set the signal aside, call ptimer__defer(), and re-send it from the
 * exit hook, which runs when the thread leaves the engine. */
bool ptimer__in_engine(void);
void ptimer__defer(void);
void ptimer__set_exit_hook(void (*fn)(void));
int ptimer__dispatch_on_start(void (*fn)(void));
#endif
