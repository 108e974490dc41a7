/* SPDX-License-Identifier: MIT */
/* Conformance: Delivery: handlers, signalfd, ignored signals, SIGEV_THREAD(_ID),
 * standard signals shared by timers, handlers that re-enter the timer calls. */
#include "conf.h"

static sem_t thread_sem;
static int thread_value;
static pid_t thread_tid;
static sem_t tid_ready;
static pid_t target_tid;   /* published by sem_post */
static int target_got;     /* read after pthread_join */
static timer_t shared_timer, ticking_timer;
static int handler_calls; /* atomic */

/* A handler slower than the period: re-armed at delivery, so no storm,
 * and each signal's si_overrun counts the periods the handler took. */
CONF_CASE(slow_handler)
{
	struct sigevent sev = sig_event(SIGRTMIN, 3);
	seen_timer = make_timer(CLOCK_MONOTONIC, &sev);
	handler_busy_ms = 30;
	install_handler(SIGRTMIN);
	struct itimerspec its = its_ms(10, 10);
	CHECK_OK(B->settime(seen_timer, 0, &its, NULL));
	wait_seen(6, 5000);
	CHECK(seen >= 6);
	/* Five more handler runs of 30 ms each: at least 100 ms apart in
	 * all, where a timer re-armed at expiry would have queued a storm. */
	CHECK(seen_at[5] - seen_at[0] >= 100000000);
	for (int i = 0; i < 6; i++) {
		CHECK_EQ(seen_errno[i], 0);
		CHECK_EQ(seen_getoverrun[i], seen_overrun[i]);
		if (i > 0)
			CHECK_RANGE(seen_overrun[i], 1, 20); /* about 2 */
	}
}

/* Re-arming or deleting while the signal is pending: the handler is
 * never called for it. */
CONF_CASE(handler_stale)
{
	struct sigevent sev = sig_event(SIGRTMIN, 8);
	seen_timer = make_timer(CLOCK_MONOTONIC, &sev);
	install_handler(SIGRTMIN);
	block(SIGRTMIN);
	struct itimerspec its = its_ms(5, 0);
	CHECK_OK(B->settime(seen_timer, 0, &its, NULL));
	CHECK(wait_pending(SIGRTMIN, 5000));
	its = its_ms(10000, 0);
	CHECK_OK(B->settime(seen_timer, 0, &its, NULL));
	unblock(SIGRTMIN);
	nap_ms(30);
	CHECK_EQ(seen, 0);
	/* Deleted with the signal pending. */
	block(SIGRTMIN);
	timer_t t2 = make_timer(CLOCK_MONOTONIC, &sev);
	its = its_ms(5, 0);
	CHECK_OK(B->settime(t2, 0, &its, NULL));
	CHECK(wait_pending(SIGRTMIN, 5000));
	CHECK_OK(B->del(t2));
	unblock(SIGRTMIN);
	nap_ms(30);
	CHECK_EQ(seen, 0);
	/* A live arming still reaches the handler, marker-free. */
	its = its_ms(5, 0);
	CHECK_OK(B->settime(seen_timer, 0, &its, NULL));
	wait_seen(1, 5000);
	CHECK_EQ(seen, 1);
	CHECK_EQ(seen_errno[0], 0);
	CHECK_EQ(seen_overrun[0], 0);
}

static ssize_t read_signalfd(int fd, struct signalfd_siginfo *rec, int max, long timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (timeout_ms && poll(&p, 1, (int)timeout_ms) <= 0)
		return 0;
	return read(fd, rec, sizeof(*rec) * (size_t)max);
}

