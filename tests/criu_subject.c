/* SPDX-License-Identifier: MIT */
/*
 * criu_subject: a program with one timer of every kind, for checkpoint and
 * restore with CRIU (criu.py).  It knows nothing of ptimers: run as is its
 * timers are the kernel's, under `ptimers exec` the engine's, and the same
 * checks hold for both.
 *
 *   criu_subject --fire-after=SECONDS
 *
 * Everything it reports goes to stdout, one line per fact, flushed at
 * once.  It takes its orders as signals, all blocked and waited for:
 *   SIGUSR1  report: every timer's ID, remaining time, interval and
 *            overrun count, then the clocks and the ticks counted so far
 *   SIGUSR2  after a restore: take the signal left pending at the dump and
 *            the periodic one whose overruns grew, make the SIGEV_THREAD,
 *            SIGEV_THREAD_ID and CPU-clock timers fire (a profiler's thread
 *            spins under its own as at the start), make a new timer
 *   SIGTERM  exit 0
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "private.h" /* PR_TIMER_CREATE_RESTORE_IDS */
#define NS 1000000000LL

#define SIG_TICK (SIGRTMIN)
#define SIG_FAR (SIGRTMIN + 1)
#define SIG_TID (SIGRTMIN + 2)
#define SIG_CPU (SIGRTMIN + 3)
#define SIG_PEND (SIGRTMIN + 4)
#define SIG_OVR (SIGRTMIN + 5)
#define SIG_ONCE (SIGRTMIN + 6)
#define SIG_PROF (SIGRTMIN + 7)
#define SIG_PPROF (SIGRTMIN + 8)

enum { TICK, REALABS, REALREL, BOOT, PCPU, TCPU, TID, THREAD, NONE, PEND, OVR, ONCE, PROF, PPROF, NTIMERS };
static const char *names[NTIMERS] = { "tick", "realabs", "realrel", "boot", "pcpu", "tcpu", "tid",
				      "thread", "none", "pend", "ovr", "once", "prof", "pprof" };
static timer_t timers[NTIMERS];
static volatile int thread_calls;
static volatile pid_t worker_tid;
static volatile int tid_signals;
static volatile pid_t profiler_tid;
static volatile int profiler_go, profiler_signals, pprofiler_signals;

static void die(const char *what)
{
	printf("error %s: %s\n", what, strerror(errno));
	exit(1);
}

static int64_t now_ns(clockid_t c)
{
	struct timespec ts;
	if (clock_gettime(c, &ts) != 0)
		return -1;
	return ts.tv_sec * NS + ts.tv_nsec;
}

static struct timespec ts_of(int64_t ns)
{
	return (struct timespec){ ns / NS, ns % NS };
}

static void arm(int which, int flags, int64_t value, int64_t interval)
{
	struct itimerspec its = { ts_of(interval), ts_of(value) };
	if (timer_settime(timers[which], flags, &its, NULL) != 0)
		die(names[which]);
}

/* A timer with the ID wanted in restore mode: the engine reads it from
 * *timerid; glibc on the kernel passes a local of its own, so there the
 * system call is made here (for such a timer glibc's timer_t is the
 * kernel's ID). */
static timer_t make(clockid_t clock, struct sigevent *sev, intptr_t want)
{
	timer_t t = (timer_t)want;
	if (want && !dlsym(RTLD_DEFAULT, "ptimer_create")) {
		int id = (int)want;
		if (syscall(SYS_timer_create, clock, sev, &id) != 0)
			die("timer_create with an ID");
		return (timer_t)(intptr_t)id;
	}
	if (timer_create(clock, sev, &t) != 0)
		die("timer_create");
	return t;
}

static int id_of(timer_t t)
{
	return (int)(intptr_t)t;
}

static void on_thread(union sigval v)
{
	(void)v;
	__atomic_fetch_add(&thread_calls, 1, __ATOMIC_RELEASE);
}

