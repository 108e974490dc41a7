/* SPDX-License-Identifier: MIT */
/*
 * Conformance: a full signal queue loses no expiry.
 *
 * The kernel charges every timer's signal to the user's RLIMIT_SIGPENDING
 * when the timer is created, so it can refuse only there (EAGAIN).  The
 * engine's timers hold nothing in the kernel until they fire; when the
 * queue is full then, the send is tried again until it goes through, and a
 * periodic timer's missed periods become that signal's overruns (README).
 * Either way, every timer that was created gets its signal.
 *
 * The case gives itself its own limit: the user's signals pending now
 * (shared by all of the user's processes) plus a small margin.
 */
#include "conf.h"

#include <sys/resource.h>

#define TIMERS 120
#define MARGIN 40

/* The user's queued signals now, from SigQ: in /proc/self/status. */
static long user_pending(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long n = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "SigQ: %ld/", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

static void limit_queue(void)
{
	long pending = user_pending();
	CHECK(pending >= 0);
	struct rlimit rl;
	CHECK_OK(getrlimit(RLIMIT_SIGPENDING, &rl));
	rl.rlim_cur = (rlim_t)(pending + MARGIN);
	CHECK_OK(setrlimit(RLIMIT_SIGPENDING, &rl));
}

/* Create up to TIMERS timers on SIGRTMIN with value = index; returns how
 * many could be created (the kernel stops at the limit). */
static int create_many(timer_t *t, bool periodic)
{
	int n = 0;
	for (; n < TIMERS; n++) {
		struct sigevent sev = sig_event(SIGRTMIN, n);
		errno = 0;
		if (B->create(CLOCK_MONOTONIC, &sev, &t[n]) != 0) {
			CHECK_EQ(errno, EAGAIN);
			break;
		}
		struct itimerspec its = its_ms(10, periodic ? 10 : 0);
		CHECK_OK(B->settime(t[n], 0, &its, NULL));
	}
	/* The kernel refused at its limit; the engine created them all. */
	if (B->engine)
		CHECK_EQ(n, TIMERS);
	else if (n == TIMERS)
		failf(__LINE__, "RLIMIT_SIGPENDING did not limit the kernel: the case proves nothing");
	CHECK(n >= MARGIN / 2);
	return n;
}

CONF_CASE(queue_full_one_shot)
{
	timer_t t[TIMERS];
	int got[TIMERS] = { 0 };
	block(SIGRTMIN);
	limit_queue();
	int n = create_many(t, false);
	nap_ms(100); /* every timer has expired; the queue is full */
	for (int seen_n = 0; seen_n < n;) {
		siginfo_t si;
		if (wait_signal(SIGRTMIN, &si, 5000) != SIGRTMIN)
			failf(__LINE__, "%d of %d expiries arrived", seen_n, n);
		int v = si.si_value.sival_int;
		CHECK(v >= 0 && v < n);
		CHECK_EQ(got[v]++, 0); /* exactly once */
		seen_n++;
	}
	siginfo_t si;
	CHECK_EQ(wait_signal(SIGRTMIN, &si, 50), 0);
}

CONF_CASE(queue_full_periodic)
{
	timer_t t[TIMERS];
	int got[TIMERS] = { 0 };
	block(SIGRTMIN);
	limit_queue();
	int n = create_many(t, true);
	nap_ms(200); /* about 20 periods with every signal blocked */
	int total_overrun = 0, left = n;
	int64_t end = now_ns(CLOCK_MONOTONIC) + 10000000000LL;
	while (left > 0 && now_ns(CLOCK_MONOTONIC) < end) {
		siginfo_t si;
		if (wait_signal(SIGRTMIN, &si, 1000) != SIGRTMIN)
			break;
		int v = si.si_value.sival_int;
		CHECK(v >= 0 && v < n);
		if (got[v]++ == 0) {
			/* The first signal of each timer stands for the periods
			 * it waited: none of them is lost. */
			CHECK(si.si_overrun >= 5);
			total_overrun += si.si_overrun;
			left--;
		}
	}
	if (left)
		failf(__LINE__, "%d of %d periodic timers never signalled", left, n);
	CHECK(total_overrun >= 5 * n);
}

/* Threads that only spin, one per CPU: a machine busy with other work. */
static int spin_stop; /* atomic */

static void *spinner(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&spin_stop, __ATOMIC_RELAXED))
		;
	return NULL;
}

#define FAIR_TIMERS 512
#define FAIR_MARGIN 256

/* With the queue full, every timer waiting to send gets its turn, in
 * order, however busy the machine: each of 512 periodic timers is
 * signalled in each of three 300 ms rounds while only 256 signals fit in
 * the queue and a thread spins on every CPU.  (The kernel makes only as
 * many timers as its limit allows; each of those is signalled.) */
CONF_CASE(queue_fair_under_load)
{
	static timer_t t[FAIR_TIMERS];
	block(SIGRTMIN);
	long pending = user_pending();
	CHECK(pending >= 0);
	struct rlimit rl;
	CHECK_OK(getrlimit(RLIMIT_SIGPENDING, &rl));
	rl.rlim_cur = (rlim_t)(pending + FAIR_MARGIN);
	CHECK_OK(setrlimit(RLIMIT_SIGPENDING, &rl));
	int n = 0;
	for (; n < FAIR_TIMERS; n++) {
		struct sigevent sev = sig_event(SIGRTMIN, n);
		errno = 0;
		if (B->create(CLOCK_MONOTONIC, &sev, &t[n]) != 0) {
			CHECK_EQ(errno, EAGAIN);
			break;
		}
	}
	if (B->engine)
		CHECK_EQ(n, FAIR_TIMERS);
	CHECK(n >= FAIR_MARGIN / 2);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_t spin[16];
	int nspin = ncpu > 0 && ncpu < 16 ? (int)ncpu : 2;
	for (int i = 0; i < nspin; i++)
		CHECK_EQ(pthread_create(&spin[i], NULL, spinner, NULL), 0);
	for (int i = 0; i < n; i++) {
		struct itimerspec its = its_ms(10, 10);
		CHECK_OK(B->settime(t[i], 0, &its, NULL));
	}
	for (int round = 0; round < 3; round++) {
		static int got[FAIR_TIMERS];
		memset(got, 0, sizeof(got));
		int64_t end = now_ns(CLOCK_MONOTONIC) + 300000000LL;
		while (now_ns(CLOCK_MONOTONIC) < end) {
			siginfo_t si;
			if (wait_signal(SIGRTMIN, &si, 50) != SIGRTMIN)
				continue;
			int v = si.si_value.sival_int;
			CHECK(v >= 0 && v < n);
			got[v]++;
			/* A receiver with work to do: signals come faster than
			 * it takes them, and the queue stays full. */
			int64_t busy = now_ns(CLOCK_MONOTONIC) + 30000;
			while (now_ns(CLOCK_MONOTONIC) < busy)
				;
		}
		int never = 0, first = -1;
		for (int i = 0; i < n; i++)
			if (!got[i] && never++ == 0)
				first = i;
		if (never) {
			__atomic_store_n(&spin_stop, 1, __ATOMIC_RELAXED);
			failf(__LINE__, "round %d: %d of %d timers never signalled (timer %d the first)",
			      round, never, n, first);
		}
	}
	__atomic_store_n(&spin_stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < nspin; i++)
		pthread_join(spin[i], NULL);
}
