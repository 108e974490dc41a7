/* SPDX-License-Identifier: MIT */
/* The bench driver: runs the groups asked for and prints their rows. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"
#include "ptimers.h"
#include "rcu.h"

void bench_add(struct bench_report *r, const char *name, const char *unit, double engine,
	       double reference, const char *against, bool better_high, const char *note)
{
	if (r->n == (int)(sizeof(r->rows) / sizeof(r->rows[0]))) {
		fprintf(stderr, "ptimers bench: no room for the row %s (bench/bench.h's rows[])\n", name);
		r->dropped++;
		return;
	}
	struct bench_row *row = &r->rows[r->n++];
	snprintf(row->name, sizeof(row->name), "%s", name);
	snprintf(row->unit, sizeof(row->unit), "%s", unit);
	row->engine = engine;
	row->reference = reference;
	row->against = against;
	row->better_high = better_high;
	snprintf(row->note, sizeof(row->note), "%s", note);
}

double bench_cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	/* Of an even count, the middle two's mean. */
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_engine_quiesce(void)
{
	uint64_t last = UINT64_MAX;
	int same = 0;
	for (int i = 0; i < 500 && same < 3; i++) {
		struct ptimer_stats st;
		if (ptimer_get_stats(&st, sizeof(st)) != 0)
			break;
		same = st.bytes == last ? same + 1 : 0;
		last = st.bytes;
		struct timespec nap = { 0, 10000000 };
		nanosleep(&nap, NULL);
	}
	pt_rcu_barrier();
}

void bench_raise_sigpending(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_SIGPENDING, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_SIGPENDING, &rl);
	}
}

long bench_sigq_room(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long used = -1, limit = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "SigQ: %ld/%ld", &used, &limit) == 2)
			break;
	if (f)
		fclose(f);
	return used < 0 ? -1 : limit - used;
}

struct bench_ref bench_ref;

/* Best ns per call of fn over rounds of n. */
static double best_of(void (*fn)(long n), long n)
{
	double best = 0;
	for (int round = 0; round < 5; round++) {
		int64_t t0 = bench_now();
		fn(n);
		double ns = (double)(bench_now() - t0) / (double)n;
		if (round == 0 || ns < best)
			best = ns;
	}
	return best;
}

static void ref_syscall(long n)
{
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
}

static void ref_clock(long n)
{
	struct timespec ts;
	for (long i = 0; i < n; i++)
		clock_gettime(CLOCK_MONOTONIC, &ts);
}

#define REF_SIG (SIGRTMIN + 6)
static void ref_signal(long n)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, REF_SIG);
	pid_t pid = getpid(), tid = (pid_t)syscall(SYS_gettid);
	siginfo_t si;
	for (long i = 0; i < n; i++) {
		syscall(SYS_tgkill, pid, tid, REF_SIG);
		sigwaitinfo(&set, &si);
	}
}

static void measure_reference(void)
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, REF_SIG);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	bench_ref.syscall_ns = best_of(ref_syscall, 20000);
	bench_ref.clock_ns = best_of(ref_clock, 200000);
	bench_ref.signal_ns = best_of(ref_signal, 5000);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static double ratio(const struct bench_row *row)
{
	if (row->engine == 0 && !row->better_high && row->reference > 0)
		return -1; /* none where some was allowed: no ratio */
	if (row->engine == 0 && !row->better_high && row->reference == 0)
		return 1; /* none against none: the same */
	if (row->engine <= 0 || row->reference <= 0)
		return 0;
	return row->better_high ? row->engine / row->reference : row->reference / row->engine;
}

static bool wanted(const char *only, const char *name)
{
	if (!only)
		return true;
	size_t n = strlen(name);
	for (const char *p = only; *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == n && strncmp(p, name, n) == 0)
			return true;
		p += len + (end ? 1 : 0);
	}
	return false;
}

