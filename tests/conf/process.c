/* SPDX-License-Identifier: MIT */
/* Conformance: Process life: fork, exec, exit with timers armed, exited target
 * threads, many threads. */
#include "conf.h"

static pid_t gone_tid;
#define LIFE_THREADS 8
#define LIFE_TIMERS 40
static int life_ok[LIFE_THREADS];

/* A fork child has none of the parent's timers, and timers of its own
 * work from ID 0; the parent's keep running. */
CONF_CASE(fork_child)
{
	block(SIGRTMIN);
	struct sigevent sev = sig_event(SIGRTMIN, 1);
	timer_t t[3];
	struct itimerspec its = its_ms(10, 10);
	for (int i = 0; i < 3; i++) {
		t[i] = make_timer(CLOCK_MONOTONIC, &sev);
		CHECK_OK(B->settime(t[i], 0, &its, NULL));
	}
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct itimerspec cur;
		for (int i = 0; i < 3; i++)
			CHECK_ERRNO(B->gettime(t[i], &cur), EINVAL);
		siginfo_t si;
		/* Nothing of the parent's arrives here. */
		CHECK_EQ(wait_signal(SIGRTMIN, &si, 60), 0);
		struct sigevent mine = sig_event(SIGRTMIN, 2);
		timer_t c = make_timer(CLOCK_MONOTONIC, &mine);
		CHECK_EQ((intptr_t)c, 0);
		struct itimerspec once = its_ms(5, 0);
		CHECK_OK(B->settime(c, 0, &once, NULL));
		CHECK_EQ(wait_signal(SIGRTMIN, &si, 5000), SIGRTMIN);
		CHECK_EQ(si.si_value.sival_int, 2);
		_exit(0);
	}
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	siginfo_t si;
	CHECK_EQ(wait_signal(SIGRTMIN, &si, 5000), SIGRTMIN);
	CHECK_EQ(si.si_value.sival_int, 1);
}

/* After exec: no timer of the old image, and nothing of it fires (its
 * SIGUSR1 would kill this process) while the new image waits well past
 * the old timer's first expiry.  main() comes here in the new image. */
int conf_after_exec(const char *backend);
int conf_after_exec(const char *backend)
{
	case_name = "exec_clears";
	CHECK(strcmp(backend, B->name) == 0);
	struct itimerspec cur;
	CHECK_ERRNO(B->gettime((timer_t)0, &cur), EINVAL);
	nap_ms(400);
	return 0;
}

CONF_CASE(exec_clears)
{
	struct sigevent sev = sig_event(SIGUSR1, 1);
	timer_t t = make_timer(CLOCK_MONOTONIC, &sev);
	CHECK_EQ((intptr_t)t, 0);
	/* First due 200 ms on: after the exec, even on a loaded machine (an
	 * expiry before it would kill this image, the test's fault). */
	struct itimerspec its = its_ms(200, 5);
	CHECK_OK(B->settime(t, 0, &its, NULL));
	execl(self_exe, self_exe, "--after-exec", B->name, (char *)NULL);
	failf(__LINE__, "exec %s: %s", self_exe, strerror(errno));
}

static void *exit_at_once(void *arg)
{
	(void)arg;
	gone_tid = (pid_t)syscall(SYS_gettid);
	return NULL;
}

/* A SIGEV_THREAD_ID timer whose thread has exited notifies nobody else,
 * and the timer itself stays usable. */
