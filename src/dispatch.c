/* SPDX-License-Identifier: MIT */
/*
 * The dispatcher: one thread that sleeps in epoll_wait() on the bases'
 * timerfds and fires what has expired.  It is the only engine thread and
 * the only place timers fire, so expiry handling needs no more than the
 * timer's own lock.  It blocks every signal: process-directed timer
 * signals must go to the program's threads, and its sigpending() then
 * shows the process's shared queue (see pending_at() in notify.c).
 *
 * Kernel objects: one epoll instance and one timerfd per clock base,
 * whatever the number of timers.  Started on the first timer that can
 * fire; after fork the child starts its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"
#include "rcu.h"

#define BATCH 64

pid_t pt_pid;

static struct {
	pt_lock_t lock;
	bool started;
	int epfd;
	int kickfd;  /* eventfd: CPU clocks have news (cpu.c) */
} disp = { .lock = PT_LOCK_INIT, .epfd = -1, .kickfd = -1 };

#define KICK PT_NR_BASES /* epoll tag of the eventfd */

void pt_dispatch_kick(void)
{
	uint64_t one = 1;
	int fd = __atomic_load_n(&disp.kickfd, __ATOMIC_ACQUIRE);
	if (fd >= 0)
		(void)!write(fd, &one, sizeof(one));
}

/* Fire one popped expiry (caller in an RCU read-side section), its signal
 * to thread `via` if not 0 (cpu.c). */
void pt_dispatch_fire(const struct pt_expired *e, int64_t now, pid_t via)
{
	struct pt_timer *t = e->t;
	struct pt_spawn spawn = { 0 };

	pt_lock(&t->lock);
	/* Fire only the arming that was popped: a settime or delete since
	 * then has re-queued or invalidated it. */
	if (t->valid && PT_READ(t->heap_idx) < 0 && t->queue_gen == e->gen) {
		t->via_tid = via;
		pt_notify_fire(t, now, &spawn);
	}
	pt_unlock(&t->lock);
	if (spawn.fn)
		pt_notify_spawn(&spawn);
}

static void process_base(int base)
{
	struct pt_expired batch[BATCH];
	int n;

	do {
		pt_rcu_read_lock();
		n = pt_queue_pop_expired(base, batch, BATCH);
		for (int i = 0; i < n; i++)
			pt_dispatch_fire(&batch[i], pt_base_now(base), 0);
		pt_rcu_read_unlock();
	} while (n == BATCH);
}

static void *dispatcher(void *arg)
{
	int epfd = (int)(intptr_t)arg;
	struct epoll_event ev[PT_NR_BASES + 1];

	for (;;) {
		/* Every signal stays blocked but the engine's CPU-clock one,
		 * and that only while waiting (cpu.c). */
		sigset_t wait_mask;
		sigfillset(&wait_mask);
		int cpu_sig = pt_cpu_signo();
		if (cpu_sig)
			sigdelset(&wait_mask, cpu_sig);
		int n = epoll_pwait(epfd, ev, PT_NR_BASES + 1, -1, &wait_mask);
		if (n < 0) {
			if (errno == EINTR && cpu_sig)
				pt_cpu_process(); /* the CPU-clock signal came here */
			continue;
		}
		for (int i = 0; i < n; i++) {
			int base = (int)ev[i].data.u32;
			uint64_t ticks;
			if (base == KICK) {
				while (read(__atomic_load_n(&disp.kickfd, __ATOMIC_RELAXED), &ticks,
					    sizeof(ticks)) < 0 && errno == EINTR)
					;
				pt_cpu_process();
				continue;
			}
			/* ECANCELED: the wall clock was set; absolute REALTIME and
			 * TAI expiries are re-checked against the new time below. */
			while (read(pt_queue_fd(base), &ticks, sizeof(ticks)) < 0 && errno == EINTR)
				;
			process_base(base);
		}
		/* Deleted timers waiting for a grace period: this thread is
		 * outside any read-side section here. */
		pt_reclaim(false);
	}
	return NULL;
}

int pt_dispatch_start(void)
{
	int err = 0;

	if (__atomic_load_n(&disp.started, __ATOMIC_ACQUIRE))
		return 0;
	pt_lock(&disp.lock);
	if (disp.started)
		goto out;
	err = pt_queue_init();
	if (err)
		goto out;
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		err = -errno;
		goto out;
	}
	int kickfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (kickfd < 0) {
		err = -errno;
		close(epfd);
		goto out;
	}
	for (int i = 0; i <= PT_NR_BASES; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		epoll_ctl(epfd, EPOLL_CTL_ADD, i == KICK ? kickfd : pt_queue_fd(i), &ev);
	}
	__atomic_store_n(&disp.kickfd, kickfd, __ATOMIC_RELEASE);
	/* The thread inherits the creator's mask: block everything first. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t th;
	int r = pthread_create(&th, &attr, dispatcher, (void *)(intptr_t)epfd);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		close(epfd);
		__atomic_store_n(&disp.kickfd, -1, __ATOMIC_RELEASE);
		close(kickfd);
		err = -EAGAIN;
		goto out;
	}
	pthread_setname_np(th, "ptimers");
	disp.epfd = epfd;
	__atomic_store_n(&disp.started, true, __ATOMIC_RELEASE);
out:
	pt_unlock(&disp.lock);
	return err;
}

/* ---- fork: the child gets no timers and a fresh engine ---- */

static void fork_prepare(void)
{
	pt_lock(&disp.lock);
	pt_ids_fork_prepare();
	pt_cpu_fork_prepare();
	pt_queue_fork_prepare();
	urcu_bp_before_fork();
}

static void fork_parent(void)
{
	urcu_bp_after_fork_parent();
	pt_queue_fork_parent();
	pt_cpu_fork_parent();
	pt_ids_fork_parent();
	pt_unlock(&disp.lock);
}

static void fork_child(void)
{
	urcu_bp_after_fork_child();
	pt_pid = getpid();
	pt_queue_fork_child();
	pt_cpu_fork_child();
	pt_ids_fork_child();
	if (disp.epfd >= 0)
		close(disp.epfd);
	if (disp.kickfd >= 0)
		close(disp.kickfd);
	disp.epfd = -1;
	disp.kickfd = -1;
	disp.started = false;
	pt_lock_reset(&disp.lock);
	pt_notify_fork_child();
	pt_deliver_fork_child(); /* the locks taken in fork_prepare are gone */
}

__attribute__((constructor)) static void engine_init(void)
{
	pt_pid = getpid();
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}
