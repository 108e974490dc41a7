/* SPDX-License-Identifier: MIT */
/* Conformance: Bad input: the errno of every refusal, as the kernel gives it. */
#include "conf.h"

CONF_CASE(bad_clock)
{
	timer_t t;
	CHECK_ERRNO(B->create(100, NULL, &t), EINVAL);
	CHECK_ERRNO(B->create(-1, NULL, &t), EINVAL);
	CHECK_ERRNO(B->create(CLOCK_MONOTONIC_RAW, NULL, &t), EOPNOTSUPP);
	CHECK_ERRNO(B->create(CLOCK_REALTIME_COARSE, NULL, &t), EOPNOTSUPP);
	CHECK_ERRNO(B->create(CLOCK_MONOTONIC_COARSE, NULL, &t), EOPNOTSUPP);
	/* _ALARM: whatever the kernel says on this machine (EOPNOTSUPP without
	 * a wake-capable RTC, EPERM without CAP_WAKE_ALARM), first with the
	 * capability and then without it. */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			drop_capability(CAP_WAKE_ALARM_BIT);
		for (clockid_t c = CLOCK_REALTIME_ALARM; c <= CLOCK_BOOTTIME_ALARM; c++) {
			struct sigevent none = { .sigev_notify = SIGEV_NONE };
			int kid;
			errno = 0;
			long kr = syscall(SYS_timer_create, c, &none, &kid);
			int kerr = errno;
			if (kr == 0) {
				/* This machine has alarm timers: so must the backend. */
				syscall(SYS_timer_delete, kid);
				CHECK_OK(B->create(c, &none, &t));
				CHECK_OK(B->del(t));
				continue;
			}
			CHECK(kerr == EOPNOTSUPP || kerr == EPERM);
			CHECK_ERRNO(B->create(c, &none, &t), kerr);
		}
	}
}

CONF_CASE(bad_notify)
{
	timer_t t;
	struct sigevent sev = sig_event(0, 0);
	CHECK_ERRNO(B->create(CLOCK_MONOTONIC, &sev, &t), EINVAL);
	sev.sigev_signo = 65;
	CHECK_ERRNO(B->create(CLOCK_MONOTONIC, &sev, &t), EINVAL);
	sev.sigev_signo = -1;
	CHECK_ERRNO(B->create(CLOCK_MONOTONIC, &sev, &t), EINVAL);
	sev.sigev_signo = 64;
	CHECK_OK(B->create(CLOCK_MONOTONIC, &sev, &t));
	sev.sigev_notify = 99;
	CHECK_ERRNO(B->create(CLOCK_MONOTONIC, &sev, &t), EINVAL);
	sev.sigev_notify = SIGEV_THREAD_ID | SIGEV_THREAD;
	CHECK_ERRNO(B->create(CLOCK_MONOTONIC, &sev, &t), EINVAL);
	/* SIGEV_THREAD_ID naming a thread of another process. */
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGRTMIN;
	pid_t other = other_start();
	sev._sigev_un._tid = other;
	errno = 0;
	int r = B->create(CLOCK_MONOTONIC, &sev, &t);
	int err = errno;
	other_end(other);
	CHECK_EQ(r, -1);
	CHECK_EQ(err, EINVAL);
	sev._sigev_un._tid = 0;
	CHECK_ERRNO(B->create(CLOCK_MONOTONIC, &sev, &t), EINVAL);
	sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	CHECK_OK(B->create(CLOCK_MONOTONIC, &sev, &t));
	sev.sigev_signo = 0;
	CHECK_ERRNO(B->create(CLOCK_MONOTONIC, &sev, &t), EINVAL);
}

