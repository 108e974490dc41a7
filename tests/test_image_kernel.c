/* SPDX-License-Identifier: MIT */
/*
 * Kernel timers through an image and back (ptimers.h, src/kernel_image.c):
 * the same round trip as the engine's (image_common.h), restored through
 * the prctl and through the walk; an engine image restored as kernel
 * timers; refusals that leave no kernel timer behind.  Kernel timers are
 * charged to the user's RLIMIT_SIGPENDING, shared with the user's other
 * processes: where they are refused, the cases say so and are left out.
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
#include "private.h"

/* ---- round trip of kernel timers ---- */

#define SKIP_STATUS 77

static int raise_sigpending(void)
{
	/* Kernel timers are charged to the user's RLIMIT_SIGPENDING, shared
	 * with every process of the user: this process takes all it may. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_SIGPENDING, &rl) != 0)
		return -1;
	rl.rlim_cur = rl.rlim_max;
	return setrlimit(RLIMIT_SIGPENDING, &rl);
}

/* timer_create; the user's RLIMIT_SIGPENDING used up by other processes
 * is a skip, said so, not a failure. */
static void skip_eagain(void)
{
	printf("# skipped: the kernel refuses timers (EAGAIN): this user's RLIMIT_SIGPENDING is "
	       "taken by its other processes\n");
	fflush(stdout);
	_exit(SKIP_STATUS);
}

static int ktimer_create(clockid_t c, struct sigevent *sev, int *id)
{
	int r = (int)syscall(SYS_timer_create, c, sev, id);
	if (r != 0 && errno == EAGAIN)
		skip_eagain();
	return r;
}

/* (meson counts cmocka's skip as a failure: a case that cannot run is
 * left out at the start instead, saying why, see main.) */
static void child_ok(int status)
{
	if (status == SKIP_STATUS)
		fail_msg("the kernel refused timers (EAGAIN) in the middle of the case: this user's "
			 "RLIMIT_SIGPENDING is taken by its other processes");
	assert_int_equal(status, 0);
}

/* Can this process have kernel timers now?  (RLIMIT_SIGPENDING is the
 * user's, shared with every process of the user.) */
static bool kernel_has_room(void)
{
	raise_sigpending();
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	int ids[64], n = 0;
	for (; n < 64; n++)
		if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &none, &ids[n]) != 0)
			break;
	for (int i = 0; i < n; i++)
		syscall(SYS_timer_delete, ids[i]);
	return n == 64;
}

static const int kernel_ids[] = { 3, 17, 40, 99, 250, 513, 1000, 1500, 2222, 3000, 4096, 5001,
				  6000, 7777, 8191, 9000, 10007, 11000, 12345, 13000, 14000,
				  15000, 16001, 17000, 18000, 19000, 19999, 20000, 21000, 22000 };
static int k_want(int c, int k, int made)
{
	(void)c;
	(void)k;
	return kernel_ids[made];
}

static int k_restore_ids(int mode)
{
	return syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, mode, 0, 0, 0) == 0 ? 0 : -1;
}

static int k_create(clockid_t clock, struct sigevent *sev, int *id)
{
	return ktimer_create(clock, sev, id);
}

static int k_settime(int id, int flags, const struct itimerspec *its)
{
	return (int)syscall(SYS_timer_settime, id, flags, its, NULL);
}

static int k_gettime(int id, struct itimerspec *cur)
{
	return (int)syscall(SYS_timer_gettime, id, cur);
}

static int k_getoverrun(int id)
{
	return (int)syscall(SYS_timer_getoverrun, id);
}

static const int kernel_kinds[] = { SIGEV_NONE, SIGEV_SIGNAL, SIGEV_THREAD_ID };

static const struct maker kernel_maker = {
	.kinds = kernel_kinds, .nkinds = 3, .value_base = 0x2000, .want = k_want,
	.restore_ids = k_restore_ids, .create = k_create, .settime = k_settime,
	.gettime = k_gettime, .getoverrun = k_getoverrun, .checkpoint = ptimer_kernel_checkpoint,
};

