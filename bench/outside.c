/* SPDX-License-Identifier: MIT */
/*
 * A process seen from outside, engine against kernel in one run:
 *
 *  - `ptimers ls` of a process stopped with SIGSTOP that holds 10,000
 *    armed timers: the outside reader (src/reader.c) against reading the
 *    kernel's /proc/PID/timers of the same process on kernel timers (which
 *    says less: no remaining time, interval or overruns);
 *  - the seed's scenario under CRIU: a small process holding the timers
 *    1,000,000 and 2,000,000, on the engine and on kernel timers (CRIU's
 *    PR_TIMER_CREATE_RESTORE_IDS path), timed through `criu dump` and
 *    `criu restore` (wall clock of each command, median of the rounds).
 *    CRIU is the one given with --criu, else the first of PATH's `criu`
 *    when 4.1 or newer and the copy tests/criu/build.sh builds in the
 *    build directory; without one the rows are left out, saying why.
 *
 * The processes are forked from the bench before its other groups have
 * grown it (this group runs first), so that a dump copies a small process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "private.h"
#include "ptimers.h"
#include "reader.h"

#define LS_TIMERS 10000
#define LS_ROUNDS 15
#define CRIU_ROUNDS 5

/* ---- the processes looked at ---- */

struct subject {
	bool kernel;      /* its timers are the kernel's */
	long n;           /* how many (the seed's two when 0) */
	bool stop;        /* stop itself once they are made */
};

static int make_timer(bool kernel, clockid_t clock, int want, timer_t *out)
{
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN };
	if (kernel) {
		int id = want;
		if (syscall(SYS_timer_create, clock, &sev, &id) != 0)
			return -1;
		*out = (timer_t)(intptr_t)id;
		return 0;
	}
	*out = (timer_t)(intptr_t)want;
	return ptimer_create(clock, &sev, out);
}

static int arm(bool kernel, timer_t t, int flags, const struct itimerspec *its)
{
	if (kernel)
		return (int)syscall(SYS_timer_settime, (int)(intptr_t)t, flags, its, NULL);
	return ptimer_settime(t, flags, its, NULL);
}

/* The subject's life: its timers, a byte on ready, then nothing. */
static void subject_main(const struct subject *s, int ready)
{
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	setsid();
	int ok = 1;
	if (s->n == 0) {
		/* The seed's: one every second, one at the next minute. */
		if (s->kernel)
			ok = prctl(PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) == 0;
		else
			ok = ptimer_restore_ids(1, 0, 0, 0) == 0;
		timer_t a, b;
		ok = ok && make_timer(s->kernel, CLOCK_MONOTONIC, 1000000, &a) == 0 &&
		     make_timer(s->kernel, CLOCK_REALTIME, 2000000, &b) == 0;
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		struct itimerspec every = { { 1, 0 }, { 1, 0 } };
		struct itimerspec minute = { { 60, 0 }, { now.tv_sec - now.tv_sec % 60 + 60, 0 } };
		ok = ok && arm(s->kernel, a, 0, &every) == 0 && arm(s->kernel, b, TIMER_ABSTIME, &minute) == 0;
	} else {
		struct itimerspec far = { { 0, 0 }, { 3600, 0 } };
		for (long i = 0; ok && i < s->n; i++) {
			timer_t t;
			ok = make_timer(s->kernel, CLOCK_MONOTONIC, 0, &t) == 0 && arm(s->kernel, t, 0, &far) == 0;
		}
	}
	if (write(ready, ok ? "1" : "0", 1) != 1)
		_exit(1);
	/* Nothing that CRIU would have to find outside the process. */
	int null = open("/dev/null", O_RDWR);
	dup2(null, 0);
	dup2(null, 1);
	dup2(null, 2);
	syscall(SYS_close_range, 3, ~0u, 0);
	if (s->stop)
		raise(SIGSTOP);
	for (;;)
		pause();
}

/* Start one; its pid, or -1 with why on stderr. */
static pid_t subject_start(const struct subject *s)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		subject_main(s, p[1]);
	}
	close(p[1]);
	char c = 0;
	ssize_t got = pid > 0 ? read(p[0], &c, 1) : -1;
	close(p[0]);
	if (got != 1 || c != '1') {
		fprintf(stderr, "ptimers bench: outside: a process with %ld %s timers could not be made%s\n",
			s->n ? s->n : 2, s->kernel ? "kernel" : "engine",
			s->kernel ? " (RLIMIT_SIGPENDING?)" : "");
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		return -1;
	}
	if (s->stop) {
		int st;
		if (waitpid(pid, &st, WUNTRACED) != pid || !WIFSTOPPED(st))
			return -1;
	}
	return pid;
}

