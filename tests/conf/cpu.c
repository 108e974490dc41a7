/* SPDX-License-Identifier: MIT */
/* Conformance: CPU clocks: process, thread, and the clocks of pthread_getcpuclockid()
 * and clock_getcpuclockid(). */
#include <semaphore.h>

#include "conf.h"

static int cpu_stop;     /* atomic */
static pid_t spinner_tid; /* atomic */
static pid_t handled_by; /* atomic */
static sem_t cpu_fired;  /* posted by the handler */

static void *spinner(void *arg)
{
	(void)arg;
	__atomic_store_n(&spinner_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
	/* The system call keeps it on the CPU and gives TSan a place to
	 * run the handlers it defers. */
	sigset_t cur;
	while (!__atomic_load_n(&cpu_stop, __ATOMIC_SEQ_CST))
		pthread_sigmask(SIG_BLOCK, NULL, &cur);
	return NULL;
}

static void on_cpu_timer(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	seen_overrun[0] = si->si_overrun;
	__atomic_store_n(&handled_by, (pid_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
	set_seen(seen + 1);
	sem_post(&cpu_fired);
}

/* Spin this thread until its own CPU clock has advanced by ms. */
static void burn_ms(long ms)
{
	int64_t end = now_ns(CLOCK_THREAD_CPUTIME_ID) + ms * 1000000LL;
	sigset_t cur;
	while (now_ns(CLOCK_THREAD_CPUTIME_ID) < end)
		pthread_sigmask(SIG_BLOCK, NULL, &cur);
}

/* Burn at least min_ms of this thread's CPU, then on until sig (blocked)
 * is pending, 3 s of CPU at most: the ms burnt.  The kernel notices a
 * CPU clock's expiry at a tick that finds the thread running, and beside
 * a busy neighbour on a virtual machine that came after 13 to 875 ms of
 * CPU for a 10 ms timer; the engine's CPU timers stand on the kernel's. */
static long burn_until_pending(int sig, long min_ms)
{
	int64_t start = now_ns(CLOCK_THREAD_CPUTIME_ID);
	burn_ms(min_ms);
	sigset_t pending;
	while (now_ns(CLOCK_THREAD_CPUTIME_ID) - start < 3000 * 1000000LL) {
		if (sigpending(&pending) == 0 && sigismember(&pending, sig))
			break;
		burn_ms(1);
	}
	return (long)((now_ns(CLOCK_THREAD_CPUTIME_ID) - start) / 1000000);
}

/* Wait until seen >= n or timeout_ms passed, asleep the whole time: a
 * thread that wakes to poll may be the one running when a process CPU
 * timer expires, and the kernel signals that one (so does the engine). */
static void sleep_until_seen(int n, long timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (seen < n)
		if (sem_timedwait(&cpu_fired, &until) != 0 && errno == ETIMEDOUT)
			break;
}

CONF_CASE(cpu_clocks)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_cpu_timer;
	sem_init(&cpu_fired, 0, 0);
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	CHECK_OK(sigaction(SIGRTMIN + 3, &sa, NULL));
	struct sigevent sev = sig_event(SIGRTMIN + 3, 11);

	/* The process clock, while another thread burns the time: that
	 * thread gets the signal, not this sleeping one. */
	pthread_t th;
	__atomic_store_n(&cpu_stop, 0, __ATOMIC_SEQ_CST);
	CHECK_EQ(pthread_create(&th, NULL, spinner, NULL), 0);
	timer_t t = make_timer(CLOCK_PROCESS_CPUTIME_ID, &sev);
	struct itimerspec its = its_ms(30, 0), cur;
	CHECK_OK(B->settime(t, 0, &its, NULL));
	CHECK_OK(B->gettime(t, &cur));
	CHECK_RANGE(ts_ns(cur.it_value), 1, 30000000);
	sleep_until_seen(1, 5000);
	CHECK_EQ(seen, 1);
	CHECK_EQ(__atomic_load_n(&handled_by, __ATOMIC_SEQ_CST), __atomic_load_n(&spinner_tid, __ATOMIC_SEQ_CST));
	CHECK_OK(B->gettime(t, &cur));
	CHECK_EQ(ts_ns(cur.it_value), 0);
	CHECK_OK(B->del(t));

	/* The spinner's clock from pthread_getcpuclockid(), from here. */
	clockid_t thclock;
	CHECK_EQ(pthread_getcpuclockid(th, &thclock), 0);
	set_seen(0);
	t = make_timer(thclock, &sev);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	sleep_until_seen(1, 5000);
	CHECK_EQ(seen, 1);
	CHECK_EQ(__atomic_load_n(&handled_by, __ATOMIC_SEQ_CST), __atomic_load_n(&spinner_tid, __ATOMIC_SEQ_CST));
	CHECK_OK(B->del(t));
	__atomic_store_n(&cpu_stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(th, NULL);

	/* clock_getcpuclockid() of this process, periodic with the signal
	 * blocked: one signal, the missed periods as overruns. */
	clockid_t pclock;
	CHECK_EQ(clock_getcpuclockid(getpid(), &pclock), 0);
	block(SIGRTMIN + 3);
	t = make_timer(pclock, &sev);
	its = its_ms(10, 10);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	long burnt = burn_until_pending(SIGRTMIN + 3, 105);
	siginfo_t si;
	CHECK_EQ(wait_signal(SIGRTMIN + 3, &si, 2000), SIGRTMIN + 3);
	CHECK_EQ(si.si_timerid, (intptr_t)t);
	CHECK_EQ(si.si_value.sival_int, 11);
	CHECK_RANGE(si.si_overrun, 4, burnt / 10 + 5);
	CHECK_EQ(B->getoverrun(t), si.si_overrun);
	/* Sleeping uses no CPU: nothing more comes. */
	CHECK_EQ(wait_signal(SIGRTMIN + 3, &si, 100), 0);
	CHECK_OK(B->del(t));

	/* CLOCK_THREAD_CPUTIME_ID is the creating thread's clock. */
	t = make_timer(CLOCK_THREAD_CPUTIME_ID, &sev);
	its = its_ms(20, 0);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	burn_until_pending(SIGRTMIN + 3, 40);
	CHECK_EQ(wait_signal(SIGRTMIN + 3, &si, 2000), SIGRTMIN + 3);
	CHECK_EQ(si.si_timerid, (intptr_t)t);
	/* Absolute on that clock, already passed: at once. */
	its.it_value = ns_ts(now_ns(CLOCK_THREAD_CPUTIME_ID) - 1000000);
	CHECK_OK(B->settime(t, TIMER_ABSTIME, &its, NULL));
	burn_until_pending(SIGRTMIN + 3, 10); /* the kernel notices CPU-clock expiries at its tick */
	CHECK_EQ(wait_signal(SIGRTMIN + 3, &si, 2000), SIGRTMIN + 3);
	CHECK_OK(B->del(t));

	/* The clock of a thread that has exited: the timer stays, but
	 * reads all zero, and arming it is ESRCH (nothing left to measure). */
	struct itimerspec big = its_ms(50000, 50000);
	struct exiter ex;
	exiter_start(&ex);
	CHECK_EQ(pthread_getcpuclockid(ex.th, &thclock), 0);
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	timer_t dead = make_timer(thclock, &none);
	timer_t dead_sig = make_timer(thclock, &sev);
	CHECK_OK(B->settime(dead, 0, &big, NULL));
	exiter_end(&ex);
	CHECK_OK(B->gettime(dead, &cur));
	CHECK_EQ(ts_ns(cur.it_value) + ts_ns(cur.it_interval), 0);
	CHECK_ERRNO(B->settime(dead, 0, &big, NULL), ESRCH);
	its = its_ms(0, 0);
	CHECK_ERRNO(B->settime(dead_sig, 0, &its, NULL), ESRCH);
	CHECK_OK(B->del(dead));
	CHECK_OK(B->del(dead_sig));

	/* A thread clock of another process: EINVAL. */
	pid_t other = other_start();
	clockid_t foreign = (clockid_t)((unsigned)~other << 3) | 4 | 2;
	errno = 0;
	int r = B->create(foreign, &sev, &t);
	int err = errno;
	other_end(other);
	CHECK_EQ(r, -1);
	CHECK_EQ(err, EINVAL);
}
