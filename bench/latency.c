/* SPDX-License-Identifier: MIT */
/*
 * Lateness of a 1 ms periodic timer: the time from each period's expiry to
 * the moment a thread waiting in sigwaitinfo() has the signal, engine
 * against kernel, alone and with 10,000 other timers armed far ahead.
 * Percentiles over 6,000 periods of each (6 turns of 1,000, each after 50
 * of warm-up), engine and kernel taking turns.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "private.h"
#include "ptimers.h"

#define PERIOD 1000000LL
#define WARMUP 50
#define SAMPLES 1000
#define OTHERS 10000

struct api {
	int (*create)(clockid_t, struct sigevent *, timer_t *);
	int (*settime)(timer_t, int, const struct itimerspec *, struct itimerspec *);
	int (*del)(timer_t);
};
static const struct api kernel_api = { timer_create, timer_settime, timer_delete };
static const struct api engine_api = { ptimer_create, ptimer_settime, ptimer_delete };

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* A SIGEV_SIGNAL notification by sig, which the calling thread then
 * blocks, to take it with sigtimedwait; *set holds sig. */
static struct sigevent blocked_signal(int sig, sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, sig);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = sig;
	return sev;
}

/* Takes whatever of set is still pending on this thread or the process
 * (a turn's last signals), so that the next turn starts with none. */
static void drain_pending(const sigset_t *set)
{
	while (sigtimedwait(set, NULL, &(struct timespec){ 0, 0 }) > 0)
		;
}

/* Engine turns of the last measure_turns() whose timer was not handed to
 * a kernel timer by the end. */
static int engine_sent_turns;

/* One turn of SAMPLES periods: each one's lateness (ns) into late[], and
 * the CPU the process used meanwhile, as a share of one CPU.  0, or -1
 * (errno). */
