/* SPDX-License-Identifier: MIT */
/* Conformance: Wall-clock steps: absolute CLOCK_REALTIME and CLOCK_TAI timers follow
 * them, relative ones and CLOCK_MONOTONIC ones do not. */
#include "conf.h"

/* Collect n signals within timeout_ms; returns a bit mask of their values. */
static unsigned collect_values(int signo, int n, long timeout_ms)
{
	unsigned mask = 0;
	siginfo_t si;
	int64_t end = now_ns(CLOCK_MONOTONIC) + timeout_ms * 1000000LL;
	while (n > 0) {
		int64_t left = (end - now_ns(CLOCK_MONOTONIC)) / 1000000;
		if (wait_signal(signo, &si, left > 0 ? left : 0) != signo)
			break;
		mask |= 1u << si.si_value.sival_int;
		n--;
	}
	return mask;
}

/* Absolute CLOCK_REALTIME (and CLOCK_TAI) timers follow a step of the wall
 * clock; relative ones and CLOCK_MONOTONIC ones do not.  Each step is
 * undone by the opposite step, so the clock ends where it would have been. */
CONF_CASE_FLAGS(wall_clock_step, CONF_STEPS_CLOCK)
{
	block(SIGRTMIN);
	timer_t t[5];
	for (int v = 1; v <= 4; v++) {
		struct sigevent sev = sig_event(SIGRTMIN, v);
		static const clockid_t clk[] = { 0, CLOCK_REALTIME, CLOCK_REALTIME, CLOCK_TAI,
						 CLOCK_MONOTONIC };
		t[v] = make_timer(clk[v], &sev);
	}
	/* Forward by 3 s: the absolute ones (1 on REALTIME, 3 on TAI) are due. */
	struct itimerspec rel = its_ms(1500, 0), abs_rt = rel, abs_tai = rel;
	abs_rt.it_value = ns_ts(now_ns(CLOCK_REALTIME) + 1500000000LL);
	abs_tai.it_value = ns_ts(now_ns(CLOCK_TAI) + 1500000000LL);
	CHECK_OK(B->settime(t[1], TIMER_ABSTIME, &abs_rt, NULL));
	CHECK_OK(B->settime(t[2], 0, &rel, NULL));
	CHECK_OK(B->settime(t[3], TIMER_ABSTIME, &abs_tai, NULL));
	CHECK_OK(B->settime(t[4], 0, &rel, NULL));
	int64_t armed = now_ns(CLOCK_MONOTONIC);
	CHECK_OK(step_clock(3000000000LL));
	unsigned got = collect_values(SIGRTMIN, 2, 1000);
	bool early = now_ns(CLOCK_MONOTONIC) - armed < 1400000000LL;
	CHECK_OK(step_clock(-3000000000LL));
	CHECK(early);
	CHECK_EQ(got, (1u << 1) | (1u << 3));
	/* The relative ones keep their time. */
	got = collect_values(SIGRTMIN, 2, 5000);
	CHECK_EQ(got, (1u << 2) | (1u << 4));
	CHECK(now_ns(CLOCK_MONOTONIC) - armed >= 1400000000LL);
	/* Backward by 2 s: an absolute timer 1 s away now waits 3 s.  (1 s,
	 * not less: a loaded machine may hold this thread for some hundreds
	 * of ms between the arming and the step, and the timer must not be
	 * due by then.) */
	abs_rt.it_value = ns_ts(now_ns(CLOCK_REALTIME) + 1000000000LL);
	CHECK_OK(B->settime(t[1], TIMER_ABSTIME, &abs_rt, NULL));
	armed = now_ns(CLOCK_MONOTONIC);
	CHECK_OK(step_clock(-2000000000LL));
	got = collect_values(SIGRTMIN, 1, 1200); /* past the 1 s it had */
	struct itimerspec cur;
	int gr = B->gettime(t[1], &cur);
	int64_t since = now_ns(CLOCK_MONOTONIC) - armed;
	CHECK_OK(step_clock(2000000000LL));
	CHECK_EQ(got, 0);
	CHECK_EQ(gr, 0);
	/* 3 s less the time since: 2 s more than without the step. */
	CHECK_RANGE(ts_ns(cur.it_value), 3000000000LL - since - 50000000LL, 3000000000LL);
	/* Back at the old time it is due again. */
	CHECK_EQ(collect_values(SIGRTMIN, 1, 2000), 1u << 1);
}
