/* SPDX-License-Identifier: MIT */
/*
 * Time-slice extension (rseq, as merged for Linux 7.0): ask the scheduler
 * not to preempt the calling thread inside a short critical section, such
 * as a lock hold that would stall other threads if the holder were
 * scheduled out.  ptimers wraps its own critical sections with it, and its
 * spinlock and mutex below do the same for yours.
 *
 *	ptimer_slice_begin();
 *	critical_section();      (microseconds at most, and no system call)
 *	ptimer_slice_end();
 *
 * The user side of the kernel's protocol, on the thread's rseq area that
 * glibc registered: begin sets slice_ctrl.request; end clears it and, when
 * the kernel granted an extension meanwhile (slice_ctrl.granted), gives
 * the CPU back at once with rseq_slice_yield().  A system call inside a
 * granted section makes the kernel revoke the grant, so a section must not
 * make any.  The kernel grants 5 us by default (at most 50 us).
 *
 * Where the kernel lacks the extension (Linux before 7.0), or glibc's rseq
 * area is too small for slice_ctrl, or rseq is not registered, begin and
 * end are inline no-ops costing a load and a branch each, and
 * ptimer_slice_reason() says why.  Begin/end nest; only the outermost pair
 * touches the rseq area.  Every call is thread-safe and async-signal-safe
 * (all state is per thread, CPU local); none blocks, except that end may
 * give the CPU away (which is its purpose).  The first begin of a thread
 * on a kernel with the extension makes one prctl() to enable it.
 */
#ifndef PTIMERS_SLICE_H
#define PTIMERS_SLICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Why the calling thread gets no extension (ptimer_slice_reason). */
enum ptimer_slice_reason {
	PTIMER_SLICE_OK = 0,          /* enabled for the calling thread */
	PTIMER_SLICE_NO_RSEQ,         /* no rseq area registered for this thread */
	PTIMER_SLICE_NO_KERNEL,       /* the kernel has no time-slice extension */
	PTIMER_SLICE_AREA_TOO_SMALL,  /* libc's rseq area ends before slice_ctrl */
	PTIMER_SLICE_BOOT_DISABLED,   /* built in, but turned off at boot */
	PTIMER_SLICE_USER_DISABLED,   /* PTIMERS_SLICE=0 in the environment */
	PTIMER_SLICE_REFUSED,         /* the kernel refused the prctl otherwise */
};

/* What ptimer_slice_end() saw. */
enum ptimer_slice_end_result {
	PTIMER_SLICE_NOT_GRANTED = 0, /* no extension was needed (or none available) */
	PTIMER_SLICE_YIELDED = 1,     /* granted, and the CPU was given back in time */
	PTIMER_SLICE_REVOKED = 2,     /* granted, but the kernel took it back first */
};

/* 1 when the calling thread gets extensions (the first call per thread
 * enables them with prctl), 0 otherwise. */
int ptimer_slice_available(void);

/* The enum ptimer_slice_reason for the calling thread (enables like
 * ptimer_slice_available), and a sentence for it (never NULL). */
int ptimer_slice_reason(void);
const char *ptimer_slice_strreason(int reason);

/* Counters of the calling thread's outermost sections since it started.
 * size = sizeof(struct ptimer_slice_stats) as the caller knows it (the
 * struct may grow at the end; what the library does not know is zeroed).
 * 0, or -1 with errno EINVAL (NULL, a size smaller than the first version
 * or larger than 4096) or EFAULT (stats cannot be written). */
struct ptimer_slice_stats {
	uint64_t sections; /* outermost begin/end pairs with the extension on */
	uint64_t granted;  /* of which the kernel granted an extension */
	uint64_t yielded;  /* of which the end gave the CPU back in time */
	uint64_t revoked;  /* of which the kernel revoked the grant first */
};
int ptimer_slice_stats(struct ptimer_slice_stats *stats, size_t size);

/* The out-of-line halves (and the flag that guards them); call
 * ptimer_slice_begin/end, not these. */
extern int ptimer__slice_on;
void ptimer__slice_begin(void);
int ptimer__slice_end(void);

/* Request an extension for the critical section that follows. */
static inline void ptimer_slice_begin(void)
{
	if (__builtin_expect(__atomic_load_n(&ptimer__slice_on, __ATOMIC_RELAXED), 0))
		ptimer__slice_begin();
}

/* Leave the critical section: withdraw the request, or give the CPU back
 * when the kernel granted an extension.  An enum ptimer_slice_end_result.
 * An end without a begin does nothing. */
static inline int ptimer_slice_end(void)
{
	if (__builtin_expect(__atomic_load_n(&ptimer__slice_on, __ATOMIC_RELAXED), 0))
		return ptimer__slice_end();
	return PTIMER_SLICE_NOT_GRANTED;
}

/*
 * Locks that hold an extension while held.  Both take and release without
 * a system call when uncontended; a waiter spins briefly, then (spinlock)
 * yields and naps, or (mutex) sleeps on a futex.  The futex wait and wake
 * happen outside the extended section.  Initialise with the _INIT value
 * or zero.  lock/unlock: 0, or EINVAL for NULL; trylock: 0 when taken,
 * EBUSY when held, EINVAL for NULL.  Not recursive; unlock by the holder.
 * Thread-safe; async-signal-safe only if no holder can be interrupted by
 * the taker.
 */
typedef struct {
	int v;
} ptimer_spinlock_t;
#define PTIMER_SPINLOCK_INIT { 0 }
int ptimer_spin_lock(ptimer_spinlock_t *lock);
int ptimer_spin_trylock(ptimer_spinlock_t *lock);
int ptimer_spin_unlock(ptimer_spinlock_t *lock);

typedef struct {
	int v;
} ptimer_mutex_t;
#define PTIMER_MUTEX_INIT { 0 }
int ptimer_mutex_lock(ptimer_mutex_t *lock);
int ptimer_mutex_trylock(ptimer_mutex_t *lock);
int ptimer_mutex_unlock(ptimer_mutex_t *lock);

#ifdef __cplusplus
}
#endif
#endif
