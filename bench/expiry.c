/* SPDX-License-Identifier: MIT */
/*
 * Expiry throughput: a million engine timers due within one second, each
 * signalled once to a thread that takes them from a signalfd, many per
 * read (one sigwaitinfo() per signal costs the kernel alone about 2 us
 * here).  How late the last ones are, and the CPU the whole process spends
 * per expiry, against the kernel doing the same job with no timer at all:
 * a thread sending a million signals (rt_sigqueueinfo()) to the same
 * receiver, measured in the same run.  The kernel
 * cannot hold a million timers here (each is charged to the user's
 * RLIMIT_SIGPENDING, about 96,000), so the reference is the bare signal.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sched.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "ptimers.h"

#define N 1000000
#define SPREAD 1000000000LL /* deadlines over one second */
#define LEAD 700000000LL    /* the first deadline after arming them all */

static int64_t *deadline, *late;
static int32_t *order; /* the values in the order the engine's timers fall due */
static unsigned char *got;
static long received, duplicates;

/* Where timer i's deadline falls among the N: spread over the second in an
 * order unrelated to the IDs. */
static inline int64_t rank_of(int i)
{
	return (int64_t)(((uint64_t)i * 2654435761u) % N);
}

#define BATCH 64

/* Takes the signals as a program handling a million a second would: from
 * a signalfd, many per read. */
static void *receiver(void *arg)
{
	int fd = (int)(intptr_t)arg;
	int64_t give_up = bench_now() + LEAD + SPREAD + 10000000000LL;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	while (received < N && bench_now() < give_up) {
		struct signalfd_siginfo rec[BATCH];
		if (poll(&p, 1, 1000) <= 0)
			continue;
		ssize_t n = read(fd, rec, sizeof(rec));
		int64_t now = bench_now();
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(rec[0]); i++) {
			int v = rec[i].ssi_int;
			if (v < 0 || v >= N)
				continue;
			if (got[v]++) {
				duplicates++;
				continue;
			}
			late[v] = now - deadline[v];
			received++;
		}
	}
	return NULL;
}

/* The receiver on the last CPU the process may use (when it may use more
 * than one), for bare signals and the engine alike.  Left to the
 * scheduler, it ran in some turns on the CPU that takes the machine's
 * interrupts and in others not, and either rate moved by a fifth between
 * turns with it.  The senders (bare, the engine's thread) go where the
 * scheduler puts them, as a program's would. */
static void start_receiver(pthread_t *th, int fd)
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	cpu_set_t all, one;
	if (sched_getaffinity(0, sizeof(all), &all) == 0 && CPU_COUNT(&all) > 1) {
		CPU_ZERO(&one);
		for (int c = CPU_SETSIZE - 1; c >= 0; c--)
			if (CPU_ISSET(c, &all)) {
				CPU_SET(c, &one);
				break;
			}
		pthread_attr_setaffinity_np(&attr, sizeof(one), &one);
	}
	/* A CPU the process may not use after all (a cpuset): unpinned. */
	if (pthread_create(th, &attr, receiver, (void *)(intptr_t)fd) != 0)
		pthread_create(th, NULL, receiver, (void *)(intptr_t)fd);
	pthread_attr_destroy(&attr);
}

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* The kernel doing the same job without any timer: one thread sends N
 * process-directed signals (rt_sigqueueinfo) as fast as the queue takes
 * them, the same receiver takes them, their values in the order the
 * engine's timers fall due (so that the receiver's own bookkeeping
 * touches the same memory in the same order in both).  CPU seconds per signal,
 * and signals per second. */
static void *bare_sender(void *arg)
{
	int sig = (int)(intptr_t)arg;
	siginfo_t info;
	memset(&info, 0, sizeof(info));
	info.si_signo = sig;
	info.si_code = SI_QUEUE;
	pid_t pid = getpid();
	for (int i = 0; i < N;) {
		info.si_value.sival_int = order[i];
		if (syscall(SYS_rt_sigqueueinfo, pid, sig, &info) == 0)
			i++;
		else
			sched_yield(); /* the queue is full: let the receiver in */
	}
	return NULL;
}

static int bare_signals(int sig, int fd, double *cpu_per, double *rate)
{
	pthread_t th, rx;
	received = duplicates = 0;
	memset(got, 0, N);
	for (int i = 0; i < N; i++)
		deadline[i] = 0;
	double c0 = bench_cpu_seconds();
	int64_t t0 = bench_now();
	start_receiver(&rx, fd);
	pthread_create(&th, NULL, bare_sender, (void *)(intptr_t)sig);
	pthread_join(th, NULL);
	pthread_join(rx, NULL);
	double wall = (double)(bench_now() - t0) / 1e9;
	*cpu_per = (bench_cpu_seconds() - c0) / N;
	*rate = received / wall;
	return received == N && !duplicates ? 0 : -1;
}

/* One engine turn: a million timers due over a second after LEAD, the
 * receiver taking them.  CPU seconds per signal, signals per second from
 * the first deadline to the last signal taken, and the lateness of the
 * latest and of the 99th percentile (ms). */
