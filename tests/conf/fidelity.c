/* SPDX-License-Identifier: MIT */
/*
 * Conformance: cases where the engine once parted from the kernel,
 * repeated where the difference was intermittent.
 */
#include "conf.h"

#include <semaphore.h>

/* A periodic timer's signal is caught, then ignored for a while, then
 * caught again: the first signal caught afterwards counts every period
 * since the last one delivered. */
CONF_CASE(ignore_then_catch)
{
	struct sigevent sev = sig_event(SIGUSR1, 4);
	seen_timer = make_timer(CLOCK_MONOTONIC, &sev);
	install_handler(SIGUSR1);
	struct itimerspec its = its_ms(10, 10);
	CHECK_OK(B->settime(seen_timer, 0, &its, NULL));
	wait_seen(1, 5000);
	CHECK(seen >= 1);
	signal(SIGUSR1, SIG_IGN);
	/* Signals caught so far (more than one if this thread stood
	 * preempted for a period): the handler runs on this thread only. */
	int before = seen;
	int64_t t0 = now_ns(CLOCK_MONOTONIC);
	nap_ms(300);
	install_handler(SIGUSR1);
	wait_seen(before + 1, 5000);
	int64_t periods = (now_ns(CLOCK_MONOTONIC) - t0) / 10000000;
	CHECK(seen >= before + 1);
	/* About 30 periods passed with the signal ignored: they are all
	 * overruns of the signal caught now (the kernel: ~29). */
	CHECK_RANGE(seen_overrun[before], 25, periods + 2);
	CHECK_EQ(seen_getoverrun[before], seen_overrun[before]);
}

/* The same with the signal pending (blocked) when it is set to SIG_IGN,
 * which discards it. */
CONF_CASE(ignore_pending_then_catch)
{
	struct sigevent sev = sig_event(SIGUSR2, 5);
	seen_timer = make_timer(CLOCK_MONOTONIC, &sev);
	install_handler(SIGUSR2);
	block(SIGUSR2);
	struct itimerspec its = its_ms(10, 10);
	CHECK_OK(B->settime(seen_timer, 0, &its, NULL));
	CHECK(wait_pending(SIGUSR2, 5000));
	int64_t t0 = now_ns(CLOCK_MONOTONIC);
	signal(SIGUSR2, SIG_IGN);
	unblock(SIGUSR2);
	nap_ms(200);
	CHECK_EQ(seen, 0);
	install_handler(SIGUSR2);
	wait_seen(1, 5000);
	int64_t periods = (now_ns(CLOCK_MONOTONIC) - t0) / 10000000;
	CHECK(seen >= 1); /* a second, a period on, if this thread stood preempted */
	CHECK_RANGE(seen_overrun[0], 15, periods + 2);
}

/* A timer signal consumed by its default action, which no hook sees:
 * SIGCONT blocked while the timer runs, then let go (its default action
 * does nothing).  timer_getoverrun() reports the overruns of that
 * delivery. */
CONF_CASE(default_action_delivery)
{
	block(SIGCONT);
	struct sigevent sev = sig_event(SIGCONT, 0);
	timer_t t = make_timer(CLOCK_MONOTONIC, &sev);
	struct itimerspec its = its_ms(10, 10);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	CHECK(wait_pending(SIGCONT, 5000));
	nap_ms(25); /* two more periods while it is pending */
	unblock(SIGCONT);
	CHECK_RANGE(B->getoverrun(t), 2, 6);
	CHECK_OK(B->del(t));
}

/* An absolute expiry long past with a 1 ns period: the first signal's
 * overrun is clamped at DELAYTIMER_MAX (INT_MAX), every time. */
CONF_CASE(huge_overrun)
{
	block(SIGRTMIN);
	struct sigevent sev = sig_event(SIGRTMIN, 0);
	for (int i = 0; i < 20; i++) {
		timer_t t = make_timer(CLOCK_MONOTONIC, &sev);
		struct itimerspec its = { .it_value = ns_ts(now_ns(CLOCK_MONOTONIC) - 5000000000LL),
					  .it_interval = ns_ts(1) };
		CHECK_OK(B->settime(t, TIMER_ABSTIME, &its, NULL));
		siginfo_t si;
		CHECK_EQ(wait_signal(SIGRTMIN, &si, 5000), SIGRTMIN);
		CHECK_EQ(si.si_overrun, INT_MAX);
		CHECK_EQ(B->getoverrun(t), INT_MAX);
		CHECK_OK(B->del(t));
		while (wait_signal(SIGRTMIN, &si, 0) == SIGRTMIN)
			; /* one that came before the delete */
	}
}

