/* SPDX-License-Identifier: MIT */
/* ptimers: run programs on user-space POSIX timers, and measure them. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "ptimers.h"

#ifndef PTIMERS_PRELOAD_INSTALLED
#define PTIMERS_PRELOAD_INSTALLED "/usr/local/lib/libptimers-preload.so"
#endif
#define PRELOAD_NAME "libptimers-preload.so"

static const char *prog = "ptimers";

static void usage_main(FILE *f)
{
	fprintf(f,
		"usage: ptimers [--help] [--version] COMMAND [ARGS...]\n"
		"\n"
		"Run programs on user-space POSIX timers (the kernel's semantics, IDs in\n"
		"process memory, arming without a system call), and measure them.\n"
		"\n"
		"commands:\n"
		"  exec    run a program with libc's timer_* calls on the engine\n"
		"  bench   time the engine against the kernel's timers, in one run\n"
		"\n"
		"'ptimers COMMAND --help' describes each command.\n");
}

static void usage_exec(FILE *f)
{
	fprintf(f,
		"usage: ptimers exec [--ids=linux|dense] [--max-timers=N] [--stats] [--] PROGRAM [ARGS...]\n"
		"\n"
		"Run PROGRAM with the drop-in (%s) preloaded: its timer_create,\n"
		"timer_settime, timer_gettime, timer_getoverrun, timer_delete and\n"
		"prctl(PR_TIMER_CREATE_RESTORE_IDS) calls go to the engine.  Programs that\n"
		"issue the timer system calls themselves still reach the kernel.  To re-arm\n"
		"periodic timers at delivery, as the kernel does, the drop-in also watches\n"
		"where PROGRAM takes its signals (sigaction, signal, sigwaitinfo,\n"
		"sigtimedwait, sigwait, signalfd reads); other signals pass untouched.\n"
		"\n"
		"  --ids=POLICY      linux (default: next ID after the last, wrapping at\n"
		"                    INT_MAX) or dense (lowest free ID)\n"
		"  --max-timers=N    refuse timer_create with EAGAIN beyond N timers\n"
		"  --stats           at exit, each process prints to stderr how many timers\n"
		"                    it made on the engine and what they sent\n"
		"\n"
		"The library is looked up in $PTIMERS_PRELOAD, next to this program's build\n"
		"directory, then at %s.\n"
		"Exit status: PROGRAM's, or 127 when it cannot be run.\n",
		PRELOAD_NAME, PTIMERS_PRELOAD_INSTALLED);
}

static void usage_bench(FILE *f)
{
	fprintf(f,
		"usage: ptimers bench [--json] [--only=GROUPS] [--iterations=N] [--rounds=R]\n"
		"                     [--seconds=S] [--timers=N]\n"
		"\n"
		"Measure the engine against the kernel's timers (or, where the kernel cannot\n"
		"take part, a bare signal or the target), all in one run.  Groups:\n"
		"\n"
		"  calls       ns per create+delete, arm+disarm, settime, gettime (best of R\n"
		"              rounds of N calls, engine and kernel taking turns)\n"
		"  contention  operations/s of 8 threads creating, arming, reading and\n"
		"              deleting timers for S seconds, a readout running beside them\n"
		"  latency     lateness of a 1 ms periodic timer's signals, p50 and p99, alone\n"
		"              and with 10,000 other timers armed\n"
		"  expiry      a million timers due within one second: how late the last ones\n"
		"              are, and CPU per expiry against a bare signal sent and taken\n"
		"  memory      bytes per timer at N timers (default ten million), and what is\n"
		"              left once they are deleted\n"
		"\n"
		"  --only=GROUPS    comma-separated, e.g. --only=calls,latency (default: all)\n"
		"  --iterations=N   calls per round (default 200000)\n"
		"  --rounds=R       rounds per call, best of (default 5)\n"
		"  --seconds=S      length of the contention run, each side (default 3)\n"
		"  --timers=N       timers for the memory group (default 10000000)\n"
		"  --json           [{\"name\", \"unit\", \"engine\", <reference>, \"ratio\"}, ...]\n"
		"\n"
		"ratio: how many times better the engine is than its reference (above 1: the\n"
		"engine wins).  All groups take about a minute; memory needs about 2 GB.\n");
}

static int parse_long(const char *s, long min, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min)
		return -1;
	*out = v;
	return 0;
}

static const char *find_preload(char *buf, size_t len)
{
	const char *env = getenv("PTIMERS_PRELOAD");
	if (env && *env)
		return env;
	/* In the build tree the library sits one directory above tools/. */
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(buf, len, "%s/../%s", self, PRELOAD_NAME);
			if (access(buf, R_OK) == 0)
				return buf;
		}
	}
	return PTIMERS_PRELOAD_INSTALLED;
}

