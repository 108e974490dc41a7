/* SPDX-License-Identifier: MIT */
/*
 * The outside reader (src/reader.c): another process's timers read from
 * its memory, whatever state the process is in.
 *
 * A child makes timers of several kinds and clocks and reports what it
 * made; the parent reads it while it runs, while it is stopped by
 * SIGSTOP, frozen by a cgroup freezer and stopped under ptrace, each
 * time within a second (a few ms here) and with the values the child
 * set.  And a child that creates and deletes timers without pause while
 * holding 100: no listing, from outside or inside, ever holds more than
 * were alive at some moment during it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ptimers.h"
#include "reader.h"

#define NSEC 1000000000LL
#define HELD 100
#define CHURN 4

static int64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return ts.tv_sec * NSEC + ts.tv_nsec;
}

/* What the child made, shared with the parent. */
static struct {
	volatile int ready;
	int ids[4];
	volatile int stop;
	volatile long made; /* churn: timers alive at most */
} *sh;

static void child_timers(void)
{
	struct sigevent sig = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 1 };
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	timer_t t;
	/* A periodic monotonic, an absolute realtime, a disarmed, a CPU one. */
	struct itimerspec p = { .it_interval = { 5, 0 }, .it_value = { 2, 0 } };
	ptimer_create(CLOCK_MONOTONIC, &sig, &t);
	ptimer_settime(t, 0, &p, NULL);
	sh->ids[0] = (int)(intptr_t)t;
	struct itimerspec a = { { 0, 0 }, { now_ns(CLOCK_REALTIME) / NSEC + 100, 0 } };
	ptimer_create(CLOCK_REALTIME, &sig, &t);
	ptimer_settime(t, TIMER_ABSTIME, &a, NULL);
	sh->ids[1] = (int)(intptr_t)t;
	ptimer_create(CLOCK_BOOTTIME, &none, &t);
	sh->ids[2] = (int)(intptr_t)t;
	struct itimerspec c = { { 0, 0 }, { 50, 0 } };
	ptimer_create(CLOCK_PROCESS_CPUTIME_ID, &sig, &t);
	ptimer_settime(t, 0, &c, NULL);
	sh->ids[3] = (int)(intptr_t)t;
	sh->ready = 1;
	for (;;)
		pause();
}

static pid_t child; /* the one a test runs: ended by the teardown if the test fails */

static int teardown(void **state)
{
	(void)state;
	if (child > 0) {
		ptrace(PTRACE_DETACH, child, NULL, NULL);
		kill(child, SIGKILL);
		waitpid(child, NULL, __WALL);
	}
	child = 0;
	return 0;
}

static pid_t start(void (*fn)(void))
{
	sh->ready = 0;
	fflush(NULL);
	pid_t p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		fn();
		_exit(0);
	}
	child = p;
	int64_t end = now_ns(CLOCK_MONOTONIC) + 10 * NSEC;
	while (!sh->ready && now_ns(CLOCK_MONOTONIC) < end)
		usleep(1000);
	assert_true(sh->ready);
	return p;
}

static void end(pid_t p)
{
	kill(p, SIGKILL);
	waitpid(p, NULL, __WALL);
	child = 0;
}

