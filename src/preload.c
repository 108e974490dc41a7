/* SPDX-License-Identifier: MIT */
/*
 * The drop-in: LD_PRELOAD=libptimers-preload.so routes libc's timer_*
 * functions and prctl(PR_TIMER_CREATE_RESTORE_IDS, ...) to the engine, so
 * unmodified programs run on user-space timers.  Every other prctl option
 * goes to the kernel untouched.
 *
 * prctl(PR_TIMER_CREATE_RESTORE_IDS) sets the engine's mode and is passed
 * on to the kernel as well.
 *
 * It matches glibc on the kernel, which is what programs see: the same
 * default for a NULL sigevent (SIGALRM, value 0), the same errnos.  Two
 * places where glibc on the kernel has no useful behaviour get a defined
 * one: a NULL timerid is EFAULT (glibc crashes), and in restore mode the
 * wanted ID is read from *timerid (glibc hands the kernel an uninitialised
 * local instead).
 *
 * PTIMERS_IDS=linux|dense picks the ID policy; PTIMERS_MAX_TIMERS caps the
 * number of timers.  A bad value is reported once on stderr and ignored.
 * PTIMERS_RESTORE=FILE restores an image before main (src/autorestore.c).
 * PTIMERS_STATS=1 prints at exit what the program did with the engine
 * (timers created by notify kind, signals sent, SIGEV_THREAD calls, timers
 * handed to the kernel: src/handoff.h).
 *
 * exec keeps the process, and the kernel's timer ID counter with it: the
 * first timer after exec continues where the program left off (a fork
 * child, a new process, starts again at 0, on both).  The exec family is
 * wrapped to carry the engine's counter into the new program in
 * PTIMERS_NEXT_ID, which the new program's drop-in takes out of the
 * environment before main.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "autorestore.h"
#include "engine_image.h"
#include "handoff.h"
#include "ids.h"
#include "private.h"
#include "ptimers.h"


static bool stats_on;
static int stats_fd = -1; /* stderr as it was at start: programs may close theirs */
static unsigned long created[4]; /* signal, thread, thread ID, none */

static void count_create(const struct sigevent *sev)
{
	int kind = sev->sigev_notify == SIGEV_THREAD        ? 1
		   : sev->sigev_notify == SIGEV_THREAD_ID ? 2
		   : sev->sigev_notify == SIGEV_NONE      ? 3
							  : 0;
	__atomic_fetch_add(&created[kind], 1, __ATOMIC_RELAXED);
}

static bool leeway_slack; /* PTIMERS_LEEWAY=slack */

int timer_create(clockid_t clockid, struct sigevent *sevp, timer_t *timerid)
{
	/* glibc passes its own default for a NULL sigevent: SIGALRM with a
	 * zero value (the kernel's own default would put the ID there). */
	struct sigevent glibc_default = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM };
	struct sigevent *sev = sevp ? sevp : &glibc_default;

	int r = ptimer_create(clockid, sev, timerid);
	if (r == 0) {
		count_create(sev);
		if (leeway_slack) {
			/* The creating thread's timer slack, as its sleeps
			 * have it (PTIMERS_LEEWAY=slack). */
			long ns = syscall(SYS_prctl, PR_GET_TIMERSLACK, 0, 0, 0, 0);
			if (ns > 0) {
				timer_t id;
				memcpy(&id, timerid, sizeof(id));
				ptimer_setleeway(id, &(struct timespec){ ns / 1000000000, ns % 1000000000 });
			}
		}
	}
	return r;
}

int timer_settime(timer_t timerid, int flags, const struct itimerspec *new_value,
		  struct itimerspec *old_value)
{
	return ptimer_settime(timerid, flags, new_value, old_value);
}

int timer_gettime(timer_t timerid, struct itimerspec *curr_value)
{
	return ptimer_gettime(timerid, curr_value);
}

int timer_getoverrun(timer_t timerid)
{
	return ptimer_getoverrun(timerid);
}

int timer_delete(timer_t timerid)
{
	return ptimer_delete(timerid);
}

int prctl(int option, ...)
{
	va_list ap;
	unsigned long a2, a3, a4, a5;

	/* glibc's prctl reads four more arguments whatever the option; so do
	 * we, and hand them on unchanged. */
	va_start(ap, option);
	a2 = va_arg(ap, unsigned long);
	a3 = va_arg(ap, unsigned long);
	a4 = va_arg(ap, unsigned long);
	a5 = va_arg(ap, unsigned long);
	va_end(ap);
	if (option == PR_TIMER_CREATE_RESTORE_IDS) {
		int r = ptimer_restore_ids(a2, a3, a4, a5);
		/* The kernel's mode too, where the kernel has it: a program that
		 * turns it on through libc and then creates a timer with the
		 * raw system call (as a restorer does) gets what the kernel
		 * gives.  The engine's own kernel timers step around it. */
		if (r == 0)
			(void)syscall(SYS_prctl, option, a2, a3, a4, a5);
		return r;
	}
	return (int)syscall(SYS_prctl, option, a2, a3, a4, a5);
}

