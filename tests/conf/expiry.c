/* SPDX-License-Identifier: MIT */
/* Conformance: Expiry: signals, gettime values, overruns, SIGEV_NONE, disarming. */
#include "conf.h"

CONF_CASE(expiry)
{
	block(SIGRTMIN);
	struct sigevent sev = sig_event(SIGRTMIN, 4242);
	timer_t t = make_timer(CLOCK_MONOTONIC, &sev);
	struct itimerspec its = its_ms(50, 0), cur;
	int64_t t0 = now_ns(CLOCK_MONOTONIC);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	siginfo_t si;
	CHECK_EQ(wait_signal(SIGRTMIN, &si, 5000), SIGRTMIN);
	int64_t waited = now_ns(CLOCK_MONOTONIC) - t0;
	CHECK_RANGE(waited, 49000000, 3000000000LL);
	CHECK_EQ(si.si_code, SI_TIMER);
	CHECK_EQ(si.si_timerid, (intptr_t)t);
	CHECK_EQ(si.si_value.sival_int, 4242);
	CHECK_EQ(si.si_overrun, 0);
	CHECK_OK(B->gettime(t, &cur));
	CHECK_EQ(ts_ns(cur.it_value), 0);
	CHECK_EQ(B->getoverrun(t), 0);
	/* Absolute, on each clock base, already in the past: fires at once. */
	clockid_t clocks[] = { CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_TAI };
	for (unsigned i = 0; i < 4; i++) {
		timer_t a = make_timer(clocks[i], &sev);
		its.it_value = ns_ts(now_ns(clocks[i]) + 20000000);
		CHECK_OK(B->settime(a, TIMER_ABSTIME, &its, NULL));
		CHECK_EQ(wait_signal(SIGRTMIN, &si, 5000), SIGRTMIN);
		CHECK_EQ(si.si_timerid, (intptr_t)a);
		its.it_value = ns_ts(1); /* 1 ns after the epoch */
		CHECK_OK(B->settime(a, TIMER_ABSTIME, &its, NULL));
		CHECK_EQ(wait_signal(SIGRTMIN, &si, 5000), SIGRTMIN);
		CHECK_EQ(si.si_timerid, (intptr_t)a);
	}
}

CONF_CASE(null_sigevent)
{
	block(SIGALRM);
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	make_timer(CLOCK_MONOTONIC, &none); /* so the ID is not 0 */
	timer_t t = make_timer(CLOCK_MONOTONIC, NULL);
	CHECK_EQ((intptr_t)t, 1);
	struct itimerspec its = its_ms(10, 0);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	siginfo_t si;
	CHECK_EQ(wait_signal(SIGALRM, &si, 5000), SIGALRM);
	CHECK_EQ(si.si_code, SI_TIMER);
	CHECK_EQ(si.si_timerid, 1);
	CHECK_EQ(si.si_value.sival_int, 1); /* the kernel's default value is the ID */
}

CONF_CASE(overrun_blocked)
{
	block(SIGRTMIN);
	struct sigevent sev = sig_event(SIGRTMIN, 7);
	timer_t t = make_timer(CLOCK_MONOTONIC, &sev);
	struct itimerspec its = its_ms(10, 10);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	/* The scenario itself: let about ten periods pass with the signal
	 * blocked. */
	struct timespec nap = ns_ts(105000000);
	while (nanosleep(&nap, &nap) != 0 && errno == EINTR)
		;
	/* The first expiry's signal has been sent by now; the engine's
	 * thread must have run to send it, which a busy machine can hold
	 * off past the nap (the kernel sends from the timer interrupt).  A
	 * later send only adds overruns. */
	siginfo_t si;
	CHECK_EQ(wait_signal(SIGRTMIN, &si, 5000), SIGRTMIN);
	/* At most one signal per timer was pending... */
	siginfo_t extra;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN);
	struct timespec zero = { 0, 0 };
	CHECK_EQ(sigtimedwait(&set, &extra, &zero), -1);
	/* ...and the periods missed are its overruns (about 9). */
	CHECK_RANGE(si.si_overrun, 5, 60);
	CHECK_EQ(B->getoverrun(t), si.si_overrun);
	/* Re-armed at delivery: the next signal comes within a period or so,
	 * with few overruns. */
	CHECK_EQ(wait_signal(SIGRTMIN, &si, 5000), SIGRTMIN);
	CHECK_RANGE(si.si_overrun, 0, 20);
	CHECK_EQ(B->getoverrun(t), si.si_overrun);
}

