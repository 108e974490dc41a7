/* SPDX-License-Identifier: MIT */
/*
 * Time-slice extension: the protocol of <ptimers/slice.h> against the
 * stand-in kernel (emu/slice_emu.h) on every path, the same protocol
 * against the running kernel where it has the extension, the no-op path
 * where it does not, the layout, the locks, and the engine's own sections
 * (no system call while an extension is requested).  TAP, one line per
 * case; a case that cannot run here says why (# SKIP).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#include "emu/slice_emu.h"
#include "private.h"
#include "ptimers.h"
#include "ptimers/slice.h"

#ifdef PTIMERS_HAVE_RSEQ_SLICE_CTRL
/* The installed kernel headers know the extension: our layout must agree. */
#include <linux/rseq.h>
_Static_assert(offsetof(struct rseq, slice_ctrl) == PT_RSEQ_SLICE_CTRL_OFFSET, "slice_ctrl");
_Static_assert(offsetof(struct rseq_slice_ctrl, request) == 0, "request byte 0");
_Static_assert(offsetof(struct rseq_slice_ctrl, granted) == 1, "granted byte 1");
_Static_assert(RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE == PT_RSEQ_FLAG_SLICE_EXT_AVAILABLE, "bit 4");
_Static_assert(RSEQ_CS_FLAG_SLICE_EXT_ENABLED == PT_RSEQ_FLAG_SLICE_EXT_ENABLED, "bit 5");
#endif


static int failed_here;
static char skip_reason[256];

#define CHECK(cond, ...)                                                          \
	do {                                                                      \
		if (!(cond)) {                                                    \
			printf("# %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
			printf(__VA_ARGS__);                                      \
			printf("\n");                                             \
			if (emu.interrupts)                                       \
				describe(&emu);                                   \
			failed_here = 1;                                          \
			return;                                                   \
		}                                                                 \
	} while (0)

static void skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(skip_reason, sizeof(skip_reason), fmt, ap);
	va_end(ap);
}

/* The one-step cases: a grant long enough that nothing a busy machine
 * takes from a short path (tens of microseconds at times) makes it
 * overstay.  The scheduled runs: the kernel's 50 us. */
static const struct emu_config cfg = { .limit_ns = 2000000, .preempt_ns = 20000 };
static const struct emu_config sched_cfg = { .limit_ns = 50000, .preempt_ns = 20000 };
static struct emu_thread emu;
static int real_available = -1, real_reason;

/* Run for ns of this thread's CPU time (the stand-in's measure), read
 * with its unwatched system call: allowed inside a section. */
