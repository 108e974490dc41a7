/* SPDX-License-Identifier: MIT */
/*
 * The timer object and the core's calls on it.
 *
 * timer.c is the only writer of a timer's fields (the queue node aside,
 * which is base.c's).  Every field below is written under t->lock, a
 * sequence lock (lock.h): lock-free readers (the readout, and readers
 * outside the process) use relaxed loads and retry if it moved.
 *
 * Timers live in the type-stable pool (pool.h): a deleted timer's memory
 * stays a timer.  Lookups run under rcu_read_lock(), lock the timer, and
 * check that it is still valid and still has the ID they looked up.
 *
 * 96 bytes: with its ID-tree slot and a heap entry when armed, a live
 * timer costs about 120 bytes.
 */
#ifndef PTIMERS_TIMER_H
#define PTIMERS_TIMER_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "base.h"
#include "lock.h"
#include "rcu.h"
#include "workers.h"

/* The kernel's timer states (kernel/time/posix-timers.c). */
enum pt_status {
	PT_DISARMED,
	PT_ARMED,
	PT_REQUEUE_PENDING, /* periodic, signal sent, re-armed when it is delivered */
	PT_KERNEL,          /* periodic, handed to the kernel timer of its ID (handoff.h):
			     * expires and interval are the grid the kernel keeps */
};

/* t->flags */
enum {
	PT_F_SIG_QUEUED = 1 << 0, /* a signal went out (or waits in line), delivery not yet seen */
	PT_F_PROBE_TOOK = 1 << 1, /* a probe took the signal stamped probe_stamp as delivered */
	PT_F_IGNORED = 1 << 2,    /* periodic, parked: its signal is ignored */
	PT_F_LINED = 1 << 3,      /* waits in line for a pending standard signal (notify.c) */
	PT_F_RETRY = 1 << 4,      /* the kernel's signal queue was full: send again soon */
	PT_F_QUEUED = 1 << 5,     /* last told the queue it wants to be queued */
	PT_F_ABSOLUTE = 1 << 6,   /* armed with TIMER_ABSTIME */
	PT_F_WAITS = 1 << 7,      /* PT_F_RETRY, and in the line of put-off sends (notify.c) */
};

struct pt_timer {
	union {
		struct pt_qnode q; /* base.c's */
		struct {
			unsigned char q_fields_[PT_QNODE_OWNER_BYTES];
			uint8_t status; /* enum pt_status */
			uint8_t flags;
			uint8_t valid;  /* published (release) once fully built */
			uint8_t notify; /* SIGEV_* as given (SIGEV_SIGNAL|SIGEV_THREAD_ID too) */
			uint8_t signo;
			uint8_t leeway; /* pt_leeway_ns() of it; 0: none */
		};
	};
	pt_seqlock_t lock;      /* the kernel's it_lock, and the seqcount readers check */
	uint32_t gen;           /* creation number (ids.h): readers leave out later ones */
	int32_t id;
	int32_t clockid;
	int64_t expires;        /* ns on its base's clock */
	int64_t interval;       /* ns, 0 for one-shot */
	union sigval value;     /* the pool links free timers through here */
	union {
		struct {
			pid_t target;   /* pid, or tid for SIGEV_THREAD_ID */
			pid_t sent_tid; /* where the signal in flight went, 0: the process */
		};
		struct pt_thread_notify *thr; /* SIGEV_THREAD */
	};
	int32_t overrun;        /* accumulating, the kernel's it_overrun (from -1), saturating */
	int32_t overrun_last;   /* of the last delivered expiry: getoverrun */
	uint32_t signal_seq;    /* bumped by every re-arm and by delete */
	uint32_t sigq_seq;      /* signal_seq of the arming the signal in flight stands for */
	uint16_t stamp;         /* stamp of the last signal sent (notify.h) */
	uint16_t probe_stamp;   /* stamp of the signal a probe took as delivered */
	uint16_t cbase;         /* its CPU clock's base, or PT_BASE_NONE */
	uint16_t base;          /* the base it is armed on */
};

/*
 * A timer's leeway in one byte: 0 none, else a float of 3 bits of
 * mantissa (8..15) and 5 of exponent, in ns: (8 + m) << (e + 7), 1.152
 * us (code 1) to more than an hour.  Set from a time by rounding down (never later
 * than asked, at most 1/8 less).
 */
