/* SPDX-License-Identifier: MIT */
/* Engine internals shared by the files of src/.  Nothing here is public. */
#ifndef PTIMERS_INTERNAL_H
#define PTIMERS_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "lock.h"
#include "ptimers.h"

#define PT_NSEC_PER_SEC 1000000000LL
#define PT_NEVER INT64_MAX

/* Relaxed single-copy-atomic accesses for fields that lock-free readers
 * (the readout) look at while their owner changes them under its lock. */
#define PT_READ(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define PT_WRITE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

/* Clock bases: each has its own queue and its own kernel timer. */
enum pt_base_id {
	PT_BASE_MONOTONIC, /* CLOCK_MONOTONIC, and relative CLOCK_REALTIME as the kernel does */
	PT_BASE_REALTIME,  /* absolute CLOCK_REALTIME: follows clock changes */
	PT_BASE_BOOTTIME,
	PT_BASE_TAI,       /* CLOCK_TAI, absolute and relative (the kernel keeps both on TAI) */
	PT_NR_BASES,
	PT_BASE_CPU = PT_NR_BASES, /* a CPU clock: t->cpu says which (cpu.c) */
};

/* Kernel timer states, as in kernel/time/posix-timers.c. */
enum pt_status {
	PT_DISARMED,
	PT_ARMED,
	PT_REQUEUE_PENDING, /* periodic, signal sent, re-armed on delivery */
};

struct pt_limbo {
	struct pt_limbo *next;
	void (*free_fn)(void *obj);
	void *obj;
};

struct pt_timer {
	/* Immutable after creation: readers may look at them without the seqcount. */
	int id;
	clockid_t clockid;
	int notify;            /* SIGEV_* as given (SIGEV_SIGNAL|SIGEV_THREAD_ID included) */
	int signo;
	union sigval value;
	pid_t target;          /* pid or tid the signal goes to */
	void (*thread_fn)(union sigval);
	pthread_attr_t *thread_attr; /* owned copy, for SIGEV_THREAD */
	struct pt_cpuclock *cpu;     /* the CPU clock it runs on, or NULL */

	/* Published with release order once the timer is fully built. */
	bool valid;

	pt_lock_t lock;        /* the kernel's it_lock */
	unsigned seq;          /* seqcount over the fields below, for the readout */

	/* Arming state, written under lock (and PT_WRITE for the readout). */
	int status;
	int base;              /* enum pt_base_id while armed */
	int64_t expires;       /* ns on the base's clock */
	int64_t interval;      /* ns, 0 for one-shot */
	int64_t overrun;       /* overruns accumulating, kernel's it_overrun (starts at -1) */
	int64_t overrun_last;  /* reported by getoverrun */
	unsigned signal_seq;   /* bumped by every re-arm and by delete */
	unsigned sigqueue_seq; /* signal_seq of the signal in flight */
	bool sig_queued;       /* a signal was sent and its delivery not yet seen */

	/* Queue position, owned by the base's lock. */
	int heap_idx;          /* -1 when not queued */
	unsigned queue_gen;    /* bumped at every enqueue, checked at expiry */
	bool probe;            /* queued only to look whether the signal was delivered */
	bool probe_took;       /* the probe re-armed at probe_seq without seeing the delivery */
	unsigned probe_seq;
	bool ignored;          /* periodic, parked while its signal is ignored */
	pid_t via_tid;         /* a process signal goes to this thread (CPU clocks), or 0 */
	/* Waiting for a standard signal already pending to be taken
	 * (notify.c), under its lock except legacy_seq (t->lock). */
	bool legacy_queued;
	unsigned legacy_seq;
	struct pt_timer *legacy_prev, *legacy_next;
	pid_t sent_tid;        /* where the signal in flight went, 0 for the process */

	struct pt_limbo limbo;
};

/* ---- ids.c: the per-process ID space ---- */
int pt_ids_insert(struct pt_timer *t, int wanted); /* returns id or -errno; wanted < 0: allocate */
void pt_ids_remove(struct pt_timer *t);
struct pt_timer *pt_ids_lookup(int id);  /* caller holds rcu_read_lock */
struct pt_timer *pt_ids_next(int *id);   /* first timer with ID >= *id; caller holds rcu_read_lock */
int pt_ids_restore_mode(unsigned long mode);
bool pt_ids_restore_on(void);
int pt_ids_set_policy(int policy);
int pt_ids_get_policy(void);
void pt_ids_set_max(size_t max);
size_t pt_ids_count(void);
void pt_ids_fork_prepare(void);
void pt_ids_fork_parent(void);
void pt_ids_fork_child(void);

/* Deferred free after an RCU grace period. */
void pt_defer_free(struct pt_limbo *l, void *obj, void (*free_fn)(void *));
void pt_reclaim(bool force);

