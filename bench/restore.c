/* SPDX-License-Identifier: MIT */
/*
 * Checkpoint and restore, all in one run:
 *
 *  - the seed's scenario, two timers with IDs 1,000,000 and 2,000,000,
 *    restored by the engine (in a process whose engine is up, and in a
 *    fresh one, where the restore also starts the engine), by the kernel's
 *    PR_TIMER_CREATE_RESTORE_IDS and by the kernel's create/delete walk;
 *  - a million timers with random sparse IDs: checkpointed and restored by
 *    the engine; restored by the prctl as many as the user's
 *    RLIMIT_SIGPENDING lets the kernel hold here, per timer and
 *    extrapolated to a million; the walk's time for them, estimated from
 *    its measured step;
 *  - timer_settime's cost (the calling thread's CPU time per call) with
 *    and without a `ptimers ls` reader (the outside reader, src/reader.c)
 *    reading the process in a loop, and, as the control, beside a thread
 *    that only spins: on this machine's two virtual CPUs any busy
 *    neighbour slows the other CPU, reader or not.
 *
 * Every restore runs in a new process (fork) from an image in memory, and
 * is timed from the call to its return; the figure is the median of the
 * rounds (the walk: one round).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "ptimers.h"
#include "reader.h"

#define ROUNDS 15
#define MILLION 1000000
#define KERNEL_CHECKPOINT 10000

/* Results from the children. */
static struct shared {
	double v[ROUNDS];
	double x, y, z, w;
	long count;
	char err[256];
} *sh;

typedef int (*child_fn)(void *arg);

/* Run fn in a new process; 0, or -1 with the child's complaint printed. */
static int in_child(const char *what, child_fn fn, void *arg)
{
	sh->err[0] = '\0';
	fflush(NULL);
	pid_t p = fork();
	if (p == 0)
		_exit(fn(arg) == 0 ? 0 : 1);
	int st;
	if (p < 0 || waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "ptimers bench: restore: %s failed: %s\n", what,
			sh->err[0] ? sh->err : "the child died");
		return -1;
	}
	return 0;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sh->err, sizeof(sh->err), fmt, ap);
	va_end(ap);
	return -1;
}

static int memfd(void)
{
	return (int)syscall(SYS_memfd_create, "image", 1u);
}

/* ---- the images ---- */

struct make_args {
	const int *ids;
	long n;
	int fd;          /* the image */
	int fd_small;    /* a subset of small_n timers spread over the IDs, or -1 */
	long small_n;
	int fd_tiny;     /* and of those, tiny_n (or -1) */
	long tiny_n;
};

static int make_image(void *arg)
{
	struct make_args *a = arg;
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN };
	timer_t *t = malloc((size_t)a->n * sizeof(*t));
	if (!t)
		return fail("out of memory");
	if (ptimer_restore_ids(PTIMER_RESTORE_IDS_ON, 0, 0, 0) != 0)
		return fail("restore mode: %s", strerror(errno));
	for (long i = 0; i < a->n; i++) {
		t[i] = (timer_t)(intptr_t)a->ids[i];
		sev.sigev_value.sival_int = (int)i;
		struct itimerspec its = { { 1, 0 }, { 1000 + i % 1000, (long)(i % 1000) * 1000 } };
		if (ptimer_create(CLOCK_MONOTONIC, &sev, &t[i]) != 0 || ptimer_settime(t[i], 0, &its, NULL) != 0)
			return fail("timer %d: %s", a->ids[i], strerror(errno));
	}
	ptimer_restore_ids(PTIMER_RESTORE_IDS_OFF, 0, 0, 0);
	int64_t t0 = bench_now();
	if (ptimer_checkpoint(a->fd, NULL) != a->n)
		return fail("checkpoint: %s", strerror(errno));
	sh->x = (double)(bench_now() - t0) / 1e6; /* ms */
	if (a->fd_small >= 0) {
		for (long i = 0; i < a->n; i++)
			if ((i * a->small_n) / a->n == ((i + 1) * a->small_n) / a->n)
				ptimer_delete(t[i]);
		if (ptimer_checkpoint(a->fd_small, NULL) != a->small_n)
			return fail("checkpoint of the subset: %s", strerror(errno));
		if (a->fd_tiny >= 0) {
			long kept = 0;
			for (long i = 0; i < a->n; i++) {
				if ((i * a->small_n) / a->n == ((i + 1) * a->small_n) / a->n)
					continue; /* deleted above */
				if ((kept * a->tiny_n) / a->small_n == ((kept + 1) * a->tiny_n) / a->small_n)
					ptimer_delete(t[i]);
				kept++;
			}
			if (ptimer_checkpoint(a->fd_tiny, NULL) != a->tiny_n)
				return fail("checkpoint of the smaller subset: %s", strerror(errno));
		}
	}
	free(t);
	return 0;
}