/* sig blocked, and a non-blocking signalfd for it. */
static int blocked_signalfd(int sig)
{
	block(sig);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* The same through signalfd: one record however many periods pass,
 * ssi_overrun counts them, stale records never show. */
CONF_CASE(signalfd)
{
	int fd = blocked_signalfd(SIGRTMIN);
	CHECK(fd >= 0);
	struct sigevent sev = sig_event(SIGRTMIN, 21);
	timer_t t = make_timer(CLOCK_MONOTONIC, &sev);
	struct itimerspec its = its_ms(10, 10);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	nap_ms(105);
	struct signalfd_siginfo rec[4];
	CHECK_EQ(read_signalfd(fd, rec, 4, 0), (ssize_t)sizeof(rec[0]));
	CHECK_EQ(rec[0].ssi_code, SI_TIMER);
	CHECK_EQ(rec[0].ssi_tid, (intptr_t)t);
	CHECK_EQ(rec[0].ssi_int, 21);
	CHECK_EQ(rec[0].ssi_errno, 0);
	CHECK_RANGE(rec[0].ssi_overrun, 5, 60);
	CHECK_EQ(B->getoverrun(t), rec[0].ssi_overrun);
	/* Re-armed at that read: the next comes within a period or so. */
	CHECK_EQ(read_signalfd(fd, rec, 4, 5000), (ssize_t)sizeof(rec[0]));
	CHECK_RANGE(rec[0].ssi_overrun, 0, 20);
	CHECK_OK(B->del(t));
	/* Stale: re-armed while pending, then deleted while pending. */
	t = make_timer(CLOCK_MONOTONIC, &sev);
	its = its_ms(5, 0);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	CHECK(wait_pending(SIGRTMIN, 5000));
	its = its_ms(10000, 0);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	errno = 0;
	CHECK_EQ(read_signalfd(fd, rec, 4, 0), -1);
	CHECK_EQ(errno, EAGAIN);
	its = its_ms(5, 0);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	CHECK(wait_pending(SIGRTMIN, 5000));
	CHECK_OK(B->del(t));
	errno = 0;
	CHECK_EQ(read_signalfd(fd, rec, 4, 0), -1);
	CHECK_EQ(errno, EAGAIN);
	close(fd);
}

/* Many timers' signals in one signalfd read, among the program's own
 * queued signals, some stale: every live timer's record comes once, with
 * its value and no marker, the program's own pass as sent, the stale
 * never show (the engine goes through such a read sixteen timers at a
 * time). */
CONF_CASE(signalfd_many)
{
	enum { NT = 80, OWN = 2 };
	int sig = SIGRTMIN + 1;
	int fd = blocked_signalfd(sig);
	CHECK(fd >= 0);
	CHECK_OK(sigqueue(getpid(), sig, (union sigval){ .sival_int = 5000 }));
	timer_t t[NT];
	for (int i = 0; i < NT; i++) {
		struct sigevent sev = sig_event(sig, 1000 + i);
		t[i] = make_timer(CLOCK_MONOTONIC, &sev);
	}
	struct itimerspec its = its_ms(5, 0);
	for (int i = 0; i < NT; i++)
		CHECK_OK(B->settime(t[i], 0, &its, NULL));
	/* All expired (a one-shot that has fired reads as disarmed), so all
	 * their signals are queued. */
	for (int i = 0; i < NT; i++) {
		struct itimerspec cur;
		int64_t give_up = now_ns(CLOCK_MONOTONIC) + 5000000000LL;
		do {
			CHECK_OK(B->gettime(t[i], &cur));
			if (cur.it_value.tv_sec || cur.it_value.tv_nsec)
				nap_ms(1);
		} while ((cur.it_value.tv_sec || cur.it_value.tv_nsec) && now_ns(CLOCK_MONOTONIC) < give_up);
	}
	/* Every 7th re-armed while its signal is pending: stale. */
	struct itimerspec later = its_ms(100000, 0);
	int stale = 0;
	for (int i = 0; i < NT; i += 7, stale++)
		CHECK_OK(B->settime(t[i], 0, &later, NULL));
	CHECK_OK(sigqueue(getpid(), sig, (union sigval){ .sival_int = 5001 }));
	struct signalfd_siginfo rec[2 * NT];
	ssize_t r = read_signalfd(fd, rec, 2 * NT, 0);
	CHECK_EQ(r, (ssize_t)sizeof(rec[0]) * (NT - stale + OWN));
	int count[NT] = { 0 }, own = 0;
	for (ssize_t k = 0; k < r / (ssize_t)sizeof(rec[0]); k++) {
		if (rec[k].ssi_code == SI_QUEUE) {
			CHECK_EQ(rec[k].ssi_int, 5000 + own);
			own++;
			continue;
		}
		CHECK_EQ(rec[k].ssi_code, SI_TIMER);
		CHECK_EQ(rec[k].ssi_errno, 0);
		CHECK_EQ(rec[k].ssi_overrun, 0);
		int i = rec[k].ssi_int - 1000;
		CHECK(i >= 0 && i < NT && i % 7 != 0);
		if (i >= 0 && i < NT) {
			CHECK_EQ(rec[k].ssi_tid, (intptr_t)t[i]);
			count[i]++;
		}
	}
	CHECK_EQ(own, OWN);
	for (int i = 0; i < NT; i++)
		CHECK_EQ(count[i], i % 7 ? 1 : 0);
	errno = 0;
	CHECK_EQ(read_signalfd(fd, rec, 4, 0), -1);
	CHECK_EQ(errno, EAGAIN);
	for (int i = 0; i < NT; i++)
		CHECK_OK(B->del(t[i]));
	close(fd);
}

/* A periodic timer whose signal is ignored waits; installing a handler
 * queues its signal at once, the periods missed being its overruns.  A
 * one-shot expiry while ignored is simply lost. */
CONF_CASE(ignored_signal)
{
	signal(SIGUSR1, SIG_IGN);
	struct sigevent sev = sig_event(SIGUSR1, 4);
	seen_timer = make_timer(CLOCK_MONOTONIC, &sev);
	struct itimerspec its = its_ms(20, 20), cur;
	CHECK_OK(B->settime(seen_timer, 0, &its, NULL));
	nap_ms(110);
	CHECK_OK(B->gettime(seen_timer, &cur));
	CHECK_RANGE(ts_ns(cur.it_value), 1, 20000000);
	CHECK_EQ(B->getoverrun(seen_timer), 0);
	install_handler(SIGUSR1);
	wait_seen(1, 5000);
	CHECK(seen >= 1); /* a second, a period on, if this thread stood preempted */
	CHECK_RANGE(seen_overrun[0], 3, 60); /* about 5 */
	CHECK_EQ(seen_getoverrun[0], seen_overrun[0]);
	CHECK_OK(B->del(seen_timer));
	/* One-shot. */
	signal(SIGUSR1, SIG_IGN);
	set_seen(0);
	seen_timer = make_timer(CLOCK_MONOTONIC, &sev);
	its = its_ms(10, 0);
	CHECK_OK(B->settime(seen_timer, 0, &its, NULL));
	nap_ms(40);
	install_handler(SIGUSR1);
	nap_ms(40);
	CHECK_EQ(seen, 0);
	CHECK_OK(B->gettime(seen_timer, &cur));
	CHECK_EQ(ts_ns(cur.it_value), 0);
}

/* Runs in a new thread per expiry, possibly several at once. */
static void on_thread(union sigval v)
{
	__atomic_store_n(&thread_value, v.sival_int, __ATOMIC_RELAXED);
	__atomic_store_n(&thread_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELAXED);
	sem_post(&thread_sem);
}

CONF_CASE_FLAGS(sigev_thread, CONF_GLIBC_THREADS)
{
	sem_init(&thread_sem, 0, 0);
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_notify_function = on_thread;
	sev.sigev_value.sival_int = 99;
	timer_t t = make_timer(CLOCK_MONOTONIC, &sev);
	struct itimerspec its = its_ms(10, 10);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 5;
	for (int i = 0; i < 3; i++)
		CHECK_OK(sem_timedwait(&thread_sem, &deadline));
	CHECK_EQ(__atomic_load_n(&thread_value, __ATOMIC_RELAXED), 99);
	CHECK(__atomic_load_n(&thread_tid, __ATOMIC_RELAXED) != (pid_t)syscall(SYS_gettid));
	CHECK_OK(B->del(t));
}

static void *tid_target(void *arg)
{
	(void)arg;
	target_tid = (pid_t)syscall(SYS_gettid);
	sem_post(&tid_ready);
	siginfo_t si;
	target_got = wait_signal(SIGRTMIN + 1, &si, 5000) == SIGRTMIN + 1 && si.si_value.sival_int == 5;
	return NULL;
}

CONF_CASE(sigev_thread_id)
{
	block(SIGRTMIN + 1); /* inherited by the target thread */
	sem_init(&tid_ready, 0, 0);
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, tid_target, NULL), 0);
	sem_wait(&tid_ready);
	struct sigevent sev = sig_event(SIGRTMIN + 1, 5);
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev._sigev_un._tid = target_tid;
	timer_t t = make_timer(CLOCK_MONOTONIC, &sev);
	struct itimerspec its = its_ms(10, 0);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	pthread_join(th, NULL);
	CHECK_EQ(target_got, 1);
	/* Nothing came to this thread. */
	siginfo_t si;
	CHECK_EQ(wait_signal(SIGRTMIN + 1, &si, 0), 0);
}

