/* SPDX-License-Identifier: MIT */
/*
 * ptimers: the POSIX interval timers of Linux, in user space.
 *
 * Every timer call mirrors its kernel counterpart (timer_create(2) and
 * friends): same arguments, same results, and on failure -1 with errno set
 * to the value the kernel would give.  Timer IDs are the kernel's: ints in
 * 0..INT_MAX carried in a timer_t, allocated per process.
 *
 * Every call may be made from any thread at any time, concurrently with
 * every other.  Lookups of a timer by ID take no lock; calls on one timer
 * serialise on that timer's own lock, held for tens of nanoseconds.  No
 * call blocks on another timer's activity, on the engine's thread, or on
 * a reader of the readout.  A timer is never visible half-built.
 *
 * Signals: the engine sends real signals (rt_sigqueueinfo) with si_code
 * SI_TIMER, si_timerid, si_overrun and si_value, as the kernel does.  The
 * kernel re-arms a periodic timer, counts its overruns and drops a stale
 * signal at the moment the signal is taken; to see that moment, link the
 * hooks library too (-lptimers-hooks, pkg-config ptimers-hooks: it stands
 * in for libc's sigaction, signal, sigwaitinfo, sigtimedwait, sigwait and
 * signalfd reads), or report each timer signal you take with
 * ptimer_signal_delivered().  Without either, delivery is learned one
 * period late (see the README).  The drop-in includes the hooks.
 *
 * Bad pointers: a pointer the engine reads or writes that is NULL,
 * unmapped, or (for an output) read-only gives EFAULT, as from the kernel,
 * never a crash.  The engine takes SIGSEGV and SIGBUS on its first such
 * copy and passes every fault that is not its own to the handler the
 * program had (with the hooks linked, also to one the program sets later;
 * without them, a handler the program sets later replaces the engine's,
 * and a bad pointer then reaches it as a crash would).
 */
#ifndef PTIMERS_H
#define PTIMERS_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PTIMERS_VERSION_MAJOR 0
#define PTIMERS_VERSION_MINOR 3

/* Modes of ptimer_restore_ids(), the values of
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
 * ptimer_create - timer_create(2).
 * sev NULL means SIGEV_SIGNAL with SIGALRM and sigev_value.sival_int ==
 * the new ID (the kernel's default).  SIGEV_THREAD runs
 * sev->sigev_notify_function in a new thread per expiry, as glibc does.
 * In restore mode (ptimer_restore_ids ON) the wanted ID is read from
 * *timerid.
 * Errors: EINVAL (clock, notify, signal, thread of another process; an ID
 * outside 0..INT_MAX in restore mode), EOPNOTSUPP (a clock that cannot
 * drive timers), EPERM (_ALARM clocks without CAP_WAKE_ALARM), EBUSY (the
 * wanted ID is in use), EFAULT (timerid or sev unreadable), EAGAIN (no
 * free ID, the cap reached, or no memory).
 * MT-safe.  Not async-signal-safe (it may allocate).  May block briefly:
 * the first timer that can fire starts the engine's thread.
 */
int ptimer_create(clockid_t clockid, struct sigevent *sev, timer_t *timerid);

/*
 * ptimer_settime - timer_settime(2).  flags: 0 or TIMER_ABSTIME (other
 * bits ignored, as the kernel does).
 * Errors: EINVAL (unknown ID, new_value NULL, tv_nsec outside
 * 0..999999999 or negative tv_sec in either field), EFAULT (new_value or
 * old_value unreadable; as the kernel, the new setting stands when only
 * old_value is bad), ESRCH (the thread whose CPU clock it runs on is gone).
 * MT-safe, async-signal-safe.  No system call unless the new expiry is the
 * earliest of its clock.
 */
int ptimer_settime(timer_t timerid, int flags, const struct itimerspec *new_value,
		   struct itimerspec *old_value);