static void subject_end(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* ---- ls of a stopped process ---- */

static int ls_engine(pid_t pid, double *ms)
{
	double v[LS_ROUNDS];
	for (int i = 0; i < LS_ROUNDS; i++) {
		char why[256];
		struct pt_remote r;
		struct pt_saved *s = NULL;
		size_t n = 0;
		struct pt_remote_meta meta;
		int64_t t0 = bench_now();
		if (pt_remote_open(pid, &r, why, sizeof(why)) != 0 ||
		    pt_remote_timers(&r, &s, &n, &meta, why, sizeof(why)) != 0) {
			fprintf(stderr, "ptimers bench: outside: %s\n", why);
			return -1;
		}
		v[i] = (double)(bench_now() - t0) / 1e6;
		free(s);
		if (n != LS_TIMERS) {
			fprintf(stderr, "ptimers bench: outside: read %zu timers of %d\n", n, LS_TIMERS);
			return -1;
		}
	}
	*ms = bench_median(v, LS_ROUNDS);
	return 0;
}

static int ls_kernel(pid_t pid, double *ms)
{
	static char buf[1 << 16];
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/timers", (int)pid);
	double v[LS_ROUNDS];
	for (int i = 0; i < LS_ROUNDS; i++) {
		long ids = 0;
		int64_t t0 = bench_now();
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		for (ssize_t got; (got = read(fd, buf, sizeof(buf))) > 0;)
			for (ssize_t k = 0; k + 3 < got; k++)
				ids += buf[k] == 'I' && buf[k + 1] == 'D' && buf[k + 2] == ':';
		close(fd);
		v[i] = (double)(bench_now() - t0) / 1e6;
		if (ids < LS_TIMERS) {
			fprintf(stderr, "ptimers bench: outside: /proc/%d/timers listed %ld of %d\n", (int)pid,
				ids, LS_TIMERS);
			return -1;
		}
	}
	*ms = bench_median(v, LS_ROUNDS);
	return 0;
}

static int bench_ls(struct bench_report *r)
{
	struct subject e = { .kernel = false, .n = LS_TIMERS, .stop = true };
	pid_t pid = subject_start(&e);
	if (pid < 0)
		return -1;
	double engine_ms, kernel_ms = 0;
	int err = ls_engine(pid, &engine_ms);
	subject_end(pid);
	if (err)
		return -1;
	char note[96];
	bench_raise_sigpending();
	if (bench_sigq_room() < LS_TIMERS + 4096) {
		fprintf(stderr, "ptimers bench: outside: RLIMIT_SIGPENDING leaves no room for %d kernel "
			"timers: no kernel figure for ls\n", LS_TIMERS);
		bench_add(r, "ls_stopped_10k", "ms", engine_ms, 0, "kernel", false,
			  "no kernel figure: RLIMIT_SIGPENDING is used up");
		return 0;
	}
	struct subject k = { .kernel = true, .n = LS_TIMERS, .stop = true };
	if ((pid = subject_start(&k)) < 0)
		return -1;
	err = ls_kernel(pid, &kernel_ms);
	subject_end(pid);
	if (err)
		return -1;
	snprintf(note, sizeof(note), "SIGSTOPped; kernel: reading /proc/PID/timers (IDs, no times)");
	bench_add(r, "ls_stopped_10k", "ms", engine_ms, kernel_ms, "kernel", false, note);
	return 0;
}

/* ---- CRIU ---- */

/* criu's version as major * 100 + minor, or -1. */
static int criu_version(const char *path)
{
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof(cmd), "'%s' --version 2>/dev/null", path);
	FILE *f = popen(cmd, "r");
	if (!f)
		return -1;
	char line[128];
	int major = -1, minor = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Version: %d.%d", &major, &minor) == 2)
			break;
	pclose(f);
	return major < 0 ? -1 : major * 100 + minor;
}

static const char *find_criu(const struct bench_opts *o, char *buf, size_t size)
{
	if (o->criu)
		return o->criu;
	const char *path = getenv("PATH");
	for (const char *p = path; p && *p;) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		snprintf(buf, size, "%.*s/criu", (int)len, p);
		if (access(buf, X_OK) == 0 && criu_version(buf) >= 401)
			return buf;
		p += len + (end ? 1 : 0);
	}
	/* The copy the CRIU suite builds: build/tests/criu/ beside build/tools/. */
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		snprintf(buf, size, "%s/../tests/criu/criu-4.2/criu/criu", dirname(exe));
		if (access(buf, X_OK) == 0)
			return buf;
	}
	return NULL;
}