/* ---- restoring ---- */

struct restore_args {
	int fd;
	int round;
	bool warm;       /* the engine already up */
	bool kernel, walk;
	bool checkpoint; /* then time a kernel checkpoint of what was restored */
	long expect;
};

static int walk_steps_total;

static int note_walk(void *arg, long done, long total, double left)
{
	(void)arg;
	(void)left;
	if (done == 0)
		walk_steps_total = (int)total;
	return 0;
}

static int restore_once(void *arg)
{
	struct restore_args *a = arg;
	if (a->kernel)
		bench_raise_sigpending();
	if (a->warm) {
		struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN };
		timer_t t;
		if (ptimer_create(CLOCK_MONOTONIC, &sev, &t) != 0 || ptimer_delete(t) != 0)
			return fail("starting the engine: %s", strerror(errno));
	}
	char why[256] = "";
	struct ptimer_restore_opts o = { .size = sizeof(o), .flags = a->walk ? PTIMER_RESTORE_WALK : 0,
					 .progress = note_walk, .error = why, .error_size = sizeof(why) };
	int64_t t0 = bench_now();
	int n = a->kernel ? ptimer_kernel_restore(a->fd, &o) : ptimer_restore(a->fd, &o);
	int64_t t1 = bench_now();
	if (n != a->expect)
		return fail("restored %d of %ld: %s", n, a->expect, why);
	sh->v[a->round] = (double)(t1 - t0) / 1e3; /* us */
	sh->count = walk_steps_total;
	if (a->checkpoint) {
		int fd = memfd();
		t0 = bench_now();
		if (ptimer_kernel_checkpoint(fd, NULL) != n)
			return fail("kernel checkpoint: %s", strerror(errno));
		sh->y = (double)(bench_now() - t0) / 1e3;
		close(fd);
	}
	return 0;
}

/* Median time of rounds restores of the image in fd, in us. */
static int time_restore(const char *what, struct restore_args *a, int rounds, double *us)
{
	double v[ROUNDS];
	for (int i = 0; i < rounds; i++) {
		a->round = i;
		if (lseek(a->fd, 0, SEEK_SET) != 0 || in_child(what, restore_once, a) != 0)
			return -1;
		v[i] = sh->v[i];
	}
	*us = bench_median(v, rounds);
	return 0;
}

/* ---- settime beside a reader ---- */

#define BATCH 1000

/* The calling thread's CPU time: what the calls cost, not counting the
 * moments the reader's processes had this CPU (two cores, three busy
 * threads). */
static int64_t thread_cpu_ns(void)
{
	return bench_clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

/* Batches of settime calls on t for about ms milliseconds; their
 * per-call CPU times appended to v (at most cap). */
static int settime_batches(timer_t t, int ms, double *v, int n, int cap)
{
	struct itimerspec its = { { 0, 0 }, { 1000, 0 } };
	int64_t until = bench_now() + (int64_t)ms * 1000000;
	while (bench_now() < until && n < cap) {
		int64_t t0 = thread_cpu_ns();
		for (int i = 0; i < BATCH; i++) {
			its.it_value.tv_nsec = i;
			ptimer_settime(t, 0, &its, NULL);
		}
		v[n++] = (double)(thread_cpu_ns() - t0) / BATCH;
	}
	return n;
}

/* The reader: what `ptimers ls PID` does, in a loop until killed; counts
 * its reads. */
static void reader(pid_t target)
{
	char why[256];
	for (;;) {
		struct pt_remote r;
		struct pt_saved *s = NULL;
		size_t n = 0;
		struct pt_remote_meta meta;
		if (pt_remote_open(target, &r, why, sizeof(why)) != 0 ||
		    pt_remote_timers(&r, &s, &n, &meta, why, sizeof(why)) != 0)
			_exit(1);
		free(s);
		__atomic_add_fetch(&sh->count, 1, __ATOMIC_RELAXED);
	}
}

/* A neighbour that only burns CPU, the control for the reader: a thread
 * that spins while spin_on is set and otherwise naps. */
static int spin_on, spin_quit;

static void *spinner(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&spin_quit, __ATOMIC_RELAXED)) {
		if (__atomic_load_n(&spin_on, __ATOMIC_RELAXED))
			__builtin_ia32_pause();
		else
			usleep(1000);
	}
	return NULL;
}

/* Alone, beside the reader and beside the spinner in turns (each
 * neighbour stopped and let go again), PHASES times each, so that all
 * three see the same minutes of this machine, whose speed drifts. */
