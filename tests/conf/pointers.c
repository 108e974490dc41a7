/* SPDX-License-Identifier: MIT */
/* Conformance: bad pointers are EFAULT, never a crash, and the program's
 * own SIGSEGV handling is undisturbed. */
#include "conf.h"

#include <setjmp.h>

/* A page that cannot be touched, and one that can only be read. */
static void *page(int prot)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED);
	CHECK_OK(mprotect(p, 4096, prot));
	return p;
}

/* timer_create with the pointers as they are, whatever they point to
 * (the kernel side's B->create reads both). */
static int create_at(clockid_t c, void *sev, void *timerid)
{
	if (!B->engine)
		return (int)syscall(SYS_timer_create, c, sev, timerid);
	return B->create(c, sev, timerid);
}

/* Every call's every pointer, bad each way: EFAULT, and nothing done
 * but what the kernel does. */
static void bad_pointer_calls(void)
{
	void *none = page(PROT_NONE), *ro = page(PROT_READ), *one = (void *)1;
	void *bad_in[] = { one, none };
	void *bad_out[] = { one, none, ro };
	struct sigevent sev = sig_event(SIGRTMIN, 0);
	timer_t t;

	for (int i = 0; i < 2; i++)
		CHECK_ERRNO(create_at(CLOCK_MONOTONIC, bad_in[i], &t), EFAULT);
	/* The sigevent is read before the clock is looked at. */
	CHECK_ERRNO(create_at(12345, one, &t), EFAULT);
	for (int i = 0; i < 3; i++)
		CHECK_ERRNO(create_at(CLOCK_MONOTONIC, &sev, bad_out[i]), EFAULT);
	/* In restore mode the wanted ID is read from the pointer first. */
	CHECK_OK(B->restore_ids(PTIMER_RESTORE_IDS_ON, 0, 0, 0));
	for (int i = 0; i < 2; i++)
		CHECK_ERRNO(create_at(CLOCK_MONOTONIC, &sev, bad_in[i]), EFAULT);
	CHECK_OK(B->restore_ids(PTIMER_RESTORE_IDS_OFF, 0, 0, 0));

	block(SIGRTMIN);
	t = make_timer(CLOCK_MONOTONIC, &sev);
	struct itimerspec its = its_ms(5000, 0), cur;
	for (int i = 0; i < 2; i++)
		CHECK_ERRNO(B->settime(t, 0, bad_in[i], NULL), EFAULT);
	for (int i = 0; i < 3; i++) {
		CHECK_ERRNO(B->settime(t, 0, &its, bad_out[i]), EFAULT);
		/* As the kernel: the new setting stands all the same. */
		CHECK_OK(B->gettime(t, &cur));
		CHECK_RANGE(ts_ns(cur.it_value), 4000000000LL, 5000000000LL);
		CHECK_ERRNO(B->gettime(t, bad_out[i]), EFAULT);
	}
	/* Nothing was left half-done: one timer, ID 0 or whatever came next,
	 * and it still works. */
	its = its_ms(5, 0);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	siginfo_t si;
	CHECK_EQ(wait_signal(SIGRTMIN, &si, 5000), SIGRTMIN);
	CHECK_EQ(si.si_timerid, (intptr_t)t);
	CHECK_OK(B->del(t));
	munmap(none, 4096);
	munmap(ro, 4096);
}

CONF_CASE(bad_pointers)
{
	bad_pointer_calls();
}

static void block_faults(int how)
{
	sigset_t f;
	sigemptyset(&f);
	sigaddset(&f, SIGSEGV);
	sigaddset(&f, SIGBUS);
	CHECK_OK(pthread_sigmask(how, &f, NULL));
}

static void *blocked_thread(void *arg)
{
	(void)arg;
	bad_pointer_calls();
	return NULL;
}

static void on_usr1_bad(int sig)
{
	(void)sig;
	bad_pointer_calls();
}

/* A thread that blocks SIGSEGV and SIGBUS (a daemon's workers block
 * everything) gets EFAULT too, where a fault would kill it: blocked
 * before its first call, after calls that found them taken, in a thread
 * born with them blocked, and in a handler whose mask blocks them. */
