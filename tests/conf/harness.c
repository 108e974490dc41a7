/* SPDX-License-Identifier: MIT */
/*
 * The conformance harness: the backend of this program, the helpers the
 * cases share, and the runner (cmocka, TAP).
 *
 *   conformance-kernel|conformance-engine [SUBSTRING]
 *
 * runs every case whose "backend/case" name contains SUBSTRING.
 */
#include "conf.h"

#include <setjmp.h>
#include <sys/timex.h>

#include <cmocka.h>

/* ---- the backend ---- */

#ifdef CONF_ENGINE
static const struct backend engine_backend = {
	"engine", ptimer_create, ptimer_settime, ptimer_gettime, ptimer_getoverrun, ptimer_delete,
	ptimer_restore_ids, true,
};
const struct backend *const B = &engine_backend;
#else
/* The kernel through its system calls (timer_t carries the kernel's int
 * ID, as glibc does).  SIGEV_THREAD exists only in glibc, so it goes
 * through glibc's timer_create. */
static int k_create(clockid_t c, struct sigevent *sev, timer_t *out)
{
	if (sev && sev->sigev_notify == SIGEV_THREAD)
		return timer_create(c, sev, out);
	int kid = out ? (int)(intptr_t)*out : 0;
	if (syscall(SYS_timer_create, c, sev, out ? &kid : NULL) != 0)
		return -1;
	*out = (timer_t)(intptr_t)kid;
	return 0;
}
static int k_settime(timer_t t, int f, const struct itimerspec *n, struct itimerspec *o)
{
	return timer_settime(t, f, n, o);
}
static int k_gettime(timer_t t, struct itimerspec *c)
{
	return (int)syscall(SYS_timer_gettime, (int)(intptr_t)t, c);
}
static int k_getoverrun(timer_t t) { return (int)syscall(SYS_timer_getoverrun, (int)(intptr_t)t); }
static int k_delete(timer_t t)
{
	if ((intptr_t)t < 0)
		return timer_delete(t); /* glibc's SIGEV_THREAD handle */
	return (int)syscall(SYS_timer_delete, (int)(intptr_t)t);
}
static int k_restore(unsigned long m, unsigned long a, unsigned long b, unsigned long c)
{
	return (int)syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, m, a, b, c);
}
static const struct backend kernel_backend = {
	"kernel", k_create, k_settime, k_gettime, k_getoverrun, k_delete, k_restore, false,
};
const struct backend *const B = &kernel_backend;
#endif

const char *case_name;
const char *self_exe = "/proc/self/exe";

void failf(int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "  %s/%s line %d: ", B->name, case_name, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	_exit(1);
}

/* ---- time ---- */

int64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return ts_ns(ts);
}

struct itimerspec its_ms(long value_ms, long interval_ms)
{
	return (struct itimerspec){ .it_value = ns_ts(value_ms * 1000000LL),
				    .it_interval = ns_ts(interval_ms * 1000000LL) };
}

void nap_ms(long ms)
{
	struct timespec nap = ns_ts(ms * 1000000);
	while (nanosleep(&nap, &nap) != 0 && errno == EINTR)
		;
}

/* ---- timers and signals ---- */

struct sigevent sig_event(int signo, int value)
{
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = signo;
	sev.sigev_value.sival_int = value;
	return sev;
}

timer_t make_timer(clockid_t c, struct sigevent *sev)
{
	timer_t t = 0;
	errno = 0;
	if (B->create(c, sev, &t) != 0)
		failf(__LINE__, "create: %s", strerror(errno));
	return t;
}

static void mask(int how, int signo)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, signo);
	pthread_sigmask(how, &set, NULL);
}

void block(int signo) { mask(SIG_BLOCK, signo); }
void unblock(int signo) { mask(SIG_UNBLOCK, signo); }

int wait_signal(int signo, siginfo_t *si, long timeout_ms)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, signo);
	int64_t end = now_ns(CLOCK_MONOTONIC) + timeout_ms * 1000000LL;
	for (;;) {
		int64_t left = end - now_ns(CLOCK_MONOTONIC);
		if (left < 0)
			left = 0;
		struct timespec ts = ns_ts(left);
		/* Stale signals never come back: the kernel drops them at
		 * dequeue, the engine's hooks where the program takes them. */
		int r = sigtimedwait(&set, si, &ts);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return 0;
		}
		if (si->si_code == SI_TIMER)
			CHECK_EQ(si->si_errno, 0);
		return r;
	}
}