static int64_t thread_cpu_ns(void)
{
	struct timespec ts;
	emu_syscall(SYS_clock_gettime, CLOCK_THREAD_CPUTIME_ID, (long)&ts, 0, 0, 0, 0);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void spin_ns(int64_t ns)
{
	int64_t end = thread_cpu_ns() + ns;
	while (thread_cpu_ns() < end)
		__builtin_ia32_pause();
}

/* Code addresses, symbolised, as TAP comments (a bare line would break
 * the TAP stream). */
static void print_frames(void *const *frames, int n)
{
	char **names = backtrace_symbols(frames, n);
	for (int i = 0; i < n; i++)
		printf("#   %s\n", names ? names[i] : "?");
	free(names);
}

/* What time taken from a thread behind its back can make it look to
 * have done (its CPU clock runs on while its virtual CPU is away): stay
 * in a section past the grant, or stay past its sections with the grant
 * up until a later interrupt (between clearing request and yielding).
 * Bounded in each case below; a thread that truly forgot would do it at
 * every grant. */
static unsigned long stolen_time_violations(const struct emu_thread *t)
{
	return t->v_overstay + t->v_no_yield;
}

static void describe(const struct emu_thread *t)
{
	printf("# stand-in: interrupts %lu grants %lu preemptions %lu yields %lu revoked %lu; "
	       "violations: granted written %lu, inconsistent %lu, syscall in grant %lu, "
	       "syscall requested %lu (last nr %ld), no yield %lu, overstay %lu, yield without "
	       "grant %lu\n",
	       t->interrupts, t->grants, t->preemptions, t->yields, t->revoked, t->v_granted_written,
	       t->v_inconsistent, t->v_syscall_in_grant, t->v_syscall_requested, t->last_bad_syscall,
	       t->v_no_yield, t->v_overstay, t->v_yield_without_grant);
	if (t->last_overstay_ip) {
		printf("# the last overstaying section was at:\n");
		print_frames(&t->last_overstay_ip, 1);
	}
	if (t->last_bad_ip) {
		void *frames[2] = { t->last_bad_ip, t->last_bad_caller };
		printf("# the last one was made at:\n");
		print_frames(frames, 2);
	}
}

/* ---- layout and the real kernel ---- */

static void t_layout(void)
{
	struct pt_rseq_area a;
	memset(&a, 0, sizeof(a));
	a.slice_ctrl.request = 1;
	CHECK(((unsigned char *)&a)[28] == 1, "request must be byte 28 of the area");
	a.slice_ctrl.request = 0;
	a.slice_ctrl.granted = 1;
	CHECK(((unsigned char *)&a)[29] == 1, "granted must be byte 29 of the area");
	CHECK(a.slice_ctrl.all == 0x100, "granted is bit 8 of the word, not bit 1: %#x",
	      a.slice_ctrl.all);
#ifndef PTIMERS_HAVE_RSEQ_SLICE_CTRL
	printf("# the installed <linux/rseq.h> has no slice_ctrl: layout checked against our "
	       "own struct only\n");
#endif
}

static void t_real_noop(void)
{
	if (real_available) {
		skip("the running kernel has the extension (see the real-kernel cases)");
		return;
	}
	printf("# this kernel: %s\n", ptimer_slice_strreason(real_reason));
	CHECK(real_reason != PTIMER_SLICE_OK, "reason");
	CHECK(ptimer__slice_on == 0, "the process-wide switch must be off");
	for (int i = 0; i < 1000; i++) {
		ptimer_slice_begin();
		CHECK(ptimer_slice_end() == PTIMER_SLICE_NOT_GRANTED, "no-op end");
	}
	struct ptimer_slice_stats st;
	CHECK(ptimer_slice_stats(&st, sizeof(st)) == 0, "stats");
	CHECK(st.sections == 0, "no section counted on the no-op path");
}

/* The protocol on the real kernel: the same flow as the emulated cases,
 * with a competing thread on the same CPU so that grants happen. */
static volatile int hog_stop;
static void *hog(void *arg)
{
	(void)arg;
	while (!hog_stop)
		__builtin_ia32_pause();
	return NULL;
}

static void t_real_protocol(void)
{
	if (!real_available) {
		skip("the running kernel lacks the extension: %s", ptimer_slice_strreason(real_reason));
		return;
	}
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
	pthread_t h;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setaffinity_np(&at, sizeof(one), &one);
	hog_stop = 0;
	CHECK(pthread_create(&h, &at, hog, NULL) == 0, "hog");
	int64_t until = emu_now() + 2000000000;
	uint64_t n = 0, yielded = 0, revoked = 0;
	while (emu_now() < until) {
		ptimer_slice_begin();
		ptimer_slice_begin();
		spin_ns(2000);
		CHECK(ptimer_slice_end() == PTIMER_SLICE_NOT_GRANTED, "inner end");
		int r = ptimer_slice_end();
		yielded += r == PTIMER_SLICE_YIELDED;
		revoked += r == PTIMER_SLICE_REVOKED;
		n++;
	}
	hog_stop = 1;
	pthread_join(h, NULL);
	struct ptimer_slice_stats st;
	CHECK(ptimer_slice_stats(&st, sizeof(st)) == 0, "stats");
	printf("# real kernel: %lu sections, %lu granted, %lu yielded, %lu revoked\n",
	       (unsigned long)st.sections, (unsigned long)st.granted, (unsigned long)st.yielded,
	       (unsigned long)st.revoked);
	CHECK(st.sections >= n, "every section counted");
	CHECK(st.yielded == yielded && st.revoked == revoked, "end results and counters agree");
	CHECK(st.granted == st.yielded + st.revoked, "every grant ended one way");
	CHECK(st.granted > 0, "a spinning competitor on the same CPU must cause grants");
}

/* The child's exit status: REASON_EXIT + its reason (apart from the
 * statuses of a failed start). */
#define REASON_EXIT 40
static char self_path[4096];

/* In a process where glibc registers no rseq area, or the user turned it
 * off: the reason says so, and nothing is touched. */
static void t_reasons_in_children(void)
{
	struct {
		const char *env;
		int want;
	} runs[] = { { "GLIBC_TUNABLES=glibc.pthread.rseq=0", PTIMER_SLICE_NO_RSEQ },
		     { "PTIMERS_SLICE=0", PTIMER_SLICE_USER_DISABLED } };
	for (unsigned i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		pid_t pid = fork();
		if (pid == 0) {
			char lib[4096];
			snprintf(lib, sizeof(lib), "LD_LIBRARY_PATH=%s",
				 getenv("LD_LIBRARY_PATH") ? getenv("LD_LIBRARY_PATH") : "");
			char *envp[] = { (char *)runs[i].env, lib, NULL };
			char *argv[] = { self_path, "--reason", NULL };
			execve(self_path, argv, envp);
			_exit(100);
		}
		int status;
		CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == REASON_EXIT + runs[i].want,
		      "with %s the reason must be %d (%s); child exited %d", runs[i].env,
		      runs[i].want, ptimer_slice_strreason(runs[i].want),
		      WIFEXITED(status) ? WEXITSTATUS(status) - REASON_EXIT : -1);
	}
}