CONF_CASE(bad_pointers_faults_blocked)
{
	block_faults(SIG_BLOCK);
	bad_pointer_calls();
	block_faults(SIG_UNBLOCK);
	bad_pointer_calls();
	block_faults(SIG_BLOCK);
	bad_pointer_calls();

	sigset_t all, old;
	sigfillset(&all);
	CHECK_OK(pthread_sigmask(SIG_SETMASK, &all, &old));
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, blocked_thread, NULL), 0);
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK_OK(pthread_sigmask(SIG_SETMASK, &old, NULL));

	block_faults(SIG_UNBLOCK);
	bad_pointer_calls();
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1_bad;
	sigfillset(&sa.sa_mask);
	CHECK_OK(sigaction(SIGUSR1, &sa, NULL));
	CHECK_OK(raise(SIGUSR1));
	bad_pointer_calls();
}

static sigjmp_buf recover;
static int own_faults; /* atomic */

static void on_own_fault(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	__atomic_add_fetch(&own_faults, 1, __ATOMIC_SEQ_CST);
	siglongjmp(recover, 1);
}

/* A fault of the program's own code reaches the program's handler; the
 * engine's bad-pointer handling goes on working beside it. */
CONF_CASE(own_fault_handler)
{
	struct sigaction sa, old;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_own_fault;
	sa.sa_flags = SA_SIGINFO;
	CHECK_OK(sigaction(SIGSEGV, &sa, NULL));
	CHECK_OK(sigaction(SIGSEGV, NULL, &old));
	CHECK(old.sa_sigaction == on_own_fault); /* as the program set it */

	timer_t t;
	CHECK_ERRNO(create_at(CLOCK_MONOTONIC, (void *)1, &t), EFAULT);
	volatile int *bad = page(PROT_NONE);
	for (int round = 0; round < 2; round++) {
		if (sigsetjmp(recover, 1) == 0) {
			(void)*bad; /* the program's own fault */
			failf(__LINE__, "no fault");
		}
		CHECK_EQ(__atomic_load_n(&own_faults, __ATOMIC_SEQ_CST), round + 1);
		t = make_timer(CLOCK_MONOTONIC, NULL);
		CHECK_ERRNO(B->gettime(t, (void *)bad), EFAULT);
		CHECK_OK(B->del(t));
	}

	/* Without a handler, a fault of the program's own still kills it
	 * with SIGSEGV, after the engine has handled a bad pointer. */
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		timer_t x = make_timer(CLOCK_MONOTONIC, NULL);
		if (B->gettime(x, (void *)bad) != -1 || errno != EFAULT)
			_exit(3);
		(void)*bad;
		_exit(4);
	}
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status));
	CHECK_EQ(WTERMSIG(status), SIGSEGV);
}

/* The waits for a signal, given a set or a timeout that cannot be read:
 * EFAULT, as libc's calls into the kernel say (the drop-in's hooks read
 * both before the kernel does). */
CONF_CASE(bad_pointers_to_waits)
{
	void *none = page(PROT_NONE);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	struct timespec zero = { 0, 0 };
	siginfo_t si;
	CHECK_ERRNO(sigtimedwait(none, &si, &zero), EFAULT);
	CHECK_ERRNO(sigtimedwait((void *)8, &si, &zero), EFAULT);
	CHECK_ERRNO(sigtimedwait(&set, &si, none), EFAULT);
	CHECK_ERRNO(sigwaitinfo(none, &si), EFAULT);
	CHECK_ERRNO(signalfd(-1, none, 0), EFAULT);
	/* A set whose last readable bytes are the kernel's 64 signals. */
	char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(two != MAP_FAILED);
	CHECK_OK(mprotect(two + 4096, 4096, PROT_NONE));
	memcpy(two + 4096 - 8, &set, 8);
	CHECK_ERRNO(sigtimedwait((sigset_t *)(two + 4096 - 8), &si, &zero), EAGAIN);
	munmap(two, 8192);
	munmap(none, 4096);
}
