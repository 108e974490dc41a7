/* SPDX-License-Identifier: MIT */
/*
 * A program linked with -lptimers and not the hooks library: nothing
 * tells the engine when the program changes a signal's disposition or
 * takes a signal, and the program reports each timer signal it takes with
 * ptimer_signal_delivered().  Each case runs against the kernel (libc's
 * timer_create(), which nothing here wraps) and against the engine.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <valgrind/valgrind.h>

#include "ptimers.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* Defined by the hooks library only: this program must not have it. */
#pragma weak ptimer_hooks_linked

struct api {
	int (*create)(clockid_t, struct sigevent *, timer_t *);
	int (*settime)(timer_t, int, const struct itimerspec *, struct itimerspec *);
	int (*gettime)(timer_t, struct itimerspec *);
	int (*getoverrun)(timer_t);
	int (*del)(timer_t);
};

static const struct api kernel = { timer_create, timer_settime, timer_gettime, timer_getoverrun,
				   timer_delete };
static const struct api engine = { ptimer_create, ptimer_settime, ptimer_gettime, ptimer_getoverrun,
				   ptimer_delete };

static const struct api *B;

/* Each case runs against the kernel and against the engine: name's two
 * cmocka tests, test_<name>_kernel and test_<name>_engine, call fn with
 * each side. */
#define BOTH_SIDES(name, fn) \
	static void test_##name##_kernel(void **state) { (void)state; fn(&kernel); } \
	static void test_##name##_engine(void **state) { (void)state; fn(&engine); }
#define BOTH_TESTS(name) cmocka_unit_test(test_##name##_kernel), cmocka_unit_test(test_##name##_engine)
static timer_t seen_timer;
static volatile int seen, seen_overrun, seen_getoverrun;

static void on_signal(int sig, siginfo_t *info, void *uc)
{
	(void)sig, (void)uc;
	/* -1: not an engine signal (the kernel's); 0: stale, dropped. */
	if (ptimer_signal_delivered(info) == 0 || seen)
		return;
	seen_overrun = info->si_overrun;
	seen_getoverrun = B->getoverrun(seen_timer);
	__atomic_store_n(&seen, 1, __ATOMIC_RELEASE);
}

static void install_handler(int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(sig, &sa, NULL), 0);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void nap_ms(int ms)
{
	int64_t until = now_ns() + (int64_t)ms * 1000000;
	for (int64_t left; (left = until - now_ns()) > 0;) {
		struct timespec ts = { left / 1000000000, left % 1000000000 };
		nanosleep(&ts, NULL);
	}
}

/* Until the handler saw a signal, or ms passed. */
static void wait_seen(int ms)
{
	int64_t until = now_ns() + (int64_t)ms * 1000000;
	while (!__atomic_load_n(&seen, __ATOMIC_ACQUIRE) && now_ns() < until)
		nap_ms(1);
}

static struct itimerspec its_ms(int value, int interval)
{
	struct itimerspec its = { { interval / 1000, interval % 1000 * 1000000L },
				  { value / 1000, value % 1000 * 1000000L } };
	return its;
}

/* A timer_create() failed with err: the kernel's timers and queued
 * signals count against the user's RLIMIT_SIGPENDING, which other
 * processes share, so the kernel's EAGAIN skips. */
static void skip_or_fail(int err)
{
	if (B == &kernel && err == EAGAIN)
		skip();
	fail_msg("timer_create: %s", strerror(err));
}

static timer_t make_timer_on(clockid_t clock, int sig)
{
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = sig;
	timer_t t;
	if (B->create(clock, &sev, &t) != 0)
		skip_or_fail(errno);
	return t;
}

static timer_t make_timer(int sig)
{
	return make_timer_on(CLOCK_MONOTONIC, sig);
}

/*
 * A periodic timer whose signal is ignored at an expiry stops, and starts
 * again when the program stops ignoring the signal, its signal then
 * counting the periods missed.  The kernel sends it at the sigaction; the
 * engine, which does not see the sigaction without the hooks, at the
 * timer's next period boundary.
 */