static void t_bad_input(void)
{
	struct ptimer_slice_stats st;
	errno = 0;
	CHECK(ptimer_slice_stats(NULL, sizeof(st)) == -1 && errno == EINVAL, "NULL stats");
	errno = 0;
	CHECK(ptimer_slice_stats(&st, 8) == -1 && errno == EINVAL, "short stats");
	errno = 0;
	CHECK(ptimer_slice_stats((void *)8, sizeof(st)) == -1 && errno == EFAULT, "bad stats pointer");
	void *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(ro != MAP_FAILED, "mmap");
	errno = 0;
	CHECK(ptimer_slice_stats(ro, sizeof(st)) == -1 && errno == EFAULT, "read-only stats");
	munmap(ro, 4096);
	errno = 0;
	CHECK(ptimer_slice_stats(&st, 4097) == -1 && errno == EINVAL, "huge stats");
	/* A larger struct (a later version): ours, then zeros. */
	unsigned char big[sizeof(st) + 100];
	memset(big, 0xa5, sizeof(big));
	CHECK(ptimer_slice_stats((void *)big, sizeof(big)) == 0, "larger stats");
	for (size_t i = sizeof(st); i < sizeof(big); i++)
		CHECK(big[i] == 0, "byte %zu past the struct not zeroed", i);
	CHECK(strcmp(ptimer_slice_strreason(1000), "unknown reason") == 0, "unknown reason");
	CHECK(ptimer_slice_end() == PTIMER_SLICE_NOT_GRANTED, "end without begin");
	CHECK(ptimer_spin_lock(NULL) == EINVAL && ptimer_spin_unlock(NULL) == EINVAL &&
		      ptimer_spin_trylock(NULL) == EINVAL,
	      "spinlock NULL");
	CHECK(ptimer_mutex_lock(NULL) == EINVAL && ptimer_mutex_unlock(NULL) == EINVAL &&
		      ptimer_mutex_trylock(NULL) == EINVAL,
	      "mutex NULL");
	ptimer_spinlock_t s = PTIMER_SPINLOCK_INIT;
	ptimer_mutex_t m = PTIMER_MUTEX_INIT;
	CHECK(ptimer_spin_unlock(&s) == EPERM && ptimer_mutex_unlock(&m) == EPERM, "unlock unheld");
	CHECK(ptimer_spin_trylock(&s) == 0 && ptimer_spin_trylock(&s) == EBUSY, "spin trylock");
	CHECK(ptimer_spin_unlock(&s) == 0, "spin unlock");
	CHECK(ptimer_mutex_trylock(&m) == 0 && ptimer_mutex_trylock(&m) == EBUSY, "mutex trylock");
	CHECK(ptimer_mutex_unlock(&m) == 0, "mutex unlock");
}

/* ---- the protocol against the stand-in kernel ---- */

static int attach(bool extension)
{
	return emu_attach(&emu, &cfg, extension);
}

#define ATTACH(ext) CHECK(attach(ext) == 0, "attach")
/* Cases that need the stand-in to see system calls. */
#define NEED_WATCH()                                                      \
	do {                                                              \
		if (!emu_can_watch_syscalls()) {                          \
			skip("no Syscall User Dispatch here");            \
			return;                                           \
		}                                                         \
	} while (0)
