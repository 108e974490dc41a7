/* SPDX-License-Identifier: MIT */
/*
 * Conformance: every case is written once and run against two backends,
 * the kernel's timer system calls and the engine, which must pass the same
 * assertions.  The expected values are the kernel's (the reference); where
 * the kernel contradicts POSIX the case says so and holds each backend to
 * what the README promises.
 *
 * The same sources build two programs: conformance-kernel, with nothing of
 * ptimers' hooks linked in (libc's sigaction, read and the rest are
 * libc's own, and a case checks that), and conformance-engine, with the
 * engine and its hooks.  Each case runs in a fresh forked process, so timer
 * IDs start from zero as in a new process, signal state is clean, and a
 * crash is a failure rather than the end of the suite.  Timing assertions
 * have wide margins; waits are for conditions, with a deadline.
 *
 * A case is a function registered by CONF_CASE(name) { ... } in a topic
 * file; it fails by calling failf() (the CHECK macros).
 */
#ifndef PTIMERS_CONF_H
#define PTIMERS_CONF_H

#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "private.h"
#include "ptimers.h"


struct backend {
	const char *name;
	int (*create)(clockid_t, struct sigevent *, timer_t *);
	int (*settime)(timer_t, int, const struct itimerspec *, struct itimerspec *);
	int (*gettime)(timer_t, struct itimerspec *);
	int (*getoverrun)(timer_t);
	int (*del)(timer_t);
	int (*restore_ids)(unsigned long, unsigned long, unsigned long, unsigned long);
	bool engine;
};

/* The backend of this program, and the case running. */
extern const struct backend *const B;
extern const char *case_name;

/* Case registration (constructors in the topic files). */
enum {
	CONF_STEPS_CLOCK = 1 << 0,   /* needs to step the wall clock */
	CONF_GLIBC_THREADS = 1 << 1, /* the kernel side needs glibc's SIGEV_THREAD helper */
};
void conf_register(const char *name, void (*fn)(void), unsigned flags);
#define CONF_CASE_FLAGS(name, flags)                                                   \
	static void case_##name(void);                                                 \
	__attribute__((constructor)) static void register_##name(void)                 \
	{                                                                              \
		conf_register(#name, case_##name, flags);                              \
	}                                                                              \
	static void case_##name(void)
#define CONF_CASE(name) CONF_CASE_FLAGS(name, 0)

/* ---- failing ---- */

void __attribute__((noreturn, format(printf, 2, 3))) failf(int line, const char *fmt, ...);

#define CHECK(cond) do { if (!(cond)) failf(__LINE__, "%s", #cond); } while (0)
#define CHECK_EQ(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
	if (a_ != b_) failf(__LINE__, "%s == %lld, expected %lld", #a, a_, b_); } while (0)
#define CHECK_OK(expr) do { errno = 0; if ((expr) != 0) \
	failf(__LINE__, "%s failed: %s", #expr, strerror(errno)); } while (0)
#define CHECK_ERRNO(expr, err) do { errno = 0; long r_ = (long)(expr); \
	if (r_ != -1 || errno != (err)) failf(__LINE__, "%s gave %ld errno %s, expected -1 %s", \
		#expr, r_, strerror(errno), strerror(err)); } while (0)
#define CHECK_RANGE(v, lo, hi) do { long long v_ = (long long)(v); \
	if (v_ < (long long)(lo) || v_ > (long long)(hi)) \
		failf(__LINE__, "%s == %lld, expected %lld..%lld", #v, v_, (long long)(lo), (long long)(hi)); } while (0)

/* ---- time ---- */

static inline int64_t ts_ns(struct timespec ts) { return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec; }
static inline struct timespec ns_ts(int64_t ns) { return (struct timespec){ ns / 1000000000, ns % 1000000000 }; }
int64_t now_ns(clockid_t c);
struct itimerspec its_ms(long value_ms, long interval_ms);
void nap_ms(long ms);

/* ---- timers and signals ---- */

struct sigevent sig_event(int signo, int value);
timer_t make_timer(clockid_t c, struct sigevent *sev);
void block(int signo);
void unblock(int signo);
/* Wait up to timeout_ms for signo with sigtimedwait(): the signal, or 0. */
int wait_signal(int signo, siginfo_t *si, long timeout_ms);
/* Wait up to timeout_ms for signo to be pending (blocked, not taken). */
bool wait_pending(int signo, long timeout_ms);

/* A handler that records what it sees (on any thread: all atomic). */
#define MAX_SEEN 16
extern int seen_count;
#define seen __atomic_load_n(&seen_count, __ATOMIC_SEQ_CST)
#define set_seen(v) __atomic_store_n(&seen_count, (v), __ATOMIC_SEQ_CST)
extern int seen_overrun[MAX_SEEN], seen_getoverrun[MAX_SEEN], seen_errno[MAX_SEEN];
extern int64_t seen_at[MAX_SEEN];
extern timer_t seen_timer;
extern long handler_busy_ms;
void install_handler(int signo);
void seen_handler(int sig, siginfo_t *si, void *uc); /* what install_handler() installs */
void wait_seen(int n, long timeout_ms); /* sleep until seen >= n or the timeout */

/* ---- threads and processes ---- */

/* Another process, alive until other_end(). */
pid_t other_start(void);
void other_end(pid_t other);

/* pthread_join() returns when the thread has left user space; the kernel
 * lets go of its TID a moment later.  Wait for that (true when gone). */
bool wait_tid_gone(pid_t tid);

/* A thread that lives until told to exit. */
struct exiter {
	int pipefd[2];
	pthread_t th;
	pid_t tid;
	sem_t ready;
};
void exiter_start(struct exiter *ex); /* returns once its TID is known */
void exiter_end(struct exiter *ex);   /* makes it exit, waits until it is gone */

void drop_capability(int cap);
#define CAP_WAKE_ALARM_BIT 35

/* ---- the wall clock ---- */

/* Step it by ns (undone by the opposite step; the parent undoes a step a
 * dead case left behind).  0, or -1 when this process cannot. */
int step_clock(int64_t ns);

/* The program itself, for exec. */
extern const char *self_exe;
#endif
