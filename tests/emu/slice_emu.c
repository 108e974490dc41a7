/* SPDX-License-Identifier: MIT */
/* The stand-in kernel side of time-slice extension (slice_emu.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "private.h"
#include "slice_emu.h"

#define EMU_SIG (SIGRTMIN + 2)
#define PR_SET_SYSCALL_USER_DISPATCH_ 59
#define PR_SYS_DISPATCH_OFF_ 0
#define PR_SYS_DISPATCH_ON_ 1
#define SYS_USER_DISPATCH_ 2 /* si_code of its SIGSYS */
#define SA_RESTORER_ 0x04000000

/* The stand-in's own system calls and signal return, in one stretch of
 * code that Syscall User Dispatch lets through. */
extern char emu_tramp_start[], emu_tramp_end[];
void emu_restore_rt(void);
__asm__(".pushsection .text.emu_tramp,\"ax\",@progbits\n"
	".globl emu_tramp_start\n"
	"emu_tramp_start:\n"
	".globl emu_syscall\n"
	".type emu_syscall,@function\n"
	"emu_syscall:\n"
	"	mov %rdi,%rax\n"
	"	mov %rsi,%rdi\n"
	"	mov %rdx,%rsi\n"
	"	mov %rcx,%rdx\n"
	"	mov %r8,%r10\n"
	"	mov %r9,%r8\n"
	"	mov 8(%rsp),%r9\n"
	"	syscall\n"
	"	ret\n"
	".globl emu_restore_rt\n"
	".type emu_restore_rt,@function\n"
	"emu_restore_rt:\n"
	"	mov $15,%eax\n"
	"	syscall\n"
	"	hlt\n"
	".globl emu_tramp_end\n"
	"emu_tramp_end:\n"
	".popsection\n");

static struct emu_config config = { 50000, 100000 };
static __thread struct emu_thread *emu_self __attribute__((tls_model("initial-exec")));
static int handlers_ready;
static int sud_state; /* 0 unknown, 1 works, -1 not here */

int64_t emu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no system call */
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The limit counts the thread's own CPU time: a thread that the real
 * kernel preempts (this machine is shared) has not overstayed. */
static int64_t cpu_now(const struct emu_thread *t)
{
	struct timespec ts;
	if (emu_syscall(SYS_clock_gettime, t->cpu_clock, (long)&ts, 0, 0, 0, 0) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void emu_sleep(int64_t ns)
{
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };
	while (emu_syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, (long)&ts, (long)&ts, 0, 0) ==
	       -EINTR)
		;
}

/* Point the dispatch selector at the byte that must stay clear for system
 * calls to go through. */
static long watch(volatile uint8_t *selector)
{
	return emu_syscall(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH_, PR_SYS_DISPATCH_ON_,
			   (long)emu_tramp_start, emu_tramp_end - emu_tramp_start, (long)selector, 0);
}

static void select_byte(struct emu_thread *t)
{
	if (sud_state > 0)
		watch(t->granted ? &t->area.slice_ctrl.granted : &t->area.slice_ctrl.request);
}

static void check_area(struct emu_thread *t)
{
	volatile struct pt_rseq_slice_ctrl *c = &t->area.slice_ctrl;
	if (c->granted != (t->granted ? 1 : 0))
		t->v_granted_written++;
	if (c->reserved != 0 || c->request > 1)
		t->v_inconsistent++; /* the kernel sends SIGSEGV */
}

static void take_back(struct emu_thread *t)
{
	t->area.slice_ctrl.granted = 0;
	__atomic_store_n(&t->granted, 0, __ATOMIC_RELEASE);
	t->revoked++;
	select_byte(t);
}

static void preempt(struct emu_thread *t)
{
	t->preemptions++;
	emu_sleep(config.preempt_ns);
}

