/* SPDX-License-Identifier: MIT */
/*
 * Timers against a program that rearranges its descriptors, as daemons
 * and sandboxes do: it closes everything from 3 up (close_range, closefrom,
 * a close loop, or the raw close_range system call around libc), or
 * dup2()s its own descriptor over low numbers.  Kernel timers are not
 * descriptors, so none of that may touch them: a periodic timer made
 * before keeps firing, a timer made after works, and files the program
 * opens afterwards (which take the freed numbers) get nothing written to
 * them.  The same in a fork child and in the program after exec.
 *
 *   fdsafe MODE      MODE: close_range closefrom close_loop dup2 raw_close_range
 *                          fork_child exec replay
 *
 * replay: a program that saved two timer signals read from a signalfd
 * (with the raw system call, so as the kernel has them), closed the
 * signalfd with the raw system call and reads the saved records back from
 * a file that took its number: it must get them as written.
 *
 * Uses libc's timer_* only: run natively it tests the kernel, under
 * `ptimers exec` the engine (tests/hostile.sh runs both).  Exit 0 when every
 * check holds; each failure is a line on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NFILES 24

static volatile sig_atomic_t fired[2];
static int failures;

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	int which = si->si_value.sival_int;
	if (which == 0 || which == 1)
		fired[which]++;
}

static void fail(const char *what)
{
	fprintf(stderr, "fdsafe[%d]: %s\n", (int)getpid(), what);
	failures++;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Wait (sleeping) up to 3 s for timer `which` to fire n more times. */
static bool fires(int which, int n)
{
	int from = fired[which];
	long long end = now_ms() + 3000;
	while (fired[which] - from < n && now_ms() < end) {
		struct timespec nap = { 0, 2000000 };
		nanosleep(&nap, NULL);
	}
	return fired[which] - from >= n;
}

static timer_t periodic(int which, long ms)
{
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGRTMIN;
	sev.sigev_value.sival_int = which;
	timer_t t;
	if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0) {
		perror("timer_create");
		exit(2);
	}
	struct itimerspec its = { { 0, ms * 1000000 }, { 0, ms * 1000000 } };
	if (timer_settime(t, 0, &its, NULL) != 0) {
		perror("timer_settime");
		exit(2);
	}
	return t;
}

static int max_fd(void)
{
	long m = sysconf(_SC_OPEN_MAX);
	return m > 0 && m < 65536 ? (int)m : 1024;
}

/* What the program does to its descriptors. */
static void rearrange(const char *mode)
{
	if (!strcmp(mode, "close_range")) {
		if (close_range(3, ~0U, 0) != 0)
			fail("close_range failed");
	} else if (!strcmp(mode, "closefrom")) {
		closefrom(3);
	} else if (!strcmp(mode, "close_loop")) {
		for (int fd = 3; fd < max_fd(); fd++)
			close(fd);
	} else if (!strcmp(mode, "raw_close_range")) {
		if (syscall(SYS_close_range, 3, ~0U, 0) != 0)
			fail("the close_range system call failed");
	} else if (!strcmp(mode, "dup2")) {
		int null = open("/dev/null", O_RDWR);
		if (null < 0) {
			fail("cannot open /dev/null");
			return;
		}
		for (int fd = 3; fd < 256; fd++)
			if (fd != null && dup2(null, fd) != fd)
				fail("dup2 failed");
		close(null);
	}
}

/* Files that take the numbers just freed: nothing may write to them. */
static void open_files(int *fds)
{
	for (int i = 0; i < NFILES; i++) {
		fds[i] = memfd_create("fdsafe", MFD_CLOEXEC);
		if (fds[i] < 0)
			fail("memfd_create failed");
	}
}

static void check_files(const int *fds)
{
	for (int i = 0; i < NFILES; i++) {
		struct stat st;
		if (fds[i] >= 0 && (fstat(fds[i], &st) != 0 || st.st_size != 0)) {
			char msg[96];
			snprintf(msg, sizeof(msg), "a file the program opened (descriptor %d) was written to",
				 fds[i]);
			fail(msg);
		}
	}
}