/* A section the stand-in has granted an extension to. */
#define GRANTED_SECTION()                                                 \
	do {                                                              \
		ATTACH(true);                                             \
		ptimer_slice_begin();                                     \
		emu_interrupt(&emu);                                      \
		CHECK(emu.area.slice_ctrl.granted == 1, "granted");       \
	} while (0)
#define REQ (emu.area.slice_ctrl.request)
#define GRANTED (emu.area.slice_ctrl.granted)

static void t_granted_then_yield(void)
{
	ATTACH(true);
	CHECK(ptimer_slice_available() && ptimer_slice_reason() == PTIMER_SLICE_OK, "enabled");
	ptimer_slice_begin();
	CHECK(REQ == 1 && GRANTED == 0, "begin sets request");
	emu_interrupt(&emu); /* the scheduler wants the CPU: grants */
	CHECK(REQ == 0 && GRANTED == 1 && emu.grants == 1, "the stand-in granted");
	int r = ptimer_slice_end();
	CHECK(r == PTIMER_SLICE_YIELDED, "end must yield, got %d", r);
	CHECK(emu.yields == 1 && GRANTED == 0 && REQ == 0, "yielded");
	struct ptimer_slice_stats st;
	ptimer_slice_stats(&st, sizeof(st));
	CHECK(st.sections == 1 && st.granted == 1 && st.yielded == 1 && st.revoked == 0, "stats");
	CHECK(emu_violations(&emu) == 0, "no violation");
	emu_detach(&emu);
}

static void t_request_still_set_at_end(void)
{
	ATTACH(true);
	ptimer_slice_begin();
	spin_ns(1000);
	CHECK(REQ == 1, "request held through the section");
	CHECK(ptimer_slice_end() == PTIMER_SLICE_NOT_GRANTED, "no grant, no yield");
	CHECK(REQ == 0 && GRANTED == 0, "request cleared by user space");
	CHECK(emu.yields == 0 && emu_violations(&emu) == 0, "no yield, no violation");
	emu_interrupt(&emu); /* after the section: an ordinary preemption */
	CHECK(emu.preemptions == 1 && emu.grants == 0, "preempted outside the section");
	emu_detach(&emu);
}

static void t_revoked_by_syscall(void)
{
	NEED_WATCH();
	GRANTED_SECTION();
	pid_t want = (pid_t)emu_syscall(SYS_getppid, 0, 0, 0, 0, 0, 0);
	pid_t got = getppid(); /* a system call inside the grant */
	CHECK(got == want, "the watched syscall still runs: %d vs %d", got, want);
	CHECK(emu.v_syscall_in_grant == 1 && emu.revoked == 1 && GRANTED == 0,
	      "the stand-in revoked and flagged it");
	CHECK(ptimer_slice_end() == PTIMER_SLICE_NOT_GRANTED, "nothing left to yield");
	CHECK(emu.yields == 0, "no yield after a revoke");
	emu_detach(&emu);
}

static void t_revoked_at_yield(void)
{
	NEED_WATCH();
	GRANTED_SECTION();
	spin_ns(cfg.limit_ns * 3); /* overstays, and nothing interrupts it */
	int r = ptimer_slice_end();
	CHECK(r == PTIMER_SLICE_REVOKED, "the yield comes too late: got %d", r);
	CHECK(emu.v_overstay == 1 && emu.yields == 0, "flagged as overstay");
	struct ptimer_slice_stats st;
	ptimer_slice_stats(&st, sizeof(st));
	CHECK(st.granted == 1 && st.revoked == 1 && st.yielded == 0, "stats");
	emu_detach(&emu);
}

static void t_overstay_enforced(void)
{
	GRANTED_SECTION();
	spin_ns(cfg.limit_ns / 10);
	emu_interrupt(&emu); /* inside the limit: the grant stands */
	CHECK(GRANTED == 1 && emu.revoked == 0, "within the limit");
	spin_ns(cfg.limit_ns * 2);
	emu_enforce(&emu); /* the scheduler's tick past the limit */
	CHECK(GRANTED == 0 && emu.revoked == 1 && emu.v_overstay == 1 && emu.preemptions == 1,
	      "revoked, flagged, preempted");
	CHECK(ptimer_slice_end() == PTIMER_SLICE_NOT_GRANTED, "end after a revoke");
	emu_detach(&emu);
}

