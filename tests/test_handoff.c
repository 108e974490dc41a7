/* SPDX-License-Identifier: MIT */
/*
 * Hot periodic timers handed to kernel timers of their IDs (src/handoff.h):
 * the signals the kernel then sends are the timer's (ID, value, overruns),
 * the kernel timer is there under the same ID while handed off and gone
 * when taken back, re-armed or deleted, the engine's thread stays asleep,
 * and the cap and the fork child hold.  Linked with the hooks, as a
 * program linked with -lptimers -lptimers-hooks.  Skipped where the
 * kernel cannot create a timer with a given ID.
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <valgrind/valgrind.h>

#include "private.h"
#include "ptimers.h"

#define MS 1000000LL

static int sig;
static bool supported;

static long long mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct ptimer_stats stats(void)
{
	struct ptimer_stats s;
	assert_int_equal(ptimer_get_stats(&s, sizeof(s)), 0);
	return s;
}

/* How many kernel timers /proc/self/timers lists with this signal, and
 * this ID (id >= 0) or any. */
static int kernel_timers(int id, int signo)
{
	FILE *f = fopen("/proc/self/timers", "r");
	assert_non_null(f);
	char line[256];
	int n = 0, cur = -1;
	while (fgets(line, sizeof(line), f)) {
		int v, s;
		if (sscanf(line, "ID: %d", &v) == 1)
			cur = v;
		else if (sscanf(line, "signal: %d/", &s) == 1 && (id < 0 || cur == id) && s == signo)
			n++;
	}
	fclose(f);
	return n;
}

static bool kernel_has(int id, int signo)
{
	return kernel_timers(id, signo) > 0;
}

/* The clock /proc/self/timers gives kernel timer id (INT_MIN: none). */
static int kernel_clock(int id)
{
	FILE *f = fopen("/proc/self/timers", "r");
	assert_non_null(f);
	char line[256];
	int cur = -1, clock = INT32_MIN;
	while (fgets(line, sizeof(line), f)) {
		int v;
		if (sscanf(line, "ID: %d", &v) == 1)
			cur = v;
		else if (cur == id && sscanf(line, "ClockID: %d", &v) == 1)
			clock = v;
	}
	fclose(f);
	return clock;
}

static long long ts_ns(struct timespec ts)
{
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The engine's timer_gettime keeps to the kernel timer's own grid: read
 * between two readings of the kernel timer (under the same ID), within
 * 3 us of them, in the narrowest of 20 tries (a try across an expiry
 * tells nothing; one the machine interrupted, little). */
static void grid_agrees_with(timer_t t, int id)
{
	long long width = -1, off = 0;
	for (int i = 0; i < 20; i++) {
		struct itimerspec k1, e, k2;
		assert_int_equal(syscall(SYS_timer_gettime, id, &k1), 0);
		assert_int_equal(ptimer_gettime(t, &e), 0);
		assert_int_equal(syscall(SYS_timer_gettime, id, &k2), 0);
		long long a = ts_ns(k1.it_value), b = ts_ns(e.it_value), c = ts_ns(k2.it_value);
		if (c > a || (width >= 0 && a - c >= width))
			continue;
		width = a - c;
		off = b > a + 3000 ? b - a : b < c - 3000 ? b - c : 0;
	}
	if (width < 0 || off)
		fail_msg("the engine's gettime is %lld ns off the kernel timer's (read %lld ns apart)", off,
			 width);
}

static void grid_agrees(timer_t t)
{
	grid_agrees_with(t, (int)(intptr_t)t);
}

/* The highest ID of a kernel timer on the engine's signal and this clock
 * that signals a thread, below below (the engine's own kernel timers
 * take IDs counted down from INT_MAX: a new one is below the others), or
 * -1. */
static int carrier_kernel_timer(int clock, int below)
{
	FILE *f = fopen("/proc/self/timers", "r");
	assert_non_null(f);
	char line[256];
	int id = -1, found = -1, signo = 0;
	bool to_thread = false;
	while (fgets(line, sizeof(line), f)) {
		int v;
		if (sscanf(line, "ID: %d", &v) == 1) {
			id = v;
			signo = 0;
			to_thread = false;
		} else if (sscanf(line, "signal: %d/", &v) == 1) {
			signo = v;
		} else if (!strncmp(line, "notify: signal/tid.", 19)) {
			to_thread = true;
		} else if (sscanf(line, "ClockID: %d", &v) == 1 && v == clock && to_thread &&
			   signo == ptimer__engine_signo() && id < below && id > found) {
			found = id;
		}
	}
	fclose(f);
	return found;
}

/* sig with this value, to the process. */
static struct sigevent signal_event(int value)
{
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = sig;
	sev.sigev_value.sival_int = value;
	return sev;
}

/* A timer on clock with sev, armed relatively every period_ns. */
static timer_t armed(clockid_t clock, struct sigevent *sev, long long period_ns)
{
	timer_t t;
	assert_int_equal(ptimer_create(clock, sev, &t), 0);
	struct itimerspec its = { { 0, period_ns }, { 0, period_ns } };
	assert_int_equal(ptimer_settime(t, 0, &its, NULL), 0);
	return t;
}

static timer_t periodic(int value, long long period_ns)
{
	struct sigevent sev = signal_event(value);
	return armed(CLOCK_MONOTONIC, &sev, period_ns);
}

/* The next signal, within 5 s: its siginfo (the test fails without one). */
static siginfo_t take(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	siginfo_t si;
	struct timespec to = { 5, 0 };
	int r = sigtimedwait(&set, &si, &to);
	if (r != sig)
		fail_msg("no signal within 5 s (%d, %s)", r, strerror(errno));
	return si;
}

/* Nothing pending, nothing within ms. */
static bool quiet_for(long ms)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	struct timespec to = { ms / 1000, ms % 1000 * MS };
	return sigtimedwait(&set, &(siginfo_t){ 0 }, &to) < 0 && errno == EAGAIN;
}