/* The process's state letter, from /proc (T: stopped, t: traced). */
static char state_of(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

static void wait_state(pid_t pid, char want)
{
	int64_t end_at = now_ns(CLOCK_MONOTONIC) + 10 * NSEC;
	while (state_of(pid) != want && now_ns(CLOCK_MONOTONIC) < end_at)
		usleep(1000);
	assert_int_equal(state_of(pid), want);
}

/* Read the child within a second, without waiting for it, and check
 * what it made.  A read takes 2-5 ms here, 105 ms once under valgrind
 * beside two spinning processes; a reader that waited for the child
 * would wait as long as it is stopped. */
static void read_and_check(pid_t pid, const char *how)
{
	char why[256];
	struct pt_remote r;
	struct pt_saved *s = NULL;
	size_t n = 0;
	struct pt_remote_meta meta;
	int64_t t0 = now_ns(CLOCK_MONOTONIC);
	if (pt_remote_open(pid, &r, why, sizeof(why)) != 0 ||
	    pt_remote_timers(&r, &s, &n, &meta, why, sizeof(why)) != 0)
		fail_msg("%s: %s", how, why);
	int64_t took = now_ns(CLOCK_MONOTONIC) - t0;
	printf("# %s: %zu timers read in %.2f ms\n", how, n, (double)took / 1e6);
	assert_true(took < NSEC);
	assert_int_equal(n, 4);
	assert_int_equal(meta.changing, 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(s[i].id, sh->ids[i]);
	/* Periodic monotonic: 5 s interval, under 2 s left. */
	assert_int_equal(s[0].clockid, CLOCK_MONOTONIC);
	assert_true(s[0].armed && s[0].interval == 5 * NSEC);
	assert_true(s[0].remaining > 0 && s[0].remaining <= 2 * NSEC);
	assert_int_equal(s[0].signo, SIGRTMIN + 1);
	/* Absolute realtime: its deadline, about 100 s on. */
	assert_true(s[1].armed && s[1].absolute);
	assert_true(s[1].remaining > 90 * NSEC && s[1].remaining <= 101 * NSEC);
	/* Disarmed SIGEV_NONE on BOOTTIME. */
	assert_int_equal(s[2].clockid, CLOCK_BOOTTIME);
	assert_true(!s[2].armed && s[2].notify == SIGEV_NONE);
	/* Process CPU clock: about 50 s of CPU left, and said to be one. */
	assert_int_equal(s[3].cpu, 1);
	assert_true(s[3].armed && s[3].remaining > 40 * NSEC && s[3].remaining <= 50 * NSEC);
	free(s);
}

static void test_running(void **state)
{
	(void)state;
	pid_t p = start(child_timers);
	read_and_check(p, "running");
	end(p);
}

static void test_sigstopped(void **state)
{
	(void)state;
	pid_t p = start(child_timers);
	kill(p, SIGSTOP);
	wait_state(p, 'T');
	read_and_check(p, "stopped by SIGSTOP");
	end(p);
}

static void test_ptrace_stopped(void **state)
{
	(void)state;
	pid_t p = start(child_timers);
	assert_int_equal(ptrace(PTRACE_SEIZE, p, NULL, NULL), 0);
	assert_int_equal(ptrace(PTRACE_INTERRUPT, p, NULL, NULL), 0);
	int st;
	assert_int_equal(waitpid(p, &st, __WALL), p);
	assert_true(WIFSTOPPED(st));
	read_and_check(p, "stopped by ptrace");
	ptrace(PTRACE_DETACH, p, NULL, NULL);
	end(p);
}

/* Where a cgroup hierarchy of this type (and option, for v1) is mounted. */
static bool cgroup_mount(const char *type, const char *option, char *dir, size_t size)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char src[256], mnt[256], fstype[64], opts[512];
	bool found = false;
	while (f && !found && fscanf(f, "%255s %255s %63s %511s %*d %*d", src, mnt, fstype, opts) == 4) {
		if (strcmp(fstype, type))
			continue;
		if (option) {
			char *save = NULL;
			for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save))
				found |= !strcmp(o, option);
		} else {
			found = true;
		}
		if (found)
			snprintf(dir, size, "%s", mnt);
	}
	if (f)
		fclose(f);
	return found;
}

static bool write_file(const char *dir, const char *name, const char *text)
{
	char path[320];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	bool ok = f && fputs(text, f) >= 0;
	if (f && fclose(f) != 0)
		ok = false;
	return ok;
}

static bool file_has(const char *dir, const char *name, const char *line_wanted)
{
	char path[320], line[128];
	bool has = false;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		has |= !strcmp(line, line_wanted);
	if (f)
		fclose(f);
	return has;
}

/* A freezer group of the test's own (cgroup v2, else v1's freezer),
 * removed at the end. */
static void test_cgroup_frozen(void **state)
{
	(void)state;
	char root[256], dir[320], pidline[32];
	bool v2 = cgroup_mount("cgroup2", NULL, root, sizeof(root));
	if (!v2 && !cgroup_mount("cgroup", "freezer", root, sizeof(root))) {
		printf("# cgroup freezer: no cgroup2 or v1 freezer hierarchy mounted: skipped\n");
		skip();
	}
	snprintf(dir, sizeof(dir), "%s/ptimers-test-%d", root, (int)getpid());
	if (mkdir(dir, 0755) != 0) {
		printf("# cgroup freezer: cannot make %s (%s): skipped\n", dir, strerror(errno));
		skip();
	}
	pid_t p = start(child_timers);
	snprintf(pidline, sizeof(pidline), "%d\n", (int)p);
	bool frozen = write_file(dir, "cgroup.procs", pidline) &&
		      write_file(dir, v2 ? "cgroup.freeze" : "freezer.state", v2 ? "1\n" : "FROZEN\n");
	if (!frozen) {
		int e = errno;
		end(p);
		rmdir(dir);
		printf("# cgroup freezer: cannot freeze in %s (%s): skipped\n", dir, strerror(e));
		skip();
	}
	int64_t until = now_ns(CLOCK_MONOTONIC) + 10 * NSEC;
	bool done = false;
	while (!(done = v2 ? file_has(dir, "cgroup.events", "frozen 1\n")
			   : file_has(dir, "freezer.state", "FROZEN\n")) &&
	       now_ns(CLOCK_MONOTONIC) < until)
		usleep(1000);
	if (done)
		read_and_check(p, v2 ? "frozen by the cgroup v2 freezer" : "frozen by the cgroup v1 freezer");
	end(p);
	if (!v2)
		write_file(dir, "freezer.state", "THAWED\n");
	/* The group goes once empty. */
	until = now_ns(CLOCK_MONOTONIC) + 10 * NSEC;
	while (rmdir(dir) != 0 && errno == EBUSY && now_ns(CLOCK_MONOTONIC) < until)
		usleep(1000);
	assert_true(done);
}

