/* SPDX-License-Identifier: MIT */
/*
 * Contention: more threads than cores (8 on this machine's 2) creating,
 * arming, reading and deleting timers as fast as they can, while one more
 * thread reads every timer of the process in a loop (the engine's readout;
 * the kernel's /proc/self/timers).  Operations per second, engine against
 * kernel, each side for the same time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "ptimers.h"

#define THREADS 8
#define PER_THREAD 64 /* timers each worker keeps alive */

struct side {
	int (*create)(clockid_t, struct sigevent *, timer_t *);
	int (*settime)(timer_t, int, const struct itimerspec *, struct itimerspec *);
	int (*gettime)(timer_t, struct itimerspec *);
	int (*del)(timer_t);
	void (*read_all)(void);
};

static void engine_read_all(void)
{
	static FILE *null;
	if (!null)
		null = fopen("/dev/null", "w");
	ptimer_readout(null, PTIMER_READOUT_EXTENDED);
}

static void kernel_read_all(void)
{
	char buf[65536];
	int fd = open("/proc/self/timers", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

static const struct side engine_side = { ptimer_create, ptimer_settime, ptimer_gettime, ptimer_delete,
					 engine_read_all };
static const struct side kernel_side = { timer_create, timer_settime, timer_gettime, timer_delete,
					 kernel_read_all };

struct run {
	const struct side *s;
	int stop;
	long ops[THREADS];
	long reads;
	int failed;
};

struct worker_arg {
	struct run *run;
	int me;
};

static void *worker(void *p)
{
	struct worker_arg *a = p;
	struct run *run = a->run;
	const struct side *s = run->s;
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGRTMIN;
	timer_t t[PER_THREAD];
	unsigned seed = (unsigned)a->me * 7919u + 1;
	long ops = 0;
	for (int i = 0; i < PER_THREAD; i++)
		if (s->create(CLOCK_MONOTONIC, &sev, &t[i]) != 0)
			goto fail;
	for (unsigned i = 0; !__atomic_load_n(&run->stop, __ATOMIC_RELAXED); i++) {
		int k = (int)(i % PER_THREAD);
		struct itimerspec its = { .it_value = { 30, (long)(rand_r(&seed) % 1000000000) } }, cur;
		if (s->del(t[k]) != 0 || s->create(CLOCK_MONOTONIC, &sev, &t[k]) != 0 ||
		    s->settime(t[k], 0, &its, NULL) != 0 || s->gettime(t[k], &cur) != 0)
			goto fail;
		ops += 4;
	}
	for (int i = 0; i < PER_THREAD; i++)
		s->del(t[i]);
	run->ops[a->me] = ops;
	return NULL;
fail:
	__atomic_store_n(&run->failed, errno ? errno : EIO, __ATOMIC_RELAXED);
	return NULL;
}

static void *reader(void *p)
{
	struct run *run = p;
	while (!__atomic_load_n(&run->stop, __ATOMIC_RELAXED)) {
		run->s->read_all();
		run->reads++;
	}
	return NULL;
}

static int run_side(const struct side *s, double seconds, double *ops_per_s)
{
	static struct run run;
	struct worker_arg args[THREADS];
	pthread_t th[THREADS + 1];

	memset(&run, 0, sizeof(run));
	run.s = s;
	for (int i = 0; i < THREADS; i++) {
		args[i] = (struct worker_arg){ &run, i };
		pthread_create(&th[i], NULL, worker, &args[i]);
	}
	pthread_create(&th[THREADS], NULL, reader, &run);
	int64_t t0 = bench_now();
	struct timespec nap = { (time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9) };
	while (nanosleep(&nap, &nap) != 0 && errno == EINTR)
		;
	__atomic_store_n(&run.stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i <= THREADS; i++)
		pthread_join(th[i], NULL);
	double elapsed = (double)(bench_now() - t0) / 1e9;
	if (run.failed) {
		fprintf(stderr, "ptimers bench: contention: %s\n", strerror(run.failed));
		return -1;
	}
	long total = 0;
	for (int i = 0; i < THREADS; i++)
		total += run.ops[i];
	*ops_per_s = (double)total / elapsed;
	return 0;
}

int bench_contention(const struct bench_opts *o, struct bench_report *r)
{
	double eng, ker;
	if (run_side(&engine_side, o->seconds, &eng) != 0 || run_side(&kernel_side, o->seconds, &ker) != 0)
		return -1;
	bench_add(r, "contention_8_threads", "Mops/s", eng / 1e6, ker / 1e6, "kernel", true,
		  "create+settime+gettime+delete, readout running; target 3x");
	return 0;
}