bool wait_pending(int signo, long timeout_ms)
{
	sigset_t pend;
	int64_t end = now_ns(CLOCK_MONOTONIC) + timeout_ms * 1000000LL;
	do {
		if (sigpending(&pend) == 0 && sigismember(&pend, signo))
			return true;
		sched_yield();
	} while (now_ns(CLOCK_MONOTONIC) < end);
	return false;
}

int seen_count;
int seen_overrun[MAX_SEEN], seen_getoverrun[MAX_SEEN], seen_errno[MAX_SEEN];
int64_t seen_at[MAX_SEEN];
timer_t seen_timer;
long handler_busy_ms;

void seen_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	int i = seen;
	if (i < MAX_SEEN) {
		seen_overrun[i] = si->si_overrun;
		seen_errno[i] = si->si_errno;
		seen_getoverrun[i] = B->getoverrun(seen_timer);
		seen_at[i] = now_ns(CLOCK_MONOTONIC);
	}
	set_seen(i + 1);
	if (handler_busy_ms && seen >= 6) {
		/* A handler longer than the period never lets the thread
		 * back between signals: stop the timer from here. */
		B->del(seen_timer);
		handler_busy_ms = 0;
	}
	if (handler_busy_ms)
		nap_ms(handler_busy_ms);
}

void install_handler(int signo)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = seen_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	CHECK_OK(sigaction(signo, &sa, NULL));
}

void wait_seen(int n, long timeout_ms)
{
	int64_t end = now_ns(CLOCK_MONOTONIC) + timeout_ms * 1000000LL;
	while (seen < n && now_ns(CLOCK_MONOTONIC) < end)
		nap_ms(1);
}

/* ---- threads and processes ---- */

pid_t other_start(void)
{
	pid_t other = fork();
	if (other == 0) {
		pause();
		_exit(0);
	}
	CHECK(other > 0);
	return other;
}

void other_end(pid_t other)
{
	kill(other, SIGKILL);
	waitpid(other, NULL, 0);
}

bool wait_tid_gone(pid_t tid)
{
	int64_t end = now_ns(CLOCK_MONOTONIC) + 5000000000LL;
	while (syscall(SYS_tgkill, getpid(), tid, 0) == 0) {
		if (now_ns(CLOCK_MONOTONIC) > end)
			return false;
		sched_yield();
	}
	return true;
}

static void *wait_then_exit(void *arg)
{
	struct exiter *ex = arg;
	char c;
	ex->tid = (pid_t)syscall(SYS_gettid);
	sem_post(&ex->ready);
	(void)!read(ex->pipefd[0], &c, 1);
	return NULL;
}

void exiter_start(struct exiter *ex)
{
	CHECK_OK(pipe(ex->pipefd));
	sem_init(&ex->ready, 0, 0);
	CHECK_EQ(pthread_create(&ex->th, NULL, wait_then_exit, ex), 0);
	sem_wait(&ex->ready);
}

void exiter_end(struct exiter *ex)
{
	CHECK_EQ(write(ex->pipefd[1], "x", 1), 1);
	pthread_join(ex->th, NULL);
	CHECK(wait_tid_gone(ex->tid));
	close(ex->pipefd[0]);
	close(ex->pipefd[1]);
}

/* Drop a capability from this (forked, throw-away) process. */
void drop_capability(int cap)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	CHECK_OK(syscall(SYS_capget, &hdr, data));
	data[cap / 32].effective &= ~(1u << (cap % 32));
	data[cap / 32].permitted &= ~(1u << (cap % 32));
	CHECK_OK(syscall(SYS_capset, &hdr, data));
}

/* ---- the wall clock ---- */

/* Steps of the machine's wall clock not yet undone, in memory shared with
 * the parent: if a case dies between its steps, the parent undoes them. */
static int64_t *clock_debt;

static int adjust(int64_t ns)
{
	struct timex tx;
	memset(&tx, 0, sizeof(tx));
	tx.modes = ADJ_SETOFFSET | ADJ_NANO;
	int64_t sec = ns / 1000000000, nsec = ns % 1000000000;
	if (nsec < 0) {
		sec--;
		nsec += 1000000000;
	}
	tx.time.tv_sec = sec;
	tx.time.tv_usec = nsec; /* nanoseconds with ADJ_NANO */
	return clock_adjtime(CLOCK_REALTIME, &tx);
}