/*
 * ptimer_gettime - timer_gettime(2).  Errors: EINVAL (unknown ID), EFAULT.
 * MT-safe, async-signal-safe, no system call (except for CPU clocks).
 */
int ptimer_gettime(timer_t timerid, struct itimerspec *curr);

/*
 * ptimer_getoverrun - timer_getoverrun(2): overruns of the last delivered
 * expiry, clamped at DELAYTIMER_MAX.  Errors: EINVAL.
 * MT-safe, async-signal-safe.
 */
int ptimer_getoverrun(timer_t timerid);

/*
 * ptimer_setleeway - let the timer fire up to *leeway after each expiry,
 * so that the engine can serve several timers with one wakeup (beyond
 * the kernel, which applies a thread's timer slack to its sleeps but
 * never to POSIX timers).  The timer never fires before its expiry, and
 * never later than its expiry plus the leeway (plus the wakeup's own
 * delay, as any timer).  Kept to 3 significant bits, rounded down (at
 * most 1/8 less than asked); under 1.152 us is none.  A zero leeway
 * (the default) is the kernel's behaviour exactly.  Applies to the next
 * expiries, the armed one included; not kept in a checkpoint image.
 * The drop-in applies each thread's timer slack (PR_SET_TIMERSLACK) to
 * the timers it creates when PTIMERS_LEEWAY=slack.
 * Errors: EINVAL (unknown ID, NULL, or tv_nsec out of range), EFAULT.
 * MT-safe, async-signal-safe, no system call.
 */
int ptimer_setleeway(timer_t timerid, const struct timespec *leeway);

/*
 * ptimer_getleeway - the leeway in effect (after rounding).
 * Errors: EINVAL (unknown ID), EFAULT.  MT-safe, async-signal-safe.
 */
int ptimer_getleeway(timer_t timerid, struct timespec *leeway);

/*
 * ptimer_delete - timer_delete(2).  A signal still pending for the timer
 * is dropped when it is delivered.  Errors: EINVAL.
 * MT-safe.  Not async-signal-safe (it may free memory).
 */
int ptimer_delete(timer_t timerid);

/*
 * ptimer_restore_ids - prctl(PR_TIMER_CREATE_RESTORE_IDS, mode, a3, a4,
 * a5): OFF and ON return 0, GET returns the current mode; any other mode,
 * or a non-zero unused argument, is EINVAL.  MT-safe.
 */
int ptimer_restore_ids(unsigned long mode, unsigned long a3, unsigned long a4,
		       unsigned long a5);

/* Choose the ID policy.  Only while the process has no timers (EBUSY
 * otherwise); EINVAL for an unknown policy.  MT-safe. */
int ptimer_set_id_policy(enum ptimer_id_policy policy);
int ptimer_get_id_policy(void);

/* Cap the number of live timers (0 = no cap beyond memory).  create fails
 * with EAGAIN at the cap, as the kernel does at RLIMIT_SIGPENDING.
 * MT-safe. */
int ptimer_set_max_timers(size_t max);

/*
 * ptimer_signal_delivered - tell the engine that the program took a timer
 * signal where the hooks cannot see it (a raw rt_sigtimedwait, a handler
 * installed by the raw rt_sigaction system call, a program without the
 * hooks library): call it first thing with the siginfo.  Returns 1 when
 * the signal is to be acted on (si_overrun filled in, si_errno cleared,
 * the periodic timer re-armed), 0 when it must be ignored (it belongs to
 * an arming that was replaced or deleted, as the kernel drops such
 * signals), -1 when it is not a signal of this engine (or was reported
 * already, as the hooks do), or info cannot be read and written (EFAULT).
 * MT-safe, async-signal-safe: it takes only the timer's own lock.
 */
int ptimer_signal_delivered(siginfo_t *info);

/*
 * One timer as the readout sees it.  New fields are only ever added at
 * the end: callers pass sizeof(struct ptimer_info) as they know it, and
 * get that much of each entry.
 */
