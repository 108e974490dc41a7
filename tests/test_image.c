/* SPDX-License-Identifier: MIT */
/*
 * Checkpoint and restore (ptimers.h, src/image.c).
 *
 * Round trips: a child makes timers of every notification kind on every
 * clock, checkpoints them and exits; a new child restores the image and
 * compares what it has with what the first one had: IDs, clocks (mapped),
 * notification, signal, value, target thread (mapped), interval exactly,
 * remaining time (remaining_ok: less the time that went by between the
 * two readings, 10 ms margin; 1 s more on CPU clocks, whose time is each
 * process's own), overrun counts.  The same for the
 * kernel's timers, restored through the prctl and through the walk.
 *
 * Refusals: every kind of bad image (built here with protobuf-c), each
 * followed by a check that the process's timers are exactly as before.
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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <valgrind/valgrind.h>

#include "image.pb-c.h"
#include "private.h"
#include "ptimers.h"

#define NSEC 1000000000ll
#define MARGIN (NSEC / 100)
#define MAX_T 64
#define SIG (SIGRTMIN + 2)


/* In a child: print what failed, and leave with 1. */
#define EXPECT(c)                                                                                 \
	do {                                                                                      \
		if (!(c)) {                                                                       \
			fprintf(stderr, "%s:%d: failed: %s (errno %d: %s)\n", __FILE__, __LINE__, #c, \
				errno, strerror(errno));                                          \
			return 1;                                                                 \
		}                                                                                 \
	} while (0)