/* ---- clocks.c ---- */
int pt_clock_check(clockid_t clockid);        /* 0 or -errno, as the kernel */
int pt_clock_base(clockid_t clockid, bool absolute);
clockid_t pt_base_clock(int base);
int64_t pt_base_now(int base);
/* Now on the clock a timer armed on `base` runs on (-1: a CPU clock whose
 * thread is gone). */
int64_t pt_now(int base, const struct pt_timer *t);

/* ---- cpu.c: CPU clocks, one kernel CPU timer each ---- */
struct pt_cpuclock;
bool pt_is_cpu_clock(clockid_t c);
int pt_cpu_check(clockid_t c);
struct pt_cpuclock *pt_cpu_attach(clockid_t clockid, int *err);
void pt_cpu_detach(struct pt_cpuclock *c);
int64_t pt_cpu_now(const struct pt_cpuclock *c);
void pt_cpu_add(struct pt_timer *t, int64_t expires);
void pt_cpu_del(struct pt_timer *t);
void pt_cpu_process(void);
bool pt_cpu_signal(const siginfo_t *si, const sigset_t *mask);
int pt_cpu_signo(void);
void pt_cpu_fork_prepare(void);
void pt_cpu_fork_parent(void);
void pt_cpu_fork_child(void);
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

/* ---- queue.c: per-base expiry queues ---- */
struct pt_expired {
	struct pt_timer *t;
	unsigned gen;
};
int pt_queue_init(void);                       /* creates the kernel timers; 0 or -errno */
int pt_queue_reserve(void);                    /* at create: 0 or -ENOMEM */
void pt_queue_unreserve(void);                 /* at delete */
void pt_queue_add(struct pt_timer *t, int base, int64_t expires); /* t->lock held */
void pt_queue_del(struct pt_timer *t);                            /* t->lock held */
int pt_queue_pop_expired(int base, struct pt_expired *out, int max);
int pt_queue_fd(int base);
void pt_queue_fork_prepare(void);
void pt_queue_fork_parent(void);
void pt_queue_fork_child(void);

/* ---- notify.c ---- */
int pt_notify_check(const struct sigevent *sev, clockid_t clockid);
int pt_notify_init(struct pt_timer *t, const struct sigevent *sev);
void pt_notify_fini(struct pt_timer *t);
/* A SIGEV_THREAD call to make once the timer's lock is dropped (and while
 * the dispatcher still holds the RCU read lock, which keeps attr alive). */
struct pt_spawn {
	void (*fn)(union sigval);
	union sigval value;
	const pthread_attr_t *attr;
};
void pt_notify_fire(struct pt_timer *t, int64_t now, struct pt_spawn *spawn); /* t->lock held */
void pt_notify_spawn(const struct pt_spawn *spawn);
void pt_notify_reset(struct pt_timer *t);     /* t->lock held: at settime and delete */
void pt_legacy_taken(int sig);                /* a standard signal was taken: send the next */
void pt_sig_unignore(int sig);                /* the program stopped ignoring sig */
void pt_notify_fork_child(void);

/* ---- deliver.c: where the program takes its signals ---- */
extern int pt_marker;                         /* in si_errno of every engine signal */
bool pt_is_engine_signal(const siginfo_t *si);
bool pt_disposition_ignores(int sig, void *handler);
void pt_deliver_fork_child(void);
int pt_real_sigaction(int sig, const struct sigaction *act, struct sigaction *old);

/* ---- timer.c: arming arithmetic shared with notify.c ---- */
int64_t pt_timer_forward(struct pt_timer *t, int64_t now, bool inclusive);
void pt_timer_rearm_queued(struct pt_timer *t);
void pt_timer_seq_begin(struct pt_timer *t);
void pt_timer_seq_end(struct pt_timer *t);
/* An engine signal is being taken: 1 act on it (si_overrun filled in),
 * 0 drop it (stale).  Not from a thread that holds engine locks. */
int pt_deliver(siginfo_t *info);

/* ---- dispatch.c ---- */
int pt_dispatch_start(void); /* idempotent; 0 or -errno */
void pt_dispatch_kick(void); /* wake the dispatcher to look at CPU clocks; signal-safe */
void pt_dispatch_fire(const struct pt_expired *e, int64_t now, pid_t via);

/* ---- readout.c ---- */
void pt_timer_snapshot(struct pt_timer *t, struct ptimer_info *info);

/* ---- engine-wide ---- */
/* What the engine did, for PTIMERS_STATS (relaxed counters). */
struct pt_stats {
	unsigned long signals;  /* signals sent */
	unsigned long threads;  /* SIGEV_THREAD calls started */
};
extern struct pt_stats pt_stats;
#define PT_COUNT(field) __atomic_fetch_add(&pt_stats.field, 1, __ATOMIC_RELAXED)
extern pid_t pt_pid; /* the process the engine runs in (updated at fork) */
void pt_engine_init(void);

#endif