/* One line to fd, cut to the buffer if snprintf() had more. */
static void put(int fd, const char *msg, int n, size_t size)
{
	if (n > 0)
		(void)!syscall(SYS_write, fd, msg, (size_t)n < size ? (size_t)n : size - 1);
}

static void warn_env(const char *name, const char *value, const char *expect)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "ptimers: ignoring %s=%s (expected %s)\n", name, value,
			 expect);
	put(STDERR_FILENO, msg, n, sizeof(msg));
}

__attribute__((destructor)) static void preload_fini(void)
{
	if (!stats_on)
		return;
	char msg[320], name[64] = "?";
	int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = syscall(SYS_read, fd, name, sizeof(name) - 1);
		name[n > 0 ? n - 1 : 0] = '\0';
		syscall(SYS_close, fd);
	}
	struct ptimer_stats st = { 0 };
	ptimer_get_stats(&st, sizeof(st));
	int n = snprintf(msg, sizeof(msg),
			 "ptimers: %s[%d]: %lu timers on the engine (signal %lu, thread %lu, "
			 "thread-id %lu, none %lu); %llu signals sent, %llu notify threads started, "
			 "%llu handed to the kernel now\n",
			 name, (int)getpid(),
			 created[0] + created[1] + created[2] + created[3], created[0], created[1],
			 created[2], created[3], (unsigned long long)st.signals_sent,
			 (unsigned long long)st.threads_started, (unsigned long long)st.handed_off);
	put(stats_fd, msg, n, sizeof(msg));
}

/* ---- exec: the ID counter carried across ---- */

#define NEXT_ID "PTIMERS_NEXT_ID"
#define NEXT_ID_LEN (sizeof(NEXT_ID) - 1)
#define ENV_MAX 65536 /* larger environments pass through as they are */

extern char **environ;
static int (*real_execve)(const char *, char *const[], char *const[]);
static int (*real_execvpe)(const char *, char *const[], char *const[]);
static int (*real_fexecve)(int, char *const[], char *const[]);
static int (*real_execveat)(int, const char *, char *const[], char *const[], int);

/* Resolved before main: an exec may come in a vfork child, where the
 * dynamic linker's locks must not be taken. */
static void exec_init(void)
{
	real_execve = (int (*)(const char *, char *const[], char *const[]))dlsym(RTLD_NEXT, "execve");
	real_execvpe = (int (*)(const char *, char *const[], char *const[]))dlsym(RTLD_NEXT, "execvpe");
	real_fexecve = (int (*)(int, char *const[], char *const[]))dlsym(RTLD_NEXT, "fexecve");
	real_execveat = (int (*)(int, const char *, char *const[], char *const[], int))dlsym(
		RTLD_NEXT, "execveat");
}

/* The counter the new program starts from, taken out of the environment. */
static void exec_take_counter(void)
{
	const char *v = getenv(NEXT_ID);
	if (!v)
		return;
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (!errno && *end == '\0' && v[0] >= '0' && v[0] <= '9' && n <= INT_MAX)
		pt_ids_set_counter((unsigned)n);
	unsetenv(NEXT_ID);
}

static int count_env(char *const envp[])
{
	int n = 0;
	while (envp && envp[n] && n <= ENV_MAX)
		n++;
	return n;
}

/* envp with the counter in it, into out (n + 2 slots) and var: no
 * allocation, so that it works in a vfork child. */
static char *const *with_counter(char *const envp[], int n, char **out, char *var, size_t var_size)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		if (strncmp(envp[i], NEXT_ID "=", NEXT_ID_LEN + 1) != 0)
			out[k++] = envp[i];
	snprintf(var, var_size, NEXT_ID "=%u", pt_ids_counter());
	out[k++] = var;
	out[k] = NULL;
	return out;
}

/* Whether there is a counter to carry (a program that never made a timer
 * has none, and its environment goes through untouched). */
static bool carry(char *const envp[], int *n)
{
	*n = count_env(envp);
	return pt_ids_counter() != 0 && *n <= ENV_MAX;
}