/* Wait until the engine has handed off n timers, at an expiry: taking
 * the signals as they come (signals), or while a worker takes the calls. */
static void wait_handed_off_by(uint64_t n, bool signals)
{
	long long end = mono_ns() + 5000 * MS;
	while (stats().handed_off != n) {
		if (mono_ns() > end)
			fail_msg("%llu handed off, not %llu", (unsigned long long)stats().handed_off,
				 (unsigned long long)n);
		if (signals)
			(void)take(); /* every expiry is a chance */
		else
			nanosleep(&(struct timespec){ 0, MS }, NULL);
	}
}

static void wait_handed_off(uint64_t n)
{
	wait_handed_off_by(n, true);
}

static int setup(void **state)
{
	(void)state;
	supported = ptimer__handoff(64) == 0;
	if (!supported)
		print_message("# this kernel cannot create a timer with a given ID (%s): "
			      "nothing is handed off, every case skips\n", strerror(errno));
	sig = SIGRTMIN + 2;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	while (!quiet_for(0))
		;
	return 0;
}

/* After each case: a case that failed part way leaves its timers (one
 * perhaps handed off, counted in stats().handed_off) and their signals
 * behind, and each case after it would fail on those, not on its own. */
static int leftovers(void **state)
{
	struct ptimer_info info;
	while (ptimer_list(0, &info, sizeof(info), 1) == 1 && ptimer_delete((timer_t)(intptr_t)info.id) == 0)
		;
	return teardown(state);
}