int step_clock(int64_t ns)
{
	__atomic_add_fetch(clock_debt, ns, __ATOMIC_SEQ_CST);
	if (adjust(ns) < 0) {
		__atomic_sub_fetch(clock_debt, ns, __ATOMIC_SEQ_CST);
		return -1;
	}
	return 0;
}

/* Can this process step the wall clock?  A zero step tells. */
static const char *wall_clock_unsettable(void)
{
	return adjust(0) < 0 ? strerror(errno) : NULL;
}

/* ---- the runner ---- */

struct conf_case {
	const char *name;
	void (*fn)(void);
	unsigned flags;
};

#define MAX_CASES 128
static struct conf_case cases[MAX_CASES];
static size_t ncases;

void conf_register(const char *name, void (*fn)(void), unsigned flags)
{
	if (ncases < MAX_CASES)
		cases[ncases++] = (struct conf_case){ name, fn, flags };
}

/* Fork, run the case, and wait for it with a deadline. */
static void run_case(void **state)
{
	const struct conf_case *c = *state;
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		case_name = c->name;
		c->fn();
		_exit(0);
	}
	int status = 0;
	int64_t end = now_ns(CLOCK_MONOTONIC) + 60LL * 1000000000;
	bool timed_out = false;
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now_ns(CLOCK_MONOTONIC) > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			timed_out = true;
			break;
		}
		poll(NULL, 0, 5);
	}
	/* A case that stepped the wall clock and died before stepping it
	 * back: undo here, whatever happened. */
	int64_t debt = __atomic_exchange_n(clock_debt, 0, __ATOMIC_SEQ_CST);
	if (debt) {
		adjust(-debt);
		fprintf(stderr, "# %s/%s: undid a wall-clock step of %lld ns\n", B->name, c->name,
			(long long)debt);
	}
	if (timed_out)
		fail_msg("%s/%s: timed out", B->name, c->name);
	if (WIFSIGNALED(status))
		fail_msg("%s/%s: killed by signal %d", B->name, c->name, WTERMSIG(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int conf_after_exec(const char *backend);

int main(int argc, char **argv)
{
	static struct CMUnitTest tests[MAX_CASES];
	static char names[MAX_CASES][64];

	if (argc > 2 && strcmp(argv[1], "--after-exec") == 0)
		return conf_after_exec(argv[2]);
	const char *only = argc > 1 ? argv[1] : NULL;
	size_t n = 0;
	clock_debt = mmap(NULL, sizeof(*clock_debt), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (clock_debt == MAP_FAILED)
		return 1;
	const char *no_clock = wall_clock_unsettable();

	for (size_t i = 0; i < ncases; i++) {
		snprintf(names[n], sizeof(names[n]), "%s/%s", B->name, cases[i].name);
		if (only && !strstr(names[n], only))
			continue;
#ifdef __SANITIZE_THREAD__
		/* glibc starts its SIGEV_THREAD helper with its internal thread
		 * creation, which TSan does not intercept: the reference side
		 * of such a case crashes inside glibc under TSan.  The other
		 * builds run it. */
		if (!B->engine && (cases[i].flags & CONF_GLIBC_THREADS)) {
			fprintf(stderr, "# %s left out under TSan (glibc's helper thread)\n", names[n]);
			continue;
		}
#endif
		if ((cases[i].flags & CONF_STEPS_CLOCK) && no_clock) {
			fprintf(stderr, "# %s left out: this process cannot step the wall clock (%s); "
				"it needs CAP_SYS_TIME outside a container\n", names[n], no_clock);
			continue;
		}
		tests[n] = (struct CMUnitTest){ .name = names[n], .test_func = run_case,
						.initial_state = &cases[i] };
		n++;
	}
	if (only && n == 0) {
		/* A name that matches nothing runs nothing: that is a mistake,
		 * not a pass. */
		fprintf(stderr, "%s: no case matches '%s'\n", B->name, only);
		return 2;
	}
	return _cmocka_run_group_tests(B->name, tests, n, NULL, NULL);
}