static int kernel_make(void *arg)
{
	EXPECT(raise_sigpending() == 0);
	return make_timers(&kernel_maker, *(int *)arg);
}

/* /proc/self/timers, one timer's lines. */
struct proc_timer {
	int id, signo, notify;
	void *value;
	pid_t tid;
	clockid_t clock;
};

static int proc_timers(struct proc_timer *p, int max)
{
	FILE *f = fopen("/proc/self/timers", "re");
	if (!f)
		return -1;
	char line[256], kind[16], who[8];
	int n = -1, v, sig;
	unsigned long long ptr;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "ID: %d", &v) == 1 && n + 1 < max) {
			p[++n] = (struct proc_timer){ .id = v };
		} else if (n >= 0 && sscanf(line, "signal: %d/%llx", &sig, &ptr) == 2) {
			p[n].signo = sig;
			p[n].value = (void *)(uintptr_t)ptr;
		} else if (n >= 0 && sscanf(line, "notify: %15[a-z]/%7[a-z].%d", kind, who, &v) == 3) {
			p[n].notify = !strcmp(kind, "none") ? SIGEV_NONE : SIGEV_SIGNAL;
			if (!strcmp(who, "tid")) {
				p[n].notify |= SIGEV_THREAD_ID;
				p[n].tid = v;
			}
		} else if (n >= 0 && sscanf(line, "ClockID: %d", &v) == 1) {
			p[n].clock = v;
		}
	}
	fclose(f);
	return n + 1;
}

static int walk_progress(void *arg, long done, long total, double seconds)
{
	(void)arg;
	(void)seconds;
	if (done == 0)
		sh->walk_calls = (int)total;
	return 0;
}

static int kernel_restore(void *arg)
{
	int fd = ((int *)arg)[0];
	unsigned flags = (unsigned)((int *)arg)[1];
	pthread_t th;
	EXPECT(raise_sigpending() == 0);
	EXPECT(block_sig() == 0);
	EXPECT(start_helper(&th) == 0);
	restore_helper = helper_tid;
	char why[256] = "";
	struct ptimer_restore_opts o = { .size = sizeof(o), .flags = flags, .map_tid = map_tid,
					 .progress = walk_progress, .error = why,
					 .error_size = sizeof(why) };
	EXPECT(lseek(fd, 0, SEEK_SET) == 0);
	int r = ptimer_kernel_restore(fd, &o);
	if (r < 0 && errno == EAGAIN)
		skip_eagain();
	if (r != sh->n)
		fprintf(stderr, "kernel restore: %d of %d: %s\n", r, sh->n, why);
	EXPECT(r == sh->n);
	if (flags & PTIMER_RESTORE_WALK)
		EXPECT(sh->walk_calls > 0); /* it walked, and said how far first */
	struct proc_timer p[MAX_T + 1];
	int got = proc_timers(p, MAX_T + 1);
	EXPECT(got == sh->n);
	for (int i = 0; i < got; i++) {
		int j = find_had(p[i].id);
		EXPECT(j >= 0);
		const struct had *h = &sh->t[j];
		/* The kernel names a CPU clock given as CLOCK_*_CPUTIME_ID by
		 * that number, an explicit one by its encoding. */
		if (!same_clock(h, p[i].clock, restore_helper))
			fprintf(stderr, "timer %d: clock %d, had %d\n", h->id, p[i].clock, h->clock);
		EXPECT(same_clock(h, p[i].clock, restore_helper));
		EXPECT(p[i].notify == h->notify);
		if (h->notify != SIGEV_NONE)
			EXPECT(p[i].signo == h->signo);
		EXPECT(p[i].value == h->value);
		if (h->to_helper)
			EXPECT(p[i].tid == restore_helper);
		struct itimerspec cur;
		EXPECT(syscall(SYS_timer_gettime, h->id, &cur) == 0);
		EXPECT(ts_ns(&cur.it_interval) == h->interval);
		EXPECT(remaining_ok(h, ts_ns(&cur.it_value)));
		/* The kernel has no way to set an overrun count (ptimers.h). */
		EXPECT(syscall(SYS_timer_getoverrun, h->id) == 0);
	}
	return 0;
}