static void parked_timer_resumes(const struct api *api)
{
	B = api;
	seen = 0;
	signal(SIGUSR1, SIG_IGN);
	seen_timer = make_timer(SIGUSR1);
	struct itimerspec its = its_ms(20, 20), cur;
	assert_int_equal(B->settime(seen_timer, 0, &its, NULL), 0);
	nap_ms(110);
	assert_int_equal(B->gettime(seen_timer, &cur), 0);
	assert_true(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 20000000);
	assert_int_equal(B->getoverrun(seen_timer), 0);
	install_handler(SIGUSR1);
	wait_seen(5000);
	assert_int_equal(seen, 1);
	assert_in_range(seen_overrun, 3, 300); /* about 5, more on a busy machine */
	assert_int_equal(seen_getoverrun, seen_overrun);
	/* And it goes on: the next periods come, one signal each. */
	seen = 0;
	wait_seen(5000);
	assert_int_equal(seen, 1);
	assert_int_equal(B->del(seen_timer), 0);
	signal(SIGUSR1, SIG_IGN);
}

BOTH_SIDES(parked_resumes, parked_timer_resumes)

/* A one-shot expiry while its signal is ignored is lost for good. */
static void oneshot_lost(const struct api *api)
{
	B = api;
	seen = 0;
	signal(SIGUSR2, SIG_IGN);
	seen_timer = make_timer(SIGUSR2);
	struct itimerspec its = its_ms(10, 0), cur;
	assert_int_equal(B->settime(seen_timer, 0, &its, NULL), 0);
	nap_ms(40);
	install_handler(SIGUSR2);
	nap_ms(60);
	assert_int_equal(seen, 0);
	assert_int_equal(B->gettime(seen_timer, &cur), 0);
	assert_true(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0);
	assert_int_equal(B->del(seen_timer), 0);
	signal(SIGUSR2, SIG_IGN);
}

BOTH_SIDES(oneshot_lost, oneshot_lost)

/* A parked timer deleted, or armed again, while its signal is still
 * ignored: nothing of the old arming comes later. */
static void parked_then_changed(const struct api *api)
{
	B = api;
	seen = 0;
	signal(SIGUSR1, SIG_IGN);
	timer_t gone = make_timer(SIGUSR1);
	seen_timer = make_timer(SIGUSR1);
	struct itimerspec its = its_ms(5, 5);
	assert_int_equal(B->settime(gone, 0, &its, NULL), 0);
	assert_int_equal(B->settime(seen_timer, 0, &its, NULL), 0);
	nap_ms(30);
	assert_int_equal(B->del(gone), 0);
	struct itimerspec later = its_ms(500, 0);
	assert_int_equal(B->settime(seen_timer, 0, &later, NULL), 0);
	install_handler(SIGUSR1);
	nap_ms(60);
	assert_int_equal(seen, 0); /* the re-armed one is not due yet */
	wait_seen(5000);
	assert_int_equal(seen, 1);
	assert_int_equal(seen_overrun, 0);
	assert_int_equal(B->del(seen_timer), 0);
	signal(SIGUSR1, SIG_IGN);
}

BOTH_SIDES(parked_then_changed, parked_then_changed)

static int64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Every signal blocked, the engine's too (nothing keeps it out of the
 * mask without the hooks), and the time used by this thread alone: no
 * program thread takes the engine's CPU-clock signal, its own thread
 * does each time.  A periodic CPU timer's signals still come once a
 * period of CPU time, as the kernel's do, not held back waiting for word
 * of which thread ran.
 */