static int measure(const struct api *a, int others, int64_t *late, double *cpu)
{
	int sig = SIGRTMIN + 1;
	sigset_t set;
	struct sigevent sev = blocked_signal(sig, &set);
	sev.sigev_signo = SIGRTMIN; /* the others': never comes */
	static timer_t other[OTHERS];
	int made = 0, err = 0;
	for (; made < others; made++) {
		struct itimerspec far = { .it_value = { 3600 + made % 3600, (long)made * 7919 % 1000000000 } };
		if (a->create(CLOCK_MONOTONIC, &sev, &other[made]) != 0)
			break;
		if (a->settime(other[made], 0, &far, NULL) != 0) {
			a->del(other[made]);
			break;
		}
	}
	timer_t t;
	sev.sigev_signo = sig;
	if (made < others || a->create(CLOCK_MONOTONIC, &sev, &t) != 0) {
		err = errno;
		goto out;
	}
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t start = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec + PERIOD;
	struct itimerspec its = { .it_value = { start / 1000000000, start % 1000000000 },
				  .it_interval = { 0, PERIOD } };
	int n = 0;
	int64_t period = 0;
	if (a->settime(t, TIMER_ABSTIME, &its, NULL) != 0) {
		err = errno;
		goto out_t;
	}
	/* CPU over the sampled periods, after the warm-up: the engine's
	 * thread takes the others' armings into its queue meanwhile, work the
	 * kernel did inside their settime calls. */
	double c0 = 0;
	int64_t w0 = 0;
	while (n < SAMPLES) {
		siginfo_t si;
		struct timespec limit = { 1, 0 };
		if (sigtimedwait(&set, &si, &limit) != sig) {
			err = errno ? errno : EIO;
			break;
		}
		int64_t got = bench_now();
		period += 1 + si.si_overrun;
		int64_t due = start + (period - 1) * PERIOD;
		if (period > WARMUP) {
			if (!n) {
				c0 = bench_cpu_seconds();
				w0 = bench_now();
			}
			late[n++] = got - due;
		}
	}
	if (!err)
		*cpu = (bench_cpu_seconds() - c0) / ((double)(bench_now() - w0) / 1e9);
	if (a == &engine_api) {
		struct ptimer_stats st;
		if (ptimer_get_stats(&st, sizeof(st)) == 0 && st.handed_off == 0)
			engine_sent_turns++;
	}
out_t:
	a->del(t);
out:
	for (int i = 0; i < made; i++)
		a->del(other[i]);
	drain_pending(&set);
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

/* Turns a side for the rows the targets are read from, and for the one
 * that shows the path the drop-in no longer takes. */
#define TURNS 10
#define TURNS_SHOWN 4

/* Engine and kernel taking turns, `turns` short turns each (who goes
 * first alternating): p50 and p99 (us) over all of a side's periods
 * pooled, and the median turn's CPU.  This machine's lateness moves from
 * one second to the next, whoever runs; short turns one after the other
 * let both meet much the same weather.  A turn's CPU now and then comes
 * out half as much again as its neighbours' on either side (the host's
 * work landing in it): with six turns a side the CPU ratio came out 0.73
 * in one full run of five and 0.87-1.08 in the others; with ten, such
 * turns must be half of one side's to move its median.  How much the
 * weather still decides: the
 * kernel's timer in the engine's turns, against itself, gave p50 ratios
 * of 0.97-1.04 but p99 ratios of 0.94-2.21 here.  (Running the two timers
 * at once, half a period apart, was tried: each then moves the other's
 * lateness.) */
struct lat {
	double e50, e99, ecpu, k50, k99, kcpu;
	double kodd99, keven99; /* the kernel's p99 over its odd and even turns */
	double kodd50, keven50; /* and its p50 */
};

/* The p50 and p99 (us) of n lateness values, sorted in place. */
static void percentiles(int64_t *v, int n, double *p50, double *p99)
{
	qsort(v, n, sizeof(*v), cmp);
	*p50 = (double)v[n / 2] / 1000;
	*p99 = (double)v[n * 99 / 100] / 1000;
}

static int measure_turns(int others, int turns, struct lat *m)
{
	static int64_t late[2][TURNS * SAMPLES];
	double cpu[2][TURNS];
	const struct api *api[2] = { &engine_api, &kernel_api };
	engine_sent_turns = 0;
	for (int i = 0; i < turns; i++)
		for (int k = 0; k < 2; k++) {
			int who = (i + k) % 2;
			if (measure(api[who], others, &late[who][i * SAMPLES], &cpu[who][i]) != 0)
				return -1;
		}
	/* The noise a p99 (and a p50) carries in this run: the kernel's own
	 * turns, one half against the other. */
	static int64_t half[2][TURNS / 2 * SAMPLES];
	for (int i = 0; i < turns; i++)
		memcpy(&half[i % 2][i / 2 * SAMPLES], &late[1][i * SAMPLES], SAMPLES * sizeof(late[0][0]));
	percentiles(half[0], turns / 2 * SAMPLES, &m->kodd50, &m->kodd99);
	percentiles(half[1], turns / 2 * SAMPLES, &m->keven50, &m->keven99);
	percentiles(late[0], turns * SAMPLES, &m->e50, &m->e99);
	percentiles(late[1], turns * SAMPLES, &m->k50, &m->k99);
	m->ecpu = bench_median(cpu[0], turns);
	m->kcpu = bench_median(cpu[1], turns);
	return 0;
}

int bench_latency(const struct bench_opts *o, struct bench_report *r)
{
	(void)o;
	/* As the drop-in runs it: the timer handed to a kernel timer of its
	 * ID (src/handoff.h) where this kernel can make one; and, after, the
	 * engine sending every signal itself (PTIMERS_HANDOFF=0). */
	bool handoff = ptimer__handoff(64) == 0;
	const char *how = handoff ? "handed to a kernel timer of its ID, as in the drop-in; " BENCH_STR(TURNS)
				    " turns each, pooled"
				  : "this kernel cannot hand timers off: the engine sends; " BENCH_STR(TURNS)
				    " turns each, pooled";
	for (int others = 0; others <= OTHERS; others += OTHERS) {
		struct lat m;
		if (measure_turns(others, TURNS, &m) != 0) {
			int err = errno;
			ptimer__handoff(0);
			fprintf(stderr, "ptimers bench: latency with %d other timers: %s%s\n", others,
				strerror(err),
				err == EAGAIN ? " (the user's RLIMIT_SIGPENDING is used up by others)" : "");
			return -1;
		}
		/* A turn whose timer the engine kept sending measured another
		 * path than the rows name: say so. */
		char name[48], note[96], sent[48] = "";
		if (handoff && engine_sent_turns)
			snprintf(sent, sizeof(sent), "; %d of %d engine turns not handed off",
				 engine_sent_turns, TURNS);
		snprintf(note, sizeof(note), "whole process; target within 1.2x%s", sent);
		snprintf(name, sizeof(name), "late_1ms_p50%s", others ? "_10k_armed" : "");
		bench_add(r, name, "us", m.e50, m.k50, "kernel", false, others ? "" : how);
		snprintf(name, sizeof(name), "late_1ms_p50%s_kernel_a_a", others ? "_10k_armed" : "");
		bench_add(r, name, "us", m.keven50, m.kodd50, "kernel", false,
			  "A/A, this run's noise: the kernel's even turns against its odd ones");
		snprintf(name, sizeof(name), "late_1ms_p99%s", others ? "_10k_armed" : "");
		bench_add(r, name, "us", m.e99, m.k99, "kernel", false, "target: no worse");
		snprintf(name, sizeof(name), "late_1ms_p99%s_kernel_a_a", others ? "_10k_armed" : "");
		bench_add(r, name, "us", m.keven99, m.kodd99, "kernel", false,
			  "A/A, this run's noise: the kernel's even turns against its odd ones");
		snprintf(name, sizeof(name), "late_1ms_cpu%s", others ? "_10k_armed" : "");
		bench_add(r, name, "% of a CPU", m.ecpu * 100, m.kcpu * 100, "kernel", false, note);
	}
	ptimer__handoff(0);
	if (handoff) {
		struct lat m;
		if (measure_turns(0, TURNS_SHOWN, &m) != 0) {
			fprintf(stderr, "ptimers bench: latency without handoff: %s\n", strerror(errno));
			return -1;
		}
		bench_add(r, "late_1ms_p50_engine_sends", "us", m.e50, m.k50, "kernel", false,
			  "PTIMERS_HANDOFF=0: the engine's thread sends each signal; " BENCH_STR(TURNS_SHOWN)
			  " turns each");
		bench_add(r, "late_1ms_p99_engine_sends", "us", m.e99, m.k99, "kernel", false, "");
		bench_add(r, "late_1ms_cpu_engine_sends", "% of a CPU", m.ecpu * 100, m.kcpu * 100, "kernel",
			  false, "whole process; spin: PTIMERS_SPIN");
	}
	return 0;
}

/* ---- what expiries cost in CPU and wakeups ---- */

static long thread_calls;

static void thread_fn(union sigval v)
{
	(void)v;
	__atomic_add_fetch(&thread_calls, 1, __ATOMIC_RELAXED);
}

/* The process's CPU, as a share of one CPU, while a SIGEV_THREAD timer
 * fires every 100 us for a second. */
static int thread_cpu(const struct api *a, double *cpu, long *calls)
{
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_notify_function = thread_fn;
	timer_t t;
	if (a->create(CLOCK_MONOTONIC, &sev, &t) != 0)
		return -1;
	struct itimerspec its = { .it_value = { 0, 100000 }, .it_interval = { 0, 100000 } };
	__atomic_store_n(&thread_calls, 0, __ATOMIC_RELAXED);
	double c0 = bench_cpu_seconds();
	int64_t w0 = bench_now();
	if (a->settime(t, 0, &its, NULL) != 0) {
		a->del(t);
		return -1;
	}
	struct timespec s = { 1, 0 };
	while (nanosleep(&s, &s) != 0 && errno == EINTR)
		;
	a->del(t);
	*cpu = (bench_cpu_seconds() - c0) / ((double)(bench_now() - w0) / 1e9);
	*calls = __atomic_load_n(&thread_calls, __ATOMIC_RELAXED);
	return 0;
}

/* The least a thread woken for every expiry costs here: a kernel timer
 * whose signal goes to a thread of its own (SIGEV_THREAD_ID), taken in
 * sigwaitinfo(), the function called at each; what the engine's carried
 * timer is (src/workers.h), and a floor no thread-per-expiry delivery
 * goes under. */
struct floor_run {
	int64_t until;
	int err;
};

static void *floor_thread(void *arg)
{
	struct floor_run *f = arg;
	int sig = SIGRTMIN + 7;
	sigset_t set;
	struct sigevent sev = blocked_signal(sig, &set);
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	timer_t t;
	if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0) {
		f->err = errno;
		return NULL;
	}
	struct itimerspec its = { .it_value = { 0, 100000 }, .it_interval = { 0, 100000 } };
	if (timer_settime(t, 0, &its, NULL) != 0)
		f->err = errno;
	while (!f->err && bench_now() < f->until) {
		siginfo_t si;
		if (sigwaitinfo(&set, &si) == sig)
			thread_fn(si.si_value);
	}
	timer_delete(t);
	drain_pending(&set);
	return NULL;
}