#define EXEC_WITH_COUNTER(envp, call_new, call_same)                          \
	do {                                                                   \
		int n_;                                                        \
		if (!carry(envp, &n_))                                         \
			return call_same;                                      \
		char *slots_[n_ + 2];                                          \
		char var_[NEXT_ID_LEN + 16];                                   \
		char *const *new_env = with_counter(envp, n_, slots_, var_, sizeof(var_)); \
		return call_new;                                               \
	} while (0)

static int no_exec(void)
{
	errno = ENOSYS;
	return -1;
}

int execve(const char *path, char *const argv[], char *const envp[])
{
	if (!real_execve)
		return no_exec();
	EXEC_WITH_COUNTER(envp, real_execve(path, argv, new_env), real_execve(path, argv, envp));
}

int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
	if (!real_execvpe)
		return no_exec();
	EXEC_WITH_COUNTER(envp, real_execvpe(file, argv, new_env), real_execvpe(file, argv, envp));
}

int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

int fexecve(int fd, char *const argv[], char *const envp[])
{
	if (!real_fexecve)
		return no_exec();
	EXEC_WITH_COUNTER(envp, real_fexecve(fd, argv, new_env), real_fexecve(fd, argv, envp));
}

int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
	if (!real_execveat)
		return no_exec();
	EXEC_WITH_COUNTER(envp, real_execveat(dirfd, path, argv, new_env, flags),
			  real_execveat(dirfd, path, argv, envp, flags));
}

/* execl, execlp, execle: the arguments gathered, as glibc does. */
#define GATHER_ARGS(first, ap, argv)                                          \
	size_t argc_ = 1;                                                      \
	va_list count_;                                                        \
	va_copy(count_, ap);                                                   \
	while (va_arg(count_, const char *) != NULL)                           \
		argc_++;                                                       \
	va_end(count_);                                                        \
	if (argc_ > 1u << 20) {                                                \
		errno = E2BIG;                                                 \
		return -1;                                                     \
	}                                                                      \
	char *argv[argc_ + 1];                                                 \
	argv[0] = (char *)(first);                                             \
	for (size_t i_ = 1; i_ <= argc_; i_++)                                 \
		argv[i_] = va_arg(ap, char *)

int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	GATHER_ARGS(arg, ap, argv);
	va_end(ap);
	return execve(path, argv, environ);
}

int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	GATHER_ARGS(arg, ap, argv);
	va_end(ap);
	return execvpe(file, argv, environ);
}

int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	GATHER_ARGS(arg, ap, argv);
	char *const *envp = va_arg(ap, char *const *);
	va_end(ap);
	return execve(path, argv, envp);
}

__attribute__((constructor)) static void preload_init(void)
{
	exec_init();
	exec_take_counter();
	pt_handoff_dropin(); /* the program's timer_create is the engine's here */
	const char *stats = getenv("PTIMERS_STATS");
	if (stats && *stats && strcmp(stats, "0") != 0) {
		stats_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
		stats_on = stats_fd >= 0;
	}
	const char *ids = getenv("PTIMERS_IDS");
	if (ids && *ids) {
		if (strcmp(ids, "linux") == 0)
			ptimer_set_id_policy(PTIMER_IDS_LINUX);
		else if (strcmp(ids, "dense") == 0)
			ptimer_set_id_policy(PTIMER_IDS_DENSE);
		else
			warn_env("PTIMERS_IDS", ids, "linux or dense");
	}
	const char *lw = getenv("PTIMERS_LEEWAY");
	if (lw && *lw) {
		if (strcmp(lw, "slack") == 0)
			leeway_slack = true;
		else if (strcmp(lw, "0") != 0)
			warn_env("PTIMERS_LEEWAY", lw, "slack, or 0 for none");
	}
	/* Read by the engine itself (base.c, handoff.c), which keeps its
	 * default for a bad value: say so here. */
	static const struct {
		const char *name, *expect;
	} numbers[] = {
		{ "PTIMERS_HANDOFF", "a whole number of timers, 0 for none" },
		{ "PTIMERS_SPIN", "a percentage of a CPU, 0 for none" },
	};
	for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
		const char *v = getenv(numbers[i].name);
		char *end;
		if (v && *v && (strtol(v, &end, 10) < 0 || *end))
			warn_env(numbers[i].name, v, numbers[i].expect);
	}
	const char *max = getenv("PTIMERS_MAX_TIMERS");
	if (max && *max) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(max, &end, 10);
		if (errno || *end || max[0] == '-')
			warn_env("PTIMERS_MAX_TIMERS", max, "a whole number, 0 for no cap");
		else
			ptimer_set_max_timers((size_t)v);
	}
	pt_autorestore(false, pt_engine_restore_image); /* `ptimers restore`: the timers before main */
}