static int64_t cpu_signal_all_blocked_once(const struct api *api)
{
	B = api;
	sigset_t all, old, usr1;
	sigfillset(&all);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	assert_int_equal(pthread_sigmask(SIG_SETMASK, &all, &old), 0);
	timer_t t = make_timer_on(CLOCK_PROCESS_CPUTIME_ID, SIGUSR1);
	struct itimerspec its = its_ms(10, 10);
	assert_int_equal(B->settime(t, 0, &its, NULL), 0);
	int64_t start = cpu_ns(), last = start, worst = 0;
	int got = 0;
	struct timespec zero = { 0, 0 };
	while (got < 20 && cpu_ns() - start < 5000000000LL) {
		siginfo_t si;
		if (sigtimedwait(&usr1, &si, &zero) != SIGUSR1)
			continue;
		ptimer_signal_delivered(&si);
		int64_t now = cpu_ns();
		if (now - last > worst)
			worst = now - last;
		last = now;
		got++;
	}
	assert_int_equal(B->del(t), 0);
	siginfo_t si;
	while (sigtimedwait(&usr1, &si, &zero) == SIGUSR1)
		;
	assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
	printf("# %s: %d signals, the longest CPU time between two %.1f ms (period 10 ms)\n",
	       B == &kernel ? "kernel" : "engine", got, worst / 1e6);
	assert_int_equal(got, 20);
	return worst;
}

/*
 * The kernel's gap is the reference: what this run's machine allows
 * (104.5 ms seen under ASan, on one CPU, beside two busy processes).  The
 * engine's: ten periods, or twice the kernel's; under valgrind, which
 * runs one thread at a time, the engine's thread waits its turn while the
 * spinning one burns the process's time (120 ms seen beside two busy
 * processes): forty; and forty in a sanitizer's build, whose engine
 * thread runs several times slower (114.5 ms seen under ASan on one CPU
 * beside two busy processes, where the kernel's tick gave 13.7).
 *
 * The engine's thread must run to pass the signal on, and a busy machine
 * can keep it off the CPU while the spinning thread runs on: beside four
 * busy processes, one run in forty saw a gap of 100 ms, and the kernel's
 * own delivery as often (its worst in 40 runs: 100.5 ms, where its median
 * was 13.1).  Such a stall does not come back three times running; a
 * signal held back by the engine does: up to three tries.
 */
static int64_t kernel_worst;

static void cpu_signal_all_blocked(const struct api *api)
{
	if (api == &kernel) {
		kernel_worst = cpu_signal_all_blocked_once(api);
		return;
	}
	int64_t bound = RUNNING_ON_VALGRIND || SANITIZED ? 400000000 : 100000000;
	if (bound < 2 * kernel_worst)
		bound = 2 * kernel_worst;
	int64_t worst = 0;
	for (int i = 0; i < 3; i++) {
		worst = cpu_signal_all_blocked_once(api);
		if (worst < bound)
			return;
	}
	fail_msg("three tries, the last with %.1f ms of CPU time between two signals (bound %.1f ms)",
		 worst / 1e6, bound / 1e6);
}

BOTH_SIDES(cpu_signal_all_blocked, cpu_signal_all_blocked)

/*
 * Five hundred timers due at the same instant, their real-time signal
 * blocked and taken with sigtimedwait: each arrives once.  Without the
 * hooks nothing tells the engine the signal's disposition, so it asks
 * the kernel; it asks once for all the expiries it finds due together,
 * not once for each (that is a system call an expiry).
 */
#define BURST 500

/* n timers on sig, each one's value its index, the last on last_sig
 * instead where that is not 0: 0, or the errno of the creation that
 * failed, none of them left then. */
static int make_timers(timer_t *t, int n, int sig, int last_sig)
{
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	for (int i = 0; i < n; i++) {
		sev.sigev_signo = last_sig && i == n - 1 ? last_sig : sig;
		sev.sigev_value.sival_int = i;
		if (B->create(CLOCK_MONOTONIC, &sev, &t[i]) != 0) {
			int err = errno;
			while (i > 0)
				B->del(t[--i]);
			return err;
		}
	}
	return 0;
}

/* Arm n timers for the instant when (CLOCK_MONOTONIC ns). */
static void arm_at(timer_t *t, int n, int64_t when)
{
	struct itimerspec its = { { 0, 0 }, { when / 1000000000, when % 1000000000 } };
	for (int i = 0; i < n; i++)
		assert_int_equal(B->settime(t[i], TIMER_ABSTIME, &its, NULL), 0);
}