/* The rest of a run, once the descriptors are rearranged: the old timer
 * goes on, a new one works, the new files stay untouched. */
static void after(bool old_timer)
{
	int fds[NFILES];
	open_files(fds);
	if (old_timer && !fires(0, 20))
		fail("the timer made before stopped firing");
	timer_t b = periodic(1, 5);
	if (!fires(1, 20)) {
		char msg[96];
		snprintf(msg, sizeof(msg), "a timer made after does not fire (%d times in 3 s)", (int)fired[1]);
		fail(msg);
	}
	timer_delete(b);
	check_files(fds);
}

static void install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGRTMIN, &sa, NULL);
}

/* Records of a timer's signals, read from a signalfd, written to a file
 * that takes the signalfd's number after a raw close, and read back. */
static void replay(void)
{
	int sig = SIGRTMIN + 1;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = sig;
	sev.sigev_value.sival_int = 7;
	timer_t t;
	struct itimerspec its = { { 0, 2000000 }, { 0, 2000000 } };
	if (sfd < 0 || timer_create(CLOCK_MONOTONIC, &sev, &t) != 0 || timer_settime(t, 0, &its, NULL) != 0) {
		fail("cannot make the signalfd or the timer");
		return;
	}
	struct signalfd_siginfo saved[2], back[2];
	size_t have = 0;
	while (have < sizeof(saved)) {
		/* The raw system call: the records as the kernel has them,
		 * the engine's marks on them included. */
		ssize_t r = syscall(SYS_read, sfd, (char *)saved + have, sizeof(saved) - have);
		if (r <= 0) {
			fail("cannot read the timer's signals");
			return;
		}
		have += (size_t)r;
	}
	timer_delete(t);
	syscall(SYS_close, sfd);
	int f = memfd_create("replay", MFD_CLOEXEC);
	if (f != sfd) {
		fail("the file did not take the signalfd's number");
		return;
	}
	if (write(f, saved, sizeof(saved)) != (ssize_t)sizeof(saved) || lseek(f, 0, SEEK_SET) != 0) {
		fail("cannot write the file");
		return;
	}
	ssize_t r = read(f, back, sizeof(back));
	if (r != (ssize_t)sizeof(back) || memcmp(back, saved, sizeof(back)) != 0)
		fail("the file's bytes did not come back as written");
	close(f);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: fdsafe MODE\n");
		return 2;
	}
	const char *mode = argv[1];
	install();
	if (!strcmp(mode, "after-exec")) {
		/* The new program: its own timers, then its own rearranging. */
		periodic(0, 10);
		if (!fires(0, 3))
			fail("a timer made after exec does not fire");
		rearrange("close_range");
		after(true);
		return failures ? 1 : 0;
	}
	periodic(0, 10);
	if (!fires(0, 3)) {
		fail("the first timer does not fire");
		return 1;
	}
	if (!strcmp(mode, "fork_child")) {
		pid_t p = fork();
		if (p == 0) {
			/* No timers here, as on the kernel: new ones, then the
			 * child closes everything, then more. */
			fired[0] = fired[1] = 0;
			periodic(0, 10);
			if (!fires(0, 3))
				fail("a timer made in the fork child does not fire");
			rearrange("closefrom");
			after(true);
			_exit(failures ? 1 : 0);
		}
		int st;
		if (p < 0 || waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fail("the fork child failed");
		rearrange("close_range");
		after(true);
	} else if (!strcmp(mode, "replay")) {
		replay();
	} else if (!strcmp(mode, "exec")) {
		rearrange("close_range");
		execl("/proc/self/exe", argv[0], "after-exec", (char *)NULL);
		fail("exec failed");
	} else {
		rearrange(mode);
		after(true);
	}
	return failures ? 1 : 0;
}