/* ---- churn ---- */

static void *churner(void *arg)
{
	(void)arg;
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	timer_t t[CHURN];
	while (!sh->stop) {
		for (int i = 0; i < CHURN; i++)
			ptimer_create(CLOCK_MONOTONIC, &none, &t[i]);
		for (int i = 0; i < CHURN; i++)
			ptimer_delete(t[i]);
	}
	return NULL;
}

static void *inner_lister(void *arg)
{
	long *worst = arg;
	static struct ptimer_info info[HELD + 4 * CHURN];
	while (!sh->stop) {
		int n = ptimer_list(0, info, sizeof(info[0]), HELD + 4 * CHURN);
		if (n > *worst)
			*worst = n;
	}
	return NULL;
}

/* Holds 100 timers while a thread creates 4 and deletes them, over and
 * over: at any moment at most 104 are alive.  A thread of its own lists
 * them all the while (ptimer_list). */
static void child_churn(void)
{
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	timer_t t;
	for (int i = 0; i < HELD; i++)
		ptimer_create(CLOCK_MONOTONIC, &none, &t);
	pthread_t c, l;
	long worst = 0;
	pthread_create(&c, NULL, churner, NULL);
	pthread_create(&l, NULL, inner_lister, &worst);
	sh->ready = 1;
	while (!sh->stop)
		usleep(1000);
	pthread_join(c, NULL);
	pthread_join(l, NULL);
	sh->made = worst;
	_exit(0);
}

static void test_churn_bound(void **state)
{
	(void)state;
	sh->stop = 0;
	pid_t p = start(child_churn);
	size_t worst = 0, listings = 0;
	int64_t until = now_ns(CLOCK_MONOTONIC) + NSEC;
	while (now_ns(CLOCK_MONOTONIC) < until) {
		char why[256];
		struct pt_remote r;
		struct pt_saved *s = NULL;
		size_t n = 0;
		struct pt_remote_meta meta;
		if (pt_remote_open(p, &r, why, sizeof(why)) != 0 ||
		    pt_remote_timers(&r, &s, &n, &meta, why, sizeof(why)) != 0)
			fail_msg("%s", why);
		free(s);
		if (n > worst)
			worst = n;
		listings++;
	}
	sh->stop = 1;
	int st;
	waitpid(p, &st, 0);
	printf("# %zu listings from outside, the most timers in one %zu; inside, %ld\n", listings,
	       worst, sh->made);
	assert_true(listings > 10);
	assert_true(worst >= HELD && worst <= HELD + CHURN);
	assert_true(sh->made >= HELD && sh->made <= HELD + CHURN);
}

/* ---- refusals ---- */

static void test_not_on_engine(void **state)
{
	(void)state;
	pid_t p = fork();
	if (p == 0) {
		pause();
		_exit(0);
	}
	char why[256];
	struct pt_remote r;
	errno = 0;
	assert_int_equal(pt_remote_open(p, &r, why, sizeof(why)), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(why, "not on the ptimers engine"));
	end(p);
	errno = 0;
	assert_int_equal(pt_remote_open(p, &r, why, sizeof(why)), -1);
	assert_int_equal(errno, ESRCH);
}

int main(void)
{
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_running, teardown),
		cmocka_unit_test_teardown(test_sigstopped, teardown),
		cmocka_unit_test_teardown(test_ptrace_stopped, teardown),
		cmocka_unit_test_teardown(test_cgroup_frozen, teardown),
		cmocka_unit_test_teardown(test_churn_bound, teardown),
		cmocka_unit_test_teardown(test_not_on_engine, teardown),
	};
	return cmocka_run_group_tests_name("reader", tests, NULL, NULL);
}