static int run(const struct bench_opts *o, FILE *out, const struct bench_group *groups, size_t ngroups)
{
	static struct bench_report r;

	r.n = 0;
	r.dropped = 0;
	/* Block the bench's signal so that a stray expiry cannot kill the
	 * run; the groups that take signals wait for them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	measure_reference();
	for (size_t i = 0; i < ngroups; i++) {
		if (!wanted(o->only, groups[i].name))
			continue;
		if (!o->json)
			fprintf(stderr, "%s: %s...\n", o->prog, groups[i].name);
		if (groups[i].fn(o, &r) != 0)
			return -1;
	}
	if (r.dropped)
		return -1; /* a report without some of its rows is not the report */
	if (o->json) {
		fprintf(out, "{\"reference_costs\": {\"syscall_ns\": %.4g, \"clock_read_ns\": %.4g, "
			"\"signal_ns\": %.4g},\n \"rows\": [", bench_ref.syscall_ns, bench_ref.clock_ns,
			bench_ref.signal_ns);
		for (int i = 0; i < r.n; i++) {
			const struct bench_row *row = &r.rows[i];
			fprintf(out, "%s\n  {\"name\": \"%s\", \"unit\": \"%s\", \"engine\": %.4g, "
				"\"reference\": \"%s\", \"reference_value\": %.4g, \"ratio\": ", i ? "," : "",
				row->name, row->unit, row->engine, row->against, row->reference);
			if (ratio(row) < 0)
				fprintf(out, "null");
			else
				fprintf(out, "%.3g", ratio(row));
			fprintf(out, ", \"note\": \"%s\"}", row->note);
		}
		fprintf(out, "\n]}\n");
		return 0;
	}
	fprintf(out, "reference costs here: a system call %.0f ns, a vDSO clock read %.1f ns, a signal "
		"sent and taken %.0f ns\n(every ratio against the kernel moves with the system call's "
		"cost; the engine's own figures do not)\n\n", bench_ref.syscall_ns, bench_ref.clock_ns,
		bench_ref.signal_ns);
	/* The name column as wide as the longest name. */
	int w = (int)strlen("benchmark");
	for (int i = 0; i < r.n; i++)
		if ((int)strlen(r.rows[i].name) > w)
			w = (int)strlen(r.rows[i].name);
	fprintf(out, "%-*s %-11s %11s %11s %-14s %9s  %s\n", w, "benchmark", "unit", "engine", "reference",
		"(of)", "ratio", "note");
	for (int i = 0; i < r.n; i++) {
		const struct bench_row *row = &r.rows[i];
		char rt[16];
		if (ratio(row) < 0)
			snprintf(rt, sizeof(rt), "none");
		else
			snprintf(rt, sizeof(rt), "%.2f", ratio(row));
		fprintf(out, "%-*s %-11s %11.4g %11.4g %-14s %9s%s%s\n", w, row->name, row->unit,
			row->engine, row->reference, row->against, rt, row->note[0] ? "  " : "",
			row->note);
	}
	fprintf(out, "(ratio: how many times better the engine is than what it is set against, in "
		     "this run)\n");
	return 0;
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int bench_main(const char *prog, int argc, char **argv, const struct bench_group *groups, size_t ngroups,
	       void (*usage)(FILE *))
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "json", no_argument, NULL, 'j' },
		{ "only", required_argument, NULL, 'o' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "seconds", required_argument, NULL, 's' },
		{ "timers", required_argument, NULL, 't' },
		{ "criu", required_argument, NULL, 'c' },
		{ 0 },
	};
	struct bench_opts o = { .iterations = 200000, .rounds = 5, .seconds = 3, .timers = 10000000,
				.prog = prog };
	long v;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("%s %s\n", prog, PTIMERS_VERSION_STRING);
			return 0;
		case 'j':
			o.json = true;
			break;
		case 'o':
			for (const char *p = optarg; *p;) {
				size_t len = strcspn(p, ",");
				bool known = false;
				for (size_t i = 0; i < ngroups && !known; i++)
					known = strlen(groups[i].name) == len && !strncmp(groups[i].name, p, len);
				if (!known) {
					fprintf(stderr, "%s: no group '%.*s' (", prog, (int)len, p);
					for (size_t i = 0; i < ngroups; i++)
						fprintf(stderr, "%s%s", i ? ", " : "", groups[i].name);
					fprintf(stderr, ")\n");
					return 2;
				}
				p += len + (p[len] == ',');
			}
			o.only = optarg;
			break;
		case 'n':
			if (parse_long(optarg, 1, LONG_MAX, &v)) {
				fprintf(stderr, "%s: --iterations takes a whole number >= 1, not '%s'\n", prog,
					optarg);
				return 2;
			}
			o.iterations = v;
			break;
		case 'r':
			if (parse_long(optarg, 1, 1000, &v)) {
				fprintf(stderr, "%s: --rounds takes a whole number from 1 to 1000, not '%s'\n",
					prog, optarg);
				return 2;
			}
			o.rounds = (int)v;
			break;
		case 's':
			if (parse_long(optarg, 1, 3600, &v)) {
				fprintf(stderr, "%s: --seconds takes a whole number from 1 to 3600, not '%s'\n",
					prog, optarg);
				return 2;
			}
			o.seconds = (double)v;
			break;
		case 't':
			if (parse_long(optarg, 1000, 100000000, &v)) {
				fprintf(stderr, "%s: --timers takes a whole number from 1000 to 100000000, not "
					"'%s'\n", prog, optarg);
				return 2;
			}
			o.timers = v;
			break;
		case 'c':
			if (access(optarg, X_OK) != 0) {
				fprintf(stderr, "%s: --criu: cannot run '%s': %s\n", prog, optarg,
					strerror(errno));
				return 2;
			}
			o.criu = optarg;
			break;
		default:
			fprintf(stderr, "%s: unknown option, or one without its value: '%s' (try '%s --help')\n",
				prog, argv[optind - 1], prog);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s' (try '%s --help')\n", prog, argv[optind], prog);
		return 2;
	}
	return run(&o, stdout, groups, ngroups) == 0 ? 0 : 1;
}