static void test_signals_are_the_timers(void **state)
{
	(void)state;
	if (!supported)
		skip();
	timer_t t = periodic(77, 2 * MS);
	int id = (int)(intptr_t)t;
	wait_handed_off(1);
	assert_true(kernel_has(id, sig));
	for (int i = 0; i < 5; i++) {
		siginfo_t si = take();
		assert_int_equal(si.si_code, SI_TIMER);
		assert_int_equal(si.si_timerid, id);
		assert_int_equal(si.si_value.sival_int, 77);
		assert_int_equal(si.si_errno, 0);
	}
	/* The engine's thread sleeps through them: the kernel sends. */
	uint64_t w0 = stats().wakeups;
	for (int i = 0; i < 25; i++)
		(void)take();
	uint64_t woke = stats().wakeups - w0;
	if (woke > 5)
		fail_msg("the engine woke %llu times in 25 expiries it handed off", (unsigned long long)woke);
	/* gettime from the grid the engine keeps. */
	struct itimerspec cur;
	assert_int_equal(ptimer_gettime(t, &cur), 0);
	assert_int_equal(cur.it_interval.tv_nsec, 2 * MS);
	assert_true(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 2 * MS);
	/* Overruns counted by the kernel, as getoverrun says them. */
	long long until = mono_ns() + 30 * MS;
	while (mono_ns() < until)
		; /* the periods pass with the signal pending */
	siginfo_t si = take();
	assert_true(si.si_overrun >= 5);
	assert_int_equal(ptimer_getoverrun(t), si.si_overrun);
	/* The readout has it armed, with its interval. */
	struct ptimer_info info;
	assert_int_equal(ptimer_list(id, &info, sizeof(info), 1), 1);
	assert_int_equal(info.id, id);
	assert_true(info.armed);
	assert_int_equal(info.setting.it_interval.tv_nsec, 2 * MS);
	assert_true(info.setting.it_value.tv_nsec > 0 && info.setting.it_value.tv_nsec <= 2 * MS);
	assert_int_equal(ptimer_delete(t), 0);
	assert_int_equal(stats().handed_off, 0);
	assert_false(kernel_has(id, sig));
	assert_true(quiet_for(20)); /* a signal it had pending went with it */
}

static void test_settime_rearms_or_takes_back(void **state)
{
	(void)state;
	if (!supported)
		skip();
	timer_t t = periodic(5, 2 * MS);
	int id = (int)(intptr_t)t;
	wait_handed_off(1);
	/* Let a signal be pending, then re-arm: it is dropped, the kernel
	 * timer stays, on the new setting. */
	long long until = mono_ns() + 5 * MS;
	while (mono_ns() < until)
		;
	struct itimerspec its = { { 0, 3 * MS }, { 0, 200 * MS } }, old;
	assert_int_equal(ptimer_settime(t, 0, &its, &old), 0);
	assert_int_equal(old.it_interval.tv_nsec, 2 * MS);
	assert_true(old.it_value.tv_nsec > 0 && old.it_value.tv_nsec <= 2 * MS);
	assert_true(quiet_for(20));
	assert_int_equal(stats().handed_off, 1);
	assert_true(kernel_has(id, sig));
	siginfo_t si = take();
	assert_int_equal(si.si_timerid, id);
	/* A one-shot is the engine's again: one signal, then none. */
	its = (struct itimerspec){ { 0, 0 }, { 0, 10 * MS } };
	assert_int_equal(ptimer_settime(t, 0, &its, NULL), 0);
	assert_int_equal(stats().handed_off, 0);
	assert_false(kernel_has(id, sig));
	si = take();
	assert_int_equal(si.si_timerid, id);
	assert_int_equal(si.si_value.sival_int, 5);
	assert_true(quiet_for(30));
	assert_int_equal(ptimer_delete(t), 0);
}

static void test_leeway_takes_back(void **state)
{
	(void)state;
	if (!supported)
		skip();
	timer_t t = periodic(9, 2 * MS);
	int id = (int)(intptr_t)t;
	wait_handed_off(1);
	/* Counted before the engine can send: a signal it sends while this
	 * thread stands between the drain and a later read would be taken
	 * below without being counted after it. */
	uint64_t sent = stats().signals_sent;
	struct timespec l = { 0, 1 * MS };
	assert_int_equal(ptimer_setleeway(t, &l), 0);
	assert_int_equal(stats().handed_off, 0);
	assert_false(kernel_has(id, sig));
	while (!quiet_for(0))
		; /* what the kernel sent before */
	for (int i = 0; i < 5; i++) {
		siginfo_t si = take();
		assert_int_equal(si.si_timerid, id);
	}
	assert_true(stats().signals_sent >= sent + 5); /* the engine sends */
	assert_int_equal(stats().handed_off, 0);
	assert_int_equal(ptimer_delete(t), 0);
}