static void burst_of_expiries(const struct api *api)
{
	B = api;
	int sig = SIGRTMIN + 1;
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, sig);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
	static timer_t t[BURST];
	static unsigned char got[BURST];
	memset(got, 0, sizeof(got));
	int err = make_timers(t, BURST, sig, 0);
	if (err) {
		assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
		skip_or_fail(err);
	}
	struct ptimer_stats before, after;
	assert_int_equal(ptimer_get_stats(&before, sizeof(before)), 0);
	arm_at(t, BURST, now_ns() + 50000000);
	int taken = 0, twice = 0;
	int64_t give_up = now_ns() + 10000000000LL;
	while (taken < BURST && now_ns() < give_up) {
		struct timespec wait = { 0, 100000000 };
		siginfo_t si;
		if (sigtimedwait(&set, &si, &wait) != sig)
			continue;
		ptimer_signal_delivered(&si);
		int v = si.si_value.sival_int;
		assert_in_range(v, 0, BURST - 1);
		if (got[v]++)
			twice++;
		else
			taken++;
	}
	assert_int_equal(ptimer_get_stats(&after, sizeof(after)), 0);
	for (int i = 0; i < BURST; i++)
		assert_int_equal(B->del(t[i]), 0);
	assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
	assert_int_equal(taken, BURST);
	assert_int_equal(twice, 0);
	if (B == &engine) {
		uint64_t asked = after.dispositions_asked - before.dispositions_asked;
		printf("# engine: %d expiries at one instant, the disposition asked %llu times\n", BURST,
		       (unsigned long long)asked);
		assert_true(asked >= 1);
		assert_true(asked <= 10);
	}
}

BOTH_SIDES(burst_of_expiries, burst_of_expiries)

/*
 * The same burst on a signal the program ignores and does not block:
 * every one-shot expiry is lost, as the kernel loses it.  Whether the
 * signal is blocked only the target thread's status file tells (a read of
 * some microseconds); the engine looks once for all the expiries it finds
 * due together, not once for each.  A later timer on a blocked signal
 * says when the burst is over.
 */
static void ignored_burst(const struct api *api)
{
	B = api;
	int sig = SIGRTMIN + 2, done_sig = SIGRTMIN + 3;
	sigset_t set, old, done;
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigemptyset(&done);
	sigaddset(&done, done_sig);
	assert_int_equal(pthread_sigmask(SIG_UNBLOCK, &set, &old), 0);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &done, NULL), 0);
	struct sigaction ign = { .sa_handler = SIG_IGN }, was;
	assert_int_equal(sigaction(sig, &ign, &was), 0);
	static timer_t t[BURST + 1];
	int err = make_timers(t, BURST + 1, sig, done_sig);
	if (err) {
		assert_int_equal(sigaction(sig, &was, NULL), 0);
		assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
		skip_or_fail(err);
	}
	struct ptimer_stats before, after;
	assert_int_equal(ptimer_get_stats(&before, sizeof(before)), 0);
	int64_t when = now_ns() + 50000000;
	arm_at(t, BURST, when);
	arm_at(&t[BURST], 1, when + 30000000);
	siginfo_t si;
	int got = sigtimedwait(&done, &si, &(struct timespec){ 10, 0 });
	if (got == done_sig)
		ptimer_signal_delivered(&si);
	assert_int_equal(ptimer_get_stats(&after, sizeof(after)), 0);
	int armed = 0, overruns = 0;
	for (int i = 0; i < BURST; i++) {
		struct itimerspec cur;
		assert_int_equal(B->gettime(t[i], &cur), 0);
		armed += cur.it_value.tv_sec != 0 || cur.it_value.tv_nsec != 0;
		overruns += B->getoverrun(t[i]) != 0;
	}
	for (int i = 0; i <= BURST; i++)
		assert_int_equal(B->del(t[i]), 0);
	sigset_t pending;
	assert_int_equal(sigpending(&pending), 0);
	assert_int_equal(sigaction(sig, &was, NULL), 0);
	assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
	assert_int_equal(got, done_sig);
	assert_int_equal(armed, 0);
	assert_int_equal(overruns, 0);
	assert_int_equal(sigismember(&pending, sig), 0);
	if (B == &engine) {
		uint64_t asked = after.dispositions_asked - before.dispositions_asked;
		printf("# engine: %d ignored expiries at one instant, the kernel asked %llu times\n", BURST,
		       (unsigned long long)asked);
		assert_true(asked >= 1);
		assert_true(asked <= 20);
	}
}

