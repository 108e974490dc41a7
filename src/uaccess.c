/* SPDX-License-Identifier: MIT */
/*
 * Reading and writing the caller's memory (uaccess.h): the copy itself is
 * uaccess.S, plain instructions at known addresses; this is the fault
 * handler that turns a fault inside it into -EFAULT.
 *
 * A SIGSEGV or SIGBUS whose faulting instruction is the copy in
 * uaccess.S resumes at that routine's fixup, which returns -EFAULT.  Any
 * other fault is the program's: it goes to the action the program had
 * before the engine came (or set since, through the hooks), with that
 * action's mask; a default action is restored and the fault happens
 * again, so the program dies of it exactly as it would have.
 *
 * Installed on the first copy, not at start-up: a program that links the
 * library and never calls it keeps its handlers untouched.  A program
 * that sets its own SIGSEGV handler later, through libc, is seen by the
 * hooks (drop-in, libptimers-hooks.so), which keep this handler in front
 * and chain to the program's; without the hooks the program's handler
 * replaces this one, and a bad pointer then reaches the program's handler
 * as a crash in any library would (README).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#include "lock.h"
#include "sys.h"
#include "uaccess.h"

/* Memcheck takes the other side of process_vm_writev() for another
 * process's memory: what the kernel wrote there is said to be defined.
 * (Without valgrind's header, nothing to say.) */
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MAKE_MEM_DEFINED(p, n) ((void)(p), (void)(n))
#endif

extern const char pt_uaccess_begin[], pt_uaccess_end[], pt_uaccess_fixup[];

int pt_fault_ready;
static pt_lock_t fault_lock = PT_LOCK_INIT;

/* The program's actions, two copies each: a writer fills the one not in
 * use and flips `cur`, so the handler never reads one half-written. */
static struct {
	struct sigaction act[2];
	int cur;
} chain[2];

static int slot(int sig)
{
	return sig == SIGBUS;
}

bool pt_fault_signal(int sig)
{
	return sig == SIGSEGV || sig == SIGBUS;
}

/* Hand a fault that is not ours to the program's action. */
static void pass_on(int sig, siginfo_t *si, void *ucv)
{
	int s = slot(sig);
	struct sigaction act = chain[s].act[__atomic_load_n(&chain[s].cur, __ATOMIC_ACQUIRE)];
	void *h = (void *)act.sa_handler;

	bool sent = !si || si->si_code <= 0; /* kill(), not a faulting instruction */
	if (h == (void *)SIG_IGN && sent)
		return; /* ignored, as the kernel would */
	if (h == (void *)SIG_DFL || h == (void *)SIG_IGN) {
		/* Die of it as the program would have: the default action in
		 * place (an ignored fault kills too), then the fault again (an
		 * instruction fault repeats when the handler returns; a signal
		 * that was sent is sent again). */
		struct sigaction dfl;
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		pt_sys_sigaction(sig, &dfl, NULL);
		if (sent)
			syscall(SYS_tgkill, pt_pid, (pid_t)syscall(SYS_gettid), sig);
		return;
	}
	/* The program's handler, under the mask it asked for. */
	sigset_t mask = act.sa_mask;
	if (!(act.sa_flags & SA_NODEFER))
		sigaddset(&mask, sig);
	pt_sys_sigmask(SIG_BLOCK, &mask, NULL);
	if (act.sa_flags & SA_RESETHAND) {
		struct sigaction dfl;
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		pt_fault_set_action(sig, &dfl, NULL);
	}
	if (act.sa_flags & SA_SIGINFO)
		act.sa_sigaction(sig, si, ucv);
	else
		act.sa_handler(sig);
}

static void on_fault(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	uintptr_t ip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];

	if (ip >= (uintptr_t)pt_uaccess_begin && ip < (uintptr_t)pt_uaccess_end) {
		uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)pt_uaccess_fixup;
		return;
	}
	pass_on(sig, si, ucv);
}

void pt_fault_init(void)
{
	struct sigaction sa;

	pt_lock(&fault_lock);
	if (!pt_fault_ready) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_fault;
		/* On the alternate stack if the program has one (a stack
		 * overflow must still reach its handler); not deferred, so a
		 * fault inside a chained handler is seen too. */
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
		sigemptyset(&sa.sa_mask);
		static const int sigs[] = { SIGSEGV, SIGBUS };
		for (int i = 0; i < 2; i++) {
			struct sigaction old;
			pt_sys_sigaction(sigs[i], &sa, &old);
			chain[slot(sigs[i])].act[0] = old;
		}
		__atomic_store_n(&pt_fault_ready, 1, __ATOMIC_RELEASE);
	}
	pt_unlock(&fault_lock);
}