/* The target of the SIGEV_THREAD_ID timer: takes its signal. */
static void *worker(void *arg)
{
	(void)arg;
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIG_TID);
	__atomic_store_n(&worker_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	for (;;) {
		siginfo_t si;
		if (sigwaitinfo(&s, &si) == SIG_TID)
			__atomic_fetch_add(&tid_signals, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* A profiler's thread: its timer counts this thread's CPU time, every
 * 10 ms, and signals it.  Told to, it spins 150 ms of its time taking
 * the signals, then rests (its clock, and so its timer, stand still).
 * It takes the signals of a timer on the process's CPU time too, every
 * 10 ms of it, sent to the process. */
static void *profiler(void *arg)
{
	(void)arg;
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIG_PROF);
	sigaddset(&s, SIG_PPROF);
	__atomic_store_n(&profiler_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	for (;;) {
		while (!__atomic_load_n(&profiler_go, __ATOMIC_ACQUIRE))
			nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
		int64_t c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
		while (now_ns(CLOCK_THREAD_CPUTIME_ID) - c0 < 150 * 1000000) {
			int got = sigtimedwait(&s, NULL, &(struct timespec){ 0, 0 });
			if (got == SIG_PROF)
				__atomic_fetch_add(&profiler_signals, 1, __ATOMIC_RELEASE);
			else if (got == SIG_PPROF)
				__atomic_fetch_add(&pprofiler_signals, 1, __ATOMIC_RELEASE);
		}
		__atomic_store_n(&profiler_go, 0, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* The profiler's thread spins its 150 ms (at most 10 s of wall time):
 * the signals it took, of each timer. */
static void profile(void)
{
	int before = __atomic_load_n(&profiler_signals, __ATOMIC_ACQUIRE);
	int pbefore = __atomic_load_n(&pprofiler_signals, __ATOMIC_ACQUIRE);
	__atomic_store_n(&profiler_go, 1, __ATOMIC_RELEASE);
	int64_t until = now_ns(CLOCK_MONOTONIC) + 10 * NS;
	while (__atomic_load_n(&profiler_go, __ATOMIC_ACQUIRE) && now_ns(CLOCK_MONOTONIC) < until)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	printf("profiler-signalled %d\n", __atomic_load_n(&profiler_signals, __ATOMIC_ACQUIRE) - before);
	printf("pprofiler-signalled %d\n", __atomic_load_n(&pprofiler_signals, __ATOMIC_ACQUIRE) - pbefore);
}

static void report(int seq, long ticks)
{
	for (int i = 0; i < NTIMERS; i++) {
		struct itimerspec cur;
		if (timer_gettime(timers[i], &cur) != 0)
			die("timer_gettime");
		int ovr = timer_getoverrun(timers[i]);
		printf("timer %s id=%d rem=%lld int=%lld ovr=%d\n", names[i], id_of(timers[i]),
		       (long long)(cur.it_value.tv_sec * NS + cur.it_value.tv_nsec),
		       (long long)(cur.it_interval.tv_sec * NS + cur.it_interval.tv_nsec), ovr);
	}
	clockid_t tc;
	pthread_getcpuclockid(pthread_self(), &tc);
	printf("end %d mono=%lld boot=%lld real=%lld pcpu=%lld tcpu=%lld ticks=%ld\n", seq,
	       (long long)now_ns(CLOCK_MONOTONIC), (long long)now_ns(CLOCK_BOOTTIME),
	       (long long)now_ns(CLOCK_REALTIME), (long long)now_ns(CLOCK_PROCESS_CPUTIME_ID),
	       (long long)now_ns(tc), ticks);
}

/* Wait for sig (blocked) up to seconds; print what came. */
static int take(int sig, const char *what, double seconds)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, sig);
	struct timespec wait = { (time_t)seconds, (long)((seconds - (time_t)seconds) * NS) };
	siginfo_t si;
	int r = sigtimedwait(&s, &si, &wait);
	if (r != sig) {
		printf("%s none\n", what);
		return 0;
	}
	printf("%s code=%d timerid=%d value=%d ovr=%d\n", what, si.si_code, si.si_timerid,
	       si.si_value.sival_int, si.si_overrun);
	return 1;
}

static void after_restore(void)
{
	/* The signal pending at the dump, then none more. */
	take(SIG_PEND, "pending", 0.5);
	take(SIG_PEND, "pending-again", 0.01);
	/* The periodic timer whose signal waited blocked: one signal, its
	 * overruns the periods missed. */
	take(SIG_OVR, "overrun", 2);
	printf("overrun-count %d\n", timer_getoverrun(timers[OVR]));
	arm(OVR, 0, 0, 0);
	take(SIG_OVR, "overrun-again", 0.01);

	/* The notifications that need threads: SIGEV_THREAD and a thread's
	 * own signal. */
	int calls = __atomic_load_n(&thread_calls, __ATOMIC_ACQUIRE);
	int tids = __atomic_load_n(&tid_signals, __ATOMIC_ACQUIRE);
	arm(THREAD, 0, 10 * 1000000, 0);
	arm(TID, 0, 10 * 1000000, 0);
	int64_t until = now_ns(CLOCK_MONOTONIC) + 5 * NS;
	while ((__atomic_load_n(&thread_calls, __ATOMIC_ACQUIRE) == calls ||
		__atomic_load_n(&tid_signals, __ATOMIC_ACQUIRE) == tids) &&
	       now_ns(CLOCK_MONOTONIC) < until) {
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
	}
	printf("thread-called %d\n", __atomic_load_n(&thread_calls, __ATOMIC_ACQUIRE) - calls);
	printf("tid-signalled %d\n", __atomic_load_n(&tid_signals, __ATOMIC_ACQUIRE) - tids);

	/* A CPU-clock timer, on the process's CPU time as it is now. */
	arm(PCPU, 0, 50 * 1000000, 0);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIG_CPU);
	int fired = 0;
	int64_t cpu0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
	while (!fired && now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0 < 3 * NS) {
		struct timespec zero = { 0, 0 };
		fired = sigtimedwait(&s, &(siginfo_t){ 0 }, &zero) == SIG_CPU;
	}
	printf("cpu-fired %d after %lld\n", fired, (long long)(now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0));
	profile();

	/* The ID space goes on where it was. */
	struct sigevent sev = { .sigev_notify = SIGEV_NONE };
	timer_t t;
	if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0)
		die("timer_create after restore");
	printf("newid %d\n", id_of(t));
	timer_delete(t);
	printf("checked\n");
}

int main(int argc, char **argv)
{
	double fire_after = 5;
	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--fire-after=", 13)) {
			fire_after = atof(argv[i] + 13);
		} else {
			fprintf(stderr, "usage: criu_subject [--fire-after=SECONDS]\n");
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	sigset_t all;
	sigemptyset(&all);
	for (int s = SIG_TICK; s <= SIG_ONCE; s++)
		sigaddset(&all, s);
	sigaddset(&all, SIG_PROF);
	sigaddset(&all, SIG_PPROF);
	sigaddset(&all, SIGUSR1);
	sigaddset(&all, SIGUSR2);
	sigaddset(&all, SIGTERM);
	sigprocmask(SIG_BLOCK, &all, NULL);

	pthread_t w;
	if (pthread_create(&w, NULL, worker, NULL) != 0)
		die("pthread_create");
	while (!__atomic_load_n(&worker_tid, __ATOMIC_ACQUIRE))
		sched_yield();
	pthread_t pw;
	if (pthread_create(&pw, NULL, profiler, NULL) != 0)
		die("pthread_create");
	while (!__atomic_load_n(&profiler_tid, __ATOMIC_ACQUIRE))
		sched_yield();

	/* The seed's ID, asked for as a restorer asks. */
	int restore_ids = prctl(PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) == 0;
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIG_TICK };
	sev.sigev_value.sival_int = 1;
	timers[TICK] = make(CLOCK_MONOTONIC, &sev, 1000000);
	if (restore_ids)
		prctl(PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0);

	sev.sigev_signo = SIG_FAR;
	timers[REALABS] = make(CLOCK_REALTIME, &sev, 0);
	timers[REALREL] = make(CLOCK_REALTIME, &sev, 0);
	timers[BOOT] = make(CLOCK_BOOTTIME, &sev, 0);
	sev.sigev_signo = SIG_CPU;
	timers[PCPU] = make(CLOCK_PROCESS_CPUTIME_ID, &sev, 0);
	clockid_t tc;
	pthread_getcpuclockid(pthread_self(), &tc);
	timers[TCPU] = make(tc, &sev, 0);
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIG_TID;
	sev._sigev_un._tid = worker_tid;
	timers[TID] = make(CLOCK_MONOTONIC, &sev, 0);
	struct sigevent th = { .sigev_notify = SIGEV_THREAD, .sigev_notify_function = on_thread };
	timers[THREAD] = make(CLOCK_MONOTONIC, &th, 0);
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	timers[NONE] = make(CLOCK_MONOTONIC, &none, 0);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIG_PEND;
	sev.sigev_value.sival_int = 44;
	timers[PEND] = make(CLOCK_MONOTONIC, &sev, 0);
	sev.sigev_signo = SIG_OVR;
	sev.sigev_value.sival_int = 55;
	timers[OVR] = make(CLOCK_MONOTONIC, &sev, 0);
	sev.sigev_signo = SIG_ONCE;
	sev.sigev_value.sival_int = 66;
	timers[ONCE] = make(CLOCK_MONOTONIC, &sev, 0);
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIG_PROF;
	sev.sigev_value.sival_int = 77;
	sev._sigev_un._tid = profiler_tid;
	clockid_t pc;
	pthread_getcpuclockid(pw, &pc);
	timers[PROF] = make(pc, &sev, 0);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIG_PPROF;
	sev.sigev_value.sival_int = 88;
	timers[PPROF] = make(CLOCK_PROCESS_CPUTIME_ID, &sev, 0);

	arm(TICK, 0, NS / 10, NS / 10);
	arm(REALABS, TIMER_ABSTIME, now_ns(CLOCK_REALTIME) + 120 * NS, 60 * NS);
	arm(REALREL, 0, 130 * NS, 0);
	arm(BOOT, 0, 140 * NS, 10 * NS);
	arm(PCPU, 0, 150 * NS, 0);
	arm(TCPU, 0, 160 * NS, 0);
	arm(TID, 0, 170 * NS, 0);
	arm(THREAD, 0, 180 * NS, 0);
	arm(NONE, 0, 190 * NS, 7 * NS);
	arm(PEND, 0, 1000000, 0);
	arm(OVR, 0, 1000000, 1000000);
	arm(ONCE, 0, (int64_t)(fire_after * NS), 0);
	arm(PROF, 0, 10 * 1000000, 10 * 1000000);
	arm(PPROF, 0, 10 * 1000000, 10 * 1000000);
	profile();

	/* What a new timer's ID would be: the next after this probe's. */
	timer_t probe;
	if (timer_create(CLOCK_MONOTONIC, &none, &probe) != 0)
		die("timer_create");
	printf("ready pid=%d probe=%d\n", (int)getpid(), id_of(probe));
	timer_delete(probe);

	sigset_t orders = all;
	sigdelset(&orders, SIG_PEND);
	sigdelset(&orders, SIG_OVR);
	sigdelset(&orders, SIG_CPU);
	sigdelset(&orders, SIG_TID);
	sigdelset(&orders, SIG_PROF);
	sigdelset(&orders, SIG_PPROF);
	long ticks = 0;
	int seq = 0;
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&orders, &si);
		if (sig == SIG_TICK) {
			ticks += 1 + si.si_overrun;
		} else if (sig == SIG_ONCE) {
			printf("fired once value=%d mono=%lld\n", si.si_value.sival_int,
			       (long long)now_ns(CLOCK_MONOTONIC));
		} else if (sig == SIGUSR1) {
			report(++seq, ticks);
		} else if (sig == SIGUSR2) {
			after_restore();
		} else if (sig == SIGTERM) {
			printf("bye\n");
			return 0;
		} else if (sig < 0 && errno != EINTR) {
			die("sigwaitinfo");
		}
	}
}