static void test_cap(void **state)
{
	(void)state;
	if (!supported)
		skip();
	assert_int_equal(ptimer__handoff(2), 0);
	timer_t t[4];
	for (int i = 0; i < 4; i++)
		t[i] = periodic(i, 2 * MS);
	wait_handed_off(2);
	/* Two more stay the engine's; every one still signals as itself. */
	int seen[4] = { 0 }, seen_n = 0;
	while (seen_n < 4) {
		siginfo_t si = take();
		int v = si.si_value.sival_int;
		assert_true(v >= 0 && v < 4);
		assert_int_equal(si.si_timerid, (int)(intptr_t)t[v]);
		if (!seen[v]++)
			seen_n++;
	}
	assert_int_equal(stats().handed_off, 2);
	for (int i = 0; i < 4; i++)
		assert_int_equal(ptimer_delete(t[i]), 0);
	assert_int_equal(stats().handed_off, 0);
	assert_int_equal(ptimer__handoff(64), 0);
}

/* A timer whose signal nobody takes stays the engine's: its overruns
 * then survive a CRIU restore of the pending signal. */
static void test_untaken_stays(void **state)
{
	(void)state;
	if (!supported)
		skip();
	timer_t t = periodic(1, 2 * MS);
	long long until = mono_ns() + 40 * MS;
	while (mono_ns() < until)
		;
	assert_int_equal(stats().handed_off, 0);
	siginfo_t si = take();
	assert_true(si.si_overrun >= 5);
	assert_int_equal(ptimer_delete(t), 0);
}

/* CLOCK_REALTIME armed relatively (the kernel keeps it on the monotonic
 * clock, unmoved by a change of the wall clock): its kernel timer is
 * armed relatively too, and the engine's grid moved onto the kernel's.
 * Re-armed absolutely (on the wall clock, which CRIU would not keep for
 * a kernel timer) it is the engine's again. */
static void test_realtime(void **state)
{
	(void)state;
	if (!supported)
		skip();
	struct sigevent sev = signal_event(8);
	timer_t t = armed(CLOCK_REALTIME, &sev, 2 * MS);
	int id = (int)(intptr_t)t;
	wait_handed_off(1);
	assert_int_equal(kernel_clock(id), CLOCK_REALTIME);
	for (int i = 0; i < 3; i++) {
		siginfo_t si = take();
		assert_int_equal(si.si_timerid, id);
		assert_int_equal(si.si_value.sival_int, 8);
	}
	grid_agrees(t);

	/* Absolutely, on the wall clock. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	long long at = ts_ns(now) + 5 * MS;
	struct itimerspec its = { { 0, 3 * MS }, { at / 1000000000, at % 1000000000 } };
	uint64_t sent = stats().signals_sent; /* before its first expiry can go */
	assert_int_equal(ptimer_settime(t, TIMER_ABSTIME, &its, NULL), 0);
	assert_int_equal(stats().handed_off, 0);
	assert_false(kernel_has(id, sig));
	for (int i = 0; i < 3; i++)
		assert_int_equal(take().si_timerid, id);
	assert_true(stats().signals_sent >= sent + 3); /* the engine sends */
	assert_int_equal(stats().handed_off, 0);

	/* Relatively again: handed off again, at an expiry. */
	its = (struct itimerspec){ { 0, 2 * MS }, { 0, 1 * MS } };
	assert_int_equal(ptimer_settime(t, 0, &its, NULL), 0);
	wait_handed_off(1);
	grid_agrees(t);
	assert_int_equal(take().si_timerid, id);
	assert_int_equal(ptimer_delete(t), 0);
	assert_int_equal(stats().handed_off, 0);
	assert_false(kernel_has(id, sig));
}

/* ---- CPU clocks ---- */

/* A timer on this thread's CPU clock, every 20 ms of it: longer than a
 * tick, so that a signal taken at once has no overruns. */
static timer_t cpu_timer(int value, bool to_thread)
{
	struct sigevent sev = signal_event(value);
	if (to_thread) {
		sev.sigev_notify = SIGEV_THREAD_ID;
		sev._sigev_un._tid = gettid();
	}
	return armed(CLOCK_THREAD_CPUTIME_ID, &sev, 20 * MS);
}

/* The next signal, spinning for it (this thread's time is the clock):
 * within 10 s of wall time, or the test fails. */
static siginfo_t take_spinning(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	long long end = mono_ns() + 10000 * MS;
	siginfo_t si;
	while (sigtimedwait(&set, &si, &(struct timespec){ 0, 0 }) != sig)
		if (mono_ns() > end)
			fail_msg("no signal within 10 s of spinning");
	return si;
}