static void on_interrupt(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)si;
	struct emu_thread *t = emu_self;
	if (!t)
		return;
	t->interrupts++;
	if (!t->granted)
		t->suspect_no_yield = 0;
	check_area(t);
	select_byte(t); /* watch again, after a system call let through */
	if (t->granted) {
		if (cpu_now(t) - t->grant_ns < config.limit_ns)
			return; /* inside its grant: keeps running */
		if (ptimer__slice_depth() == 0) {
			/* Past its sections with the grant still up: it may be
			 * between clearing request and yielding (a late
			 * interrupt on a busy machine finds it there).  Still so
			 * at the next interrupt: it forgot. */
			int64_t now = cpu_now(t);
			if (!t->suspect_no_yield || now - t->suspect_cpu < config.limit_ns / 2) {
				/* (Interrupts that queued up while it was off the
				 * CPU come one after the other: it has not run.) */
				if (!t->suspect_no_yield)
					t->suspect_cpu = now;
				t->suspect_no_yield = 1;
				return;
			}
			t->v_no_yield++;
		} else {
			t->v_overstay++;
			t->last_overstay_ip = (void *)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP];
		}
		take_back(t);
		preempt(t);
		return;
	}
	if (t->extension && t->area.slice_ctrl.request) {
		t->area.slice_ctrl.request = 0;
		t->area.slice_ctrl.granted = 1;
		__atomic_store_n(&t->grant_ns, cpu_now(t), __ATOMIC_RELAXED);
		__atomic_store_n(&t->granted, 1, __ATOMIC_RELEASE);
		t->grants++;
		select_byte(t);
		return;
	}
	preempt(t);
}

static void on_sigsys(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	ucontext_t *uc = ucv;
	greg_t *r = uc->uc_mcontext.gregs;
	struct emu_thread *t = emu_self;
	long nr = si->si_syscall;
	if (si->si_code != SYS_USER_DISPATCH_)
		return;
	if (!t) { /* a thread that inherited the watch: let it through */
		r[REG_RAX] = emu_syscall(nr, r[REG_RDI], r[REG_RSI], r[REG_RDX], r[REG_R10],
					 r[REG_R8], r[REG_R9]);
		return;
	}
	check_area(t);
	if (nr == PT_NR_rseq_slice_yield) {
		long ret = 0;
		if (!t->granted) {
			t->v_yield_without_grant++;
		} else if (cpu_now(t) - t->grant_ns > config.limit_ns) {
			t->v_overstay++; /* too late: the kernel had revoked it */
			take_back(t);
			preempt(t);
		} else {
			t->area.slice_ctrl.granted = 0;
			__atomic_store_n(&t->granted, 0, __ATOMIC_RELEASE);
			t->yields++;
			select_byte(t);
			preempt(t); /* the deferred preemption, now */
			ret = 1;
		}
		r[REG_RAX] = ret;
		return;
	}
	if (nr == SYS_rt_sigreturn) {
		/* The end of a handler that interrupted a section (libc's
		 * restorer): any signal's handler ends so, whatever the
		 * section, and the kernel lets it.  Made again from the
		 * stand-in's own restorer, where it is let through, with the
		 * stack as it was for it. */
		r[REG_RIP] = (greg_t)(uintptr_t)emu_restore_rt;
		return;
	}
	t->last_bad_syscall = nr;
	t->last_bad_ip = si->si_call_addr;
	t->last_bad_caller = *(void **)r[REG_RSP];
	if (nr == SYS_clone || nr == SYS_clone3 || nr == SYS_fork || nr == SYS_vfork ||
	    nr == SYS_rt_sigprocmask || nr == SYS_rt_sigsuspend || nr == SYS_sigaltstack) {
		/* Cannot be made from here (a new thread would start on this
		 * handler's stack; the signal mask is the one sigreturn puts
		 * back): flag it, stop watching until the next interrupt, and
		 * let the instruction run again for real. */
		if (t->granted) {
			t->v_syscall_in_grant++;
			take_back(t);
		} else {
			t->v_syscall_requested++;
		}
		static volatile uint8_t never_block; /* 0: allow; never written */
		watch(&never_block);
		r[REG_RIP] -= 2; /* the syscall instruction */
		r[REG_RAX] = nr;
		return;
	}
	if (t->granted) {
		t->v_syscall_in_grant++;
		take_back(t);
		preempt(t);
	} else {
		t->v_syscall_requested++;
	}
	r[REG_RAX] = emu_syscall(nr, r[REG_RDI], r[REG_RSI], r[REG_RDX], r[REG_R10], r[REG_R8],
				 r[REG_R9]);
}

struct kernel_sigaction {
	void (*handler)(int, siginfo_t *, void *);
	unsigned long flags;
	void (*restorer)(void);
	uint64_t mask;
};

/* Every signal is held off while the stand-in's handlers run: they play
 * the kernel (a preemption, a trapped system call), during which no user
 * code runs, another handler included.  (One that did would end with a
 * system call of its own while SIGSYS is blocked.) */
static int install(int sig, void (*fn)(int, siginfo_t *, void *))
{
	struct kernel_sigaction sa = { fn, SA_SIGINFO | SA_RESTORER_ | SA_RESTART, emu_restore_rt,
				       ~0ull };
	return (int)emu_syscall(SYS_rt_sigaction, sig, (long)&sa, 0, 8, 0, 0);
}