/* Run criu with args; its wall time in ms, or -1 (its log's last lines to stderr). */
static double run_criu(const char *criu, char *const argv[], const char *dir, const char *log)
{
	fflush(NULL);
	int64_t t0 = bench_now();
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execv(criu, argv);
		_exit(127);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	double ms = (double)(bench_now() - t0) / 1e6;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return ms;
	fprintf(stderr, "ptimers bench: outside: %s %s failed; %s/%s says:\n", criu, argv[1], dir, log);
	char cmd[PATH_MAX * 2];
	snprintf(cmd, sizeof(cmd), "grep -i error '%s/%s' | tail -n 3 >&2", dir, log);
	if (system(cmd) != 0)
		fprintf(stderr, "  (no log)\n");
	return -1;
}

static bool has_seed_timers(pid_t pid, bool kernel)
{
	bool a = false, b = false;
	if (kernel) {
		char path[64], line[128];
		snprintf(path, sizeof(path), "/proc/%d/timers", (int)pid);
		FILE *f = fopen(path, "re");
		while (f && fgets(line, sizeof(line), f)) {
			a |= strcmp(line, "ID: 1000000\n") == 0;
			b |= strcmp(line, "ID: 2000000\n") == 0;
		}
		if (f)
			fclose(f);
		return a && b;
	}
	char why[256];
	struct pt_remote r;
	struct pt_saved *s = NULL;
	size_t n = 0;
	struct pt_remote_meta meta;
	if (pt_remote_open(pid, &r, why, sizeof(why)) != 0 ||
	    pt_remote_timers(&r, &s, &n, &meta, why, sizeof(why)) != 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		a |= s[i].id == 1000000;
		b |= s[i].id == 2000000;
	}
	free(s);
	return a && b;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Dump and restore the seed's process CRIU_ROUNDS times: median ms of each. */
static int criu_rounds(const char *criu, bool kernel, double *dump_ms, double *restore_ms)
{
	char dir[] = "/tmp/ptimers-bench-criu-XXXXXX";
	if (!mkdtemp(dir))
		return -1;
	struct subject s = { .kernel = kernel };
	pid_t pid = subject_start(&s);
	int err = pid < 0 ? -1 : 0;
	double d[CRIU_ROUNDS], rs[CRIU_ROUNDS];
	char pids[16];
	snprintf(pids, sizeof(pids), "%d", (int)pid);
	for (int i = 0; !err && i < CRIU_ROUNDS; i++) {
		char *dump[] = { (char *)criu, "dump", "-t", pids, "-D", dir, "-o", "dump.log", NULL };
		char *restore[] = { (char *)criu, "restore", "-d", "-D", dir, "-o", "restore.log", NULL };
		d[i] = run_criu(criu, dump, dir, "dump.log");
		if (d[i] < 0) {
			err = -1;
			break;
		}
		waitpid(pid, NULL, 0); /* killed by the dump: our child, or ours as subreaper */
		rs[i] = run_criu(criu, restore, dir, "restore.log");
		if (rs[i] < 0) {
			err = -1;
			pid = -1;
			break;
		}
		if (!has_seed_timers(pid, kernel)) {
			fprintf(stderr, "ptimers bench: outside: the restored process lacks the timers "
				"1000000 and 2000000\n");
			err = -1;
		}
	}
	if (pid > 0)
		subject_end(pid);
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	if (!err) {
		*dump_ms = bench_median(d, CRIU_ROUNDS);
		*restore_ms = bench_median(rs, CRIU_ROUNDS);
	}
	return err;
}

static int bench_criu(const struct bench_opts *o, struct bench_report *r)
{
	char buf[PATH_MAX];
	const char *criu = find_criu(o, buf, sizeof(buf));
	if (!criu) {
		fprintf(stderr, "ptimers bench: outside: no CRIU 4.1 or newer (Debian 12's 3.17 cannot "
			"start on Linux 6.13 and later): no CRIU rows.  tests/criu/build.sh DIR builds "
			"one; then --criu=DIR/criu-4.2/criu/criu\n");
		return 0;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "ptimers bench: outside: CRIU needs root: no CRIU rows\n");
		return 0;
	}
	/* Restored processes become children of ours, to be reaped. */
	int was = 0;
	prctl(PR_GET_CHILD_SUBREAPER, &was, 0, 0, 0);
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	double ed, er, kd, kr;
	int err = criu_rounds(criu, false, &ed, &er);
	if (!err)
		err = criu_rounds(criu, true, &kd, &kr);
	prctl(PR_SET_CHILD_SUBREAPER, was, 0, 0, 0);
	if (err)
		return -1;
	bench_add(r, "criu_dump_seed", "ms", ed, kd, "kernel", false,
		  "criu dump of a small process holding IDs 1e6, 2e6");
	bench_add(r, "criu_restore_seed", "ms", er, kr, "kernel", false,
		  "criu restore of it (kernel: CRIU's PR_TIMER_CREATE_RESTORE_IDS)");
	return 0;
}

int bench_outside(const struct bench_opts *o, struct bench_report *r)
{
	if (bench_ls(r) != 0)
		return -1;
	return bench_criu(o, r);
}
