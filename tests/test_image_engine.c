/* SPDX-License-Identifier: MIT */
/*
 * Engine timers through an image and back (ptimers.h, src/engine_image.c):
 * every notification kind on every clock (image_common.h says what is
 * compared), SIGEV_THREAD timers given their function at restore, and an
 * absolute deadline that passed while no process had the timer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "image_common.h"

/* ---- round trip on the engine ---- */

static const int notify_kinds[] = { SIGEV_NONE, SIGEV_SIGNAL, SIGEV_THREAD, SIGEV_THREAD_ID };

/* A sparse ID for (clock, kind). */
static int sparse_id(int c, int k)
{
	return (int)((1000003ll * (c * 4 + k + 1) * 2654435761ll) % INT_MAX);
}

static int e_want(int c, int k, int made)
{
	(void)made;
	return sparse_id(c, k);
}

static int e_restore_ids(int mode)
{
	return ptimer_restore_ids(mode, 0, 0, 0);
}

static int e_create(clockid_t clock, struct sigevent *sev, int *id)
{
	timer_t t = (timer_t)(intptr_t)*id;
	int r = ptimer_create(clock, sev, &t);
	*id = (int)(intptr_t)t;
	return r;
}

static int e_settime(int id, int flags, const struct itimerspec *its)
{
	return ptimer_settime((timer_t)(intptr_t)id, flags, its, NULL);
}

static int e_gettime(int id, struct itimerspec *cur)
{
	return ptimer_gettime((timer_t)(intptr_t)id, cur);
}

static int e_getoverrun(int id)
{
	return ptimer_getoverrun((timer_t)(intptr_t)id);
}

static const struct maker engine_maker = {
	.kinds = notify_kinds, .nkinds = 4, .value_base = 0x1000, .want = e_want,
	.restore_ids = e_restore_ids, .create = e_create, .settime = e_settime,
	.gettime = e_gettime, .getoverrun = e_getoverrun, .checkpoint = ptimer_checkpoint,
};

static int engine_make(void *arg)
{
	return make_timers(&engine_maker, *(int *)arg);
}

static int thread_notify(void *arg, int id, union sigval value, void (**fn)(union sigval),
			 const pthread_attr_t **attr)
{
	(void)arg;
	(void)id;
	(void)value;
	*fn = tick_fn;
	*attr = NULL;
	return 0;
}

static int engine_restore(void *arg)
{
	int fd = *(int *)arg;
	pthread_t th;
	EXPECT(block_sig() == 0);
	EXPECT(start_helper(&th) == 0);
	restore_helper = helper_tid;
	char why[256] = "";
	struct ptimer_restore_opts o = { .size = sizeof(o), .map_tid = map_tid,
					 .thread_notify = thread_notify, .error = why,
					 .error_size = sizeof(why) };
	EXPECT(lseek(fd, 0, SEEK_SET) == 0);
	int r = ptimer_restore(fd, &o);
	if (r != sh->n)
		fprintf(stderr, "restore: %d of %d: %s\n", r, sh->n, why);
	EXPECT(r == sh->n);
	struct ptimer_info info[MAX_T + 1];
	int got = ptimer_list(0, info, sizeof(info[0]), MAX_T + 1);
	EXPECT(got == sh->n);
	for (int i = 0; i < got; i++) {
		int j = find_had(info[i].id);
		EXPECT(j >= 0);
		const struct had *h = &sh->t[j];
		if (!same_clock(h, info[i].clockid, restore_helper))
			fprintf(stderr, "timer %d: clock %d, had %d\n", h->id, info[i].clockid, h->clock);
		EXPECT(same_clock(h, info[i].clockid, restore_helper));
		EXPECT(info[i].notify == h->notify);
		if (h->notify != SIGEV_NONE && h->notify != SIGEV_THREAD)
			EXPECT(info[i].signo == h->signo);
		EXPECT(info[i].value.sival_ptr == h->value);
		if (h->to_helper)
			EXPECT(info[i].target == restore_helper);
		else if (h->notify == SIGEV_SIGNAL)
			EXPECT(info[i].target == getpid());
		EXPECT(ts_ns(&info[i].setting.it_interval) == h->interval);
		EXPECT(remaining_ok(h, ts_ns(&info[i].setting.it_value)));
		EXPECT(ptimer_getoverrun((timer_t)(intptr_t)h->id) == h->overrun);
	}
	/* The ID counter goes on where the image left it: the next plain
	 * create gets the next ID after the checkpointed process's last. */
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	timer_t next;
	EXPECT(ptimer_create(CLOCK_MONOTONIC, &none, &next) == 0);
	EXPECT((intptr_t)next == sh->t[sh->n - 1].id + 1);
	return 0;
}