bool emu_can_watch_syscalls(void)
{
	if (sud_state == 0) {
		static volatile uint8_t open_selector; /* 0: allow */
		if (watch(&open_selector) == 0) {
			emu_syscall(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH_, PR_SYS_DISPATCH_OFF_,
				    0, 0, 0, 0);
			sud_state = 1;
		} else {
			sud_state = -1;
		}
	}
	return sud_state > 0;
}

int emu_attach(struct emu_thread *t, const struct emu_config *c, bool extension)
{
	if (!__atomic_load_n(&handlers_ready, __ATOMIC_ACQUIRE)) {
		if (c)
			config = *c;
		(void)emu_can_watch_syscalls();
		if (install(EMU_SIG, on_interrupt) || install(SIGSYS, on_sigsys)) {
			fprintf(stderr, "slice emulation: rt_sigaction failed\n");
			return -1;
		}
		__atomic_store_n(&handlers_ready, 1, __ATOMIC_RELEASE);
	} else if (c) {
		config = *c;
	}
	memset(t, 0, sizeof(*t));
	t->tid = (pid_t)emu_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0);
	t->extension = extension;
	t->cpu_clock = (clockid_t)((~(unsigned)t->tid << 3) | 6); /* the thread's CPU clock */
	t->area.cpu_id = 0;
	t->area.flags = extension ? PT_RSEQ_FLAG_SLICE_EXT_AVAILABLE | PT_RSEQ_FLAG_SLICE_EXT_ENABLED
				  : 0;
	if (ptimer__slice_emulate(&t->area) != 0) {
		fprintf(stderr, "slice emulation: %s\n", strerror(errno));
		return -1;
	}
	emu_self = t;
	/* EMU_SIG and SIGSYS may be blocked by the thread's mask (the engine's
	 * dispatcher blocks every signal): open them.  A Syscall User
	 * Dispatch trap with SIGSYS blocked would kill the process. */
	uint64_t open = (1ull << (EMU_SIG - 1)) | (1ull << (SIGSYS - 1));
	emu_syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, (long)&open, 0, 8, 0, 0);
	select_byte(t);
	return 0;
}

void emu_detach(struct emu_thread *t)
{
	if (sud_state > 0)
		emu_syscall(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH_, PR_SYS_DISPATCH_OFF_, 0, 0, 0,
			    0);
	uint64_t block = 1ull << (EMU_SIG - 1);
	emu_syscall(SYS_rt_sigprocmask, SIG_BLOCK, (long)&block, 0, 8, 0, 0);
	emu_self = NULL;
	(void)t;
}

void emu_interrupt(struct emu_thread *t)
{
	emu_syscall(SYS_tgkill, emu_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0), t->tid, EMU_SIG, 0, 0, 0);
}

void emu_enforce(struct emu_thread *t)
{
	if (__atomic_load_n(&t->granted, __ATOMIC_ACQUIRE) &&
	    cpu_now(t) - __atomic_load_n(&t->grant_ns, __ATOMIC_RELAXED) >= config.limit_ns)
		emu_interrupt(t);
}

uint64_t emu_violations(const struct emu_thread *t)
{
	return t->v_granted_written + t->v_inconsistent + t->v_syscall_in_grant +
	       t->v_syscall_requested + t->v_no_yield + t->v_overstay + t->v_yield_without_grant;
}

static void *sched_main(void *arg)
{
	struct emu_sched *s = arg;
	uint64_t rnd = 0x9e3779b97f4a7c15ull;
	int next = 0;
	prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0); /* this thread's own slack only */
	while (!s->stop) {
		rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
		int64_t ns = s->period_ns / 2 + (int64_t)(rnd % (uint64_t)s->period_ns);
		struct timespec ts = { ns / 1000000000, ns % 1000000000 };
		nanosleep(&ts, NULL);
		for (int i = 0; i < s->n; i++)
			emu_enforce(s->threads[i]);
		emu_interrupt(s->threads[next]);
		next = (next + 1) % s->n;
	}
	return NULL;
}

int emu_sched_start(struct emu_sched *s)
{
	s->stop = 0;
	return pthread_create(&s->thread, NULL, sched_main, s);
}

void emu_sched_stop(struct emu_sched *s)
{
	s->stop = 1;
	pthread_join(s->thread, NULL);
}

unsigned long emu_overstays_allowed(unsigned long sections)
{
	return 1 + sections / 1000;
}