/* Standard (non-realtime) signals are not queued twice by the kernel,
 * except timer signals: each timer has its own queue entry.  Two timers
 * on SIGUSR2, and a kill(SIGUSR2) besides, make three deliveries. */
CONF_CASE(shared_standard_signal)
{
	block(SIGUSR2);
	struct sigevent sev = sig_event(SIGUSR2, 0);
	timer_t a = make_timer(CLOCK_MONOTONIC, &sev);
	timer_t b = make_timer(CLOCK_MONOTONIC, &sev);
	CHECK_OK(kill(getpid(), SIGUSR2));
	struct itimerspec its = its_ms(5, 0);
	CHECK_OK(B->settime(a, 0, &its, NULL));
	CHECK_OK(B->settime(b, 0, &its, NULL));
	nap_ms(50);
	siginfo_t si;
	CHECK_EQ(wait_signal(SIGUSR2, &si, 0), SIGUSR2);
	CHECK_EQ(si.si_code, SI_USER);
	unsigned got = 0;
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(wait_signal(SIGUSR2, &si, 1000), SIGUSR2);
		CHECK_EQ(si.si_code, SI_TIMER);
		got |= 1u << si.si_timerid;
	}
	CHECK_EQ(got, (1u << (intptr_t)a) | (1u << (intptr_t)b));
	CHECK_EQ(wait_signal(SIGUSR2, &si, 50), 0);
}