struct ptimer_info {
	int id;
	clockid_t clockid;
	int notify;         /* SIGEV_NONE, SIGEV_SIGNAL, SIGEV_THREAD, or SIGEV_SIGNAL|SIGEV_THREAD_ID */
	int signo;          /* sigev_signo as given */
	union sigval value;
	pid_t target;       /* pid, or tid for SIGEV_THREAD_ID */
	struct itimerspec setting; /* as timer_gettime would report it */
	int overrun;        /* timer_getoverrun() */
	int armed;          /* 1 when armed */
	int signal_pending; /* 1 when a signal was sent and its delivery not yet seen */
};

#define PTIMER_READOUT_EXTENDED 1u /* add remaining time, interval, overruns, state */

/*
 * ptimer_readout - every timer of the process, to out, in the
 * /proc/PID/timers format ("ID:", "signal:", "notify:", "ClockID:" lines
 * per timer, ascending ID); with PTIMER_READOUT_EXTENDED each block also
 * gets "remaining:", "interval:", "overrun:" and "state:" lines.  Returns
 * the number of timers written, or -1 with errno (EINVAL for unknown flags
 * or out == NULL, EFAULT when out cannot be read, or the error of the
 * write).
 * MT-safe, lock-free with respect to the timers: it never blocks or slows
 * create, settime or delete, and never shows a half-built or freed timer.
 * May block on out.
 */
int ptimer_readout(FILE *out, unsigned flags);

/*
 * ptimer_list - snapshot the timers with IDs >= from_id into infos[0..max),
 * ascending, each entry info_size bytes (pass sizeof(struct ptimer_info)).
 * Returns how many were written (0 at the end), or -1 with EINVAL (from_id
 * or max negative, info_size 0, infos NULL with max > 0) or EFAULT.
 * MT-safe, lock-free, async-signal-safe.
 */
int ptimer_list(int from_id, struct ptimer_info *infos, size_t info_size, int max);

/*
 * Checkpoint and restore.
 *
 * The image is CRIU's POSIX timer image (POSIX_TIMERS, entries of CRIU's
 * posix_timer_entry), which CRIU's crit reads and writes, with ptimers'
 * own fields where other readers skip them: a version, a checksum, the
 * deadline of a timer armed with TIMER_ABSTIME, what a CPU clock measured,
 * and the process's ID policy and next-ID counter.
 *
 * Across the gap: a timer armed relative keeps the time that remained (it
 * runs on from the restore); one armed with TIMER_ABSTIME keeps its
 * deadline on its clock (a CLOCK_REALTIME deadline already past expires at
 * once, counting the periods missed).  Intervals and timer_getoverrun()
 * values are kept.  A signal on its way at the checkpoint is not carried
 * over: a periodic timer that was waiting for its delivery is restored
 * armed for its next period (an image of CRIU's, without ptimers' fields,
 * restores as CRIU restores it: relative, with the remaining time).
 */

/* ptimer_kernel_restore: the create/delete walk even where the kernel has
 * PR_TIMER_CREATE_RESTORE_IDS. */
#define PTIMER_RESTORE_WALK 1u

struct ptimer_restore_opts {
	size_t size;      /* sizeof(struct ptimer_restore_opts) */
	unsigned flags;   /* PTIMER_RESTORE_WALK */
	void *arg;        /* given to the callbacks */
	/* A SIGEV_THREAD timer's function and attributes (or NULL) are not
	 * data: asked for here with its saved ID and value; 0 goes on, -1
	 * refuses the restore.  Without it an image with such a timer is
	 * refused. */
	int (*thread_notify)(void *arg, int id, union sigval value, void (**fn)(union sigval),
			     const pthread_attr_t **attr);
	/* The live thread for one the image names (SIGEV_THREAD_ID, a
	 * thread's CPU clock); 0 refuses.  Without it: the calling thread. */
	pid_t (*map_tid)(void *arg, pid_t saved);
	/* ptimer_kernel_restore's walk: called before it starts (done 0) with
	 * the number of timer_create calls it needs and the seconds that will
	 * take, then every 65536 calls; nonzero cancels (nothing is left). */
	int (*progress)(void *arg, long done, long total, double seconds_left);
	/* If not NULL: why a restore or checkpoint was refused, one line. */
	char *error;
	size_t error_size;
};