CONF_CASE(bad_timespec)
{
	struct sigevent sev = sig_event(SIGRTMIN, 0);
	timer_t t = make_timer(CLOCK_MONOTONIC, &sev);
	struct itimerspec its = its_ms(0, 0), cur;
	CHECK_ERRNO(B->settime(t, 0, NULL, NULL), EINVAL);
	its.it_value.tv_nsec = -1;
	CHECK_ERRNO(B->settime(t, 0, &its, NULL), EINVAL);
	its.it_value.tv_nsec = 1000000000;
	CHECK_ERRNO(B->settime(t, 0, &its, NULL), EINVAL);
	its.it_value = (struct timespec){ -1, 0 };
	CHECK_ERRNO(B->settime(t, 0, &its, NULL), EINVAL);
	its.it_value = (struct timespec){ 0, 0 };
	its.it_interval.tv_nsec = 1000000000; /* checked even when disarming */
	CHECK_ERRNO(B->settime(t, 0, &its, NULL), EINVAL);
	its.it_interval = (struct timespec){ -5, 0 };
	CHECK_ERRNO(B->settime(t, TIMER_ABSTIME, &its, NULL), EINVAL);
	CHECK_ERRNO(B->gettime(t, NULL), EFAULT);
	/* Flags other than TIMER_ABSTIME are ignored. */
	its = its_ms(0, 0);
	CHECK_OK(B->settime(t, 0x4, &its, NULL));
	CHECK_OK(B->gettime(t, &cur));
	CHECK_EQ(cur.it_value.tv_sec + cur.it_value.tv_nsec, 0);
}

CONF_CASE(unknown_id)
{
	struct itimerspec its = its_ms(10, 0), cur;
	timer_t bogus = (timer_t)(intptr_t)12345;
	CHECK_ERRNO(B->settime(bogus, 0, &its, NULL), EINVAL);
	CHECK_ERRNO(B->gettime(bogus, &cur), EINVAL);
	CHECK_ERRNO(B->getoverrun(bogus), EINVAL);
	CHECK_ERRNO(B->del(bogus), EINVAL);
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	timer_t t = make_timer(CLOCK_MONOTONIC, &none);
	CHECK_OK(B->del(t));
	CHECK_ERRNO(B->del(t), EINVAL);
	CHECK_ERRNO(B->gettime(t, &cur), EINVAL);
	CHECK_ERRNO(B->settime(t, 0, &its, NULL), EINVAL);
	CHECK_ERRNO(B->getoverrun(t), EINVAL);
	/* A bad ID is EINVAL before the timespec is looked at?  No: the
	 * kernel validates the timespec first; both give EINVAL anyway. */
	its.it_value.tv_nsec = -1;
	CHECK_ERRNO(B->settime(bogus, 0, &its, NULL), EINVAL);
}

CONF_CASE(bad_restore_mode)
{
	CHECK_EQ(B->restore_ids(PTIMER_RESTORE_IDS_GET, 0, 0, 0), 0);
	CHECK_ERRNO(B->restore_ids(3, 0, 0, 0), EINVAL);
	CHECK_ERRNO(B->restore_ids(~0ul, 0, 0, 0), EINVAL);
	CHECK_ERRNO(B->restore_ids(PTIMER_RESTORE_IDS_ON, 1, 0, 0), EINVAL);
	CHECK_ERRNO(B->restore_ids(PTIMER_RESTORE_IDS_ON, 0, 0, 1), EINVAL);
	CHECK_ERRNO(B->restore_ids(PTIMER_RESTORE_IDS_GET, 0, 1, 0), EINVAL);
	CHECK_EQ(B->restore_ids(PTIMER_RESTORE_IDS_GET, 0, 0, 0), 0); /* nothing half-done */
	CHECK_EQ(B->restore_ids(PTIMER_RESTORE_IDS_ON, 0, 0, 0), 0);
	CHECK_EQ(B->restore_ids(PTIMER_RESTORE_IDS_GET, 0, 0, 0), 1);
	CHECK_EQ(B->restore_ids(PTIMER_RESTORE_IDS_OFF, 0, 0, 0), 0);
	CHECK_EQ(B->restore_ids(PTIMER_RESTORE_IDS_GET, 0, 0, 0), 0);
}