static void t_nesting(void)
{
	ATTACH(true);
	ptimer_slice_begin();
	ptimer_slice_begin();
	CHECK(ptimer_slice_end() == PTIMER_SLICE_NOT_GRANTED && REQ == 1,
	      "an inner end keeps the request");
	ptimer_slice_begin();
	emu_interrupt(&emu);
	CHECK(ptimer_slice_end() == PTIMER_SLICE_NOT_GRANTED && GRANTED == 1,
	      "an inner end does not yield");
	CHECK(ptimer_slice_end() == PTIMER_SLICE_YIELDED, "the outermost end yields");
	CHECK(ptimer_slice_end() == PTIMER_SLICE_NOT_GRANTED, "an extra end does nothing");
	struct ptimer_slice_stats st;
	ptimer_slice_stats(&st, sizeof(st));
	CHECK(st.sections == 1, "one outermost section: %lu", (unsigned long)st.sections);
	CHECK(emu_violations(&emu) == 0, "no violation");
	emu_detach(&emu);
}

static void t_thread_without_rseq(void)
{
	CHECK(ptimer__slice_emulate(NULL) == 0, "emulate");
	CHECK(!ptimer_slice_available() && ptimer_slice_reason() == PTIMER_SLICE_NO_RSEQ,
	      "no rseq: reason %d", ptimer_slice_reason());
	ptimer_slice_begin();
	CHECK(ptimer_slice_end() == PTIMER_SLICE_NOT_GRANTED, "no-op");
	struct ptimer_slice_stats st;
	ptimer_slice_stats(&st, sizeof(st));
	CHECK(st.sections == 0, "nothing counted");
}

static void t_kernel_without_extension(void)
{
	ATTACH(false);
	CHECK(ptimer_slice_reason() == PTIMER_SLICE_NO_KERNEL, "reason");
	ptimer_slice_begin();
	CHECK(REQ == 0, "no request written where the kernel does not advertise it");
	emu_interrupt(&emu);
	CHECK(emu.preemptions == 1 && emu.grants == 0, "preempted");
	CHECK(ptimer_slice_end() == PTIMER_SLICE_NOT_GRANTED, "no-op end");
	emu_detach(&emu);
}

/* The stand-in must catch user space breaking the protocol (these write
 * the area directly, as a faulty user of the ABI would). */
static void t_stand_in_catches_violations(void)
{
	ATTACH(true);
	GRANTED = 1; /* user space writes granted */
	emu_interrupt(&emu);
	CHECK(emu.v_granted_written >= 1, "writing granted is caught");
	GRANTED = 0;
	emu_detach(&emu);

	ATTACH(true);
	emu.area.slice_ctrl.reserved = 1;
	emu_interrupt(&emu);
	CHECK(emu.v_inconsistent == 1, "reserved bits are caught");
	emu.area.slice_ctrl.reserved = 0;
	emu_detach(&emu);

	ATTACH(true);
	REQ = 1;
	emu_interrupt(&emu); /* granted */
	REQ = 0;             /* section over, but no yield */
	spin_ns(cfg.limit_ns * 2);
	emu_enforce(&emu);   /* it may be on its way to the yield: looked at again */
	CHECK(emu.v_no_yield == 0, "the first look lets it be");
	spin_ns(cfg.limit_ns);
	emu_enforce(&emu);
	CHECK(emu.v_no_yield == 1, "a section that ends without yielding is caught");
	emu_detach(&emu);

	if (emu_can_watch_syscalls()) {
		ATTACH(true);
		ptimer_slice_begin();
		(void)getppid(); /* requested, not granted yet */
		CHECK(emu.v_syscall_requested == 1 && emu.last_bad_syscall == SYS_getppid,
		      "a syscall with a request set is caught");
		ptimer_slice_end();
		REQ = 1;
		long r = syscall(PT_NR_rseq_slice_yield);
		REQ = 0;
		CHECK(r == 0 && emu.v_yield_without_grant == 1, "a yield without a grant is caught");
		emu_detach(&emu);
	}
}

