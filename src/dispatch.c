/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dispatch.h"
#include "lock.h"
#include "sys.h"

/* Under valgrind, the last real-time signal is valgrind's own, sent to end
 * every thread when the program exits: the dispatcher's wait must let it
 * in, or the program never ends.  (Without valgrind's header, no test.) */
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define ON_VALGRIND() RUNNING_ON_VALGRIND
#else
#define ON_VALGRIND() 0
#endif

#define MAX_EVENTS 16

static struct {
	pt_lock_t lock;   /* start, fork */
	bool started;
	int epfd;
	struct pt_source kick;
	void (*work)(void);
	int allowed[4];   /* signals let in while waiting */
	int nallowed;
	pid_t tid;
	int64_t wake_within;
	void (*on_start[4])(void);
	int non_start;
} disp = { .lock = PT_LOCK_INIT, .epfd = -1, .kick = { .fd = -1 } };

void pt_dispatch_on_start(void (*fn)(void))
{
	if (disp.non_start < 4)
		disp.on_start[disp.non_start++] = fn;
}

void pt_dispatch_set_work(void (*fn)(void))
{
	disp.work = fn;
}

void pt_dispatch_kick(void)
{
	uint64_t one = 1;
	int fd = __atomic_load_n(&disp.kick.fd, __ATOMIC_ACQUIRE);

	if (fd >= 0) {
		pt_slice_pause(); /* callers may hold a lock: the write is outside the extension */
		(void)pt_sys_write(fd, &one, sizeof(one));
		pt_slice_resume();
	}
}

void pt_dispatch_allow_signal(int sig)
{
	pt_lock(&disp.lock);
	if (disp.nallowed < 4) {
		__atomic_store_n(&disp.allowed[disp.nallowed], sig, __ATOMIC_RELAXED);
		__atomic_store_n(&disp.nallowed, disp.nallowed + 1, __ATOMIC_RELEASE);
	}
	pt_unlock(&disp.lock);
	pt_dispatch_kick(); /* its next wait lets the signal in */
}

bool pt_dispatch_is_self(void)
{
	return __atomic_load_n(&disp.tid, __ATOMIC_RELAXED) == pt_gettid();
}

void pt_dispatch_wake_within(int64_t ns)
{
	if (disp.wake_within < 0 || ns < disp.wake_within)
		disp.wake_within = ns;
}

static void kick_ready(struct pt_source *s)
{
	uint64_t n;
	(void)pt_sys_read(s->fd, &n, sizeof(n));
}

static void *dispatcher(void *arg)
{
	(void)arg;
	struct epoll_event ev[MAX_EVENTS];

	__atomic_store_n(&disp.tid, pt_gettid(), __ATOMIC_RELAXED);
	disp.wake_within = -1;
	/* Named, and what waits for the start done, here rather than by the
	 * thread that started it: its first timer call does not wait for
	 * them (a control socket's listening, say). */
	syscall(SYS_prctl, PR_SET_NAME, "ptimers", 0, 0, 0); /* not libc's prctl: the drop-in's */
	for (int i = 0; i < disp.non_start; i++)
		disp.on_start[i]();
	for (;;) {
		sigset_t mask;
		sigfillset(&mask);
		int n = __atomic_load_n(&disp.nallowed, __ATOMIC_ACQUIRE);
		for (int i = 0; i < n; i++)
			sigdelset(&mask, __atomic_load_n(&disp.allowed[i], __ATOMIC_ACQUIRE));
		if (ON_VALGRIND())
			sigdelset(&mask, SIGRTMAX);
		int timeout = -1;
		if (disp.wake_within >= 0)
			timeout = (int)((disp.wake_within + 999999) / 1000000);
		disp.wake_within = -1;
		n = epoll_pwait(disp.epfd, ev, MAX_EVENTS, timeout, &mask);
		for (int i = 0; i < n; i++) {
			struct pt_source *s = ev[i].data.ptr;
			s->ready(s);
		}
		/* After a wakeup of any kind (a source, a kick, a signal let
		 * in, a timeout), the work looks at everything. */
		if (disp.work)
			disp.work();
	}
	return NULL;
}

bool pt_dispatch_started(void)
{
	return __atomic_load_n(&disp.started, __ATOMIC_ACQUIRE);
}

static int add_locked(struct pt_source *s)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };
	return epoll_ctl(disp.epfd, EPOLL_CTL_ADD, s->fd, &ev) == 0 ? 0 : -errno;
}

int pt_dispatch_add(struct pt_source *s)
{
	pt_lock(&disp.lock);
	int r = disp.epfd >= 0 ? add_locked(s) : -EINVAL;
	pt_unlock(&disp.lock);
	return r;
}

int pt_dispatch_start(void)
{
	int err = 0;

	if (pt_dispatch_started())
		return 0;
	pt_lock(&disp.lock);
	if (disp.started)
		goto out;
	disp.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (disp.epfd < 0) {
		err = -errno;
		goto out;
	}
	disp.kick.ready = kick_ready;
	__atomic_store_n(&disp.kick.fd, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), __ATOMIC_RELEASE);
	if (disp.kick.fd < 0 || (err = add_locked(&disp.kick)) != 0) {
		err = err ? err : -errno;
		goto fail;
	}
	/* The thread inherits the creator's mask: block everything first. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t th;
	int r = pthread_create(&th, &attr, dispatcher, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		err = -EAGAIN;
		goto fail;
	}
	__atomic_store_n(&disp.started, true, __ATOMIC_RELEASE);
	pt_unlock(&disp.lock);
	return 0;
fail:
	if (disp.kick.fd >= 0)
		pt_sys_close(disp.kick.fd);
	pt_sys_close(disp.epfd);
	__atomic_store_n(&disp.kick.fd, -1, __ATOMIC_RELEASE);
	disp.epfd = -1;
out:
	pt_unlock(&disp.lock);
	return err;
}

void pt_dispatch_fork_prepare(void)
{
	pt_lock(&disp.lock);
}

void pt_dispatch_fork_parent(void)
{
	pt_unlock(&disp.lock);
}

/* The parent's thread does not exist here and its descriptors are the
 * parent's open files: drop them; the child starts afresh on first need. */
void pt_dispatch_fork_child(void)
{
	if (disp.epfd >= 0)
		pt_sys_close(disp.epfd);
	if (disp.kick.fd >= 0)
		pt_sys_close(disp.kick.fd);
	disp.epfd = disp.kick.fd = -1;
	disp.started = false;
	disp.tid = 0; /* the allowed signals stay: they are the process's */
	pt_lock_reset(&disp.lock);
}