CONF_CASE(thread_id_gone)
{
	block(SIGRTMIN);
	struct sigevent sev = sig_event(SIGRTMIN, 6);
	sev.sigev_notify = SIGEV_THREAD_ID;
	timer_t t;
	/* Gone before the create: EINVAL. */
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, exit_at_once, NULL), 0);
	pthread_join(th, NULL);
	CHECK(wait_tid_gone(gone_tid));
	sev._sigev_un._tid = gone_tid;
	CHECK_ERRNO(B->create(CLOCK_MONOTONIC, &sev, &t), EINVAL);
	/* Alive at the create, gone while the timer runs. */
	struct exiter ex;
	exiter_start(&ex);
	sev._sigev_un._tid = ex.tid;
	t = make_timer(CLOCK_MONOTONIC, &sev);
	exiter_end(&ex);
	struct itimerspec its = its_ms(10, 10), cur;
	CHECK_OK(B->settime(t, 0, &its, NULL));
	nap_ms(60);
	siginfo_t si;
	CHECK_EQ(wait_signal(SIGRTMIN, &si, 0), 0); /* none came to this thread */
	CHECK_OK(B->gettime(t, &cur));
	CHECK_OK(B->del(t));
}

/* Exit with armed timers of every kind: clean, prompt, status kept. */
static void on_thread_noop(union sigval v) { (void)v; }
CONF_CASE(exit_armed)
{
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		block(SIGRTMIN);
		struct sigevent sev = sig_event(SIGRTMIN, 1);
		struct itimerspec its = its_ms(1, 1);
		for (int i = 0; i < 200; i++) {
			timer_t t = make_timer(i % 2 ? CLOCK_MONOTONIC : CLOCK_REALTIME, &sev);
			CHECK_OK(B->settime(t, 0, &its, NULL));
		}
#ifdef __SANITIZE_THREAD__
		if (!B->engine)
			exit(7); /* glibc's SIGEV_THREAD helper: see main() */
#endif
		struct sigevent th;
		memset(&th, 0, sizeof(th));
		th.sigev_notify = SIGEV_THREAD;
		th.sigev_notify_function = on_thread_noop;
		timer_t t = make_timer(CLOCK_MONOTONIC, &th);
		CHECK_OK(B->settime(t, 0, &its, NULL));
		nap_ms(20);
		exit(7); /* atexit handlers and destructors run */
	}
	int status;
	int64_t t0 = now_ns(CLOCK_MONOTONIC);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 7);
	CHECK(now_ns(CLOCK_MONOTONIC) - t0 < 10000000000LL);
}

/* Many threads, each with its own timers aimed at itself. */
static void *life_worker(void *arg)
{
	int me = (int)(intptr_t)arg;
	struct sigevent sev = sig_event(SIGRTMIN + 2, 0);
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	timer_t t[LIFE_TIMERS];
	int got[LIFE_TIMERS] = { 0 };
	for (int i = 0; i < LIFE_TIMERS; i++) {
		sev.sigev_value.sival_int = me * 1000 + i;
		if (B->create(CLOCK_MONOTONIC, &sev, &t[i]) != 0)
			return NULL;
		struct itimerspec its = its_ms(1 + i % 20, 0);
		if (B->settime(t[i], 0, &its, NULL) != 0)
			return NULL;
	}
	int n = 0;
	siginfo_t si;
	while (n < LIFE_TIMERS && wait_signal(SIGRTMIN + 2, &si, 5000) == SIGRTMIN + 2) {
		int v = si.si_value.sival_int;
		if (v / 1000 != me || got[v % 1000]++)
			return NULL; /* someone else's, or twice */
		n++;
	}
	for (int i = 0; i < LIFE_TIMERS; i++)
		B->del(t[i]);
	life_ok[me] = n == LIFE_TIMERS && wait_signal(SIGRTMIN + 2, &si, 0) == 0;
	return NULL;
}

CONF_CASE(many_threads)
{
	block(SIGRTMIN + 2);
	pthread_t th[LIFE_THREADS];
	for (int i = 0; i < LIFE_THREADS; i++)
		CHECK_EQ(pthread_create(&th[i], NULL, life_worker, (void *)(intptr_t)i), 0);
	for (int i = 0; i < LIFE_THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < LIFE_THREADS; i++)
		CHECK_EQ(life_ok[i], 1);
}