/* The overrun count is in the image even where the kernel cannot take it
 * back: read it with the engine. */
static int overrun_in_image(void *arg)
{
	int fd = *(int *)arg;
	pthread_t th;
	/* Its signal blocked, as when it was checkpointed: else, once the
	 * restore has taken a period (a loaded machine), the timer fires,
	 * the handler takes the signal, and its count is that delivery's. */
	EXPECT(block_sig() == 0);
	EXPECT(start_helper(&th) == 0);
	restore_helper = helper_tid;
	EXPECT(lseek(fd, 0, SEEK_SET) == 0);
	struct ptimer_restore_opts o = { .size = sizeof(o), .map_tid = map_tid };
	EXPECT(ptimer_restore(fd, &o) == sh->n);
	const struct had *h = &sh->t[sh->n - 1];
	EXPECT(ptimer_getoverrun((timer_t)(intptr_t)h->id) == h->overrun);
	return 0;
}

static void test_kernel_round_trip(void **state)
{
	(void)state;
	int fd = memfd();
	assert_true(fd >= 0);
	child_ok(run_child(kernel_make, &fd));
	if (sh->skipped_alarm)
		printf("# alarm clocks skipped: %s\n", strerror(sh->skipped_alarm));
	if (syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 2, 0, 0, 0) < 0)
		printf("# this kernel has no PR_TIMER_CREATE_RESTORE_IDS: both restores walk\n");
	int by_prctl[2] = { fd, 0 }, by_walk[2] = { fd, PTIMER_RESTORE_WALK };
	child_ok(run_child(kernel_restore, by_prctl));
	child_ok(run_child(kernel_restore, by_walk));
	assert_int_equal(run_child(overrun_in_image, &fd), 0);
	close(fd);
}

/* An engine image restores as kernel timers, and a kernel image on the
 * engine: the format is one. */
static int cross_restore(void *arg)
{
	int fd = *(int *)arg;
	EXPECT(raise_sigpending() == 0);
	EXPECT(lseek(fd, 0, SEEK_SET) == 0);
	int r = ptimer_kernel_restore(fd, NULL);
	if (r < 0 && errno == EAGAIN)
		skip_eagain();
	EXPECT(r == 3);
	struct itimerspec cur;
	EXPECT(syscall(SYS_timer_gettime, 1000000, &cur) == 0);
	EXPECT(cur.it_value.tv_sec >= 98 && cur.it_value.tv_sec < 100);
	return 0;
}

static int three_on_engine(void *arg)
{
	int fd = *(int *)arg;
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	EXPECT(ptimer_restore_ids(PTIMER_RESTORE_IDS_ON, 0, 0, 0) == 0);
	int ids[] = { 5, 1000000, 2000000 };
	for (int i = 0; i < 3; i++) {
		timer_t t = (timer_t)(intptr_t)ids[i];
		EXPECT(ptimer_create(CLOCK_MONOTONIC, &none, &t) == 0);
		struct itimerspec its = { { 0, 0 }, { 100, 0 } };
		EXPECT(ptimer_settime(t, 0, &its, NULL) == 0);
	}
	EXPECT(ptimer_checkpoint(fd, NULL) == 3);
	return 0;
}

static void test_engine_image_as_kernel(void **state)
{
	(void)state;
	int fd = memfd();
	assert_int_equal(run_child(three_on_engine, &fd), 0);
	child_ok(run_child(cross_restore, &fd));
	close(fd);
}

/* A kernel restore that cannot be done leaves no kernel timer behind: an
 * ID in use (prctl and walk), and a walk cancelled before it starts and
 * in its course. */
static int count_kernel_timers(void)
{
	struct proc_timer p[MAX_T];
	return proc_timers(p, MAX_T);
}

