/* SPDX-License-Identifier: MIT */
/* The engine's side of time-slice extension (slice.c): its own critical
 * sections ask for an extension through these. */
#ifndef PTIMERS_SLICE_INTERNAL_H
#define PTIMERS_SLICE_INTERNAL_H

extern int pt_slice_possible;
void pt_slice_begin_slow(void);
int pt_slice_end_slow(void);

/* A load and a branch when the kernel has no time-slice extension. */
static inline void pt_slice_begin(void)
{
	if (__builtin_expect(__atomic_load_n(&pt_slice_possible, __ATOMIC_RELAXED), 0))
		pt_slice_begin_slow();
}

static inline void pt_slice_end(void)
{
	if (__builtin_expect(__atomic_load_n(&pt_slice_possible, __ATOMIC_RELAXED), 0))
		pt_slice_end_slow();
}
#endif
