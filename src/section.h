/* SPDX-License-Identifier: MIT */
/*
 * Engine sections: how deep the calling thread is inside the engine (a
 * lock held or being taken, an RCU read-side section).
 *
 * A signal handler must not run where it interrupted the engine: it may
 * call timer_settime(), which needs the very lock the thread holds (POSIX
 * makes settime/gettime/getoverrun async-signal-safe).  The kernel has the
 * same problem and solves it by delivering signals only when it leaves its
 * own critical sections.  The hooks (src/hooks.c) do likewise: a handler
 * that finds the thread inside a section sets its signal aside and calls
 * pt_section_defer(); when the thread leaves its outermost section the
 * exit hook they registered re-sends what was set aside.
 *
 * This file sits at the bottom of the engine: it knows nothing of signals,
 * only a per-thread depth and one callback registered from above.
 */
#ifndef PTIMERS_SECTION_H
#define PTIMERS_SECTION_H

#include <stdbool.h>

extern __thread unsigned pt_section_depth __attribute__((tls_model("initial-exec")));
extern __thread unsigned pt_section_deferred __attribute__((tls_model("initial-exec")));

/* Run the exit hook: the thread left its outermost section with work set
 * aside.  Out of line: it is the rare path. */
void pt_section_exit_slow(void);

/* The hooks' function that re-sends what they set aside (NULL: none). */
void pt_section_set_exit_hook(void (*fn)(void));

/* A handler set something aside: run the exit hook on leaving. */
static inline void pt_section_defer(void)
{
	pt_section_deferred++;
}

static inline bool pt_section_inside(void)
{
	return pt_section_depth != 0;
}

/* The compiler barriers order the depth against the section's own memory
 * accesses as a signal handler on this thread sees them. */
static inline void pt_section_enter(void)
{
	pt_section_depth++;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static inline void pt_section_leave(void)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (--pt_section_depth == 0 && __builtin_expect(pt_section_deferred != 0, 0))
		pt_section_exit_slow();
}

/* After fork the child's one thread is outside every section. */
static inline void pt_section_fork_child(void)
{
	pt_section_depth = 0;
	pt_section_deferred = 0;
}
#endif