static int cancel_at(void *arg, long done, long total, double left)
{
	(void)total;
	(void)left;
	return done >= *(long *)arg;
}

static int kernel_refusals(void *arg)
{
	int fd = *(int *)arg;
	EXPECT(raise_sigpending() == 0);
	EXPECT(block_sig() == 0);
	/* ID 1000000 taken by a timer of this process. */
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	int id = 1000000;
	bool prctl_ok = syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) == 0;
	if (prctl_ok) {
		EXPECT(ktimer_create(CLOCK_MONOTONIC, &none, &id) == 0 && id == 1000000);
		EXPECT(syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0) == 0);
		for (unsigned walk = 0; walk < 2; walk++) {
			char why[256] = "";
			struct ptimer_restore_opts o = { .size = sizeof(o), .flags = walk ? PTIMER_RESTORE_WALK : 0,
							 .error = why, .error_size = sizeof(why) };
			EXPECT(lseek(fd, 0, SEEK_SET) == 0);
			EXPECT(ptimer_kernel_restore(fd, &o) == -1 && errno == EBUSY);
			EXPECT(strstr(why, "1000000") != NULL);
			EXPECT(count_kernel_timers() == 1);
		}
		EXPECT(syscall(SYS_timer_delete, id) == 0);
	}
	/* Cancelled: before it starts, and after 65536 calls. */
	long at[] = { 0, 65536 };
	for (int k = 0; k < 2; k++) {
		char why[256] = "";
		struct ptimer_restore_opts o = { .size = sizeof(o), .flags = PTIMER_RESTORE_WALK,
						 .progress = cancel_at, .arg = &at[k], .error = why,
						 .error_size = sizeof(why) };
		EXPECT(lseek(fd, 0, SEEK_SET) == 0);
		EXPECT(ptimer_kernel_restore(fd, &o) == -1 && errno == ECANCELED);
		EXPECT(strstr(why, "cancelled") != NULL && strstr(why, "nothing was restored") != NULL);
		EXPECT(count_kernel_timers() == 0);
	}
	return 0;
}

static void test_kernel_refusals(void **state)
{
	(void)state;
	int fd = memfd();
	assert_int_equal(run_child(three_on_engine, &fd), 0); /* IDs 5, 1000000, 2000000 */
	child_ok(run_child(kernel_refusals, &fd));
	close(fd);
}

/* glibc's SIGEV_THREAD kernel timers cannot be checkpointed: refused. */
static int glibc_thread_timer(void *arg)
{
	(void)arg;
	EXPECT(raise_sigpending() == 0);
	/* libc's timer_create: the kernel's, since this test is not under
	 * the drop-in (the engine only has ptimer_*). */
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD, .sigev_notify_function = tick_fn };
	timer_t t;
	if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0 && errno == EAGAIN)
		skip_eagain();
	int fd = memfd();
	char why[256] = "";
	struct ptimer_restore_opts o = { .size = sizeof(o), .error = why, .error_size = sizeof(why) };
	EXPECT(ptimer_kernel_checkpoint(fd, &o) == -1 && errno == EINVAL);
	EXPECT(strstr(why, "SIGEV_THREAD") != NULL);
	return 0;
}

static void test_kernel_glibc_thread_refused(void **state)
{
	(void)state;
	child_ok(run_child(glibc_thread_timer, NULL));
}

int main(void)
{
	if (image_tests_init() != 0)
		return 1;
	if (!kernel_has_room()) {
		/* meson counts cmocka's skip as a failure: say why, run none. */
		printf("1..0 # SKIP the kernel refuses timers (EAGAIN): this user's "
		       "RLIMIT_SIGPENDING is taken by its other processes\n");
		return 0;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kernel_round_trip),
		cmocka_unit_test(test_engine_image_as_kernel),
		cmocka_unit_test(test_kernel_glibc_thread_refused),
		cmocka_unit_test(test_kernel_refusals),
	};
	return cmocka_run_group_tests_name("test_image_kernel", tests, NULL, NULL);
}