static void test_engine_round_trip(void **state)
{
	(void)state;
	int fd = memfd();
	assert_true(fd >= 0);
	assert_int_equal(run_child(engine_make, &fd), 0);
	if (sh->skipped_alarm)
		printf("# alarm clocks skipped: %s\n", strerror(sh->skipped_alarm));
	assert_true(sh->n >= 4 * (NCLOCKS - 2) + 1);
	assert_int_equal(run_child(engine_restore, &fd), 0);
	close(fd);
}

/* A restored SIGEV_THREAD timer runs the function restore was given, with
 * its saved value, when its remaining time is up. */
static sem_t fired;
static union sigval fired_value;

static void fire_fn(union sigval v)
{
	fired_value = v;
	sem_post(&fired);
}

static int give_fire(void *arg, int id, union sigval value, void (**fn)(union sigval),
		     const pthread_attr_t **attr)
{
	(void)arg;
	(void)id;
	(void)value;
	*fn = fire_fn;
	*attr = NULL;
	return 0;
}

static int thread_make(void *arg)
{
	int fd = *(int *)arg;
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD, .sigev_value.sival_int = 77,
				.sigev_notify_function = tick_fn };
	timer_t t;
	EXPECT(ptimer_create(CLOCK_MONOTONIC, &sev, &t) == 0);
	struct itimerspec its = { { 0, 0 }, { 2, 0 } };
	EXPECT(ptimer_settime(t, 0, &its, NULL) == 0);
	EXPECT(ptimer_checkpoint(fd, NULL) == 1);
	return 0;
}

static int thread_restore(void *arg)
{
	int fd = *(int *)arg;
	sem_init(&fired, 0, 0);
	struct ptimer_restore_opts o = { .size = sizeof(o), .thread_notify = give_fire };
	EXPECT(lseek(fd, 0, SEEK_SET) == 0);
	int64_t t0 = now_ns(CLOCK_MONOTONIC);
	EXPECT(ptimer_restore(fd, &o) == 1);
	struct timespec limit = ns_ts(now_ns(CLOCK_REALTIME) + 30 * NSEC);
	EXPECT(sem_timedwait(&fired, &limit) == 0);
	EXPECT(fired_value.sival_int == 77);
	/* Not before its time (2 s less what went by before the restore). */
	EXPECT(now_ns(CLOCK_MONOTONIC) - t0 >= NSEC);
	return 0;
}

static void test_thread_notify_runs(void **state)
{
	(void)state;
	int fd = memfd();
	assert_int_equal(run_child(thread_make, &fd), 0);
	assert_int_equal(run_child(thread_restore, &fd), 0);
	close(fd);
}

/* An absolute deadline that passed while the timers were away: the timer
 * fires at once on restore, counting the periods missed, as the kernel
 * counts them for a deadline already past. */
static int64_t past_deadline;

static int absolute_make(void *arg)
{
	int fd = *(int *)arg;
	EXPECT(block_sig() == 0);
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIG };
	timer_t t;
	EXPECT(ptimer_create(CLOCK_REALTIME, &sev, &t) == 0);
	struct itimerspec its = { ns_ts(NSEC / 20), ns_ts(past_deadline) }; /* 50 ms periods */
	EXPECT(ptimer_settime(t, TIMER_ABSTIME, &its, NULL) == 0);
	EXPECT(ptimer_checkpoint(fd, NULL) == 1);
	return 0;
}

static int absolute_restore(void *arg)
{
	int fd = *(int *)arg;
	EXPECT(block_sig() == 0);
	EXPECT(lseek(fd, 0, SEEK_SET) == 0);
	EXPECT(ptimer_restore(fd, NULL) == 1);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIG);
	siginfo_t si;
	struct timespec limit = { 10, 0 };
	EXPECT(sigtimedwait(&s, &si, &limit) == SIG);
	/* 600 ms past a deadline with 50 ms periods: about 12 missed. */
	if (si.si_overrun < 6)
		fprintf(stderr, "si_overrun %d\n", si.si_overrun);
	EXPECT(si.si_overrun >= 6);
	return 0;
}

static void test_absolute_past_deadline(void **state)
{
	(void)state;
	int fd = memfd();
	past_deadline = now_ns(CLOCK_REALTIME) + 200 * 1000 * 1000;
	assert_int_equal(run_child(absolute_make, &fd), 0);
	/* The deadline passes while no process has the timer. */
	struct timespec until = ns_ts(past_deadline + 600 * 1000 * 1000);
	while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &until, NULL) == EINTR)
		;
	assert_int_equal(run_child(absolute_restore, &fd), 0);
	close(fd);
}

int main(void)
{
	if (image_tests_init() != 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_engine_round_trip),
		cmocka_unit_test(test_thread_notify_runs),
		cmocka_unit_test(test_absolute_past_deadline),
	};
	return cmocka_run_group_tests_name("test_image_engine", tests, NULL, NULL);
}