static int floor_cpu(double *cpu, long *calls)
{
	struct floor_run f = { .until = bench_now() + 1000000000, .err = 0 };
	pthread_t th;
	__atomic_store_n(&thread_calls, 0, __ATOMIC_RELAXED);
	double c0 = bench_cpu_seconds();
	int64_t w0 = bench_now();
	int err = pthread_create(&th, NULL, floor_thread, &f);
	if (err) {
		errno = err;
		return -1;
	}
	pthread_join(th, NULL);
	if (f.err) {
		errno = f.err;
		return -1;
	}
	*cpu = (bench_cpu_seconds() - c0) / ((double)(bench_now() - w0) / 1e9);
	*calls = __atomic_load_n(&thread_calls, __ATOMIC_RELAXED);
	return 0;
}

static uint64_t engine_wakeups(void)
{
	struct ptimer_stats st;
	return ptimer_get_stats(&st, sizeof(st)) == 0 ? st.wakeups : 0;
}

/* The engine's wakeups in a second with 1,000 timers at periods of 1 to
 * 100 ms (the same random ones each time), with leeway or without, their
 * signals taken as they come. */
static int leeway_wakeups(long leeway_ns, double *per_s, long *signals)
{
	enum { N = 1000 };
	int sig = SIGRTMIN + 4;
	sigset_t set;
	struct sigevent sev = blocked_signal(sig, &set);
	static timer_t t[N];
	unsigned seed = 12345;
	int made = 0, err = 0;
	for (; made < N; made++) {
		long period = 1000000 + (long)(rand_r(&seed) % 99000) * 1000;
		struct itimerspec its = { .it_value = { 0, period }, .it_interval = { 0, period } };
		struct timespec l = { 0, leeway_ns };
		if (ptimer_create(CLOCK_MONOTONIC, &sev, &t[made]) != 0 ||
		    ptimer_setleeway(t[made], &l) != 0 || ptimer_settime(t[made], 0, &its, NULL) != 0) {
			err = errno;
			break;
		}
	}
	uint64_t w0 = engine_wakeups();
	int64_t start = bench_now(), end = start + 1000000000;
	long n = 0;
	while (!err && bench_now() < end) {
		struct timespec limit = { 0, 10000000 };
		if (sigtimedwait(&set, NULL, &limit) == sig)
			n++;
	}
	*per_s = (double)(engine_wakeups() - w0) / ((double)(bench_now() - start) / 1e9);
	*signals = n;
	for (int i = 0; i < made; i++)
		ptimer_delete(t[i]);
	drain_pending(&set);
	errno = err;
	return err ? -1 : 0;
}