static void on_tick(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	struct itimerspec its = its_ms(5000, 0), cur;
	B->settime(shared_timer, 0, &its, NULL);
	B->gettime(shared_timer, &cur);
	B->getoverrun(ticking_timer);
	__atomic_add_fetch(&handler_calls, 1, __ATOMIC_SEQ_CST);
}

CONF_CASE(handler_reenters)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_tick;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	CHECK_OK(sigaction(SIGRTMIN + 4, &sa, NULL));
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	shared_timer = make_timer(CLOCK_MONOTONIC, &none);
	struct sigevent sev = sig_event(SIGRTMIN + 4, 0);
	ticking_timer = make_timer(CLOCK_MONOTONIC, &sev);
	struct itimerspec tick = its_ms(1, 1), its = its_ms(3000, 0), cur;
	CHECK_OK(B->settime(ticking_timer, 0, &tick, NULL));
	int64_t end = now_ns(CLOCK_MONOTONIC) + 400000000;
	while (now_ns(CLOCK_MONOTONIC) < end) {
		CHECK_OK(B->settime(shared_timer, 0, &its, NULL));
		CHECK_OK(B->gettime(shared_timer, &cur));
	}
	CHECK_OK(B->del(ticking_timer));
	CHECK(__atomic_load_n(&handler_calls, __ATOMIC_SEQ_CST) >= 20);
}
