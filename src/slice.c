/* SPDX-License-Identifier: MIT */
/*
 * rseq time-slice extension, the user side of the ABI merged for Linux
 * 7.0 (slice.h has the layout).  Support is decided once per process, in
 * a constructor, before any thread can be inside a section: the kernel
 * must advertise the extension (AT_RSEQ_FEATURE_SIZE past slice_ctrl and
 * RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE in the area's flags), and libc's area
 * must reach slice_ctrl.  Only then is ptimer__slice_on set, and only then
 * do begin and end leave their inline fast path.  Each thread enables the
 * extension with prctl on its first begin; every section after that is
 * two byte stores and a byte load on the thread's own area, with no atomic
 * instruction (the kernel only touches the area on this CPU, between
 * instructions).
 *
 * Test builds (PTIMERS_SLICE_EMULATION) point a thread at a stand-in area
 * (ptimer__slice_emulate), where a user-space stand-in for the kernel
 * grants and revokes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "slice.h"

/* glibc 2.35 and later: where its rseq area is, and how much of it the
 * kernel may use (0 when glibc did not register one). */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

int ptimer__slice_on;
static int process_reason = PTIMER_SLICE_NO_RSEQ; /* when ptimer__slice_on is 0 */

struct slice_thread {
	volatile struct pt_rseq_slice_ctrl *ctrl;
	signed char state; /* 0 not tried, 1 enabled, -1 not available */
	unsigned char reason;
	unsigned char pause_depth; /* inside pt_slice_pause: the request is withdrawn */
	unsigned depth;
	struct ptimer_slice_stats stats;
};
static __thread struct slice_thread self __attribute__((tls_model("initial-exec")));

