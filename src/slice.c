/* SPDX-License-Identifier: MIT */
/*
 * rseq time-slice extension, user side of the ABI merged for Linux 7.0:
 * the thread's rseq area (registered by glibc; found through __rseq_offset
 * and __rseq_size) holds a 32-bit slice_ctrl word after mm_cid.  The thread
 * sets REQUEST before a critical section and clears it after with a
 * CPU-local atomic; if the kernel set GRANTED meanwhile, the thread owes it
 * a rseq_slice_yield().  Support is detected once per process and enabled
 * once per thread with prctl; everything else is memory traffic.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ptimers/slice.h"
#include "slice.h"

#define PR_RSEQ_SLICE_EXTENSION 79
#define PR_RSEQ_SLICE_EXTENSION_GET 1
#define PR_RSEQ_SLICE_EXTENSION_SET 2
#define PR_RSEQ_SLICE_EXT_ENABLE 1
#define SLICE_CTRL_OFFSET 28 /* offsetof(struct rseq, slice_ctrl) */
#define SLICE_REQUEST 1u
#define SLICE_GRANTED 2u
#define NR_rseq_slice_yield 471

/* Process-wide: -1 not supported, 0 not probed yet, 1 supported. */
static int slice_support;
/* Per thread: 0 not tried, 1 enabled, -1 not available. */
static __thread int slice_state;
static __thread unsigned slice_depth;
int pt_slice_possible = 1; /* cleared once the kernel says no, to make the fast path a branch */

static volatile uint32_t *slice_word(void)
{
	return (volatile uint32_t *)((char *)__builtin_thread_pointer() + __rseq_offset +
				     SLICE_CTRL_OFFSET);
}

static int slice_enable_thread(void)
{
	int support = __atomic_load_n(&slice_support, __ATOMIC_RELAXED);

	if (support < 0 || __rseq_size < SLICE_CTRL_OFFSET + sizeof(uint32_t)) {
		/* glibc registers the same area for every thread: if it has no
		 * slice_ctrl word, no thread will. */
		__atomic_store_n(&pt_slice_possible, 0, __ATOMIC_RELAXED);
		slice_state = -1;
		return 0;
	}
	/* The system call itself: the drop-in stands in for libc's prctl. */
	if (syscall(SYS_prctl, PR_RSEQ_SLICE_EXTENSION, PR_RSEQ_SLICE_EXTENSION_SET,
		    PR_RSEQ_SLICE_EXT_ENABLE, 0, 0) == 0) {
		__atomic_store_n(&slice_support, 1, __ATOMIC_RELAXED);
		slice_state = 1;
		return 1;
	}
	/* EINVAL: the kernel lacks the extension; ENOTSUPP: disabled at boot.
	 * Either way no thread of this process will get it. ENXIO (no rseq
	 * area for this thread) only concerns this thread. */
	if (errno != ENXIO) {
		__atomic_store_n(&slice_support, -1, __ATOMIC_RELAXED);
		__atomic_store_n(&pt_slice_possible, 0, __ATOMIC_RELAXED);
	}
	slice_state = -1;
	return 0;
}

int ptimer_slice_available(void)
{
	if (slice_state == 0)
		slice_enable_thread();
	return slice_state > 0;
}

void pt_slice_begin_slow(void)
{
	if (slice_depth++ != 0)
		return;
	if (slice_state == 0)
		slice_enable_thread();
	if (slice_state > 0)
		*slice_word() = SLICE_REQUEST; /* no concurrency with GRANTED: plain store */
}

int pt_slice_end_slow(void)
{
	if (slice_depth == 0 || --slice_depth != 0 || slice_state <= 0)
		return 0;
	/* CPU-local test-and-clear: an interrupt may set GRANTED between our
	 * load and store, so it must be one instruction (btr without lock). */
	unsigned char had_request;
	__asm__ volatile("btrl $0, %1\n\tsetc %0"
			 : "=q"(had_request), "+m"(*slice_word())
			 :
			 : "cc", "memory");
	if (!had_request && (*slice_word() & SLICE_GRANTED)) {
		syscall(NR_rseq_slice_yield);
		return 1;
	}
	return 0;
}

void ptimer_slice_begin(void)
{
	pt_slice_begin_slow();
}

int ptimer_slice_end(void)
{
	return pt_slice_end_slow();
}