/* A CPU-clock timer handed to a kernel CPU timer on its clock (made
 * explicit: the engine's thread creates it): its signals come from the
 * kernel and the engine's thread stays asleep. */
static void check_cpu_handed_off(timer_t t, int value, long long period_ns)
{
	int id = (int)(intptr_t)t;
	long long end = mono_ns() + 10000 * MS;
	while (stats().handed_off != 1) {
		if (mono_ns() > end)
			fail_msg("not handed off within 10 s");
		(void)take_spinning();
	}
	assert_true(kernel_has(id, sig));
	uint64_t w0 = stats().wakeups;
	for (int i = 0; i < 5; i++) {
		siginfo_t si = take_spinning();
		assert_int_equal(si.si_code, SI_TIMER);
		assert_int_equal(si.si_timerid, id);
		assert_int_equal(si.si_value.sival_int, value);
		assert_int_equal(si.si_errno, 0);
	}
	uint64_t woke = stats().wakeups - w0;
	if (woke > 3)
		fail_msg("the engine woke %llu times in 5 expiries it handed off", (unsigned long long)woke);
	struct itimerspec cur;
	assert_int_equal(ptimer_gettime(t, &cur), 0);
	assert_int_equal(cur.it_interval.tv_nsec, period_ns);
	assert_true(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= period_ns);
	/* Re-armed relatively, on the thread's clock: still the kernel's. */
	struct itimerspec its = { { 0, 30 * MS }, { 0, 30 * MS } };
	assert_int_equal(ptimer_settime(t, 0, &its, NULL), 0);
	assert_int_equal(stats().handed_off, 1);
	assert_int_equal(take_spinning().si_timerid, id);
	assert_int_equal(ptimer_delete(t), 0);
	assert_int_equal(stats().handed_off, 0);
	assert_false(kernel_has(id, sig));
}

/* A profiler's timer, on a thread's CPU clock with its signal to that
 * thread, is handed off at an expiry. */
static void test_cpu_clock_to_thread(void **state)
{
	(void)state;
	if (!supported)
		skip();
	check_cpu_handed_off(cpu_timer(4, true), 4, 20 * MS);
}

/* One whose signal goes to the process is handed off too, between two
 * expiries (armed for the next, still ahead: one armed for a time passed
 * would fire from the engine's thread at once). */
static void test_cpu_clock_to_process(void **state)
{
	(void)state;
	if (!supported)
		skip();
	check_cpu_handed_off(cpu_timer(3, false), 3, 20 * MS);
}

/* Where a process-directed CPU timer's signals go when two threads take
 * them: the kernel gives each to the thread whose time ran out, if it
 * takes the signal, here a thread spinning and not the main thread,
 * asleep.  The engine's timer must do as the kernel's own, before its
 * handoff and after: a kernel timer armed for a time passed would fire
 * from the thread arming it, the engine's, which blocks the signal, and
 * the kernel would then give it to the main thread (its first choice
 * after the thread sending, and willing). */
static pid_t spinner_tid;     /* atomic */
static long on_spinner, elsewhere; /* atomic */

static void count_taker(int signo)
{
	(void)signo;
	bool spinner = gettid() == __atomic_load_n(&spinner_tid, __ATOMIC_RELAXED);
	__atomic_add_fetch(spinner ? &on_spinner : &elsewhere, 1, __ATOMIC_RELAXED);
}

static long taken(void)
{
	return __atomic_load_n(&on_spinner, __ATOMIC_RELAXED) + __atomic_load_n(&elsewhere, __ATOMIC_RELAXED);
}

/* Spins with sig unblocked until *arg signals are taken, 10 s at most. */
static void *spinner(void *arg)
{
	__atomic_store_n(&spinner_tid, gettid(), __ATOMIC_RELAXED);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	long long end = mono_ns() + 10000 * MS;
	while (taken() < *(long *)arg && mono_ns() < end)
		;
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	return NULL;
}

/* n signals of a timer on the process's CPU clock, the engine's t or the
 * kernel's (kernel_id >= 0): all on the spinning thread.  False, for the
 * kernel's, when one went elsewhere (said as a TAP comment). */