static int cmd_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "ids", required_argument, NULL, 'i' },
		{ "max-timers", required_argument, NULL, 'm' },
		{ "stats", no_argument, NULL, 's' },
		{ 0 },
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage_exec(stdout);
			return 0;
		case 'i':
			if (strcmp(optarg, "linux") && strcmp(optarg, "dense")) {
				fprintf(stderr, "%s exec: --ids takes linux or dense, not '%s'\n", prog, optarg);
				return 2;
			}
			setenv("PTIMERS_IDS", optarg, 1);
			break;
		case 'm': {
			long v;
			if (parse_long(optarg, 0, &v)) {
				fprintf(stderr, "%s exec: --max-timers takes a whole number >= 0, not '%s'\n",
					prog, optarg);
				return 2;
			}
			setenv("PTIMERS_MAX_TIMERS", optarg, 1);
			break;
		}
		case 's':
			setenv("PTIMERS_STATS", "1", 1);
			break;
		default:
			usage_exec(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "%s exec: no program given\n", prog);
		usage_exec(stderr);
		return 2;
	}
	char buf[PATH_MAX + 64];
	const char *lib = find_preload(buf, sizeof(buf));
	if (access(lib, R_OK) != 0) {
		fprintf(stderr, "%s exec: cannot read the drop-in %s: %s\n", prog, lib, strerror(errno));
		return 127;
	}
	const char *old = getenv("LD_PRELOAD");
	char *preload;
	if (asprintf(&preload, "%s%s%s", lib, old && *old ? ":" : "", old && *old ? old : "") < 0) {
		fprintf(stderr, "%s exec: out of memory\n", prog);
		return 127;
	}
	setenv("LD_PRELOAD", preload, 1);
	free(preload);
	execvp(argv[optind], &argv[optind]);
	fprintf(stderr, "%s exec: cannot run %s: %s\n", prog, argv[optind], strerror(errno));
	return 127;
}

int bench_group_known(const char *name);

static int cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "only", required_argument, NULL, 'o' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "seconds", required_argument, NULL, 's' },
		{ "timers", required_argument, NULL, 't' },
		{ 0 },
	};
	struct bench_opts o = { .iterations = 200000, .rounds = 5, .seconds = 3, .timers = 10000000 };
	long v;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage_bench(stdout);
			return 0;
		case 'j':
			o.json = true;
			break;
		case 'o': {
			char *copy = strdup(optarg), *save = NULL;
			for (char *g = strtok_r(copy, ",", &save); g; g = strtok_r(NULL, ",", &save)) {
				if (!bench_group_known(g)) {
					fprintf(stderr, "%s bench: no group '%s' (calls, contention, latency, "
						"expiry, memory)\n", prog, g);
					free(copy);
					return 2;
				}
			}
			free(copy);
			o.only = optarg;
			break;
		}
		case 'n':
			if (parse_long(optarg, 1, &v)) {
				fprintf(stderr, "%s bench: --iterations takes a whole number >= 1, not '%s'\n",
					prog, optarg);
				return 2;
			}
			o.iterations = v;
			break;
		case 'r':
			if (parse_long(optarg, 1, &v) || v > 1000) {
				fprintf(stderr, "%s bench: --rounds takes a whole number from 1 to 1000, not '%s'\n",
					prog, optarg);
				return 2;
			}
			o.rounds = (int)v;
			break;
		case 's':
			if (parse_long(optarg, 1, &v) || v > 3600) {
				fprintf(stderr, "%s bench: --seconds takes a whole number from 1 to 3600, not '%s'\n",
					prog, optarg);
				return 2;
			}
			o.seconds = (double)v;
			break;
		case 't':
			if (parse_long(optarg, 1000, &v) || v > 100000000) {
				fprintf(stderr, "%s bench: --timers takes a whole number from 1000 to 100000000, "
					"not '%s'\n", prog, optarg);
				return 2;
			}
			o.timers = v;
			break;
		default:
			usage_bench(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s bench: unexpected argument '%s'\n", prog, argv[optind]);
		return 2;
	}
	return bench_run(&o, stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage_main(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage_main(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version")) {
		printf("ptimers %d.%d\n", PTIMERS_VERSION_MAJOR, PTIMERS_VERSION_MINOR);
		return 0;
	}
	if (!strcmp(cmd, "exec"))
		return cmd_exec(argc - 1, argv + 1);
	if (!strcmp(cmd, "bench"))
		return cmd_bench(argc - 1, argv + 1);
	fprintf(stderr, "%s: unknown command '%s' (try 'ptimers --help')\n", prog, cmd);
	return 2;
}
