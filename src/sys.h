/* SPDX-License-Identifier: MIT */
/*
 * The process the engine runs in, and the real functions behind the ones
 * the hooks stand in for.  The engine never calls a function the hooks (or
 * a program) may have interposed: it calls glibc's internal names or the
 * system call itself, so its own reads, closes and signal actions are never
 * mistaken for the program's.
 */
#ifndef PTIMERS_SYS_H
#define PTIMERS_SYS_H

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define PT_NSEC_PER_SEC 1000000000LL
#define PT_NEVER INT64_MAX

/* This process; updated in the fork child (engine.c). */
extern pid_t pt_pid;

/* The engine's own signal, which its kernel timers carry (dispatch.c sets
 * it at load; 0 where there is no engine, as in libptimers-restore.so). */
extern int pt_own_signo;

/* The calling thread's ID, cached per thread. */
pid_t pt_gettid(void);

/* len bytes of fresh anonymous memory aligned to align (a power of two
 * that divides len), or NULL: mapped with align to spare, the spare
 * unmapped. */
void *pt_sys_map_aligned(size_t len, size_t align);

/* A new process after fork: pid and the forking thread's cached TID. */
void pt_sys_fork_child(void);

/* glibc's sigaction, never an interposed one. */
int pt_sys_sigaction(int sig, const struct sigaction *act, struct sigaction *old);

/* A kernel timer for the engine's own use (a CPU clock's, the alarm-clock
 * probe): the kernel's timer_create, with the kernel's restore-ID mode
 * (which the drop-in passes on) off for the moment, so that the call does
 * not read a wanted ID or move the program's ID counter; or, once
 * pt_sys_timer_ids_high(true), with an ID of its own counted down from
 * INT_MAX.  0 or -1/errno. */
int pt_sys_timer_create(clockid_t clock, struct sigevent *sev, int *kid);
void pt_sys_timer_ids_high(bool on);

/* Can the kernel create a timer with a given ID (PR_TIMER_CREATE_RESTORE_IDS,
 * where the kernel has it)? */
bool pt_sys_timer_ids_usable(void);

/* A kernel timer with ID id, by that mode, switched on for this call
 * only (left as it was found).  0, or -1 with errno: EBUSY when the ID is
 * taken, EINVAL when the kernel cannot. */
int pt_sys_timer_create_id(clockid_t clock, struct sigevent *sev, int id);

static inline ssize_t pt_sys_read(int fd, void *buf, size_t len)
{
	return syscall(SYS_read, fd, buf, len);
}

static inline ssize_t pt_sys_write(int fd, const void *buf, size_t len)
{
	return syscall(SYS_write, fd, buf, len);
}

/* All of buf to fd, through EINTR and short writes: 0, or -1 with errno
 * (EIO when the file takes nothing). */
int pt_sys_write_all(int fd, const void *buf, size_t len);

/* The calling thread's signal mask, by the system call: never a
 * function the hooks stand in for (they keep the engine's signal out of
 * every mask the program sets).  Sets from glibc's sigfillset() leave
 * out glibc's own internal signals, as they must. */
static inline int pt_sys_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	return syscall(SYS_rt_sigprocmask, how, set, old, sizeof(uint64_t)) == 0 ? 0 : -1;
}

static inline int pt_sys_close(int fd)
{
	return (int)syscall(SYS_close, fd);
}

/* A small file (a /proc status file) in one read, NUL-terminated, by the
 * system calls themselves: on the dispatcher, whose descriptor table is
 * its own, a sanitizer's view of the program's must not see them.  The
 * length (at most size - 1), or -1 when it cannot be read. */
ssize_t pt_sys_read_file(const char *path, char *buf, size_t size);

/* Whether the CPU has a feature, from what libc found at its start where
 * it can say (no CPUID of our own: an exit to the host in a virtual
 * machine), else CPUID. */
enum pt_cpu_feature { PT_CPU_PREFETCHW, PT_CPU_SSE4_2 };
bool pt_cpu_has(enum pt_cpu_feature f);

/* Ask for the line at p to be brought in for writing: owned by this core
 * when it arrives, so that a compare-and-swap on it later does not have
 * to take it from another core a second time (PREFETCHW, where the CPU
 * has it; a plain prefetch elsewhere). */
extern bool pt_has_prefetchw;

static inline void pt_prefetch_own(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
	if (__builtin_expect(pt_has_prefetchw, 1)) {
		__asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
		return;
	}
#endif
	__builtin_prefetch(p, 1);
}

static inline int64_t pt_ts_to_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * PT_NSEC_PER_SEC + ts->tv_nsec;
}

static inline struct timespec pt_ns_to_ts(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / PT_NSEC_PER_SEC, .tv_nsec = ns % PT_NSEC_PER_SEC };
	return ts;
}

/* Saturating a + b for non-negative b. */
static inline int64_t pt_add_sat(int64_t a, int64_t b)
{
	return a > PT_NEVER - b ? PT_NEVER : a + b;
}

/* Time t (PT_NEVER: never) moved by a shift of either sign. */
static inline int64_t pt_shifted(int64_t t, int64_t shift)
{
	if (t >= PT_NEVER)
		return PT_NEVER;
	return shift >= 0 ? pt_add_sat(t, shift) : t + shift;
}

/* A refusal, as every one is given: the one-line reason into why (why_size
 * bytes; nothing when why is NULL or why_size 0), errno err, and -1. */
int pt_refuse(char *why, size_t why_size, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int pt_refusev(char *why, size_t why_size, int err, const char *fmt, va_list ap);

static inline int64_t pt_clock_ns(clockid_t c)
{
	struct timespec ts;

	if (clock_gettime(c, &ts) != 0)
		return -1;
	return pt_ts_to_ns(&ts);
}
#endif