static bool which_thread(timer_t t, int kernel_id, long n)
{
	struct sigaction sa = { .sa_handler = count_taker }, old;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(sig, &sa, &old), 0);
	__atomic_store_n(&on_spinner, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&elsewhere, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&spinner_tid, 0, __ATOMIC_RELAXED);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, spinner, &n), 0);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	/* Asleep, and willing to take the signal, until the spinner is done
	 * (awake as little as it can: a tick that finds it running gives it
	 * the signal, the kernel's timer too). */
	while (pthread_tryjoin_np(th, NULL) == EBUSY)
		nanosleep(&(struct timespec){ 0, 20 * MS }, NULL);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	uint64_t handed = stats().handed_off;
	if (kernel_id >= 0)
		syscall(SYS_timer_delete, kernel_id);
	else
		assert_int_equal(ptimer_delete(t), 0);
	assert_int_equal(sigaction(sig, &old, NULL), 0);
	long spun = __atomic_load_n(&on_spinner, __ATOMIC_RELAXED), away = __atomic_load_n(&elsewhere, __ATOMIC_RELAXED);
	if (kernel_id >= 0 && spun + away >= n && away) {
		print_message("# the kernel's own timer: %ld signals on the spinning thread, %ld on another "
			      "(a tick found another thread running)\n", spun, away);
		return false;
	}
	const char *whose = kernel_id >= 0 ? "the kernel's" : "the engine's";
	if (spun + away < n || away)
		fail_msg("%s timer: %ld signals on the spinning thread, %ld on another, within 10 s", whose, spun,
			 away);
	if (kernel_id < 0 && handed != 1)
		fail_msg("the engine's timer was not handed off in %ld expiries", n);
	return true;
}

static void test_cpu_clock_to_process_thread(void **state)
{
	(void)state;
	if (!supported)
		skip();
	if (RUNNING_ON_VALGRIND) {
		/* Valgrind takes every signal itself and hands it to a thread
		 * of its choosing: the kernel's own timer fails this case
		 * under it. */
		print_message("# under valgrind, which routes signals itself\n");
		skip();
	}
	struct sigevent sev = signal_event(5);
	struct itimerspec its = { { 0, 10 * MS }, { 0, 10 * MS } };
	int kid;
	if (syscall(SYS_timer_create, CLOCK_PROCESS_CPUTIME_ID, &sev, &kid) != 0) {
		/* The user's RLIMIT_SIGPENDING, shared with the user's other
		 * processes, may be spent: say so. */
		print_message("# the kernel's side: timer_create: %s\n", strerror(errno));
		skip();
	}
	assert_int_equal(syscall(SYS_timer_settime, kid, 0, &its, NULL), 0);
	/* The kernel's own timer first: where it does not keep to the
	 * spinning thread (a loaded machine, TSan's own thread), there is
	 * nothing to hold the engine's to. */
	if (!which_thread(NULL, kid, 10))
		skip();
	timer_t t = armed(CLOCK_PROCESS_CPUTIME_ID, &sev, 10 * MS);
	which_thread(t, -1, 10);
}

/* ---- SIGEV_THREAD: a worker of its own carries a hot timer ---- */

static long calls;     /* atomic */
static int slow_ms;    /* atomic: each call sleeps this long */
static int exit_at;    /* atomic: the call with this number ends its thread */
static long long last_call; /* atomic: CLOCK_MONOTONIC ns of the latest call */

static void on_call(union sigval v)
{
	(void)v;
	long n = __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&last_call, mono_ns(), __ATOMIC_RELAXED);
	int ms = __atomic_load_n(&slow_ms, __ATOMIC_RELAXED);
	if (ms)
		nanosleep(&(struct timespec){ 0, ms * MS }, NULL);
	if (n == __atomic_load_n(&exit_at, __ATOMIC_RELAXED))
		pthread_exit(NULL);
}

static timer_t thread_timer(clockid_t clock, long long period_ns)
{
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_notify_function = on_call;
	return armed(clock, &sev, period_ns);
}

/* Kernel timers on the engine's own signal. */
static int engine_kernel_timers(void)
{
	return kernel_timers(-1, ptimer__engine_signo());
}

static void wait_calls_past(long n)
{
	long long end = mono_ns() + 5000 * MS;
	while (__atomic_load_n(&calls, __ATOMIC_RELAXED) < n) {
		if (mono_ns() > end)
			fail_msg("%ld calls, not %ld, in 5 s", __atomic_load_n(&calls, __ATOMIC_RELAXED), n);
		nanosleep(&(struct timespec){ 0, MS }, NULL);
	}
}