static int run_child(int (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t p = fork();
	if (p == 0)
		_exit(fn(arg));
	int st;
	if (p < 0 || waitpid(p, &st, 0) != p)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int64_t ts_ns(const struct timespec *t)
{
	return t->tv_sec * NSEC + t->tv_nsec;
}

static struct timespec ns_ts(int64_t ns)
{
	return (struct timespec){ ns / NSEC, ns % NSEC };
}

static int64_t now_ns(clockid_t c)
{
	struct timespec t;
	clock_gettime(c, &t);
	return ts_ns(&t);
}

/* ---- what a process had, for the one that restores to compare ---- */

struct had {
	int id;
	clockid_t clock;
	int cpu;          /* 0, 1 the process's CPU clock, 2 a thread's */
	bool cpu_helper;  /* a thread's CPU clock: the helper's (else the main thread's) */
	bool explicit_clock;
	int notify, signo;
	void *value;
	bool to_helper;   /* SIGEV_THREAD_ID: the helper thread */
	int64_t remaining, interval;
	int overrun;
	bool absolute;
};

struct shared {
	int n;
	struct had t[MAX_T];
	pid_t main_tid, helper_tid;
	int skipped_alarm;
	int walk_calls;
	int64_t read_at; /* CLOCK_MONOTONIC when the first process read its timers */
};

static struct shared *sh;

/* A thread that only waits: a target for SIGEV_THREAD_ID, and a thread
 * whose CPU clock can drive a timer. */
static int helper_pipe[2];
static pid_t helper_tid;

static void *helper(void *arg)
{
	(void)arg;
	__atomic_store_n(&helper_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	char c;
	while (read(helper_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static int start_helper(pthread_t *th)
{
	if (pipe(helper_pipe) != 0)
		return -1;
	__atomic_store_n(&helper_tid, 0, __ATOMIC_RELAXED);
	if (pthread_create(th, NULL, helper, NULL) != 0)
		return -1;
	while (!__atomic_load_n(&helper_tid, __ATOMIC_ACQUIRE))
		sched_yield();
	return 0;
}

static void tick_fn(union sigval v)
{
	(void)v;
}

static int block_sig(void)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIG);
	return pthread_sigmask(SIG_BLOCK, &s, NULL);
}

/* The clocks a round trip covers. */
enum { C_REALTIME, C_MONOTONIC, C_BOOTTIME, C_TAI, C_REALTIME_ALARM, C_BOOTTIME_ALARM,
       C_PROCESS_CPU, C_THREAD_CPU, C_PID_CPU, C_HELPER_CPU, NCLOCKS };

static clockid_t clock_of(int c, pthread_t th)
{
	static const clockid_t plain[] = { CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME,
					   CLOCK_TAI, CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM,
					   CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID };
	clockid_t k;
	if (c < C_PID_CPU)
		return plain[c];
	if (c == C_PID_CPU)
		return clock_getcpuclockid(getpid(), &k) == 0 ? k : CLOCK_MONOTONIC;
	return pthread_getcpuclockid(th, &k) == 0 ? k : CLOCK_MONOTONIC;
}

static void describe(struct had *h, int c)
{
	h->cpu = c == C_PROCESS_CPU || c == C_PID_CPU ? 1 : c == C_THREAD_CPU || c == C_HELPER_CPU ? 2 : 0;
	h->cpu_helper = c == C_HELPER_CPU;
	h->explicit_clock = c == C_PID_CPU || c == C_HELPER_CPU;
}

/* How a timer is armed: relative with an interval, absolute, or not. */
static struct itimerspec setting(int k, int i, clockid_t clock, int *flags, bool *absolute)
{
	struct itimerspec its = { { 0 }, { 0 } };
	*flags = 0;
	*absolute = false;
	switch (k % 3) {
	case 0:
		its.it_value = ns_ts(100 * NSEC + i * 1000003ll);
		its.it_interval = ns_ts(7 * NSEC + i * 13ll);
		break;
	case 1:
		its.it_value = ns_ts(now_ns(clock) + 200 * NSEC + i * 7ll);
		its.it_interval = ns_ts(NSEC / 2 + i);
		*flags = TIMER_ABSTIME;
		*absolute = true;
		break;
	default:
		break; /* created, never armed */
	}
	return its;
}

/* ---- round trip on the engine ---- */

static const int notify_kinds[] = { SIGEV_NONE, SIGEV_SIGNAL, SIGEV_THREAD, SIGEV_THREAD_ID };

/* A sparse ID for (clock, kind). */
static int sparse_id(int c, int k)
{
	return (int)((1000003ll * (c * 4 + k + 1) * 2654435761ll) % INT_MAX);
}

static int engine_make(void *arg)
{
	(void)arg;
	pthread_t th;
	EXPECT(block_sig() == 0);
	EXPECT(start_helper(&th) == 0);
	sh->main_tid = (pid_t)syscall(SYS_gettid);
	sh->helper_tid = helper_tid;
	EXPECT(ptimer_restore_ids(PTIMER_RESTORE_IDS_ON, 0, 0, 0) == 0);
	int n = 0;
	for (int c = 0; c < NCLOCKS; c++) {
		for (int k = 0; k < 4; k++) {
			struct had *h = &sh->t[n];
			memset(h, 0, sizeof(*h));
			h->id = sparse_id(c, k);
			h->clock = clock_of(c, th);
			describe(h, c);
			h->notify = notify_kinds[k] == SIGEV_THREAD_ID ? SIGEV_SIGNAL | SIGEV_THREAD_ID
								      : notify_kinds[k];
			h->signo = h->notify == SIGEV_THREAD || h->notify == SIGEV_NONE ? 0 : SIG;
			h->value = (void *)(uintptr_t)(0x1000 + n);
			h->to_helper = notify_kinds[k] == SIGEV_THREAD_ID;
			struct sigevent sev = { .sigev_notify = h->notify, .sigev_signo = h->signo,
						.sigev_value.sival_ptr = h->value };
			if (h->notify == SIGEV_THREAD)
				sev.sigev_notify_function = tick_fn;
			if (h->to_helper)
				sev._sigev_un._tid = helper_tid;
			timer_t id = (timer_t)(intptr_t)h->id;
			if (ptimer_create(h->clock, &sev, &id) != 0) {
				if ((c == C_REALTIME_ALARM || c == C_BOOTTIME_ALARM) &&
				    (errno == EOPNOTSUPP || errno == EPERM || errno == ENOTSUP)) {
					sh->skipped_alarm = errno;
					continue; /* no RTC to wake, or no CAP_WAKE_ALARM */
				}
				EXPECT(!"ptimer_create");
			}
			EXPECT((intptr_t)id == h->id);
			int flags;
			struct itimerspec its = setting(c + k, n, h->clock, &flags, &h->absolute);
			EXPECT(ptimer_settime(id, flags, &its, NULL) == 0);
			n++;
		}
	}
	EXPECT(ptimer_restore_ids(PTIMER_RESTORE_IDS_OFF, 0, 0, 0) == 0);

	/* A timer with overruns: 1 ms periods, its signal taken twice with
	 * periods missed in between (timer_getoverrun counts them at the
	 * delivery). */
	struct had *h = &sh->t[n];
	memset(h, 0, sizeof(*h));
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIG,
				.sigev_value.sival_ptr = (void *)0x42 };
	timer_t ov;
	EXPECT(ptimer_create(CLOCK_MONOTONIC, &sev, &ov) == 0);
	struct itimerspec its = { ns_ts(NSEC / 1000), ns_ts(NSEC / 1000) };
	EXPECT(ptimer_settime(ov, 0, &its, NULL) == 0);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIG);
	EXPECT(sigwaitinfo(&s, NULL) == SIG);
	struct timespec gap = { 0, 20 * 1000 * 1000 }; /* periods go by: that is the point */
	nanosleep(&gap, NULL);
	EXPECT(sigwaitinfo(&s, NULL) == SIG);
	int overrun = ptimer_getoverrun(ov);
	EXPECT(overrun > 0);
	/* It runs on, its next signal pending and blocked: the count stays
	 * (timer_settime would reset it, as the kernel's does). */
	h->id = (int)(intptr_t)ov;
	h->clock = CLOCK_MONOTONIC;
	h->notify = SIGEV_SIGNAL;
	h->signo = SIG;
	h->value = (void *)0x42;
	h->overrun = overrun;
	n++;
	sh->n = n;

	/* What gettime says now, for the restoring process to compare. */
	sh->read_at = now_ns(CLOCK_MONOTONIC);
	for (int i = 0; i < n; i++) {
		struct itimerspec cur;
		EXPECT(ptimer_gettime((timer_t)(intptr_t)sh->t[i].id, &cur) == 0);
		sh->t[i].remaining = ts_ns(&cur.it_value);
		sh->t[i].interval = ts_ns(&cur.it_interval);
	}
	int fd = *(int *)arg;
	char why[256] = "";
	struct ptimer_restore_opts o = { .size = sizeof(o), .error = why, .error_size = sizeof(why) };
	int r = ptimer_checkpoint(fd, &o);
	if (r != n)
		fprintf(stderr, "checkpoint: %d of %d: %s\n", r, n, why);
	EXPECT(r == n);
	return 0;
}

static pid_t restore_helper;

static pid_t map_tid(void *arg, pid_t saved)
{
	(void)arg;
	if (saved == sh->helper_tid)
		return restore_helper;
	if (saved == sh->main_tid)
		return (pid_t)syscall(SYS_gettid);
	return 0;
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

/* The time a restored timer has left, against what it had: less what
 * went by since it was read, on a clock both processes share (relative
 * timers run on, absolute ones keep their deadline); on a CPU clock, each
 * process's own time, within that and a second. */
static bool remaining_ok(const struct had *h, int64_t rem)
{
	int64_t gap = now_ns(CLOCK_MONOTONIC) - sh->read_at;
	bool ok;
	if ((rem == 0) != (h->remaining == 0))
		ok = false;
	else if (rem == 0)
		ok = true;
	else if (h->interval && h->interval < NSEC && h->remaining <= h->interval)
		ok = rem <= h->interval + MARGIN; /* a short period: somewhere in the next */
	else if (!h->cpu)
		ok = rem >= h->remaining - gap - MARGIN && rem <= h->remaining + MARGIN;
	else
		ok = llabs(rem - h->remaining) <= gap + NSEC;
	if (!ok)
		fprintf(stderr, "timer %d: %lld ns remaining, had %lld, %lld ns ago\n", h->id,
			(long long)rem, (long long)h->remaining, (long long)gap);
	return ok;
}

static int find_had(int id)
{
	for (int i = 0; i < sh->n; i++)
		if (sh->t[i].id == id)
			return i;
	return -1;
}

/* Is clock the one h's stands for in this process? */
static bool same_clock(const struct had *h, clockid_t clock, pid_t helper)
{
	if (!h->cpu)
		return clock == h->clock;
	/* The engine keeps the form a clock was given in; the kernel names
	 * CLOCK_*_CPUTIME_ID by the encoding of "pid/tid 0", and others
	 * explicitly: each is the same clock. */
	pid_t self = (pid_t)syscall(SYS_gettid);
	if (h->cpu == 1)
		return clock == ((clockid_t)((unsigned)~getpid() << 3) | 2) ||
		       (!h->explicit_clock &&
			(clock == CLOCK_PROCESS_CPUTIME_ID || clock == ((clockid_t)(~0u << 3) | 2)));
	pid_t tid = h->cpu_helper ? helper : self;
	return clock == ((clockid_t)((unsigned)~tid << 3) | 6) ||
	       (!h->explicit_clock && tid == self &&
		(clock == CLOCK_THREAD_CPUTIME_ID || clock == ((clockid_t)(~0u << 3) | 6)));
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

static int memfd(void)
{
	return (int)syscall(SYS_memfd_create, "image", 1u /* MFD_CLOEXEC */);
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

static int kernel_make(void *arg)
{
	int fd = *(int *)arg;
	pthread_t th;
	EXPECT(raise_sigpending() == 0);
	EXPECT(block_sig() == 0);
	EXPECT(start_helper(&th) == 0);
	sh->main_tid = (pid_t)syscall(SYS_gettid);
	sh->helper_tid = helper_tid;
	bool prctl_ok = syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) == 0;
	int n = 0, next = 0;
	static const int kinds[] = { SIGEV_NONE, SIGEV_SIGNAL, SIGEV_THREAD_ID };
	for (int c = 0; c < NCLOCKS; c++) {
		for (int k = 0; k < 3; k++) {
			struct had *h = &sh->t[n];
			memset(h, 0, sizeof(*h));
			h->clock = clock_of(c, th);
			describe(h, c);
			h->notify = kinds[k] == SIGEV_THREAD_ID ? SIGEV_SIGNAL | SIGEV_THREAD_ID : kinds[k];
			h->signo = h->notify == SIGEV_NONE ? 0 : SIG;
			h->value = (void *)(uintptr_t)(0x2000 + n);
			h->to_helper = kinds[k] == SIGEV_THREAD_ID;
			struct sigevent sev = { .sigev_notify = h->notify, .sigev_signo = h->signo,
						.sigev_value.sival_ptr = h->value };
			if (h->to_helper)
				sev._sigev_un._tid = helper_tid;
			int id = prctl_ok ? kernel_ids[next] : 0;
			if (ktimer_create(h->clock, &sev, &id) != 0) {
				if ((c == C_REALTIME_ALARM || c == C_BOOTTIME_ALARM) &&
				    (errno == EOPNOTSUPP || errno == EPERM || errno == ENOTSUP)) {
					sh->skipped_alarm = errno;
					continue;
				}
				EXPECT(!"timer_create");
			}
			next++;
			h->id = id;
			int flags;
			struct itimerspec its = setting(c + k, n, h->clock, &flags, &h->absolute);
			EXPECT(syscall(SYS_timer_settime, id, flags, &its, NULL) == 0);
			n++;
		}
	}
	/* Overruns, as on the engine. */
	struct had *h = &sh->t[n];
	memset(h, 0, sizeof(*h));
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIG,
				.sigev_value.sival_ptr = (void *)0x42 };
	int ov = prctl_ok ? kernel_ids[next] : 0;
	EXPECT(ktimer_create(CLOCK_MONOTONIC, &sev, &ov) == 0);
	if (prctl_ok)
		EXPECT(syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0) == 0);
	struct itimerspec its = { ns_ts(NSEC / 1000), ns_ts(NSEC / 1000) };
	EXPECT(syscall(SYS_timer_settime, ov, 0, &its, NULL) == 0);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIG);
	EXPECT(sigwaitinfo(&s, NULL) == SIG);
	struct timespec gap = { 0, 20 * 1000 * 1000 };
	nanosleep(&gap, NULL);
	EXPECT(sigwaitinfo(&s, NULL) == SIG);
	int overrun = (int)syscall(SYS_timer_getoverrun, ov);
	EXPECT(overrun > 0);
	h->id = ov;
	h->clock = CLOCK_MONOTONIC;
	h->notify = SIGEV_SIGNAL;
	h->signo = SIG;
	h->value = (void *)0x42;
	h->overrun = overrun;
	n++;
	sh->n = n;
	sh->read_at = now_ns(CLOCK_MONOTONIC);
	for (int i = 0; i < n; i++) {
		struct itimerspec cur;
		EXPECT(syscall(SYS_timer_gettime, sh->t[i].id, &cur) == 0);
		sh->t[i].remaining = ts_ns(&cur.it_value);
		sh->t[i].interval = ts_ns(&cur.it_interval);
	}
	char why[256] = "";
	struct ptimer_restore_opts o = { .size = sizeof(o), .error = why, .error_size = sizeof(why) };
	int r = ptimer_kernel_checkpoint(fd, &o);
	if (r != n)
		fprintf(stderr, "kernel checkpoint: %d of %d: %s\n", r, n, why);
	EXPECT(r == n);
	return 0;
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

/* ---- images built here ---- */

struct img {
	uint8_t *buf;
	size_t len, cap;
};

/* Room for n more bytes, doubling: a 100,000-entry image is built one
 * field at a time, and growing by the field would copy it quadratically
 * (minutes under the sanitizers). */
static void img_room(struct img *m, size_t n)
{
	if (m->len + n <= m->cap)
		return;
	size_t cap = m->cap ? m->cap : 4096;
	while (cap < m->len + n)
		cap *= 2;
	m->buf = realloc(m->buf, cap);
	assert_non_null(m->buf);
	m->cap = cap;
}

static void img_u32(struct img *m, uint32_t v)
{
	img_room(m, 4);
	memcpy(m->buf + m->len, &v, 4);
	m->len += 4;
}

static void img_entry(struct img *m, const PtimersEntry *e)
{
	size_t n = ptimers_entry__get_packed_size(e);
	img_u32(m, (uint32_t)n);
	img_room(m, n);
	ptimers_entry__pack(e, m->buf + m->len);
	m->len += n;
}

static struct img img_start(void)
{
	struct img m = { NULL, 0, 0 };
	img_u32(&m, 0x54564319u);
	img_u32(&m, 0x52603957u);
	return m;
}

/* An entry as CRIU writes one: a relative timer on CLOCK_MONOTONIC. */
static PtimersEntry entry(int id)
{
	PtimersEntry e;
	ptimers_entry__init(&e);
	e.it_id = (uint32_t)id;
	e.clock_id = CLOCK_MONOTONIC;
	e.si_signo = (uint32_t)SIG;
	e.it_sigev_notify = SIGEV_SIGNAL;
	e.sival_ptr = 0x99;
	e.vsec = 100;
	return e;
}

/* The image in a file descriptor, read from its start. */
static int img_fd(const struct img *m)
{
	int fd = memfd();
	if (m->len && write(fd, m->buf, m->len) != (ssize_t)m->len)
		abort();
	lseek(fd, 0, SEEK_SET);
	return fd;
}

/* The process's timers, to see that a refusal left them alone. */
static int snapshot(struct ptimer_info *info, int max)
{
	return ptimer_list(0, info, sizeof(*info), max);
}

static char why[256];

/* Restore m; expect a refusal with err, a message containing says, and
 * nothing changed. */
static void expect_refused(const struct img *m, int err, const char *says)
{
	struct ptimer_info before[16], after[16];
	int nb = snapshot(before, 16);
	int fd = img_fd(m);
	struct ptimer_restore_opts o = { .size = sizeof(o), .error = why, .error_size = sizeof(why) };
	why[0] = '\0';
	errno = 0;
	int r = ptimer_restore(fd, &o);
	close(fd);
	if (r != -1 || errno != err || !strstr(why, says))
		printf("# got %d, errno %d (%s), \"%s\"; expected errno %d and \"%s\"\n", r, errno,
		       strerror(errno), why, err, says);
	assert_int_equal(r, -1);
	assert_int_equal(errno, err);
	assert_non_null(strstr(why, says));
	int na = snapshot(after, 16);
	assert_int_equal(na, nb);
	for (int i = 0; i < na; i++) {
		assert_int_equal(after[i].id, before[i].id);
		assert_int_equal(after[i].armed, before[i].armed);
	}
}

static void test_refuse_not_an_image(void **state)
{
	(void)state;
	struct img m = { NULL, 0 };
	expect_refused(&m, EINVAL, "not a POSIX timers image");
	img_u32(&m, 0x54564319u);
	img_u32(&m, 0x12345678u); /* another of CRIU's images */
	expect_refused(&m, EINVAL, "magic");
	free(m.buf);
}

static void test_refuse_hostile_lengths(void **state)
{
	(void)state;
	struct img m = img_start();
	img_u32(&m, 0xffffffffu); /* past the end, and far past any entry */
	expect_refused(&m, EINVAL, "claims");
	free(m.buf);
	m = img_start();
	img_u32(&m, 600); /* plausible, but past the end */
	img_u32(&m, 0);
	expect_refused(&m, EINVAL, "truncated");
	free(m.buf);
	m = img_start();
	m.buf = realloc(m.buf, m.len + 2);
	m.buf[m.len++] = 1; /* half a length */
	m.buf[m.len++] = 0;
	expect_refused(&m, EINVAL, "truncated");
	free(m.buf);
	/* Garbage where an entry should be. */
	m = img_start();
	img_u32(&m, 24);
	for (int i = 0; i < 6; i++)
		img_u32(&m, 0xffffffffu);
	expect_refused(&m, EINVAL, "cannot be decoded");
	free(m.buf);
	/* An entry missing required fields. */
	m = img_start();
	img_u32(&m, 20);
	m.buf = realloc(m.buf, m.len + 20);
	for (int i = 0; i < 10; i++) { /* it_id = 1, ten times, and nothing else */
		m.buf[m.len++] = 0x08;
		m.buf[m.len++] = 0x01;
	}
	expect_refused(&m, EINVAL, "cannot be decoded");
	free(m.buf);
	/* Too short to be an entry at all. */
	m = img_start();
	img_u32(&m, 2);
	m.buf = realloc(m.buf, m.len + 2);
	m.buf[m.len++] = 0x08;
	m.buf[m.len++] = 0x01;
	expect_refused(&m, EINVAL, "claims 2 bytes");
	free(m.buf);
}

static void test_refuse_bad_entries(void **state)
{
	(void)state;
	struct img m;
	PtimersEntry e;

#define CASE(stmt, text)                              \
	do {                                          \
		m = img_start();                      \
		e = entry(7);                         \
		img_entry(&m, &e);                    \
		e = entry(8);                         \
		stmt;                                 \
		img_entry(&m, &e);                    \
		expect_refused(&m, EINVAL, text);     \
		free(m.buf);                          \
	} while (0)

	CASE(e.it_id = 0x80000000u, "outside 0..");
	CASE(e.it_id = 7, "appears twice");
	CASE(e.clock_id = 3, "cannot drive a timer");
	CASE(e.clock_id = 99, "cannot drive a timer");
	CASE(e.clock_id = (uint32_t)-5 /* a dynamic clock's descriptor */, "cannot drive a timer");
	CASE(e.si_signo = 0, "signal 0");
	CASE(e.si_signo = 65, "signal 65");
	CASE(e.it_sigev_notify = 7, "not a SIGEV_* kind");
	CASE(e.it_sigev_notify = SIGEV_THREAD_ID | SIGEV_SIGNAL, "without a thread");
	CASE(e.insec = 1000000000, "time out of range");
	CASE(e.vsec = UINT64_MAX, "time out of range");
	CASE(e.it_sigev_notify = SIGEV_THREAD, "thread_notify");
#undef CASE
}

static void test_refuse_id_in_use(void **state)
{
	(void)state;
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	timer_t t = (timer_t)(intptr_t)123456;
	assert_int_equal(ptimer_restore_ids(PTIMER_RESTORE_IDS_ON, 0, 0, 0), 0);
	assert_int_equal(ptimer_create(CLOCK_MONOTONIC, &none, &t), 0);
	assert_int_equal(ptimer_restore_ids(PTIMER_RESTORE_IDS_OFF, 0, 0, 0), 0);
	struct img m = img_start();
	int ids[] = { 11, 99999, 123456, 2000000 };
	for (int i = 0; i < 4; i++) {
		PtimersEntry e = entry(ids[i]);
		img_entry(&m, &e);
	}
	expect_refused(&m, EBUSY, "timer 123456");
	/* None of the others was left behind. */
	struct itimerspec cur;
	assert_int_equal(ptimer_gettime((timer_t)(intptr_t)11, &cur), -1);
	assert_int_equal(ptimer_gettime((timer_t)(intptr_t)2000000, &cur), -1);
	free(m.buf);
	assert_int_equal(ptimer_delete(t), 0);
}

static pid_t refuse_map(void *arg, pid_t saved)
{
	(void)arg;
	(void)saved;
	return 0;
}

static void test_refuse_unmapped_thread(void **state)
{
	(void)state;
	struct img m = img_start();
	PtimersEntry e = entry(5);
	e.it_sigev_notify = SIGEV_SIGNAL | SIGEV_THREAD_ID;
	e.has_notify_thread_id = 1;
	e.notify_thread_id = 4242;
	img_entry(&m, &e);
	int fd = img_fd(&m);
	struct ptimer_restore_opts o = { .size = sizeof(o), .map_tid = refuse_map, .error = why,
					 .error_size = sizeof(why) };
	assert_int_equal(ptimer_restore(fd, &o), -1);
	assert_int_equal(errno, ESRCH);
	assert_non_null(strstr(why, "refused by map_tid"));
	close(fd);
	free(m.buf);
}

/* A checkpoint of this process, then every prefix and every flipped byte
 * of it refused. */
static void test_refuse_truncated_and_corrupted(void **state)
{
	(void)state;
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	timer_t t[3];
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ptimer_create(CLOCK_MONOTONIC, &none, &t[i]), 0);
		struct itimerspec its = { { 1, i }, { 50 + i, 0 } };
		assert_int_equal(ptimer_settime(t[i], 0, &its, NULL), 0);
	}
	int fd = memfd();
	assert_int_equal(ptimer_checkpoint(fd, NULL), 3);
	struct img whole = { NULL, (size_t)lseek(fd, 0, SEEK_END) };
	whole.buf = malloc(whole.len);
	assert_int_equal(pread(fd, whole.buf, whole.len, 0), (ssize_t)whole.len);
	close(fd);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ptimer_delete(t[i]), 0);

	for (size_t cut = 0; cut < whole.len; cut++) {
		if (cut == 8)
			continue; /* the magic alone: an image of no timers (ptimers.h) */
		struct img m = { malloc(cut + 1), cut };
		memcpy(m.buf, whole.buf, cut);
		expect_refused(&m, EINVAL, "");
		free(m.buf);
	}
	for (size_t at = 0; at < whole.len; at++) {
		for (int bit = 0; bit < 8; bit += 3) {
			struct img m = { malloc(whole.len), whole.len };
			memcpy(m.buf, whole.buf, whole.len);
			m.buf[at] ^= (uint8_t)(1u << bit);
			expect_refused(&m, EINVAL, "");
			free(m.buf);
		}
	}
	/* A trailing record, or reordered ones, are caught by the count and
	 * the checksum. */
	struct img m = { malloc(whole.len + 64), whole.len };
	memcpy(m.buf, whole.buf, whole.len);
	PtimersEntry e = entry(77);
	img_entry(&m, &e);
	expect_refused(&m, EINVAL, "header says");
	free(m.buf);
	/* The whole image still restores, in a child (its IDs are this
	 * process's, deleted above, but the image is what matters). */
	free(whole.buf);
}