CONF_CASE(gettime_values)
{
	struct sigevent sev = sig_event(SIGRTMIN, 0);
	block(SIGRTMIN);
	timer_t t = make_timer(CLOCK_MONOTONIC, &sev);
	struct itimerspec its = its_ms(2000, 0), cur, old;
	CHECK_OK(B->gettime(t, &cur));
	CHECK_EQ(ts_ns(cur.it_value) + ts_ns(cur.it_interval), 0);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	CHECK_OK(B->gettime(t, &cur));
	CHECK_RANGE(ts_ns(cur.it_value), 1000000000, 2000000000);
	CHECK_EQ(ts_ns(cur.it_interval), 0);
	its = its_ms(3000, 1000);
	CHECK_OK(B->settime(t, 0, &its, &old));
	CHECK_RANGE(ts_ns(old.it_value), 1000000000, 2000000000);
	CHECK_EQ(ts_ns(old.it_interval), 0);
	CHECK_OK(B->gettime(t, &cur));
	CHECK_RANGE(ts_ns(cur.it_value), 2000000000, 3000000000LL);
	CHECK_EQ(ts_ns(cur.it_interval), 1000000000);
	/* Absolute on a MONOTONIC timer. */
	its.it_value = ns_ts(now_ns(CLOCK_MONOTONIC) + 5000000000LL);
	its.it_interval = ns_ts(0);
	CHECK_OK(B->settime(t, TIMER_ABSTIME, &its, &old));
	CHECK_EQ(ts_ns(old.it_interval), 1000000000);
	CHECK_OK(B->gettime(t, &cur));
	CHECK_RANGE(ts_ns(cur.it_value), 4000000000LL, 5000000000LL);
	/* Absolute REALTIME on a REALTIME timer, and relative on the same. */
	timer_t rt = make_timer(CLOCK_REALTIME, &sev);
	its.it_value = ns_ts(now_ns(CLOCK_REALTIME) + 5000000000LL);
	CHECK_OK(B->settime(rt, TIMER_ABSTIME, &its, NULL));
	CHECK_OK(B->gettime(rt, &cur));
	CHECK_RANGE(ts_ns(cur.it_value), 4000000000LL, 5000000000LL);
	its = its_ms(3000, 0);
	CHECK_OK(B->settime(rt, 0, &its, &old));
	CHECK_RANGE(ts_ns(old.it_value), 4000000000LL, 5000000000LL);
	CHECK_OK(B->gettime(rt, &cur));
	CHECK_RANGE(ts_ns(cur.it_value), 2000000000LL, 3000000000LL);
	/* Disarm. */
	its = its_ms(0, 500);
	CHECK_OK(B->settime(t, 0, &its, &old));
	CHECK_RANGE(ts_ns(old.it_value), 4000000000LL, 5000000000LL);
	CHECK_OK(B->gettime(t, &cur));
	CHECK_EQ(ts_ns(cur.it_value) + ts_ns(cur.it_interval), 0); /* interval dropped with value 0 */
	/* A huge relative value saturates instead of wrapping. */
	its.it_value = (struct timespec){ INT64_MAX / 1000000000 + 1, 0 };
	its.it_interval = ns_ts(0);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	CHECK_OK(B->gettime(t, &cur));
	CHECK(cur.it_value.tv_sec > 100L * 365 * 86400);
}

CONF_CASE(sigev_none)
{
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	timer_t t = make_timer(CLOCK_MONOTONIC, &none);
	struct itimerspec its = its_ms(20, 20), cur;
	CHECK_OK(B->settime(t, 0, &its, NULL));
	struct timespec nap = ns_ts(70000000);
	while (nanosleep(&nap, &nap) != 0 && errno == EINTR)
		;
	CHECK_OK(B->gettime(t, &cur));
	/* Periodic SIGEV_NONE: gettime moves it forward, within a period. */
	CHECK_RANGE(ts_ns(cur.it_value), 1, 20000000);
	CHECK_EQ(ts_ns(cur.it_interval), 20000000);
	CHECK_EQ(B->getoverrun(t), 0);
	/* Expired one-shot SIGEV_NONE reports zero. */
	its = its_ms(1, 0);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	nap = ns_ts(20000000);
	while (nanosleep(&nap, &nap) != 0 && errno == EINTR)
		;
	CHECK_OK(B->gettime(t, &cur));
	CHECK_EQ(ts_ns(cur.it_value), 0);
	/* Disarmed: POSIX says zero.  Linux 6.18 still reports the old
	 * remaining time; the engine follows POSIX (README, differences). */
	its = its_ms(5000, 0);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	its = its_ms(0, 0);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	CHECK_OK(B->gettime(t, &cur));
	if (B->engine)
		CHECK_EQ(ts_ns(cur.it_value), 0);
	else
		CHECK(ts_ns(cur.it_value) == 0 || ts_ns(cur.it_value) > 4000000000LL);
}

CONF_CASE(delete_armed)
{
	block(SIGRTMIN);
	struct sigevent sev = sig_event(SIGRTMIN, 1);
	timer_t t = make_timer(CLOCK_MONOTONIC, &sev);
	struct itimerspec its = its_ms(20, 20);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	CHECK_OK(B->del(t));
	siginfo_t si;
	CHECK_EQ(wait_signal(SIGRTMIN, &si, 150), 0);
	/* Deleted with its signal pending: the signal is dropped. */
	t = make_timer(CLOCK_MONOTONIC, &sev);
	its = its_ms(5, 0);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	CHECK(wait_pending(SIGRTMIN, 5000));
	CHECK_OK(B->del(t));
	CHECK_EQ(wait_signal(SIGRTMIN, &si, 50), 0);
}

CONF_CASE(rearm_drops_pending)
{
	block(SIGRTMIN);
	struct sigevent sev = sig_event(SIGRTMIN, 1);
	timer_t t = make_timer(CLOCK_MONOTONIC, &sev);
	struct itimerspec its = its_ms(5, 0);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	CHECK(wait_pending(SIGRTMIN, 5000));
	its = its_ms(10000, 0);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	siginfo_t si;
	CHECK_EQ(wait_signal(SIGRTMIN, &si, 50), 0);
	/* The new arming still fires. */
	its = its_ms(10, 0);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	CHECK_EQ(wait_signal(SIGRTMIN, &si, 5000), SIGRTMIN);
	CHECK_EQ(si.si_timerid, (intptr_t)t);
}
