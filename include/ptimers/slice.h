/* SPDX-License-Identifier: MIT */
/*
 * Time-slice extension (rseq, Linux 7.0): ask the scheduler not to preempt
 * the calling thread inside a short critical section, such as a spinlock or
 * a mutex hold that would stall other threads if the holder were scheduled
 * out.  ptimers wraps its own critical sections with it.
 *
 *	ptimer_slice_begin();
 *	critical_section();      (microseconds at most)
 *	ptimer_slice_end();
 *
 * On kernels without the extension, or when glibc did not register rseq,
 * both calls are a load and a branch.  Begin/end nest; only the outermost
 * pair talks to the kernel.  Thread-safe by construction: all state is per
 * thread.  Not for use across a blocking call.
 */
#ifndef PTIMERS_SLICE_H
#define PTIMERS_SLICE_H

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the running kernel grants extensions to the calling thread (the
 * first call per thread enables it with prctl), 0 otherwise. */
int ptimer_slice_available(void);

/* Request an extension for the critical section that follows. */
void ptimer_slice_begin(void);

/* Leave the critical section: withdraw the request, or, when the kernel
 * granted an extension, give the CPU back (rseq_slice_yield). Returns 1
 * when an extension had been granted, 0 otherwise. */
int ptimer_slice_end(void);

#ifdef __cplusplus
}
#endif
#endif
