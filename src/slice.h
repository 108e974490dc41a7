/* SPDX-License-Identifier: MIT */
/*
 * The engine's side of time-slice extension (slice.c), and the layout of
 * the rseq area's slice_ctrl as Linux 7.0 merged it.  The engine's locks
 * (lock.h) request an extension while held with pt_slice_begin/end, the
 * same inline pair as the public API: a load and a branch when no thread
 * of the process can get an extension.
 */
#ifndef PTIMERS_SLICE_INTERNAL_H
#define PTIMERS_SLICE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ptimers/slice.h"

/* struct rseq_slice_ctrl: request is byte 0 (set by user space, cleared by
 * user space or the kernel), granted byte 1 (kernel only). */
struct pt_rseq_slice_ctrl {
	union {
		uint32_t all;
		struct {
			uint8_t request;
			uint8_t granted;
			uint16_t reserved;
		};
	};
};

/* struct rseq up to slice_ctrl (the area glibc registers, 32 bytes). */
struct pt_rseq_area {
	uint32_t cpu_id_start;
	uint32_t cpu_id;
	uint64_t rseq_cs;
	uint32_t flags;
	uint32_t node_id;
	uint32_t mm_cid;
	struct pt_rseq_slice_ctrl slice_ctrl;
} __attribute__((aligned(32)));

#define PT_RSEQ_SLICE_CTRL_OFFSET 28
#define PT_RSEQ_CPU_ID_UNINITIALIZED ((uint32_t)-1)
#define PT_RSEQ_CPU_ID_REGISTRATION_FAILED ((uint32_t)-2)
#define PT_RSEQ_FLAG_SLICE_EXT_AVAILABLE (1u << 4)
#define PT_RSEQ_FLAG_SLICE_EXT_ENABLED (1u << 5)
#define PT_PR_RSEQ_SLICE_EXTENSION 79
#define PT_PR_RSEQ_SLICE_EXTENSION_GET 1
#define PT_PR_RSEQ_SLICE_EXTENSION_SET 2
#define PT_PR_RSEQ_SLICE_EXT_ENABLE 1
#define PT_NR_rseq_slice_yield 471 /* x86_64 */
#define PT_AT_RSEQ_FEATURE_SIZE 27
#define PT_ENOTSUPP 524 /* the kernel's internal "not supported" */

_Static_assert(offsetof(struct pt_rseq_area, slice_ctrl) == PT_RSEQ_SLICE_CTRL_OFFSET,
	       "slice_ctrl follows mm_cid at offset 28");
_Static_assert(offsetof(struct pt_rseq_area, flags) == 16, "rseq flags at offset 16");
_Static_assert(offsetof(struct pt_rseq_slice_ctrl, request) == 0, "request is byte 0");
_Static_assert(offsetof(struct pt_rseq_slice_ctrl, granted) == 1, "granted is byte 1");
_Static_assert(sizeof(struct pt_rseq_slice_ctrl) == 4, "slice_ctrl is one u32");
_Static_assert(sizeof(struct pt_rseq_area) == 32, "the original rseq area is 32 bytes");


static inline void pt_slice_begin(void)
{
	ptimer_slice_begin();
}

static inline void pt_slice_end(void)
{
	(void)ptimer_slice_end();
}

/* Around a system call that a section cannot avoid: withdraw the request
 * (a system call would revoke a grant anyway; giving the CPU back first
 * is what the kernel asks), and ask again after.  No-ops outside a
 * section and where extensions are off. */
/* The calling thread's counters (ptimer_slice_stats(), engine.c, which
 * copies them out as it copies every caller's struct). */
void pt_slice_stats(struct ptimer_slice_stats *out);

void pt_slice_pause_slow(void);
void pt_slice_resume_slow(void);
static inline void pt_slice_pause(void)
{
	if (__builtin_expect(__atomic_load_n(&ptimer__slice_on, __ATOMIC_RELAXED), 0))
		pt_slice_pause_slow();
}
static inline void pt_slice_resume(void)
{
	if (__builtin_expect(__atomic_load_n(&ptimer__slice_on, __ATOMIC_RELAXED), 0))
		pt_slice_resume_slow();
}
#endif