static inline int64_t pt_leeway_ns(uint8_t code)
{
	if (!code)
		return 0;
	return (int64_t)(8 + (code & 7)) << ((code >> 3) + 7);
}

/* The hooks' entry points (through engine.c). */

/* An engine signal is being taken: 1 act on it (si_overrun filled in,
 * si_errno cleared), 0 drop it (stale: re-armed or deleted since). */
int pt_timer_deliver(siginfo_t *info);

/* A standard signal was taken: a timer waiting in line for it goes out. */
void pt_timer_signal_taken(int sig);

/* The program stopped ignoring sig: parked timers get their signal. */
void pt_timer_unignore(int sig);

/* The dispatcher: send what the full queue put off, in order, as far as
 * the queue takes them now. */
void pt_timer_send_waiting(void);

/* Dispatcher: hand off the process-directed CPU-clock timers asked for
 * at their delivery (timer.c). */
void pt_timer_hand_off_asked(void);

/* A timer as a checkpoint sees it. */
struct pt_saved {
	int id;
	clockid_t clockid;      /* as given; a CPU clock's, made explicit, in cpu_clock */
	int notify, signo;
	union sigval value;
	pid_t target;           /* pid, or tid for SIGEV_THREAD_ID */
	bool armed, absolute, signal_pending;
	bool kernel;            /* handed to a kernel timer (handoff.h); not in an image */
	int64_t remaining;      /* ns, as timer_gettime would say (0: disarmed) */
	int64_t interval;       /* ns */
	int64_t deadline;       /* ns on its clock: the expiry an absolute timer was armed for */
	int overrun;            /* timer_getoverrun() */
	int cpu;                /* 0, or a CPU clock: 1 the process's, 2 a thread's */
	clockid_t cpu_clock;    /* that clock, explicit */
	pid_t cpu_tid;          /* the thread of a thread's CPU clock */
};

/* A timer's fields as a lock-free reader copies them, consistently (the
 * engine's own readout here; src/reader.c from outside the process). */
struct pt_timer_fields {
	uint8_t valid, status, flags, notify, signo;
	int32_t id, clockid, overrun_last;
	uint32_t gen;
	uint16_t base, cbase;
	int64_t expires, interval;
	union sigval value;
	pid_t target;
};

/* Copy t's fields; false when it is not a live timer.  Never blocks a
 * writer: retries while one holds the timer. */
bool pt_timer_read(const struct pt_timer *t, struct pt_timer_fields *f);

/* What a checkpoint keeps of a timer with these fields, its base's clock
 * reading now as the engine reads it (ignored when disarmed; -1: a CPU
 * clock whose thread is gone) and that base's shift (base.h: an absolute
 * deadline is kept on the kernel's clock), in process pid.  The CPU-clock
 * fields are left for the caller. */
void pt_timer_fields_save(const struct pt_timer_fields *f, pid_t pid, int64_t now, int64_t shift,
			  struct pt_saved *s);

/* Lock-free snapshots for the readout and for checkpoints: false if t is
 * not (or no longer) the live timer with this ID.  now_cache (or NULL):
 * PT_MAX_BASES times, INT64_MIN until read, so that a checkpoint reads
 * each clock once and sees every timer at the same moment of it. */
struct ptimer_info;
bool pt_timer_save(struct pt_timer *t, int id, struct pt_saved *s, int64_t *now_cache, uint32_t *gen);
/* made: leave it out if created after that creation number (ids.h). */
bool pt_timer_snapshot(struct pt_timer *t, int id, struct ptimer_info *info, uint32_t made);

/* A SIGEV_THREAD timer's function (an image has only its value). */
struct pt_thread_fn {
	void (*fn)(union sigval);
	const pthread_attr_t *attr;
};

/* The restore: every timer of the image's list (ascending IDs; threads
 * and clocks this process's, restoring.h) is created with its ID and
 * state, or none is.  fns: the SIGEV_THREAD timers' functions, by index
 * (NULL when there are none).  0, or -errno with *bad the index of the
 * timer that could not be (EBUSY: its ID is in use; EINVAL: a clock,
 * notification or thread that cannot be; ENOMEM, EAGAIN). */
struct pt_image_timer;
int pt_timer_restore(const struct pt_image_timer *it, const struct pt_thread_fn *fns, size_t n, size_t *bad);

/* Process life (engine.c). */
void pt_timer_init(void);
void pt_timer_fork_child(void);
bool pt_timer_busy(void *obj); /* for pt_pool_trim() */
#endif