/* A million timers armed, none due within 10 s: the engine's wakeups over
 * two seconds (none are needed). */
static int idle_wakeups(long n, double *wakeups)
{
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN };
	timer_t *t = malloc(sizeof(*t) * (size_t)n);
	if (!t)
		return -1;
	long made = 0;
	int err = 0;
	for (; made < n; made++) {
		struct itimerspec its = { .it_value = { 10 + made % 3600, (long)made * 7919 % 1000000000 } };
		if (ptimer_create(CLOCK_MONOTONIC, &sev, &t[made]) != 0 ||
		    ptimer_settime(t[made], 0, &its, NULL) != 0) {
			err = errno;
			break;
		}
	}
	/* Let the dispatcher take the armings in, then count. */
	struct timespec settle = { 0, 200000000 };
	nanosleep(&settle, NULL);
	uint64_t w0 = engine_wakeups();
	struct timespec s = { 2, 0 };
	while (!err && nanosleep(&s, &s) != 0 && errno == EINTR)
		;
	*wakeups = (double)(engine_wakeups() - w0);
	for (long i = 0; i < made; i++)
		ptimer_delete(t[i]);
	free(t);
	errno = err;
	return err ? -1 : 0;
}

/* The reference no timer can beat: a thread with nothing to do but send
 * each value itself at its deadline (sleeping while the next one is over
 * 50 us away, spinning to it after), one system call per signal, the one
 * the engine's thread makes (pidfd_send_signal() to its own process, else
 * rt_sigqueueinfo()). */