static void test_refuse_bad_opts(void **state)
{
	(void)state;
	struct img m = img_start();
	int fd = img_fd(&m);
	struct ptimer_restore_opts o = { .size = 3 };
	assert_int_equal(ptimer_restore(fd, &o), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(ptimer_restore(fd, (void *)16), -1);
	assert_int_equal(errno, EFAULT);
	assert_int_equal(ptimer_checkpoint(-1, NULL), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(ptimer_restore(-1, NULL), -1);
	assert_int_equal(errno, EBADF);
	close(fd);
	free(m.buf);
}

/* An empty image (no timers) restores nothing and is no error. */
static void test_empty_image(void **state)
{
	(void)state;
	struct img m = img_start();
	int fd = img_fd(&m);
	assert_int_equal(ptimer_restore(fd, NULL), 0);
	close(fd);
	free(m.buf);
}

/* A large image: decoded on two threads (src/image.c, from 65536
 * entries).  Every timer comes back; a corrupted entry in the second half
 * is the one named. */
#define LARGE 70000

static int large_make(void *arg)
{
	int fd = *(int *)arg;
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	EXPECT(ptimer_restore_ids(PTIMER_RESTORE_IDS_ON, 0, 0, 0) == 0);
	for (int i = 0; i < LARGE; i++) {
		timer_t t = (timer_t)(intptr_t)(i * 30011 + 7);
		none.sigev_value.sival_int = i;
		EXPECT(ptimer_create(CLOCK_MONOTONIC, &none, &t) == 0);
		struct itimerspec its = { { i % 5, 0 }, { 100 + i % 100, i } };
		EXPECT(ptimer_settime(t, 0, &its, NULL) == 0);
	}
	EXPECT(ptimer_checkpoint(fd, NULL) == LARGE);
	return 0;
}

static int large_restore(void *arg)
{
	int fd = *(int *)arg;
	EXPECT(lseek(fd, 0, SEEK_SET) == 0);
	EXPECT(ptimer_restore(fd, NULL) == LARGE);
	struct ptimer_info info[64];
	int from = 0, seen = 0, n;
	while ((n = ptimer_list(from, info, sizeof(info[0]), 64)) > 0) {
		for (int i = 0; i < n; i++) {
			EXPECT(info[i].id == seen * 30011 + 7);
			EXPECT(info[i].value.sival_int == seen);
			EXPECT(info[i].setting.it_interval.tv_sec == seen % 5);
			seen++;
		}
		from = info[n - 1].id + 1;
	}
	EXPECT(seen == LARGE);
	return 0;
}

static void test_large_image(void **state)
{
	(void)state;
	int fd = memfd();
	assert_int_equal(run_child(large_make, &fd), 0);
	assert_int_equal(run_child(large_restore, &fd), 0);
	/* Corrupt entry 60000's notification (a value no SIGEV_* has), past
	 * the checksum's reach: without the header, as crit would write it. */
	size_t len = (size_t)lseek(fd, 0, SEEK_END);
	uint8_t *buf = malloc(len);
	assert_int_equal(pread(fd, buf, len, 0), (ssize_t)len);
	struct img m = img_start();
	size_t at = 8;
	for (int rec = 0; at < len; rec++) {
		uint32_t rl;
		memcpy(&rl, buf + at, 4);
		PtimersEntry *e = ptimers_entry__unpack(NULL, rl, buf + at + 4);
		assert_non_null(e);
		if (e->image) {
			ptimers_image__free_unpacked(e->image, NULL);
			e->image = NULL;
		}
		if (rec == 60000)
			e->it_sigev_notify = 9;
		img_entry(&m, e);
		ptimers_entry__free_unpacked(e, NULL);
		at += 4 + rl;
	}
	expect_refused(&m, EINVAL, "entry 60000 (timer");
	free(m.buf);
	free(buf);
	close(fd);
}

static void ignore_sig(int sig)
{
	(void)sig;
}

int main(void)
{
	/* SIG is blocked where it is waited for; a thread of a sanitizer's
	 * runtime may still be picked for it: a handler, not death. */
	struct sigaction sa = { .sa_handler = ignore_sig };
	sigaction(SIG, &sa, NULL);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	/* Cases that cannot run here are left out, and said so: cmocka's
	 * skip counts as a failure under meson. */
	struct CMUnitTest tests[32];
	size_t n = 0;
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_engine_round_trip);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_thread_notify_runs);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_absolute_past_deadline);
	if (RUNNING_ON_VALGRIND)
		printf("# test_large_image not run under valgrind (minutes there): the plain and "
		       "sanitizer runs cover it\n");
	else
		tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_large_image);
	if (kernel_has_room()) {
		tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_kernel_round_trip);
		tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_engine_image_as_kernel);
		tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_kernel_glibc_thread_refused);
		tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_kernel_refusals);
	} else {
		printf("# the kernel round trips not run: the kernel refuses timers (EAGAIN), this "
		       "user's RLIMIT_SIGPENDING being taken by its other processes\n");
	}
	const struct CMUnitTest rest[] = {
		cmocka_unit_test(test_refuse_not_an_image),
		cmocka_unit_test(test_refuse_hostile_lengths),
		cmocka_unit_test(test_refuse_bad_entries),
		cmocka_unit_test(test_refuse_id_in_use),
		cmocka_unit_test(test_refuse_unmapped_thread),
		cmocka_unit_test(test_refuse_truncated_and_corrupted),
		cmocka_unit_test(test_refuse_bad_opts),
		cmocka_unit_test(test_empty_image),
	};
	for (size_t i = 0; i < sizeof(rest) / sizeof(rest[0]); i++)
		tests[n++] = rest[i];
	return _cmocka_run_group_tests("test_image", tests, n, NULL, NULL);
}
