/* SPDX-License-Identifier: MIT */
/* Conformance: Timer IDs: the Linux allocation order and the restore mode of seed 000. */
#include "conf.h"

CONF_CASE(id_order)
{
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	timer_t t[4];
	for (int i = 0; i < 3; i++) {
		t[i] = make_timer(CLOCK_MONOTONIC, &none);
		CHECK_EQ((intptr_t)t[i], i);
	}
	CHECK_OK(B->del(t[1]));
	t[3] = make_timer(CLOCK_MONOTONIC, &none);
	CHECK_EQ((intptr_t)t[3], 3); /* next, not the freed 1 */
	/* A bad sigevent is found after the ID was taken: it uses one up. */
	struct sigevent bad = sig_event(0, 0);
	timer_t x;
	CHECK_ERRNO(B->create(CLOCK_MONOTONIC, &bad, &x), EINVAL);
	x = make_timer(CLOCK_MONOTONIC, &none);
	CHECK_EQ((intptr_t)x, 5);
	/* A bad clock is found before: it does not. */
	CHECK_ERRNO(B->create(100, &none, &x), EINVAL);
	x = make_timer(CLOCK_MONOTONIC, &none);
	CHECK_EQ((intptr_t)x, 6);
}

/* The seed's scenario: restore IDs 1000000 and 2000000 directly. */
CONF_CASE(restore_scenario)
{
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	timer_t t;
	CHECK_EQ(B->restore_ids(PTIMER_RESTORE_IDS_ON, 0, 0, 0), 0);
	int64_t t0 = now_ns(CLOCK_MONOTONIC);
	t = (timer_t)(intptr_t)1000000;
	CHECK_OK(B->create(CLOCK_MONOTONIC, &none, &t));
	CHECK_EQ((intptr_t)t, 1000000);
	t = (timer_t)(intptr_t)2000000;
	CHECK_OK(B->create(CLOCK_MONOTONIC, &none, &t));
	CHECK_EQ((intptr_t)t, 2000000);
	int64_t took = now_ns(CLOCK_MONOTONIC) - t0;
	CHECK(took < 500000000); /* microseconds, not the create/delete walk's seconds */
	t = (timer_t)(intptr_t)1000000;
	CHECK_ERRNO(B->create(CLOCK_MONOTONIC, &none, &t), EBUSY);
	t = (timer_t)(intptr_t)-1;
	CHECK_ERRNO(B->create(CLOCK_MONOTONIC, &none, &t), EINVAL);
	t = (timer_t)(intptr_t)INT_MIN;
	CHECK_ERRNO(B->create(CLOCK_MONOTONIC, &none, &t), EINVAL);
	CHECK_ERRNO(B->create(CLOCK_MONOTONIC, &none, NULL), EFAULT);
	CHECK_EQ(B->restore_ids(PTIMER_RESTORE_IDS_OFF, 0, 0, 0), 0);
	t = (timer_t)(intptr_t)7; /* ignored in normal mode */
	CHECK_OK(B->create(CLOCK_MONOTONIC, &none, &t));
	CHECK_EQ((intptr_t)t, 2000001);
	CHECK_OK(B->del((timer_t)(intptr_t)1000000));
	CHECK_OK(B->del((timer_t)(intptr_t)2000000));
}