struct bare_plan {
	const int64_t *due;
	int n, sig, err;
};

static void *bare_oneshot_sender(void *arg)
{
	struct bare_plan *p = arg;
	siginfo_t info;
	memset(&info, 0, sizeof(info));
	info.si_signo = p->sig;
	info.si_code = SI_QUEUE;
	bool pidfd = true;
	for (int i = 0; i < p->n; i++) {
		int64_t wait = p->due[i] - bench_now();
		if (wait > 50000) {
			struct timespec ts = { p->due[i] / 1000000000, p->due[i] % 1000000000 };
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
				;
		}
		while (bench_now() < p->due[i])
			;
		info.si_value.sival_int = i;
		if (pidfd && syscall(SYS_pidfd_send_signal, -10001 /* PIDFD_SELF_THREAD_GROUP */, p->sig,
				     &info, 0) == 0)
			continue;
		pidfd = false;
		if (syscall(SYS_rt_sigqueueinfo, getpid(), p->sig, &info) != 0) {
			p->err = errno;
			break;
		}
	}
	return NULL;
}

/* n one-shot timers due evenly over 200 ms (a == NULL: n bare signals
 * sent at those times), each signal taken as it comes: the process's CPU
 * per expiry and the latest lateness. */
static int oneshots(const struct api *a, int n, double *cpu_us, double *late_ms)
{
	int sig = SIGRTMIN + 5;
	sigset_t set;
	struct sigevent sev = blocked_signal(sig, &set);
	timer_t *t = malloc(sizeof(*t) * (size_t)n);
	int64_t *due = malloc(sizeof(*due) * (size_t)n);
	if (!t || !due) {
		free(t);
		free(due);
		errno = ENOMEM;
		return -1;
	}
	int made = 0, err = 0;
	for (; made < n; made++) {
		sev.sigev_value.sival_int = made;
		if (a && a->create(CLOCK_MONOTONIC, &sev, &t[made]) != 0) {
			err = errno;
			break;
		}
	}
	int64_t start = bench_now() + 50000000, late = 0;
	double c0 = bench_cpu_seconds();
	for (int i = 0; i < made && !err; i++) {
		due[i] = start + (int64_t)i * 200000000 / n;
		struct itimerspec its = { .it_value = { due[i] / 1000000000, due[i] % 1000000000 } };
		if (a && a->settime(t[i], TIMER_ABSTIME, &its, NULL) != 0)
			err = errno;
	}
	struct bare_plan plan = { .due = due, .n = made, .sig = sig };
	pthread_t sender;
	bool bare = !a && !err;
	if (bare && (err = pthread_create(&sender, NULL, bare_oneshot_sender, &plan)) != 0)
		bare = false;
	int got = 0;
	while (!err && got < made) {
		siginfo_t si;
		struct timespec limit = { 2, 0 };
		if (sigtimedwait(&set, &si, &limit) != sig) {
			err = errno ? errno : EIO;
			break;
		}
		int64_t l = bench_now() - due[si.si_value.sival_int];
		if (l > late)
			late = l;
		got++;
	}
	if (bare) {
		pthread_join(sender, NULL);
		err = plan.err ? plan.err : err; /* the sender's failure is the cause */
	}
	*cpu_us = (bench_cpu_seconds() - c0) * 1e6 / (got ? got : 1);
	*late_ms = (double)late / 1e6;
	for (int i = 0; a && i < made; i++)
		a->del(t[i]);
	drain_pending(&set);
	free(t);
	free(due);
	errno = err;
	return err ? -1 : 0;
}