/* ---- threads that block SIGSEGV or SIGBUS ---- */

__thread unsigned char pt_fault_mode __attribute__((tls_model("initial-exec")));

/* The mapping this thread's stack was in when it first needed to know
 * ([lo, hi); lo == hi: none found, looked for). */
static __thread struct {
	uintptr_t lo, hi;
	bool looked;
} stack __attribute__((tls_model("initial-exec")));

static uintptr_t hex(const char **p)
{
	uintptr_t v = 0;
	for (;; ++*p) {
		char c = **p;
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') :
			     c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16u;
		if (d == 16)
			return v;
		v = v << 4 | d;
	}
}

/* The mapping of /proc/self/maps that holds sp, read with system calls
 * only (this may run in a signal handler: no stdio, no malloc). */
static void find_stack(uintptr_t sp)
{
	stack.looked = true;
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char buf[4096];
	size_t have = 0;
	for (;;) {
		ssize_t r = syscall(SYS_read, fd, buf + have, sizeof(buf) - 1 - have);
		if (r <= 0)
			break;
		have += (size_t)r;
		buf[have] = 0;
		char *line = buf, *nl;
		while ((nl = strchr(line, '\n'))) {
			const char *q = line;
			uintptr_t lo = hex(&q);
			if (*q == '-') {
				q++;
				uintptr_t hi = hex(&q);
				if (sp >= lo && sp < hi && q[1] == 'r' && q[2] == 'w') {
					stack.lo = lo;
					stack.hi = hi;
					pt_sys_close(fd);
					return;
				}
			}
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		if (have == sizeof(buf) - 1)
			have = 0; /* a line longer than the buffer: not one of ours */
	}
	pt_sys_close(fd);
}

/* Is [p, p + n) between the stack pointer and the top of the mapping
 * that holds it?  Then it is the live part of this thread's stack, which
 * cannot fault. */
static bool on_own_stack(const void *p, size_t n)
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0), a = (uintptr_t)p;
	if (!stack.looked)
		find_stack(sp);
	return sp >= stack.lo && sp < stack.hi && a >= sp && a < stack.hi && n <= stack.hi - a;
}

/* The copy by the kernel: a bad pointer is EFAULT, with no signal. */
static int copy_by_kernel(void *dst, const void *src, size_t n, bool to_user)
{
	struct iovec mine = { to_user ? (void *)src : dst, n };
	struct iovec theirs = { to_user ? dst : (void *)src, n };
	long r = syscall(to_user ? SYS_process_vm_writev : SYS_process_vm_readv, pt_pid, &mine, 1UL,
			 &theirs, 1UL, 0UL);
	int err = errno;
	if (r == (long)n) {
		if (to_user)
			VALGRIND_MAKE_MEM_DEFINED(dst, n);
		return 0;
	}
	if (r < 0 && err != EFAULT)
		return pt_uaccess_copy(dst, src, n); /* refused (a sandbox): as before */
	return -EFAULT;
}

int pt_uaccess_careful(void *dst, const void *src, size_t n, bool to_user)
{
	if (!__atomic_load_n(&pt_fault_ready, __ATOMIC_ACQUIRE))
		pt_fault_init();
	int saved = errno; /* the system calls below leave the caller's errno be */
	if (pt_fault_mode == PT_FAULTS_UNKNOWN) {
		sigset_t cur;
		bool blocked = pt_sys_sigmask(SIG_BLOCK, NULL, &cur) != 0 ||
			       sigismember(&cur, SIGSEGV) == 1 || sigismember(&cur, SIGBUS) == 1;
		pt_fault_mode = blocked ? PT_FAULTS_BLOCKED : PT_FAULTS_TAKEN;
	}
	int r = pt_fault_mode == PT_FAULTS_TAKEN || on_own_stack(to_user ? dst : src, n)
		? pt_uaccess_copy(dst, src, n) : copy_by_kernel(dst, src, n, to_user);
	errno = saved;
	return r;
}

int pt_fault_set_action(int sig, const struct sigaction *act, struct sigaction *old)
{
	if (!__atomic_load_n(&pt_fault_ready, __ATOMIC_ACQUIRE))
		pt_fault_init();
	int s = slot(sig);
	pt_lock(&fault_lock);
	int cur = chain[s].cur;
	if (old)
		*old = chain[s].act[cur];
	if (act) {
		chain[s].act[!cur] = *act;
		__atomic_store_n(&chain[s].cur, !cur, __ATOMIC_RELEASE);
	}
	pt_unlock(&fault_lock);
	return 0;
}