static void t_locks(void)
{
	ATTACH(true);
	ptimer_spinlock_t s = PTIMER_SPINLOCK_INIT;
	ptimer_mutex_t m = PTIMER_MUTEX_INIT;
	CHECK(ptimer_spin_lock(&s) == 0 && REQ == 1, "a held spinlock requests");
	emu_interrupt(&emu);
	CHECK(ptimer_spin_unlock(&s) == 0 && emu.yields == 1 && s.v == 0, "unlock yields");
	CHECK(ptimer_mutex_lock(&m) == 0 && REQ == 1, "a held mutex requests");
	emu_interrupt(&emu);
	CHECK(ptimer_mutex_unlock(&m) == 0 && emu.yields == 2 && m.v == 0, "unlock yields");
	CHECK(ptimer_mutex_trylock(&m) == 0 && REQ == 1 && ptimer_mutex_unlock(&m) == 0 && REQ == 0,
	      "trylock");
	CHECK(emu_violations(&emu) == 0, "no violation");
	emu_detach(&emu);
}

static struct emu_thread emu_disp;
static int disp_attached; /* 1 attached, -1 failed */

static void attach_dispatcher(void)
{
	__atomic_store_n(&disp_attached, emu_attach(&emu_disp, &sched_cfg, true) == 0 ? 1 : -1,
			 __ATOMIC_RELEASE);
}

/* Every engine call from a thread whose stand-in watches system calls:
 * none may be made while one of the engine's locks requests an
 * extension, while the scheduler grants and preempts at random. */