BOTH_SIDES(ignored_burst, ignored_burst)

/* A thread that blocks every signal before its first call (as a
 * daemon's workers do) gets EFAULT for a bad pointer, not a fault that
 * would kill the process: without the hooks, the engine learns the mask
 * on the thread's first call. */
static void *blocked_bad_pointers(void *arg)
{
	const struct api *b = arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	void *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(none != MAP_FAILED && ro != MAP_FAILED);
	void *bad[] = { (void *)1, none, ro };
	struct sigevent sev = { .sigev_notify = SIGEV_NONE };
	struct itimerspec its = { .it_value = { 5, 0 } }, cur;
	timer_t t;
	for (int i = 0; i < 3; i++) {
		/* libc's timer_create() writes the ID itself: the system call
		 * is what says EFAULT. */
		errno = 0;
		long r = b == &kernel ? syscall(SYS_timer_create, CLOCK_MONOTONIC, &sev, bad[i]) :
					b->create(CLOCK_MONOTONIC, &sev, bad[i]);
		assert_int_equal(r, -1);
		assert_int_equal(errno, EFAULT);
	}
	assert_int_equal(b->create(CLOCK_MONOTONIC, &sev, &t), 0);
	for (int i = 0; i < 3; i++) {
		errno = 0;
		assert_int_equal(b->gettime(t, bad[i]), -1);
		assert_int_equal(errno, EFAULT);
		errno = 0;
		assert_int_equal(b->settime(t, 0, &its, bad[i]), -1);
		assert_int_equal(errno, EFAULT);
		if (i < 2) {
			errno = 0;
			assert_int_equal(b->settime(t, 0, bad[i], NULL), -1);
			assert_int_equal(errno, EFAULT);
		}
	}
	assert_int_equal(b->gettime(t, &cur), 0);
	assert_true(cur.it_value.tv_sec >= 4 && cur.it_value.tv_sec <= 5);
	/* Good pointers off the stack: copied, errno left as it was. */
	struct itimerspec *heap = malloc(2 * sizeof(*heap));
	assert_non_null(heap);
	heap[0] = its;
	errno = 4321;
	assert_int_equal(b->settime(t, 0, &heap[0], &heap[1]), 0);
	assert_int_equal(errno, 4321);
	assert_true(heap[1].it_value.tv_sec >= 4 && heap[1].it_value.tv_sec <= 5);
	free(heap);
	assert_int_equal(b->del(t), 0);
	munmap(none, 4096);
	munmap(ro, 4096);
	return NULL;
}

static void bad_pointers_all_blocked(const struct api *b)
{
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, blocked_bad_pointers, (void *)b), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
}

BOTH_SIDES(bad_pointers_all_blocked, bad_pointers_all_blocked)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH_TESTS(parked_resumes),
		BOTH_TESTS(oneshot_lost),
		BOTH_TESTS(parked_then_changed),
		BOTH_TESTS(cpu_signal_all_blocked),
		BOTH_TESTS(burst_of_expiries),
		BOTH_TESTS(ignored_burst),
		BOTH_TESTS(bad_pointers_all_blocked),
	};
	if (ptimer_hooks_linked) {
		fprintf(stderr, "nohooks: the hooks are linked in; this test is for a program without them\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