static int engine_turn(int sig, int fd, timer_t *t, double *cpu_per, double *rate, double *late_max,
		       double *late_p99)
{
	int err = 0;
	memset(got, 0, N);
	received = duplicates = 0;
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = sig;
	int made = 0;
	for (; made < N; made++) {
		sev.sigev_value.sival_int = made;
		if (ptimer_create(CLOCK_MONOTONIC, &sev, &t[made]) != 0) {
			err = errno;
			break;
		}
	}
	pthread_t th;
	start_receiver(&th, fd);
	int64_t start = bench_now() + LEAD;
	for (int i = 0; i < made && !err; i++) {
		/* Spread over the second, in an order unrelated to the IDs. */
		int64_t when = start + rank_of(i) * (SPREAD / N);
		deadline[i] = when;
		struct itimerspec its = { .it_value = { when / 1000000000, when % 1000000000 } };
		if (ptimer_settime(t[i], TIMER_ABSTIME, &its, NULL) != 0)
			err = errno;
	}
	/* The CPU counted is the expiries': from 50 ms before the first is
	 * due, when the engine's thread has long taken the armings into its
	 * queue (what the kernel does inside timer_settime(), which the bare
	 * signals' figure has no part of either). */
	int64_t from = start - 50000000;
	while (bench_now() < from) {
		int64_t ns = from - bench_now();
		struct timespec nap = { ns / 1000000000, ns % 1000000000 };
		nanosleep(&nap, NULL);
	}
	double c0 = bench_cpu_seconds();
	pthread_join(th, NULL);
	double cpu = bench_cpu_seconds() - c0;
	for (int i = 0; i < made; i++)
		ptimer_delete(t[i]);
	bench_engine_quiesce(); /* the next bare turn must not pay for the memory given back */
	if (err || received < N || duplicates) {
		fprintf(stderr, "ptimers bench: expiry: %ld of %d delivered, %ld twice%s%s\n", received, N,
			duplicates, err ? ": " : "", err ? strerror(err) : "");
		return -1;
	}
	int64_t last_taken = 0;
	for (int i = 0; i < N; i++)
		if (deadline[i] + late[i] > last_taken)
			last_taken = deadline[i] + late[i];
	qsort(late, N, sizeof(*late), cmp);
	*cpu_per = cpu / N;
	*rate = N / ((double)(last_taken - start) / 1e9);
	*late_max = (double)late[N - 1] / 1e6;
	*late_p99 = (double)late[N * 99 / 100] / 1e6;
	return 0;
}

/* Bare signals and the engine take turns, six each: on this kind of
 * machine either figure still moves by up to a fifth from one turn to
 * the next (what the host does), so each row is the median of TURNS, and
 * bare signals' even turns against their odd ones say how far this run's
 * noise alone moves the rate. */
#define TURNS 6

int bench_expiry(const struct bench_opts *o, struct bench_report *r)
{
	(void)o;
	int sig = SIGRTMIN + 2, err = 0;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	int fd = signalfd(-1, &set, SFD_CLOEXEC);
	deadline = malloc(N * sizeof(*deadline));
	late = malloc(N * sizeof(*late));
	got = calloc(N, 1);
	timer_t *t = malloc(N * sizeof(*t));
	order = malloc(N * sizeof(*order));
	if (fd < 0 || !deadline || !late || !got || !t || !order) {
		fprintf(stderr, "ptimers bench: expiry: %s\n", fd < 0 ? strerror(errno) : "out of memory");
		return -1;
	}
	for (int i = 0; i < N; i++)
		order[rank_of(i)] = i;
	double bare[TURNS], bare_rate[TURNS], cpu[TURNS], rate[TURNS], lmax[TURNS], l99[TURNS];
	for (int k = 0; k < TURNS && !err; k++) {
		if (bare_signals(sig, fd, &bare[k], &bare_rate[k]) != 0) {
			fprintf(stderr, "ptimers bench: expiry: bare signals: %ld of %d taken\n", received, N);
			err = -1;
		} else if (engine_turn(sig, fd, t, &cpu[k], &rate[k], &lmax[k], &l99[k]) != 0) {
			err = -1;
		}
	}
	close(fd);
	free(t);
	free(deadline), free(late), free(got), free(order);
	if (err)
		return -1;
	bench_add(r, "expiry_1M_late_max", "ms", bench_median(lmax, TURNS), 100, "target", false,
		  "a million timers due within 1 s, each delivered once; medians of " BENCH_STR(TURNS)
		  " turns");
	bench_add(r, "expiry_1M_late_p99", "ms", bench_median(l99, TURNS), 100, "target", false, "");
	bench_add(r, "expiry_cpu_per_signal", "us", bench_median(cpu, TURNS) * 1e6,
		  bench_median(bare, TURNS) * 1e6, "signal", false,
		  "whole process; against bare signals sent by a thread; target within 1.2x");
	double even[TURNS / 2], odd[TURNS / 2];
	for (int k = 0; k < TURNS / 2; k++)
		odd[k] = bare_rate[2 * k], even[k] = bare_rate[2 * k + 1];
	bench_add(r, "expiry_signals_per_s", "M/s", bench_median(rate, TURNS) / 1e6,
		  bench_median(bare_rate, TURNS) / 1e6, "signal", true,
		  "the rate signals reached the program; target 0.95 of bare");
	bench_add(r, "expiry_signals_per_s_bare_a_a", "M/s", bench_median(even, TURNS / 2) / 1e6,
		  bench_median(odd, TURNS / 2) / 1e6, "signal", true,
		  "A/A, this run's noise: bare signals' even turns against their odd ones");
	return 0;
}