static void t_engine_sections(void)
{
	NEED_WATCH();
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	/* The dispatcher's sections too: the stand-in attaches to its thread
	 * as it starts (it stays attached: this is the last engine case). */
	CHECK(ptimer__dispatch_on_start(attach_dispatcher) == 0,
	      "the engine started before this case: its dispatcher cannot be watched");
	timer_t warm;
	CHECK(ptimer_create(CLOCK_MONOTONIC, NULL, &warm) == 0, "engine start");
	for (int i = 0; i < 5000 && !__atomic_load_n(&disp_attached, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	CHECK(__atomic_load_n(&disp_attached, __ATOMIC_ACQUIRE) == 1, "the dispatcher attached");
	CHECK(emu_attach(&emu, &sched_cfg, true) == 0, "attach");
	struct emu_thread *all[] = { &emu, &emu_disp };
	struct emu_sched sched = { .threads = all, .n = 2, .period_ns = 100000 };
	CHECK(emu_sched_start(&sched) == 0, "scheduler");
	enum { N = 500 };
	static timer_t ids[N];
	/* Half a second, and on until a grant has ended in a yield (a busy
	 * machine may take longer to land one), for at most ten. */
	int64_t start = emu_now(), until = start + 500000000, cap = start + 10000000000LL;
	unsigned rounds = 0;
	while ((emu_now() < until || rounds < 2 || emu.yields == 0) && emu_now() < cap) {
		for (int i = 0; i < N; i++) {
			struct sigevent sev = { .sigev_notify = (i & 1) ? SIGEV_SIGNAL : SIGEV_NONE,
						.sigev_signo = SIGUSR1 };
			/* Three clocks, the process's CPU clock among them (read
			 * by a system call under the timer's lock). */
			clockid_t c = i % 32 == 7 ? CLOCK_PROCESS_CPUTIME_ID
				      : (i & 2)   ? CLOCK_REALTIME
						  : CLOCK_MONOTONIC;
			if (ptimer_create(c, &sev, &ids[i])) {
				emu_sched_stop(&sched);
				emu_detach(&emu);
				CHECK(0, "create %d: %s", i, strerror(errno));
			}
			/* One in 64 due at once: its signal is pending (the
			 * thread blocks it) when the timer is read and deleted,
			 * and the engine asks the kernel about it. */
			struct itimerspec its = { { (i & 4) ? 1 : 0, 0 },
						  { 0, i % 64 == 1 ? 1 : 5000000 + 1000 * i } };
			ptimer_settime(ids[i], 0, &its, NULL);
		}
		/* Every other round inside a section of the program's own: the
		 * engine's system calls must withdraw the program's request too,
		 * and its own locks nest inside. */
		ptimer_spinlock_t mine = PTIMER_SPINLOCK_INIT;
		for (int i = 0; i < N; i++) {
			struct itimerspec cur;
			if (rounds & 1)
				ptimer_spin_lock(&mine);
			ptimer_gettime(ids[i], &cur);
			(void)ptimer_getoverrun(ids[i]);
			ptimer_delete(ids[i]);
			if (rounds & 1)
				ptimer_spin_unlock(&mine);
		}
		rounds++;
	}
	emu_sched_stop(&sched);
	emu_detach(&emu);
	ptimer_delete(warm);
	printf("# %u rounds of %d timers\n", rounds, N);
	describe(&emu);
	CHECK(emu.v_syscall_requested == 0 && emu.v_syscall_in_grant == 0,
	      "the engine made system call %ld inside an extended section", emu.last_bad_syscall);
	/* A section can outlast the grant without any fault of its own (a page
	 * fault that zero-fills a huge page takes ~100 us, and a virtual CPU
	 * that its host takes away counts as run time): the kernel then
	 * revokes, as the stand-in does.  Rare, or the sections are too long. */
	struct ptimer_slice_stats st;
	CHECK(ptimer_slice_stats(&st, sizeof(st)) == 0, "stats");
	CHECK(stolen_time_violations(&emu) <= emu_overstays_allowed(st.sections),
	      "%lu overstays and late yields in %lu sections (%lu grants)", stolen_time_violations(&emu),
	      (unsigned long)st.sections, (unsigned long)emu.grants);
	CHECK(emu_violations(&emu) == stolen_time_violations(&emu), "no other violation");
	CHECK(emu.grants > 0 && emu.yields > 0, "the scheduler's interrupts landed in sections");
	printf("# the dispatcher's thread:\n");
	describe(&emu_disp);
	CHECK(emu_disp.interrupts > 0, "the dispatcher was interrupted");
	CHECK(emu_disp.v_syscall_requested == 0 && emu_disp.v_syscall_in_grant == 0,
	      "the dispatcher made system call %ld inside an extended section",
	      emu_disp.last_bad_syscall);
	/* Its grants are few (it mostly waits), so one stolen stretch of CPU
	 * weighs more: two overstays are let pass. */
	/* Its sections are not counted here (another thread's): most of its
	 * grants then. */
	CHECK(stolen_time_violations(&emu_disp) <= 1 + emu_disp.grants / 2, "the dispatcher overstayed");
	CHECK(emu_violations(&emu_disp) == stolen_time_violations(&emu_disp),
	      "the dispatcher broke the protocol");
}

/* Two threads contending for one spinlock under the scheduler: the
 * count is exact and no thread breaks the protocol. */
static ptimer_spinlock_t shared = PTIMER_SPINLOCK_INIT;
static unsigned long counter;
static struct emu_thread workers[2];
static volatile int go, stop_workers;

static void *worker(void *arg)
{
	struct emu_thread *t = arg;
	if (emu_attach(t, &sched_cfg, true) != 0)
		return (void *)1;
	__atomic_add_fetch(&go, 1, __ATOMIC_SEQ_CST);
	unsigned long mine = 0;
	while (!stop_workers) {
		ptimer_spin_lock(&shared);
		counter++;
		spin_ns(500);
		ptimer_spin_unlock(&shared);
		mine++;
		spin_ns(500);
	}
	struct ptimer_slice_stats st = { 0 };
	ptimer_slice_stats(&st, sizeof(st));
	t->sections = st.sections;
	emu_detach(t);
	return (void *)(uintptr_t)(mine << 1);
}

/* One run of the contended lock: *over gets 0, or the overstays seen
 * when more than the busy-machine bound (every other violation fails at
 * once). */
static void contended_run(unsigned long *over_out)
{
	pthread_t th[2];
	struct emu_thread *all[] = { &workers[0], &workers[1] };
	memset(workers, 0, sizeof(workers));
	counter = 0, go = 0, stop_workers = 0;
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, worker, &workers[i]) == 0, "thread");
	while (__atomic_load_n(&go, __ATOMIC_SEQ_CST) < 2)
		sched_yield();
	struct emu_sched sched = { .threads = all, .n = 2, .period_ns = 40000 };
	CHECK(emu_sched_start(&sched) == 0, "scheduler");
	struct timespec run = { 1, 0 };
	nanosleep(&run, NULL); /* the length of the run, not a synchronisation */
	emu_sched_stop(&sched);
	stop_workers = 1;
	unsigned long total = 0, over = 0;
	for (int i = 0; i < 2; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		CHECK(((uintptr_t)ret & 1) == 0, "worker %d could not attach", i);
		total += (uintptr_t)ret >> 1;
		describe(&workers[i]);
		CHECK(emu_violations(&workers[i]) == stolen_time_violations(&workers[i]),
		      "worker %d broke the protocol", i);
		/* Overstays: see the engine case (a virtual CPU stolen by its
		 * host, or another program's interrupts, count as run time). */
		if (stolen_time_violations(&workers[i]) > emu_overstays_allowed(workers[i].sections))
			over += stolen_time_violations(&workers[i]);
	}
	CHECK(counter == total, "the lock lost updates: %lu vs %lu", counter, total);
	CHECK(workers[0].grants + workers[1].grants > 0, "grants happened");
	CHECK(workers[0].yields + workers[1].yields > 0, "yields happened");
	*over_out = over;
}