/* A profiler's timer: every 10 ms of this thread's CPU time, its signal
 * to this thread (or every 10 ms of the process's, its signal to the
 * process: process), taken as it spins.  The CPU the process's other
 * threads use per expiry (the engine's relay, if any), over a second of
 * this thread's time, after two expiries (for the engine, two after it
 * was handed off, when it can be; handoff: the cap to set, 0 none).  0,
 * or -1 (errno). */
static int profiler_cpu(const struct api *a, int handoff, bool process, double *us, long *expiries)
{
	int sig = SIGRTMIN + 6;
	sigset_t set;
	struct sigevent sev = blocked_signal(sig, &set);
	if (!process) {
		sev.sigev_notify = SIGEV_THREAD_ID;
		sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	}
	timer_t t;
	if (a == &engine_api)
		ptimer__handoff(handoff);
	if (a->create(process ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_THREAD_CPUTIME_ID, &sev, &t) != 0)
		return -1;
	struct itimerspec its = { .it_value = { 0, 10000000 }, .it_interval = { 0, 10000000 } };
	if (a->settime(t, 0, &its, NULL) != 0) {
		int err = errno;
		a->del(t);
		errno = err;
		return -1;
	}
	struct ptimer_stats st;
	int64_t spin0 = bench_clock_ns(CLOCK_THREAD_CPUTIME_ID);
	/* Until the engine has handed it off (at most 200 ms of CPU). */
	while (a == &engine_api && handoff && ptimer_get_stats(&st, sizeof(st)) == 0 && !st.handed_off &&
	       bench_clock_ns(CLOCK_THREAD_CPUTIME_ID) - spin0 < 200000000)
		(void)sigtimedwait(&set, NULL, &(struct timespec){ 0, 0 });
	/* Two more, before the count: the handoff's own work is done. */
	for (int warm = 0; warm < 2 && bench_clock_ns(CLOCK_THREAD_CPUTIME_ID) - spin0 < 300000000;)
		warm += sigtimedwait(&set, NULL, &(struct timespec){ 0, 0 }) == sig;
	long n = 0;
	int64_t p0 = bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID), m0 = bench_clock_ns(CLOCK_THREAD_CPUTIME_ID);
	while (bench_clock_ns(CLOCK_THREAD_CPUTIME_ID) - m0 < 1000000000)
		n += sigtimedwait(&set, NULL, &(struct timespec){ 0, 0 }) == sig;
	/* Two clocks read one after the other: whole microseconds only. */
	int64_t spent = bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID) - p0;
	int64_t own = bench_clock_ns(CLOCK_THREAD_CPUTIME_ID) - m0;
	int64_t others = (spent - own) / 1000 * 1000;
	a->del(t);
	if (a == &engine_api)
		ptimer__handoff(0);
	drain_pending(&set);
	*us = (double)(others > 0 ? others : 0) / 1e3 / (double)(n ? n : 1);
	*expiries = n;
	return 0;
}

