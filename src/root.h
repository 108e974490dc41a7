/* SPDX-License-Identifier: MIT */
/* The root readers outside the process find (src/root.c, layout.h). */
#ifndef PTIMERS_ROOT_H
#define PTIMERS_ROOT_H

#include <stdbool.h>

bool pt_root_published(void);
void pt_root_publish_slow(void);

/* Make sure the process can be found from outside: once, when it first
 * has a timer.  Inline: every creation asks. */
static inline void pt_root_publish(void)
{
	if (__builtin_expect(!pt_root_published(), 0))
		pt_root_publish_slow();
}

void pt_root_fork_prepare(void);
void pt_root_fork_parent(void);
void pt_root_fork_child(void);
#endif
