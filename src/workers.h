/* SPDX-License-Identifier: MIT */
/*
 * SIGEV_THREAD: where a timer's function runs.
 *
 * glibc starts a new thread for every expiry.  The engine keeps threads
 * for the purpose (workers) and hands each expiry to one that is idle:
 * the cost of an expiry is then one wakeup, not a thread's creation and
 * end.  A worker that takes the last idle place first starts a spare, so
 * calls that overlap (a function slower than its period) each get a
 * thread, as glibc's do.  A timer created with thread attributes (stack
 * size, scheduling) gets a new thread with them for every call, started by
 * a worker.  Workers block every signal, as glibc's notify threads do;
 * those idle for a second end, down to one while any SIGEV_THREAD timer
 * exists.  A function that calls pthread_exit() ends its worker only.
 *
 * Threads are only ever started from the program's threads or from
 * workers, never from the dispatcher, whose descriptor table is its own
 * (dispatch.c): a function must run with the program's descriptors.
 */
#ifndef PTIMERS_WORKERS_H
#define PTIMERS_WORKERS_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "rcu.h"

/* The attributes of a SIGEV_THREAD timer's threads, as given. */
struct pt_thread_attrs {
	bool given;             /* sigev_notify_attributes was not NULL */
	int inherit, policy, scope;
	struct sched_param param;
	size_t stack, guard;
};

struct pt_carrier;

/* A SIGEV_THREAD timer's call: a function and attributes, not data. */
struct pt_thread_notify {
	void (*fn)(union sigval);
	struct pt_thread_attrs attrs;
	struct pt_carrier *carrier; /* its carrier (below), asked for or at work; timer.c's, under its lock */
	struct rcu_head rcu;
};

/* Copy the caller's function and attributes, and make sure a worker is
 * there to run them (started here, on the caller's thread).  0, -ENOMEM,
 * or -EAGAIN (no thread could be started). */
int pt_workers_notify_new(const struct sigevent *sev, struct pt_thread_notify **out);
void pt_workers_notify_free(struct pt_thread_notify *thr); /* after a grace period */

/* Run thr's function with value (the dispatcher, at an expiry).  Never
 * blocks and never starts a thread: a worker does. */
void pt_workers_run(const struct pt_thread_notify *thr, union sigval value);

/*
 * A carrier: a worker given over to one hot periodic SIGEV_THREAD timer
 * (handoff.h).  It makes a kernel timer that signals it alone (the
 * engine's signal), and waits for that signal with rt_sigtimedwait, calling
 * the function at each: one wakeup an expiry, where the dispatcher and a
 * worker cost two.  Expiries missed while a call ran (the signal's
 * overruns) are each run by the pool, late but not lost, as glibc starts
 * a thread for every one.
 *
 * pt_workers_carry() asks the pool for one (the dispatcher, at an
 * expiry); a worker takes it up, makes the kernel timer, and calls the
 * function set by pt_workers_set_carry_start() with it: that (timer.c)
 * arms the kernel timer for the timer's next expiry if the carrier is
 * still wanted, and says so.  pt_workers_carry_stop() ends it (timer.c,
 * under the timer's lock: settime, delete, leeway): the kernel timer is
 * deleted there and then if the start had succeeded (carried), and the
 * carrier goes back to the pool.  A function that ends its thread
 * (pthread_exit) gives the timer back to the engine.  NULL from pt_workers_carry(): no memory.
 */
struct pt_carrier *pt_workers_carry(void (*fn)(union sigval), union sigval value, clockid_t clock, int id);
/* start(c, id, kid): kid -1 when no kernel timer could be made.  lost(c,
 * id): the function ended the carrier's thread (pthread_exit); true when
 * the timer was still carried (its kernel timer is then deleted here). */
void pt_workers_set_carry_fns(bool (*start)(struct pt_carrier *c, int id, int kid),
			      bool (*lost)(struct pt_carrier *c, int id));
void pt_workers_carry_stop(struct pt_carrier *c, bool carried);
/* In the fork child: the carrier is the parent's; its memory goes. */
void pt_workers_carry_forget(struct pt_carrier *c);

/* Calls started, for --stats. */
unsigned long pt_workers_calls(void);

void pt_workers_fork_prepare(void);
void pt_workers_fork_parent(void);
void pt_workers_fork_child(void);
#endif
