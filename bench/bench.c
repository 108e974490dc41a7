/* SPDX-License-Identifier: MIT */
/* The bench driver: runs the groups asked for and prints their rows. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"

void bench_add(struct bench_report *r, const char *name, const char *unit, double engine,
	       double reference, const char *against, bool better_high, const char *note)
{
	if (r->n == (int)(sizeof(r->rows) / sizeof(r->rows[0])))
		return;
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
	return v[n / 2];
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

static double ratio(const struct bench_row *row)
{
	if (row->engine <= 0 || row->reference <= 0)
		return 0;
	return row->better_high ? row->engine / row->reference : row->reference / row->engine;
}

static const struct {
	const char *name;
	int (*fn)(const struct bench_opts *, struct bench_report *);
} groups[] = {
	/* First: its processes are forked from the bench, small while it is. */
	{ "outside", bench_outside },
	{ "calls", bench_calls },
	{ "contention", bench_contention },
	{ "latency", bench_latency },
	{ "expiry", bench_expiry },
	{ "restore", bench_restore },
	{ "slice", bench_slice }, /* after the others that time the engine: see slice.c */
	/* Last: ten million timers leave a 1.2 GB process behind, whose
	 * forked children (the restore group's) fault several times slower. */
	{ "memory", bench_memory },
};

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

int bench_group_known(const char *name);
int bench_group_known(const char *name)
{
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		if (strcmp(groups[i].name, name) == 0)
			return 1;
	return 0;
}

int bench_run(const struct bench_opts *o, FILE *out)
{
	static struct bench_report r;

	r.n = 0;
	/* Block the bench's signal so that a stray expiry cannot kill the
	 * run; the groups that take signals wait for them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
		if (!wanted(o->only, groups[i].name))
			continue;
		if (!o->json)
			fprintf(stderr, "ptimers bench: %s...\n", groups[i].name);
		if (groups[i].fn(o, &r) != 0)
			return -1;
	}
	if (o->json) {
		fprintf(out, "[");
		for (int i = 0; i < r.n; i++) {
			const struct bench_row *row = &r.rows[i];
			fprintf(out, "%s\n  {\"name\": \"%s\", \"unit\": \"%s\", \"engine\": %.4g, \"%s\": %.4g, "
				"\"ratio\": %.3g%s%s%s}", i ? "," : "", row->name, row->unit, row->engine,
				row->against, row->reference, ratio(row),
				row->note[0] ? ", \"note\": \"" : "", row->note, row->note[0] ? "\"" : "");
		}
		fprintf(out, "\n]\n");
		return 0;
	}
	fprintf(out, "%-28s %-12s %12s %12s %-7s %8s\n", "benchmark", "unit", "engine", "against", "", "ratio");
	for (int i = 0; i < r.n; i++) {
		const struct bench_row *row = &r.rows[i];
		fprintf(out, "%-28s %-12s %12.4g %12.4g %-7s %8.2f%s%s\n", row->name, row->unit,
			row->engine, row->reference, row->against, ratio(row), row->note[0] ? "  " : "",
			row->note);
	}
	fprintf(out, "(ratio: how many times better the engine is than what it is set against, in "
		     "this run)\n");
	return 0;
}