static struct pt_rseq_area *libc_area(void)
{
	if (&__rseq_size == NULL || &__rseq_offset == NULL || __rseq_size == 0)
		return NULL;
	return (struct pt_rseq_area *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

static int registered(const struct pt_rseq_area *a)
{
	uint32_t cpu = __atomic_load_n(&a->cpu_id, __ATOMIC_RELAXED);
	return cpu != PT_RSEQ_CPU_ID_UNINITIALIZED && cpu != PT_RSEQ_CPU_ID_REGISTRATION_FAILED;
}

__attribute__((constructor)) static void slice_probe(void)
{
	const char *env = getenv("PTIMERS_SLICE");
	struct pt_rseq_area *a = libc_area();

	if (env && strcmp(env, "0") == 0)
		process_reason = PTIMER_SLICE_USER_DISABLED;
	else if (!a || !registered(a))
		process_reason = PTIMER_SLICE_NO_RSEQ;
	else if (getauxval(PT_AT_RSEQ_FEATURE_SIZE) <
			 PT_RSEQ_SLICE_CTRL_OFFSET + sizeof(struct pt_rseq_slice_ctrl) ||
		 !(__atomic_load_n(&a->flags, __ATOMIC_RELAXED) & PT_RSEQ_FLAG_SLICE_EXT_AVAILABLE))
		process_reason = PTIMER_SLICE_NO_KERNEL;
	else if (__rseq_size < PT_RSEQ_SLICE_CTRL_OFFSET + sizeof(struct pt_rseq_slice_ctrl))
		process_reason = PTIMER_SLICE_AREA_TOO_SMALL;
	else
		process_reason = PTIMER_SLICE_OK;
	__atomic_store_n(&ptimer__slice_on, process_reason == PTIMER_SLICE_OK, __ATOMIC_RELAXED);
}

/* First use on a thread: find its area and ask the kernel (raw prctl:
 * the drop-in stands in for libc's). */
static void enable_thread(struct slice_thread *t)
{
	struct pt_rseq_area *a = libc_area();

	t->state = -1;
	if (process_reason != PTIMER_SLICE_OK) {
		t->reason = process_reason;
		return;
	}
	if (!a || !registered(a)) {
		t->reason = PTIMER_SLICE_NO_RSEQ;
		return;
	}
	int saved = errno;
	if (syscall(SYS_prctl, PT_PR_RSEQ_SLICE_EXTENSION, PT_PR_RSEQ_SLICE_EXTENSION_SET,
		    PT_PR_RSEQ_SLICE_EXT_ENABLE, 0, 0) != 0) {
		t->reason = errno == EINVAL	 ? PTIMER_SLICE_NO_KERNEL
			    : errno == PT_ENOTSUPP ? PTIMER_SLICE_BOOT_DISABLED
			    : errno == ENXIO	 ? PTIMER_SLICE_NO_RSEQ
						 : PTIMER_SLICE_REFUSED;
		errno = saved;
		return;
	}
	t->ctrl = &a->slice_ctrl;
	t->reason = PTIMER_SLICE_OK;
	t->state = 1;
}

int ptimer_slice_available(void)
{
	if (self.state == 0)
		enable_thread(&self);
	return self.state > 0;
}

int ptimer_slice_reason(void)
{
	if (self.state == 0)
		enable_thread(&self);
	return self.reason;
}

const char *ptimer_slice_strreason(int reason)
{
	switch (reason) {
	case PTIMER_SLICE_OK:
		return "time-slice extension enabled";
	case PTIMER_SLICE_NO_RSEQ:
		return "no rseq area is registered for this thread (libc without rseq, or "
		       "GLIBC_TUNABLES=glibc.pthread.rseq=0)";
	case PTIMER_SLICE_NO_KERNEL:
		return "the kernel has no rseq time-slice extension (Linux 7.0 and later "
		       "with CONFIG_RSEQ_SLICE_EXTENSION)";
	case PTIMER_SLICE_AREA_TOO_SMALL:
		return "libc's rseq area ends before slice_ctrl (its __rseq_size is below 32)";
	case PTIMER_SLICE_BOOT_DISABLED:
		return "the kernel's time-slice extension is turned off at boot";
	case PTIMER_SLICE_USER_DISABLED:
		return "turned off by PTIMERS_SLICE=0";
	case PTIMER_SLICE_REFUSED:
		return "the kernel refused to enable the time-slice extension";
	}
	return "unknown reason";
}

void pt_slice_stats(struct ptimer_slice_stats *out)
{
	*out = self.stats;
}

void ptimer__slice_begin(void)
{
	struct slice_thread *t = &self;

	if (t->depth++ != 0)
		return;
	if (__builtin_expect(t->state == 0, 0))
		enable_thread(t);
	if (t->state > 0) {
		t->stats.sections++;
		if (t->pause_depth)
			return; /* asked for when the pause ends */
		__asm__ volatile("" ::: "memory");
		t->ctrl->request = 1;
		__asm__ volatile("" ::: "memory");
	}
}

/* request = 0, then read granted: no atomics needed, because the kernel
 * grants only between two instructions of this thread on this CPU.  If it
 * granted before the store, granted is set (and request already clear);
 * if after, it saw no request and did not grant. */
static int withdraw(struct slice_thread *t)
{
	__asm__ volatile("" ::: "memory");
	t->ctrl->request = 0;
	__asm__ volatile("" ::: "memory");
	if (__builtin_expect(!t->ctrl->granted, 1))
		return PTIMER_SLICE_NOT_GRANTED;
	t->stats.granted++;
	long yielded;
	/* Straight to the kernel: nothing between here and the yield may make
	 * another system call, and libc's syscall() would set errno. */
	__asm__ volatile("syscall"
			 : "=a"(yielded)
			 : "0"((long)PT_NR_rseq_slice_yield)
			 : "rcx", "r11", "memory");
	if (yielded == 1) {
		t->stats.yielded++;
		return PTIMER_SLICE_YIELDED;
	}
	t->stats.revoked++;
	return PTIMER_SLICE_REVOKED;
}

int ptimer__slice_end(void)
{
	struct slice_thread *t = &self;

	if (t->depth == 0 || --t->depth != 0 || t->state <= 0)
		return PTIMER_SLICE_NOT_GRANTED;
	if (t->pause_depth)
		return PTIMER_SLICE_NOT_GRANTED; /* withdrawn already */
	return withdraw(t);
}

/* Pauses nest (a paused stretch may call code that pauses): the first
 * withdraws the request, the last puts it back, if a section is still
 * open then. */
void pt_slice_pause_slow(void)
{
	struct slice_thread *t = &self;

	if (t->state == 0)
		enable_thread(t); /* so that the matching resume counts too */
	if (t->state <= 0)
		return;
	if (t->pause_depth++ == 0 && t->depth > 0)
		(void)withdraw(t);
}

void pt_slice_resume_slow(void)
{
	struct slice_thread *t = &self;

	if (t->state <= 0 || t->pause_depth == 0)
		return;
	if (--t->pause_depth == 0 && t->depth > 0) {
		__asm__ volatile("" ::: "memory");
		t->ctrl->request = 1;
		__asm__ volatile("" ::: "memory");
	}
}

#ifdef PTIMERS_SLICE_EMULATION
/* The stand-in kernel's entry points (private.h): compiled into test
 * builds only (meson.build), never into what is installed. */
#include "private.h"

/* Test builds: the calling thread uses area (32 bytes, 32-aligned) as its
 * rseq area, and a stand-in for the kernel drives it; NULL makes the
 * thread one without rseq.  Turns the process-wide switch on.  The
 * stand-in must set RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE in area->flags, as
 * the kernel would, or the thread is told the kernel lacks it. */
int ptimer__slice_emulate(void *area)
{
	struct slice_thread *t = &self;

	if (t->depth != 0) {
		errno = EBUSY;
		return -1;
	}
	if (area && ((uintptr_t)area & 31)) {
		errno = EINVAL;
		return -1;
	}
	__atomic_store_n(&ptimer__slice_on, 1, __ATOMIC_RELAXED);
	process_reason = PTIMER_SLICE_OK;
	t->state = -1;
	t->ctrl = NULL;
	t->pause_depth = 0;
	memset(&t->stats, 0, sizeof(t->stats));
	if (!area) {
		t->reason = PTIMER_SLICE_NO_RSEQ;
		return 0;
	}
	struct pt_rseq_area *a = area;
	if (!(__atomic_load_n(&a->flags, __ATOMIC_RELAXED) & PT_RSEQ_FLAG_SLICE_EXT_AVAILABLE)) {
		t->reason = PTIMER_SLICE_NO_KERNEL;
		return 0;
	}
	t->ctrl = &a->slice_ctrl;
	t->reason = PTIMER_SLICE_OK;
	t->state = 1;
	return 0;
}

/* The calling thread's nesting depth (for the stand-in kernel's reports). */
unsigned ptimer__slice_depth(void)
{
	return self.depth;
}

/* Test builds: back to what the process probed at start, for the calling
 * thread and the process-wide switch (no thread may be in a section). */
void ptimer__slice_emulate_end(void)
{
	memset(&self, 0, sizeof(self));
	slice_probe();
}
#endif