#define PHASES 8
#define PHASE_MS 60
#define SAMPLES_MAX 8192

static int settime_beside_reader(void *arg)
{
	long timers = *(long *)arg;
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN };
	timer_t t = 0;
	for (long i = 0; i < timers; i++) {
		struct itimerspec its = { { 0, 0 }, { 1000 + i % 100, 0 } };
		if (ptimer_create(CLOCK_MONOTONIC, &sev, &t) != 0 || ptimer_settime(t, 0, &its, NULL) != 0)
			return fail("timer: %s", strerror(errno));
	}
	static double alone[SAMPLES_MAX], beside[SAMPLES_MAX], busy[SAMPLES_MAX];
	int na = 0, nb = 0, nc = 0;
	settime_batches(t, 20, alone, 0, SAMPLES_MAX); /* the dispatcher done with the creations */
	sh->count = 0;
	pid_t me = getpid(), r = fork();
	if (r == 0)
		reader(me);
	pthread_t spin;
	bool spinning = r > 0 && pthread_create(&spin, NULL, spinner, NULL) == 0;
	/* Wait until the reader has read once: it is running. */
	for (int i = 0; i < 2000 && !__atomic_load_n(&sh->count, __ATOMIC_RELAXED); i++)
		usleep(1000);
	double secs = 0;
	long reads = 0;
	for (int p = 0; p < PHASES; p++) {
		long c0 = __atomic_load_n(&sh->count, __ATOMIC_RELAXED);
		int64_t t0 = bench_now();
		nb = settime_batches(t, PHASE_MS, beside, nb, SAMPLES_MAX);
		secs += (double)(bench_now() - t0) / 1e9;
		reads += __atomic_load_n(&sh->count, __ATOMIC_RELAXED) - c0;
		kill(r, SIGSTOP);
		na = settime_batches(t, PHASE_MS, alone, na, SAMPLES_MAX);
		if (spinning) {
			__atomic_store_n(&spin_on, 1, __ATOMIC_RELAXED);
			nc = settime_batches(t, PHASE_MS, busy, nc, SAMPLES_MAX);
			__atomic_store_n(&spin_on, 0, __ATOMIC_RELAXED);
		}
		kill(r, SIGCONT);
	}
	kill(r, SIGKILL);
	waitpid(r, NULL, 0);
	if (spinning) {
		__atomic_store_n(&spin_quit, 1, __ATOMIC_RELAXED);
		pthread_join(spin, NULL);
	}
	if (reads <= 0 || na == 0 || nb == 0 || nc == 0)
		return fail(nc == 0 ? "no spinner: %s" : "the reader read nothing", strerror(errno));
	sh->x = bench_median(alone, na);
	sh->y = bench_median(beside, nb);
	sh->w = bench_median(busy, nc);
	sh->z = (double)reads / secs;
	return 0;
}

/* ---- the group ---- */

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return x < y ? -1 : x > y;
}

/* n distinct random IDs in 0..INT_MAX, ascending. */
static int *random_ids(long n)
{
	int *ids = malloc((size_t)n * sizeof(int));
	uint64_t s = 0x9e3779b97f4a7c15ull;
	long have = 0;
	while (ids && have < n) {
		for (long i = have; i < n; i++) {
			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			ids[i] = (int)(s & INT_MAX);
		}
		qsort(ids, (size_t)n, sizeof(int), cmp_int);
		have = 1;
		for (long i = 1; i < n; i++)
			if (ids[i] != ids[have - 1])
				ids[have++] = ids[i];
	}
	return ids;
}