/* Two threads contending for one spinlock under the scheduler: the
 * count is exact and no thread breaks the protocol.  Sections of 0.5 us
 * overstay a 50 us grant only when time is taken from the thread behind
 * its back (this machine's host, another program's interrupts), which
 * nothing in the machine can tell from its own run time: a run with more
 * than the odd such overstay is measured again, and only one that keeps
 * overstaying fails. */
static void t_contended(void)
{
	for (int attempt = 1;; attempt++) {
		unsigned long over = 0;
		contended_run(&over);
		if (failed_here || !over)
			return;
		printf("# run %d: %lu overstays, more than a quiet machine shows%s\n", attempt, over,
		       attempt < 3 ? ": measured again" : "");
		CHECK(attempt < 3, "the workers overstayed their grants in %d runs out of %d", attempt,
		      attempt);
	}
}

struct tcase {
	const char *name;
	void (*fn)(void);
	bool emulated; /* needs the stand-in's signal handlers */
};

static const struct tcase cases[] = {
	{ "layout of slice_ctrl", t_layout, false },
	{ "bad input", t_bad_input, false },
	{ "real kernel: no-op path", t_real_noop, false },
	{ "real kernel: protocol", t_real_protocol, false },
	{ "reasons: no rseq, user off", t_reasons_in_children, false },
	{ "emulated: granted then yield", t_granted_then_yield, true },
	{ "emulated: request still set at the end", t_request_still_set_at_end, true },
	{ "emulated: revoked by a system call", t_revoked_by_syscall, true },
	{ "emulated: revoked before the yield", t_revoked_at_yield, true },
	{ "emulated: overstay enforced", t_overstay_enforced, true },
	{ "emulated: nesting", t_nesting, true },
	{ "emulated: thread without rseq", t_thread_without_rseq, true },
	{ "emulated: kernel without the extension", t_kernel_without_extension, true },
	{ "emulated: the stand-in catches violations", t_stand_in_catches_violations, true },
	{ "emulated: spinlock and mutex", t_locks, true },
	{ "emulated: engine sections make no system call", t_engine_sections, true },
	{ "emulated: contended spinlock", t_contended, true },
};

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--reason") == 0)
		return REASON_EXIT + ptimer_slice_reason();
	/* The program itself (not /proc/self/exe, which is valgrind under it). */
	if (!realpath(argv[0], self_path))
		snprintf(self_path, sizeof(self_path), "%s", argv[0]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Before any emulation turns the process-wide switch on. */
	real_available = ptimer_slice_available();
	real_reason = ptimer_slice_reason();

	const char *no_emulation = NULL;
#ifdef __SANITIZE_THREAD__
	no_emulation = "under TSan (the stand-in's raw signal handlers are invisible to it)";
#endif
	if (RUNNING_ON_VALGRIND)
		no_emulation = "under valgrind (it cannot run Syscall User Dispatch)";

	int n = sizeof(cases) / sizeof(cases[0]), failed = 0;
	int only = argc > 2 && strcmp(argv[1], "--only") == 0 ? atoi(argv[2]) : 0;
	printf("1..%d\n", n);
	for (int i = 0; i < n; i++) {
		failed_here = 0;
		skip_reason[0] = 0;
		if (only && i + 1 != only)
			skip("not selected (--only %d)", only);
		else if (cases[i].emulated && no_emulation)
			skip("%s", no_emulation);
		else
			cases[i].fn();
		if (cases[i].emulated) { /* whatever a failed case left open */
			while (ptimer__slice_depth())
				(void)ptimer_slice_end();
			emu_detach(&emu);
		}
		if (skip_reason[0])
			printf("ok %d - %s # SKIP %s\n", i + 1, cases[i].name, skip_reason);
		else
			printf("%s %d - %s\n", failed_here ? "not ok" : "ok", i + 1, cases[i].name);
		failed += failed_here;
	}
	return failed ? 1 : 0;
}
