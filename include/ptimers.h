/* SPDX-License-Identifier: MIT */
/*
 * ptimers: the POSIX interval timers of Linux, in user space.
 *
 * Every call mirrors its kernel counterpart (timer_create(2) and friends):
 * same arguments, same results, and on failure -1 with errno set to the
 * value the kernel would give.  Timer IDs are the kernel's: ints in
 * 0..INT_MAX carried in a timer_t, allocated per process.
 *
 * Concurrency contract: every call may be made from any thread at any time,
 * concurrently with every other call.  Lookups of a timer by ID take no lock
 * (RCU); create, settime and delete on one timer serialise on that timer.
 * A timer is never visible half-built and is freed only after every reader
 * that could still see it has left its read-side section.
 *
 * Signal contract: the engine sends real signals (rt_sigqueueinfo) with
 * si_code == SI_TIMER, si_timerid, si_overrun and si_value, as the kernel
 * does.  A periodic timer is re-armed when its signal is delivered (the
 * kernel's rule), and a stale signal dropped: the library sees delivery
 * where the program takes the signal, because it stands in for libc's
 * sigaction, signal, sigwaitinfo, sigtimedwait, sigwait and signalfd reads
 * (see the README).  Only a program that takes signals by raw system calls
 * needs ptimer_signal_delivered().
 */
#ifndef PTIMERS_H
#define PTIMERS_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PTIMERS_VERSION_MAJOR 0
#define PTIMERS_VERSION_MINOR 1

/* Modes of ptimer_restore_ids(), the same values as
 * prctl(PR_TIMER_CREATE_RESTORE_IDS, ...). */
#define PTIMER_RESTORE_IDS_OFF 0
#define PTIMER_RESTORE_IDS_ON  1
#define PTIMER_RESTORE_IDS_GET 2

/* ID allocation policies (ptimer_set_id_policy). */
enum ptimer_id_policy {
	PTIMER_IDS_LINUX = 0, /* per-process counter, wraps at INT_MAX, skips IDs in use */
	PTIMER_IDS_DENSE = 1, /* lowest free ID */
};

/*
 * timer_create(2).  sev == NULL means SIGEV_SIGNAL with SIGALRM and
 * sigev_value.sival_int == the new ID.  SIGEV_THREAD runs
 * sev->sigev_notify_function in a new thread per expiry, as glibc does.
 * In restore mode (ptimer_restore_ids ON) the wanted ID is read from
 * *timerid: EINVAL outside 0..INT_MAX, EBUSY when in use.
 * Errors: EINVAL (clock, notify, signal, thread), EOPNOTSUPP (clock that
 * cannot drive timers), EPERM (_ALARM clocks without CAP_WAKE_ALARM),
 * EFAULT (timerid NULL), EAGAIN (no free ID, or the cap is reached),
 * ENOMEM.
 */
int ptimer_create(clockid_t clockid, struct sigevent *sev, timer_t *timerid);

/* timer_settime(2).  flags: 0 or TIMER_ABSTIME (other bits ignored, as the
 * kernel does).  Errors: EINVAL (unknown ID, new_value NULL, tv_nsec
 * outside 0..999999999 or negative tv_sec in either field).  Never makes a
 * system call unless the new expiry is the earliest of its clock. */
int ptimer_settime(timer_t timerid, int flags, const struct itimerspec *new_value,
		   struct itimerspec *old_value);

/* timer_gettime(2).  Errors: EINVAL (unknown ID), EFAULT (curr NULL). */
int ptimer_gettime(timer_t timerid, struct itimerspec *curr);

/* timer_getoverrun(2): overruns of the last delivered expiry, clamped at
 * DELAYTIMER_MAX.  Errors: EINVAL. */
int ptimer_getoverrun(timer_t timerid);

/* timer_delete(2).  A signal still pending for the timer is dropped when it
 * is delivered.  Errors: EINVAL. */
int ptimer_delete(timer_t timerid);

/*
 * prctl(PR_TIMER_CREATE_RESTORE_IDS, mode, a3, a4, a5): OFF and ON return 0,
 * GET returns the current mode; any other mode, or a non-zero unused
 * argument, is EINVAL.
 */
int ptimer_restore_ids(unsigned long mode, unsigned long a3, unsigned long a4,
		       unsigned long a5);

/* Choose the ID policy.  Only allowed while the process has no timers
 * (EBUSY otherwise); EINVAL for an unknown policy. */
int ptimer_set_id_policy(enum ptimer_id_policy policy);
int ptimer_get_id_policy(void);

/* Cap the number of live timers (0 = no cap beyond memory).  create fails
 * with EAGAIN at the cap, as the kernel does at RLIMIT_SIGPENDING. */
int ptimer_set_max_timers(size_t max);

/*
 * Tell the engine that the program received a timer signal by a way the
 * engine cannot see (a raw rt_sigtimedwait, a handler installed by the raw
 * rt_sigaction system call): call it first thing with the siginfo.  Signals
 * taken through libc are reported already, and then give -1 here.
 * Returns 1 when the signal is
 * to be acted on (si_overrun has been filled in, the periodic timer
 * re-armed), 0 when it must be ignored (it belongs to an arming that was
 * replaced or deleted, as the kernel drops such signals), -1 when it is not
 * a signal of this engine.  Async-signal-safe in the sense the kernel's
 * delivery is: it takes only the timer's own lock.
 */
int ptimer_signal_delivered(siginfo_t *info);

/* One timer as the readout sees it. */
struct ptimer_info {
	int id;
	clockid_t clockid;
	int notify;         /* SIGEV_NONE, SIGEV_SIGNAL, SIGEV_THREAD, or SIGEV_SIGNAL|SIGEV_THREAD_ID */
	int signo;
	union sigval value;
	pid_t target;       /* pid, or tid for SIGEV_THREAD_ID */
	struct itimerspec setting; /* as timer_gettime would report it */
	int overrun;        /* timer_getoverrun() */
	int armed;          /* 1 when armed */
	int signal_pending; /* 1 when a signal was sent and not yet delivered */
};

#define PTIMER_READOUT_EXTENDED 1u /* add remaining time, interval, overruns */

/*
 * Write every timer of the process to out in the /proc/PID/timers format
 * ("ID:", "signal:", "notify:", "ClockID:" lines per timer, ascending ID);
 * with PTIMER_READOUT_EXTENDED each block also gets "remaining:",
 * "interval:", "overrun:" and "state:" lines.  Lock-free with respect to
 * the timer owners: it never blocks create, settime or delete, and never
 * shows a half-built or freed timer.  Returns the number of timers written,
 * or -1 with errno (EINVAL for unknown flags or out == NULL, or the error
 * of the write).
 */
int ptimer_readout(FILE *out, unsigned flags);

/* Snapshot the timers with IDs >= from_id into infos[0..max), ascending.
 * Returns how many were written (0 at the end).  Lock-free. */
int ptimer_list(int from_id, struct ptimer_info *infos, int max);

#ifdef __cplusplus
}
#endif
#endif