/* A 2 ms SIGEV_THREAD timer, once a worker of its own carries it. */
static timer_t carried_timer(void)
{
	__atomic_store_n(&calls, 0, __ATOMIC_RELAXED);
	timer_t t = thread_timer(CLOCK_MONOTONIC, 2 * MS);
	wait_handed_off_by(1, false);
	return t;
}

static void test_thread_carried(void **state)
{
	(void)state;
	if (!supported)
		skip();
	int before = engine_kernel_timers();
	timer_t t = carried_timer();
	long long end = mono_ns() + 5000 * MS;
	while (engine_kernel_timers() != before + 1 && mono_ns() < end)
		nanosleep(&(struct timespec){ 0, MS }, NULL); /* the carrier makes it */
	assert_int_equal(engine_kernel_timers(), before + 1);
	/* The engine's thread sleeps through the calls: the kernel timer
	 * wakes the carrier. */
	long c0 = __atomic_load_n(&calls, __ATOMIC_RELAXED);
	uint64_t w0 = stats().wakeups;
	wait_calls_past(c0 + 25);
	uint64_t woke = stats().wakeups - w0;
	if (woke > 5)
		fail_msg("the engine woke %llu times in 25 carried calls", (unsigned long long)woke);
	struct itimerspec cur;
	assert_int_equal(ptimer_gettime(t, &cur), 0);
	assert_true(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 2 * MS);
	assert_int_equal(ptimer_getoverrun(t), 0);
	/* A one-shot in 200 ms: the engine's again, its call then, then none
	 * (a carried call already on its way may still come before). */
	long long armed = mono_ns();
	struct itimerspec once = { { 0, 0 }, { 0, 200 * MS } };
	assert_int_equal(ptimer_settime(t, 0, &once, NULL), 0);
	assert_int_equal(stats().handed_off, 0);
	assert_int_equal(engine_kernel_timers(), before);
	end = mono_ns() + 5000 * MS;
	while (__atomic_load_n(&last_call, __ATOMIC_RELAXED) < armed + 200 * MS) {
		if (mono_ns() > end)
			fail_msg("the one-shot's call did not come in 5 s");
		nanosleep(&(struct timespec){ 0, MS }, NULL);
	}
	long c1 = __atomic_load_n(&calls, __ATOMIC_RELAXED);
	nanosleep(&(struct timespec){ 0, 100 * MS }, NULL);
	assert_int_equal(__atomic_load_n(&calls, __ATOMIC_RELAXED), c1); /* no more */
	assert_int_equal(ptimer_delete(t), 0);
}

/* Calls of 7 ms every 2 ms for 200 ms: one thread alone would manage 2
 * in 7.  The missed ones go to the pool, each, and none is lost while the
 * timer lives: the count catches up with the expiries once the calls are
 * quick again.  The carrier stays at work throughout. */
/* A relative CLOCK_REALTIME SIGEV_THREAD timer: carried, its carrier's
 * kernel timer armed relatively and the engine's grid on it. */
static void test_thread_carried_realtime(void **state)
{
	(void)state;
	if (!supported)
		skip();
	__atomic_store_n(&calls, 0, __ATOMIC_RELAXED);
	/* Any the engine has on that clock already (its base's). */
	int lowest = INT32_MAX, k;
	while ((k = carrier_kernel_timer(CLOCK_REALTIME, lowest)) >= 0)
		lowest = k;
	timer_t t = thread_timer(CLOCK_REALTIME, 2 * MS);
	wait_handed_off_by(1, false);
	long long end = mono_ns() + 5000 * MS;
	int kid;
	while ((kid = carrier_kernel_timer(CLOCK_REALTIME, lowest)) < 0 && mono_ns() < end)
		nanosleep(&(struct timespec){ 0, MS }, NULL); /* the carrier makes it */
	assert_true(kid >= 0);
	wait_calls_past(__atomic_load_n(&calls, __ATOMIC_RELAXED) + 5);
	grid_agrees_with(t, kid);
	assert_int_equal(ptimer_delete(t), 0);
	assert_int_equal(stats().handed_off, 0);
}