/*
 * ptimer_checkpoint - write every engine timer of the process to fd as an
 * image.  Returns the number of timers written, or -1 with errno (EINVAL
 * for opts of unknown size, the error of the write).  opts may be NULL.
 * MT-safe; takes no lock the timers' owners take (it reads as the readout
 * does), so it never stalls them.  Blocks on fd.
 */
int ptimer_checkpoint(int fd, const struct ptimer_restore_opts *opts);

/*
 * ptimer_restore - create the timers of an image in this process, on the
 * engine: every one with its ID and state, or none (the process's timers
 * are then as before).  Returns the number restored, or -1 with errno:
 * EINVAL (not an image, truncated, corrupted, hostile: lengths past the
 * end, IDs out of range or twice, unknown clocks, bad signals; a
 * SIGEV_THREAD timer without thread_notify), EBUSY (an ID in use), ESRCH
 * (a thread map_tid refused or that is not of this process), ENOMEM,
 * EAGAIN (the cap); opts->error says which entry and why.  Memory used
 * while decoding is bounded by the image's size.  MT-safe.
 */
int ptimer_restore(int fd, const struct ptimer_restore_opts *opts);

/*
 * ptimer_kernel_checkpoint - the same image of the calling process's
 * kernel timers (IDs, signals, notification and clocks from
 * /proc/self/timers; times and overruns from timer_gettime and
 * timer_getoverrun).  glibc's SIGEV_THREAD timers are refused (their
 * function is glibc's own).  Returns the number written, or -1.
 *
 * ptimer_kernel_restore - recreate an image's timers as kernel timers of
 * the calling process with the same IDs: through
 * prctl(PR_TIMER_CREATE_RESTORE_IDS) where the kernel has it, else (or
 * with PTIMER_RESTORE_WALK) by the create/delete walk, which reports its
 * progress and an estimate and can be cancelled.  All or nothing.  The
 * kernel has no way to set an overrun count: those start at 0.
 */
int ptimer_kernel_checkpoint(int fd, const struct ptimer_restore_opts *opts);
int ptimer_kernel_restore(int fd, const struct ptimer_restore_opts *opts);

/*
 * ptimer_hooks_linked - defined by the hooks library (and the drop-in)
 * only: returns 1.  A program linked with -lptimers-hooks under the
 * linker's --as-needed (Debian's default) should call it once, or the
 * linker may drop the library, whose functions the program's own calls to
 * libc never name (pkg-config ptimers-hooks adds --no-as-needed for it).
 */
int ptimer_hooks_linked(void);

/* What the engine holds and did.  Grows at the end, like ptimer_info. */
struct ptimer_stats {
	uint64_t timers;          /* live */
	uint64_t bytes;           /* memory held for them: objects, ID tree, queues */
	uint64_t signals_sent;
	uint64_t threads_started; /* SIGEV_THREAD calls */
	uint64_t sends_put_off;   /* sends retried because the kernel's signal queue was full */
	uint64_t wakeups;         /* of the engine's thread: what the process pays in wakeups */
	uint64_t handed_off;      /* periodic timers a kernel timer of their ID carries now */
	uint64_t dispositions_asked; /* questions to the kernel whether a signal is ignored:
				      * once per signal with the hooks, else once per signal
				      * per burst of expiries found due together; and, while
				      * one is ignored, a read of whether the target thread
				      * blocks it, once per such burst */
};

/* Fill *stats (size bytes of it).  0, or -1 with EINVAL/EFAULT.  MT-safe. */
int ptimer_get_stats(struct ptimer_stats *stats, size_t size);

#ifdef __cplusplus
}
#endif
#endif