static int cpu_stop;       /* atomic */
static pid_t burner_tid;   /* atomic */
static pid_t got_by;       /* atomic: the first taker since reset */
static int main_waiting;   /* atomic: the main thread waits asleep for the signal */
static int got_awake;      /* atomic: the first taker was the main thread, awake */
static sem_t cpu_got;      /* posted by the handler */

static void *burner(void *arg)
{
	(void)arg;
	__atomic_store_n(&burner_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
	sigset_t cur;
	while (!__atomic_load_n(&cpu_stop, __ATOMIC_SEQ_CST))
		pthread_sigmask(SIG_BLOCK, NULL, &cur);
	return NULL;
}

static void on_cpu(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	pid_t none = 0, self = (pid_t)syscall(SYS_gettid);
	if (__atomic_compare_exchange_n(&got_by, &none, self, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		__atomic_store_n(&got_awake, self == getpid() && !__atomic_load_n(&main_waiting, __ATOMIC_SEQ_CST),
				 __ATOMIC_SEQ_CST);
	sem_post(&cpu_got);
}

/* The CPU timers' signal, SIGRTMIN + 3, caught by on_cpu. */
static void catch_cpu_signal(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_cpu;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	CHECK_OK(sigaction(SIGRTMIN + 3, &sa, NULL));
	CHECK_OK(sem_init(&cpu_got, 0, 0));
}

/* A new round: no taker yet, the main thread awake. */
static void cpu_round(void)
{
	__atomic_store_n(&got_by, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&got_awake, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&main_waiting, 0, __ATOMIC_SEQ_CST);
}

/* The main thread goes to wait, asleep, for the round's signal. */
static void main_waits(void)
{
	__atomic_store_n(&main_waiting, 1, __ATOMIC_SEQ_CST);
}

/*
 * Did the main thread take the round's signal before it went to wait?
 * Then the round says nothing of a sleeping main thread: on a loaded
 * machine it may have stood preempted between its calls while another
 * thread used the time, and it is then a thread the kernel may pick
 * (README, when the tick lands on the engine's thread).  Such a round is
 * run again, up to 4 times a case.
 */
static bool main_was_awake(int *awake, int round)
{
	if (!__atomic_load_n(&got_awake, __ATOMIC_SEQ_CST) || *awake >= 4)
		return false;
	fprintf(stderr, "# round %d: the main thread took the signal before it waited; again\n", round);
	++*awake;
	return true;
}

/* Wait asleep, up to 5 s, for on_cpu: the thread that took the signal, 0
 * if none did.  (A main thread that woke every millisecond could itself
 * be the one running when the kernel notices the expiry, as it was under
 * TSan, and then rightly be the one signalled.) */
static pid_t wait_cpu_signal(void)
{
	main_waits();
	struct timespec end;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += 5;
	while (!__atomic_load_n(&got_by, __ATOMIC_SEQ_CST))
		if (sem_clockwait(&cpu_got, CLOCK_MONOTONIC, &end) != 0 && errno == ETIMEDOUT)
			break;
	return __atomic_load_n(&got_by, __ATOMIC_SEQ_CST);
}

/* A burner running, its TID known (burner_tid, cpu_stop reset). */
static pthread_t start_burner(void)
{
	__atomic_store_n(&cpu_stop, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&burner_tid, 0, __ATOMIC_SEQ_CST);
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, burner, NULL), 0);
	while (!__atomic_load_n(&burner_tid, __ATOMIC_SEQ_CST))
		sched_yield();
	return th;
}

/* A process CPU-time timer signals the thread that used the time, not
 * the main thread (sleeping), however often it is tried. */
CONF_CASE(cpu_signal_to_consumer)
{
	catch_cpu_signal();
	pthread_t th = start_burner();
	struct sigevent sev = sig_event(SIGRTMIN + 3, 0);
	timer_t t = make_timer(CLOCK_PROCESS_CPUTIME_ID, &sev);
	int awake = 0;
	for (int i = 0; i < 15; i++) {
		cpu_round();
		struct itimerspec its = its_ms(15, 0);
		CHECK_OK(B->settime(t, 0, &its, NULL));
		pid_t by = wait_cpu_signal(); /* asleep */
		if (main_was_awake(&awake, i)) {
			i--;
			continue;
		}
		if (by != __atomic_load_n(&burner_tid, __ATOMIC_SEQ_CST))
			failf(__LINE__, "round %d: signal taken by %d, not the burning thread %d", i,
			      (int)by, (int)burner_tid);
	}
	__atomic_store_n(&cpu_stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(th, NULL);
}

/* sigignore() and sigset() are obsolete, and programs still call them. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* Ignore sig (how: 0 signal(), 1 sigaction(), 2 sigignore(), 3 sigset()),
 * then catch it again the same way. */
static void ignore_with(int how, int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	switch (how) {
	case 0: CHECK(signal(sig, SIG_IGN) != SIG_ERR); break;
	case 1: CHECK_OK(sigaction(sig, &sa, NULL)); break;
	case 2: CHECK_OK(sigignore(sig)); break;
	default: CHECK(sigset(sig, SIG_IGN) != SIG_ERR); break;
	}
}

static void catch_with(int how, int sig)
{
	if (how == 3)
		CHECK(sigset(sig, (void (*)(int))(void *)seen_handler) != SIG_ERR);
	else
		install_handler(sig);
}

/* A periodic timer's signal is ignored for a second or two, then caught:
 * the first signal caught counts every period since the last one
 * delivered, whichever of libc's calls ignored it. */
static void ignored_periods(int how, long ms)
{
	set_seen(0);
	struct sigevent sev = sig_event(SIGUSR1, 4);
	seen_timer = make_timer(CLOCK_MONOTONIC, &sev);
	install_handler(SIGUSR1);
	struct itimerspec its = its_ms(10, 10);
	CHECK_OK(B->settime(seen_timer, 0, &its, NULL));
	wait_seen(1, 5000);
	CHECK(seen >= 1);
	ignore_with(how, SIGUSR1);
	int before = seen; /* caught before the ignoring (this thread's) */
	int64_t last = seen_at[before - 1];
	nap_ms(ms);
	int64_t periods = (now_ns(CLOCK_MONOTONIC) - last) / 10000000;
	catch_with(how, SIGUSR1);
	wait_seen(before + 1, 5000);
	CHECK(seen >= before + 1);
	if (seen_getoverrun[before] < periods - 15 || seen_getoverrun[before] > periods + 2)
		failf(__LINE__, "ignored %ld ms with call %d: overrun %d, expected about %lld", ms, how,
		      seen_getoverrun[before], (long long)periods - 1);
	CHECK_OK(B->del(seen_timer));
	signal(SIGUSR1, SIG_DFL);
}

CONF_CASE(ignored_one_second)
{
	for (int how = 0; how < 4; how++)
		ignored_periods(how, 1000);
}

CONF_CASE(ignored_two_seconds)
{
	ignored_periods(1, 2000);
}

/* A thread that burns CPU with every signal blocked but the timer's,
 * until the timer's signal has been taken. */
static void *masked_burner(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	sigdelset(&all, SIGRTMIN + 3);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	__atomic_store_n(&burner_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
	int64_t end = now_ns(CLOCK_MONOTONIC) + 5000000000LL;
	while (!__atomic_load_n(&got_by, __ATOMIC_SEQ_CST) && now_ns(CLOCK_MONOTONIC) < end)
		;
	return NULL;
}

/* The same as a profiler sets it up: the worker blocks everything but
 * the timer's signal, the main thread waits in pthread_join().  The
 * kernel signals the worker, the first expiry included, every time. */
CONF_CASE(cpu_signal_to_masked_consumer)
{
	catch_cpu_signal();
	struct sigevent sev = sig_event(SIGRTMIN + 3, 0);
	int awake = 0;
	for (int i = 0; i < 20; i++) {
		cpu_round();
		__atomic_store_n(&burner_tid, 0, __ATOMIC_SEQ_CST);
		timer_t t = 0;
		struct itimerspec its = its_ms(10, 10);
		if (i & 1) { /* the timer made before the thread, or after */
			t = make_timer(CLOCK_PROCESS_CPUTIME_ID, &sev);
			CHECK_OK(B->settime(t, 0, &its, NULL));
		}
		pthread_t th;
		CHECK_EQ(pthread_create(&th, NULL, masked_burner, NULL), 0);
		if (!(i & 1)) {
			while (!__atomic_load_n(&burner_tid, __ATOMIC_SEQ_CST))
				sched_yield();
			t = make_timer(CLOCK_PROCESS_CPUTIME_ID, &sev);
			CHECK_OK(B->settime(t, 0, &its, NULL));
		}
		main_waits();
		pthread_join(th, NULL);
		CHECK_OK(B->del(t));
		pid_t by = __atomic_load_n(&got_by, __ATOMIC_SEQ_CST);
		if (main_was_awake(&awake, i)) {
			i--;
			continue;
		}
		if (by != __atomic_load_n(&burner_tid, __ATOMIC_SEQ_CST))
			failf(__LINE__, "round %d: the first signal was taken by %d (%s), not the burning thread %d",
			      i, (int)by, by == getpid() ? "the main thread, waiting" : "another", (int)burner_tid);
	}
}

/* A timer on another signal, blocked everywhere, looked at by the engine
 * every 200 us: the engine's thread wakes all the time, and may find a
 * CPU timer due before the kernel's tick says whose time ran. */
static timer_t busy_start(void)
{
	struct sigevent sev = sig_event(SIGRTMIN + 4, 0);
	timer_t busy = make_timer(CLOCK_MONOTONIC, &sev);
	struct itimerspec its = { .it_value = ns_ts(200000), .it_interval = ns_ts(200000) };
	CHECK_OK(B->settime(busy, 0, &its, NULL));
	return busy;
}

static void busy_stop(timer_t busy)
{
	CHECK_OK(B->del(busy));
	siginfo_t si;
	while (wait_signal(SIGRTMIN + 4, &si, 0) == SIGRTMIN + 4)
		;
}

/* 80 rounds of a CPU timer (the process's clock, or the burning thread's
 * own) armed 5 ms ahead beside the busy timer, a new burning thread each
 * round (so that the thread of an earlier round is never the right
 * answer by chance): the first signal goes to the burning thread.  The
 * main thread sleeps meanwhile.  On the process's clock, up to 2 rounds
 * of 80 may go elsewhere: the engine's thread runs too (the busy timer),
 * and a tick that lands on it while the thread the kernel picks instead
 * is preempted, not asleep, cannot be told from the real thing (README);
 * a thread's clock has no such case. */
static void cpu_beside_busy(bool thread_clock)
{
	catch_cpu_signal();
	block(SIGRTMIN + 4); /* the burners inherit it */
	struct sigevent sev = sig_event(SIGRTMIN + 3, 0);
	timer_t t = 0;
	if (!thread_clock)
		t = make_timer(CLOCK_PROCESS_CPUTIME_ID, &sev);
	timer_t busy = busy_start();
	int wrong = 0, awake = 0;
	for (int i = 0; i < 80; i++) {
		cpu_round();
		pthread_t th = start_burner();
		if (thread_clock) {
			clockid_t clock;
			CHECK_EQ(pthread_getcpuclockid(th, &clock), 0);
			t = make_timer(clock, &sev);
		}
		struct itimerspec its = its_ms(5, 0);
		CHECK_OK(B->settime(t, 0, &its, NULL));
		pid_t by = wait_cpu_signal();
		if (!by)
			failf(__LINE__, "round %d: no signal in 5 s", i);
		bool again = main_was_awake(&awake, i);
		if (!again && by != __atomic_load_n(&burner_tid, __ATOMIC_SEQ_CST))
			wrong++;
		if (thread_clock)
			CHECK_OK(B->del(t));
		__atomic_store_n(&cpu_stop, 1, __ATOMIC_SEQ_CST);
		pthread_join(th, NULL);
		i -= again;
	}
	printf("# %d of 80 rounds: the signal went to another thread than the burning one\n", wrong);
	fflush(stdout);
	if (wrong > (thread_clock ? 0 : 2))
		failf(__LINE__, "%d of 80 rounds: the signal went to another thread than the burning one",
		      wrong);
	busy_stop(busy);
	if (!thread_clock)
		CHECK_OK(B->del(t));
	unblock(SIGRTMIN + 4);
}

CONF_CASE(cpu_signal_beside_busy_timer)
{
	cpu_beside_busy(false);
}

CONF_CASE(thread_cpu_signal_beside_busy_timer)
{
	cpu_beside_busy(true);
}