static void slow_calls_all_run(timer_t t)
{
	__atomic_store_n(&slow_ms, 7, __ATOMIC_RELAXED);
	long c0 = __atomic_load_n(&calls, __ATOMIC_RELAXED);
	long long t0 = mono_ns();
	nanosleep(&(struct timespec){ 0, 200 * MS }, NULL);
	__atomic_store_n(&slow_ms, 0, __ATOMIC_RELAXED);
	long got, expected;
	long long end = mono_ns() + 10000 * MS;
	do {
		nanosleep(&(struct timespec){ 0, 10 * MS }, NULL);
		got = __atomic_load_n(&calls, __ATOMIC_RELAXED) - c0;
		expected = (long)((mono_ns() - t0) / (2 * MS));
	} while (expected - got > 10 && mono_ns() < end);
	assert_int_equal(stats().handed_off, 1); /* still carried */
	assert_int_equal(ptimer_delete(t), 0);
	if (expected - got > 10) /* a few on their way, not the 70 a lone thread misses */
		fail_msg("%ld calls for %ld expiries", got, expected);
	nanosleep(&(struct timespec){ 0, 20 * MS }, NULL); /* the last calls end */
}

static void test_thread_slow_calls_all_run(void **state)
{
	(void)state;
	if (!supported)
		skip();
	timer_t t = carried_timer();
	slow_calls_all_run(t);
}

/* The pool keeps a worker of its own beside a carrier: idle workers end
 * after a second, and the carrier must not count as the one that stays,
 * or a call pushed to the pool would wait for it forever. */
static void test_pool_keeps_a_worker(void **state)
{
	(void)state;
	if (!supported)
		skip();
	timer_t t = carried_timer();
	nanosleep(&(struct timespec){ 1, 300 * MS }, NULL); /* past the idle workers' second */
	slow_calls_all_run(t);
}

static void test_thread_exit_gives_back(void **state)
{
	(void)state;
	if (!supported)
		skip();
	timer_t t = carried_timer();
	long c0 = __atomic_load_n(&calls, __ATOMIC_RELAXED);
	__atomic_store_n(&exit_at, c0 + 3, __ATOMIC_RELAXED);
	wait_calls_past(c0 + 20); /* calls go on past the carrier's end */
	__atomic_store_n(&exit_at, 0, __ATOMIC_RELAXED);
	assert_int_equal(ptimer_delete(t), 0);
	assert_int_equal(stats().handed_off, 0);
}

static void test_fork_child_has_none(void **state)
{
	(void)state;
	if (!supported)
		skip();
	timer_t t = periodic(3, 2 * MS);
	int id = (int)(intptr_t)t;
	wait_handed_off(1);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct ptimer_stats s;
		int bad = ptimer_get_stats(&s, sizeof(s)) != 0 || s.handed_off != 0 || s.timers != 0 ||
			  kernel_has(id, sig);
		_exit(bad);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(kernel_has(id, sig)); /* the parent's stays */
	assert_int_equal(ptimer_delete(t), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_signals_are_the_timers, leftovers),
		cmocka_unit_test_teardown(test_settime_rearms_or_takes_back, leftovers),
		cmocka_unit_test_teardown(test_leeway_takes_back, leftovers),
		cmocka_unit_test_teardown(test_cap, leftovers),
		cmocka_unit_test_teardown(test_untaken_stays, leftovers),
		cmocka_unit_test_teardown(test_realtime, leftovers),
		cmocka_unit_test_teardown(test_cpu_clock_to_thread, leftovers),
		cmocka_unit_test_teardown(test_cpu_clock_to_process, leftovers),
		cmocka_unit_test_teardown(test_thread_carried, leftovers),
		cmocka_unit_test_teardown(test_thread_carried_realtime, leftovers),
		cmocka_unit_test_teardown(test_thread_slow_calls_all_run, leftovers),
		cmocka_unit_test_teardown(test_pool_keeps_a_worker, leftovers),
		cmocka_unit_test_teardown(test_thread_exit_gives_back, leftovers),
		cmocka_unit_test_teardown(test_fork_child_has_none, leftovers),
		cmocka_unit_test_teardown(test_cpu_clock_to_process_thread, leftovers),
	};
	return cmocka_run_group_tests_name("handoff", tests, setup, teardown);
}