/* The 10 kHz SIGEV_THREAD turns: the engine, glibc and the floor take
 * turns, TURNS10K of 1 s each; a single second had moved either figure
 * by a quarter between full runs. */
#define TURNS10K 3

int bench_wakeups(const struct bench_opts *o, struct bench_report *r)
{
	(void)o;
	double ecpu[TURNS10K], kcpu[TURNS10K], fcpu[TURNS10K], scpu = 0, gcpu = 0;
	long ecalls = 0, kcalls = 0, fcalls = 0, scalls = 0, gcalls = 0;
	/* As the drop-in runs it (carried by a worker of its own where this
	 * kernel allows handing off, src/handoff.h), and with the engine's
	 * thread handing each call to a worker (PTIMERS_HANDOFF=0). */
	bool handoff = ptimer__handoff(64) == 0;
	int err = 0;
	for (int k = 0; k < TURNS10K && !err; k++)
		err = thread_cpu(&engine_api, &ecpu[k], &ecalls) != 0 ||
		      thread_cpu(&kernel_api, &kcpu[k], &kcalls) != 0 || floor_cpu(&fcpu[k], &fcalls) != 0;
	ptimer__handoff(0);
	if (!err && handoff)
		err = thread_cpu(&engine_api, &scpu, &scalls) != 0 || thread_cpu(&kernel_api, &gcpu, &gcalls) != 0;
	if (err) {
		fprintf(stderr, "ptimers bench: SIGEV_THREAD at 10 kHz: %s\n", strerror(errno));
		return -1;
	}
	double e = bench_median(ecpu, TURNS10K), f = bench_median(fcpu, TURNS10K);
	char note[160];
	snprintf(note, sizeof(note),
		 "median of " BENCH_STR(TURNS10K) " turns of 1 s, %ld and %ld calls; target: half of glibc's%s",
		 ecalls, kcalls, handoff ? "; carried" : "");
	bench_add(r, "thread_10khz_cpu", "% of a CPU", e * 100, bench_median(kcpu, TURNS10K) * 100, "glibc",
		  false, note);
	snprintf(note, sizeof(note),
		 "the floor: a kernel timer signalling a thread of its own, in sigwaitinfo; %ld calls",
		 fcalls);
	bench_add(r, "thread_10khz_cpu_kernel_floor", "% of a CPU", e * 100, f * 100, "floor", false, note);
	if (handoff) {
		snprintf(note, sizeof(note), "PTIMERS_HANDOFF=0: the engine's thread wakes a worker; %ld and "
			 "%ld calls", scalls, gcalls);
		bench_add(r, "thread_10khz_cpu_engine_wakes", "% of a CPU", scpu * 100, gcpu * 100, "glibc",
			  false, note);
	}

	double with, without;
	long sw, snone;
	if (leeway_wakeups(0, &without, &snone) != 0 || leeway_wakeups(1000000, &with, &sw) != 0) {
		fprintf(stderr, "ptimers bench: leeway: %s\n", strerror(errno));
		return -1;
	}
	snprintf(note, sizeof(note), "1,000 timers, periods 1-100 ms, 1 ms leeway; %ld and %ld signals",
		 sw, snone);
	bench_add(r, "leeway_1ms_wakeups", "wakeups/s", with, without, "no leeway", false, note);

	/* 100,000 one-shots, or as many as the user's RLIMIT_SIGPENDING lets
	 * the kernel have (each kernel timer is charged to it). */
	bench_raise_sigpending();
	long room = bench_sigq_room();
	int n = room > 101000 || room < 0 ? 100000 : (int)(room - 1000);
	double ecpu_us, elate, kcpu_us, klate, bcpu_us, blate;
	if (n < 1000) {
		fprintf(stderr, "%s: one-shots: the user's RLIMIT_SIGPENDING leaves room for %ld kernel "
			"timers only (taken by its other processes): rows left out\n", o->prog, room);
	} else if (oneshots(&engine_api, n, &ecpu_us, &elate) != 0 ||
		   oneshots(&kernel_api, n, &kcpu_us, &klate) != 0 || oneshots(NULL, n, &bcpu_us, &blate) != 0) {
		fprintf(stderr, "ptimers bench: one-shots: %s\n", strerror(errno));
		return -1;
	} else {
		char name[48];
		snprintf(name, sizeof(name), "oneshots_%dk_cpu_per_expiry", n / 1000);
		bench_add(r, name, "us", ecpu_us, kcpu_us, "kernel", false,
			  "due evenly over 200 ms, signals taken as they come");
		snprintf(name, sizeof(name), "oneshots_%dk_late_max", n / 1000);
		bench_add(r, name, "ms", elate, 1, "target", false, "the latest signal; kernel's in the note");
		snprintf(r->rows[r->n - 1].note, sizeof(r->rows[0].note), "the latest signal; kernel: %.2f ms",
			 klate);
		snprintf(name, sizeof(name), "oneshots_%dk_late_max_vs_bare", n / 1000);
		snprintf(note, sizeof(note), "bare: a thread sending each at its deadline, no timer "
			 "(%.1f us CPU each)", bcpu_us);
		bench_add(r, name, "ms", elate, blate, "bare", false, note);
	}

	/* A profiler's timer, handed to a kernel timer as in the drop-in, and
	 * relayed by the engine's thread (PTIMERS_HANDOFF=0). */
	double pe, pr, pk, qe, qk;
	long ne, nr, nk, me, mk;
	if (profiler_cpu(&engine_api, 64, false, &pe, &ne) != 0 ||
	    profiler_cpu(&kernel_api, 0, false, &pk, &nk) != 0 ||
	    profiler_cpu(&engine_api, 0, false, &pr, &nr) != 0 ||
	    profiler_cpu(&engine_api, 64, true, &qe, &me) != 0 ||
	    profiler_cpu(&kernel_api, 0, true, &qk, &mk) != 0) {
		fprintf(stderr, "ptimers bench: a profiler's timer: %s\n", strerror(errno));
		return -1;
	}
	snprintf(note, sizeof(note), "other threads' CPU, a timer on 10 ms of a spinning thread's; %ld and "
		 "%ld signals%s", ne, nk, handoff ? "; handed off" : "");
	bench_add(r, "profiler_timer_cpu_per_expiry", "us", pe, pk, "kernel", false, note);
	snprintf(note, sizeof(note), "PTIMERS_HANDOFF=0: the engine's thread relays each; %ld signals", nr);
	bench_add(r, "profiler_timer_relayed", "us", pr, pk, "kernel", false, note);
	snprintf(note, sizeof(note), "on 10 ms of the process's CPU, its signal to the process; %ld and %ld "
		 "signals%s", me, mk, handoff ? "; handed off" : "");
	bench_add(r, "profiler_process_cpu_per_expiry", "us", qe, qk, "kernel", false, note);

	double idle;
	if (idle_wakeups(1000000, &idle) != 0) {
		fprintf(stderr, "ptimers bench: a million idle timers: %s\n", strerror(errno));
		return -1;
	}
	bench_add(r, "idle_1M_armed_wakeups", "in 2 s", idle, 1, "target", false,
		  "a million timers armed, none due within 10 s: the engine's wakeups");
	return 0;
}
