/* SPDX-License-Identifier: MIT */
/*
 * The dispatcher: the engine's one thread.  It sleeps in epoll_pwait() on
 * the event sources registered with it (a clock base's timerfd, a control
 * socket, ...), calls each ready source's handler, then the work function
 * (the bases' expiry runs), and sleeps again.
 *
 * It blocks every signal except those named by pt_dispatch_allow_signal(),
 * and those only while it waits: process-directed signals must go to the
 * program's threads, and its sigpending() then shows the process's shared
 * queue.  Started on first need; the fork child starts its own.
 */
#ifndef PTIMERS_DISPATCH_H
#define PTIMERS_DISPATCH_H

#include <stdbool.h>
#include <stdint.h>

struct pt_source {
	int fd;
	void (*ready)(struct pt_source *s); /* on the dispatcher thread */
};

/* Start the thread (idempotent): 0 or -errno. */
int pt_dispatch_start(void);
bool pt_dispatch_started(void);

/* Watch a source (the dispatcher must be started): 0 or -errno. */
int pt_dispatch_add(struct pt_source *s);

/* Run fn on the dispatcher thread when it starts, before it first waits
 * (a control socket's listening, say).  Register at start-up; at most a
 * few. */
void pt_dispatch_on_start(void (*fn)(void));

/* What the dispatcher does after every wakeup (set once, at init). */
void pt_dispatch_set_work(void (*fn)(void));

/* Sleep at most this long before running the work again (ns, a hint
 * reset after every wakeup; the dispatcher thread only). */
void pt_dispatch_wake_within(int64_t ns);

/* Wake it to run its work now.  Async-signal-safe; from any thread. */
void pt_dispatch_kick(void);

/* Let sig in while the dispatcher waits (the CPU clocks' signal). */
void pt_dispatch_allow_signal(int sig);

/* Is the caller the dispatcher thread? */
bool pt_dispatch_is_self(void);

void pt_dispatch_fork_prepare(void);
void pt_dispatch_fork_parent(void);
void pt_dispatch_fork_child(void);
#endif
