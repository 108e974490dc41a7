/* SPDX-License-Identifier: MIT */
/*
 * What the image tests share (image_common.h): children, clocks, the
 * timers a round trip makes and checks, on the engine and on the kernel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image_common.h"

int run_child(int (*fn)(void *), void *arg)
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

int64_t ts_ns(const struct timespec *t)
{
	return t->tv_sec * NSEC + t->tv_nsec;
}

struct timespec ns_ts(int64_t ns)
{
	return (struct timespec){ ns / NSEC, ns % NSEC };
}

int64_t now_ns(clockid_t c)
{
	struct timespec t;
	clock_gettime(c, &t);
	return ts_ns(&t);
}

struct shared *sh;

/* A thread that only waits: a target for SIGEV_THREAD_ID, and a thread
 * whose CPU clock can drive a timer. */
static int helper_pipe[2];
pid_t helper_tid;

static void *helper(void *arg)
{
	(void)arg;
	__atomic_store_n(&helper_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	char c;
	while (read(helper_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

int start_helper(pthread_t *th)
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

void tick_fn(union sigval v)
{
	(void)v;
}

int block_sig(void)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIG);
	return pthread_sigmask(SIG_BLOCK, &s, NULL);
}

clockid_t clock_of(int c, pthread_t th)
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

void describe(struct had *h, int c)
{
	h->cpu = c == C_PROCESS_CPU || c == C_PID_CPU ? 1 : c == C_THREAD_CPU || c == C_HELPER_CPU ? 2 : 0;
	h->cpu_helper = c == C_HELPER_CPU;
	h->explicit_clock = c == C_PID_CPU || c == C_HELPER_CPU;
}

/* How a timer is armed: relative with an interval, absolute, or not. */
struct itimerspec setting(int k, int i, clockid_t clock, int *flags, bool *absolute)
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


pid_t restore_helper;

pid_t map_tid(void *arg, pid_t saved)
{
	(void)arg;
	if (saved == sh->helper_tid)
		return restore_helper;
	if (saved == sh->main_tid)
		return (pid_t)syscall(SYS_gettid);
	return 0;
}

/* The time a restored timer has left, against what it had: less what
 * went by since it was read, on a clock both processes share (relative
 * timers run on, absolute ones keep their deadline); on a CPU clock, each
 * process's own time, within that and a second. */
bool remaining_ok(const struct had *h, int64_t rem)
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

int find_had(int id)
{
	for (int i = 0; i < sh->n; i++)
		if (sh->t[i].id == id)
			return i;
	return -1;
}

/* Is clock the one h's stands for in this process? */
bool same_clock(const struct had *h, clockid_t clock, pid_t helper)
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

int memfd(void)
{
	return (int)syscall(SYS_memfd_create, "image", 1u /* MFD_CLOEXEC */);
}

/* The timers of a round trip: on every clock, one of each of m's kinds
 * with the ID m asks for, armed relative, absolute or not at all; then
 * one with overruns (1 ms periods, its signal taken twice with periods
 * missed between, its next one pending and blocked), created with a
 * plain ID.  What each has goes into sh; then m checkpoints them to fd. */
int make_timers(const struct maker *m, int fd)
{
	pthread_t th;
	EXPECT(block_sig() == 0);
	EXPECT(start_helper(&th) == 0);
	sh->main_tid = (pid_t)syscall(SYS_gettid);
	sh->helper_tid = helper_tid;
	bool ids = m->restore_ids(PTIMER_RESTORE_IDS_ON) == 0;
	int n = 0;
	for (int c = 0; c < NCLOCKS; c++) {
		for (int k = 0; k < m->nkinds; k++) {
			struct had *h = &sh->t[n];
			memset(h, 0, sizeof(*h));
			h->clock = clock_of(c, th);
			describe(h, c);
			int kind = m->kinds[k];
			h->notify = kind == SIGEV_THREAD_ID ? SIGEV_SIGNAL | SIGEV_THREAD_ID : kind;
			h->signo = h->notify == SIGEV_THREAD || h->notify == SIGEV_NONE ? 0 : SIG;
			h->value = (void *)(m->value_base + (uintptr_t)n);
			h->to_helper = kind == SIGEV_THREAD_ID;
			struct sigevent sev = { .sigev_notify = h->notify, .sigev_signo = h->signo,
						.sigev_value.sival_ptr = h->value };
			if (h->notify == SIGEV_THREAD)
				sev.sigev_notify_function = tick_fn;
			if (h->to_helper)
				sev._sigev_un._tid = helper_tid;
			int want = ids ? m->want(c, k, n) : 0, id = want;
			if (m->create(h->clock, &sev, &id) != 0) {
				if ((c == C_REALTIME_ALARM || c == C_BOOTTIME_ALARM) &&
				    (errno == EOPNOTSUPP || errno == EPERM || errno == ENOTSUP)) {
					sh->skipped_alarm = errno;
					continue; /* no RTC to wake, or no CAP_WAKE_ALARM */
				}
				EXPECT(!"create");
			}
			if (ids)
				EXPECT(id == want);
			h->id = id;
			int flags;
			struct itimerspec its = setting(c + k, n, h->clock, &flags, &h->absolute);
			EXPECT(m->settime(id, flags, &its) == 0);
			n++;
		}
	}
	if (ids)
		EXPECT(m->restore_ids(PTIMER_RESTORE_IDS_OFF) == 0);

	struct had *h = &sh->t[n];
	memset(h, 0, sizeof(*h));
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIG,
				.sigev_value.sival_ptr = (void *)0x42 };
	int ov = 0;
	EXPECT(m->create(CLOCK_MONOTONIC, &sev, &ov) == 0);
	struct itimerspec its = { ns_ts(NSEC / 1000), ns_ts(NSEC / 1000) };
	EXPECT(m->settime(ov, 0, &its) == 0);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIG);
	EXPECT(sigwaitinfo(&s, NULL) == SIG);
	struct timespec gap = { 0, 20 * 1000 * 1000 }; /* periods go by: that is the point */
	nanosleep(&gap, NULL);
	EXPECT(sigwaitinfo(&s, NULL) == SIG);
	int overrun = m->getoverrun(ov);
	EXPECT(overrun > 0);
	/* It runs on, its next signal pending and blocked: the count stays
	 * (timer_settime would reset it, as the kernel's does). */
	h->id = ov;
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
		EXPECT(m->gettime(sh->t[i].id, &cur) == 0);
		sh->t[i].remaining = ts_ns(&cur.it_value);
		sh->t[i].interval = ts_ns(&cur.it_interval);
	}
	char why[256] = "";
	struct ptimer_restore_opts o = { .size = sizeof(o), .error = why, .error_size = sizeof(why) };
	int r = m->checkpoint(fd, &o);
	if (r != n)
		fprintf(stderr, "checkpoint: %d of %d: %s\n", r, n, why);
	EXPECT(r == n);
	return 0;
}

static void ignore_sig(int sig)
{
	(void)sig;
}

int image_tests_init(void)
{
	/* SIG is blocked where it is waited for; a thread of a sanitizer's
	 * runtime may still be picked for it: a handler, not death. */
	struct sigaction sa = { .sa_handler = ignore_sig };
	sigaction(SIG, &sa, NULL);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return sh == MAP_FAILED ? -1 : 0;
}