int bench_restore(const struct bench_opts *o, struct bench_report *r)
{
	(void)o;
	char note[96];
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return -1;
	int rc = -1;
	int seed = memfd(), big = memfd(), small = memfd(), tiny = memfd();
	int *ids = NULL;

	/* The seed's scenario. */
	static const int seed_ids[] = { 1000000, 2000000 };
	struct make_args ms = { seed_ids, 2, seed, -1, 0, -1, 0 };
	if (in_child("the seed's image", make_image, &ms) != 0)
		goto out;
	double warm, cold, prctl, walk;
	struct restore_args a = { .fd = seed, .warm = true, .expect = 2 };
	if (time_restore("engine, warm", &a, ROUNDS, &warm) != 0)
		goto out;
	a.warm = false;
	if (time_restore("engine, cold", &a, ROUNDS, &cold) != 0)
		goto out;
	a.kernel = true;
	if (time_restore("kernel, prctl", &a, ROUNDS, &prctl) != 0)
		goto out;
	a.walk = true;
	if (time_restore("kernel, walk", &a, 1, &walk) != 0)
		goto out;
	long walk_steps = sh->count;
	double step_us = walk / (double)(walk_steps ? walk_steps : 1);
	bench_add(r, "restore_2_sparse", "us", warm, prctl, "kernel", false,
		  "IDs 1e6, 2e6; kernel: PR_TIMER_CREATE_RESTORE_IDS");
	snprintf(note, sizeof(note), "the same, in a fresh process (the restore starts the engine)");
	bench_add(r, "restore_2_sparse_fresh", "us", cold, prctl, "kernel", false, note);
	snprintf(note, sizeof(note), "kernel: the walk, %ld timer_create calls", walk_steps);
	bench_add(r, "restore_2_sparse_walk", "us", warm, walk, "kernel", false, note);

	/* A million sparse timers; the kernel's share. */
	ids = random_ids(MILLION);
	long room = bench_sigq_room();
	long kn = room - 4096;
	if (kn > MILLION)
		kn = MILLION;
	if (!ids)
		goto out;
	long tn = kn < KERNEL_CHECKPOINT ? kn : KERNEL_CHECKPOINT;
	struct make_args mb = { ids, MILLION, big, kn >= 1000 ? small : -1, kn, kn >= 1000 ? tiny : -1, tn };
	if (in_child("the million-timer image", make_image, &mb) != 0)
		goto out;
	double ckpt_ms = sh->x;
	double restore_1m;
	struct restore_args b = { .fd = big, .warm = true, .expect = MILLION };
	if (time_restore("a million on the engine", &b, 3, &restore_1m) != 0)
		goto out;
	bench_add(r, "restore_1m_sparse", "ms", restore_1m / 1e3, 200, "target", false,
		  "random IDs in 0..INT_MAX, all armed");
	if (kn >= 1000) {
		double kus, tus;
		struct restore_args k = { .fd = small, .kernel = true, .expect = kn };
		if (time_restore("the kernel's share by the prctl", &k, 1, &kus) != 0)
			goto out;
		/* The kernel's checkpoint reads /proc/self/timers, which the
		 * kernel walks from the start for each page: at tens of
		 * thousands of timers it grows much faster than linearly.  It
		 * is timed at KERNEL_CHECKPOINT and scaled linearly, which
		 * flatters it. */
		struct restore_args kt = { .fd = tiny, .kernel = true, .checkpoint = true, .expect = tn };
		if (time_restore("a kernel checkpoint", &kt, 1, &tus) != 0)
			goto out;
		double kckpt_us = sh->y;
		snprintf(note, sizeof(note), "kernel: %ld timers by the prctl (%.2f us each), x%.1f", kn,
			 kus / (double)kn, (double)MILLION / (double)kn);
		bench_add(r, "restore_1m_sparse_prctl", "ms", restore_1m / 1e3,
			  kus / (double)kn * MILLION / 1e3, "kernel", false, note);
		snprintf(note, sizeof(note), "kernel: ptimer_kernel_checkpoint of %ld, x%.0f (it grows "
			 "faster than that)", tn, (double)MILLION / (double)tn);
		bench_add(r, "checkpoint_1m", "ms", ckpt_ms, kckpt_us / (double)tn * MILLION / 1e3,
			  "kernel", false, note);
	} else {
		fprintf(stderr, "ptimers bench: restore: RLIMIT_SIGPENDING leaves room for %ld kernel "
			"timers: no kernel rows for a million\n", room);
		bench_add(r, "checkpoint_1m", "ms", ckpt_ms, 0, "kernel", false,
			  "no kernel figure: RLIMIT_SIGPENDING is used up");
	}
	/* The walk to the highest ID, from an empty process. */
	double walk_s = step_us * ((double)ids[MILLION - 1] + 1) / 1e6;
	snprintf(note, sizeof(note), "kernel: the walk, estimated (%.2f us a step x %d steps)", step_us,
		 ids[MILLION - 1] + 1);
	bench_add(r, "restore_1m_sparse_walk", "s", restore_1m / 1e6, walk_s, "kernel", false, note);

	/* settime beside a reader. */
	long timers = 10000;
	if (in_child("settime beside a reader", settime_beside_reader, &timers) != 0)
		goto out;
	snprintf(note, sizeof(note), "thread CPU per call; against: alone; the reader listed %ld timers %.0f times/s", timers,
		 sh->z);
	bench_add(r, "settime_with_ls_reader", "ns", sh->y, sh->x, "alone", false, note);
	bench_add(r, "settime_with_ls_reader_vs_busy", "ns", sh->y, sh->w, "busy neighbour", false,
		  "the same calls beside a thread that only spins, in turns: the reader's own share");
	rc = 0;
out:
	free(ids);
	close(seed);
	close(big);
	close(small);
	close(tiny);
	munmap(sh, sizeof(*sh));
	return rc;
}
