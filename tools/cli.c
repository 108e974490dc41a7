/* SPDX-License-Identifier: MIT */
/* ptimers: run programs on user-space POSIX timers, and measure them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "enterable.h"
#include "format.h"
#include "image.h"
#include "ptimers.h"
#include "remote.h"
#include "sys.h"

#ifndef PTIMERS_PRELOAD_INSTALLED
#define PTIMERS_PRELOAD_INSTALLED "/usr/local/lib/libptimers-preload.so"
#endif
#define PRELOAD_NAME "libptimers-preload.so"
#define RESTORE_NAME "libptimers-restore.so"

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
		"  exec        run a program with libc's timer_* calls on the engine\n"
		"  ls          show the timers of a process (running or stopped)\n"
		"  ps          list the processes on the engine, with their timer counts\n"
		"  checkpoint  write the timers of a process on the engine to an image\n"
		"  restore     start a program with an image's timers already in place\n"
		"  show        print an image, entry by entry, checked as a restore checks it\n"
		"  bench       time the engine against the kernel's timers, in one run\n"
		"\n"
		"'ptimers COMMAND --help' describes each command.\n");
}

static void usage_exec(FILE *f)
{
	fprintf(f,
		"usage: ptimers exec [--ids=linux|dense] [--max-timers=N] [--stats] [--require-engine]\n"
		"                    [--] PROGRAM [ARGS...]\n"
		"\n"
		"Run PROGRAM with the drop-in (%s) preloaded: its timer_create,\n"
		"timer_settime, timer_gettime, timer_getoverrun, timer_delete and\n"
		"prctl(PR_TIMER_CREATE_RESTORE_IDS) calls go to the engine.  Programs that\n"
		"issue the timer system calls themselves still reach the kernel.  To re-arm\n"
		"periodic timers at delivery, as the kernel does, the drop-in also watches\n"
		"where PROGRAM takes its signals (sigaction, signal, sigwaitinfo,\n"
		"sigtimedwait, sigwait, signalfd reads); other signals pass untouched.  Its\n"
		"exec functions carry the timer ID counter into the new program, as the\n"
		"kernel keeps it across exec.\n"
		"\n"
		"  --ids=POLICY      linux (default: next ID after the last, wrapping at\n"
		"                    INT_MAX) or dense (lowest free ID)\n"
		"  --max-timers=N    refuse timer_create with EAGAIN beyond N timers\n"
		"  --stats           at exit, each process prints to stderr how many timers\n"
		"                    it made on the engine and what they sent\n"
		"  --require-engine  refuse (127) a program the drop-in cannot enter, instead\n"
		"                    of running it on the kernel's timers with a warning\n"
		"\n"
		"The drop-in cannot enter a statically linked program, one for another\n"
		"machine (32-bit), or one the kernel runs in secure mode (set-user-ID or\n"
		"set-group-ID to another user, or with file capabilities), where LD_PRELOAD\n"
		"is ignored; a script is as its interpreter.  Such a program is checked for\n"
		"before it runs: it runs on the kernel's timers, and ptimers says so.\n"
		"\n"
		"A periodic signal timer of 100 ms or less whose signals the program takes\n"
		"is handed to a kernel timer of its own ID, which sends them at the\n"
		"kernel's cost; a SIGEV_THREAD one is carried by a worker of its own\n"
		"(PTIMERS_HANDOFF=N: at most N, default 64; 0: none).\n"
		"\n"
		"The library is looked up in $PTIMERS_PRELOAD, next to this program's build\n"
		"directory, in the library directory beside this program's (%s),\n"
		"then at %s.\n"
		"Exit status: PROGRAM's, or 127 when it cannot be run.\n",
		PRELOAD_NAME, PTIMERS_LIBDIR_FROM_BIN, PTIMERS_PRELOAD_INSTALLED);
}

static void usage_bench(FILE *f)
{
	fprintf(f,
		"usage: ptimers bench [--json] [--only=GROUPS] [--iterations=N] [--rounds=R]\n"
		"                     [--seconds=S] [--timers=N] [--criu=PATH]\n"
		"\n"
		"Measure the engine against the kernel's timers (or, where the kernel cannot\n"
		"take part, a bare signal or the target), all in one run.  Groups:\n"
		"\n"
		"  outside     a process read and dumped from outside: ls of a stopped process\n"
		"              with 10,000 timers (against the kernel's /proc/PID/timers), and\n"
		"              the seed's two timers through criu dump and criu restore (the\n"
		"              kernel's through CRIU's prctl; needs root and CRIU 4.1 or newer,\n"
		"              else those rows are left out, saying why)\n"
		"  calls       ns per create+delete, arm+disarm, settime, gettime (best of R\n"
		"              rounds of N calls, engine and kernel taking turns)\n"
		"  contention  operations/s of 8 threads creating, arming, reading and\n"
		"              deleting timers for S seconds, a readout running beside them\n"
		"  latency     lateness of a 1 ms periodic timer's signals, p50 and p99, alone\n"
		"              and with 10,000 other timers armed, and the process's CPU\n"
		"              (10 short turns each, taken in turn, pooled; handed to the\n"
		"              kernel as in the drop-in, and sent by the engine's thread,\n"
		"              PTIMERS_HANDOFF=0, 4 turns), and the kernel's p50 and p99\n"
		"              over half its turns against the other half: the noise each\n"
		"              carries in that run\n"
		"  wakeups     CPU of a 10 kHz SIGEV_THREAD timer (against glibc's and\n"
		"              against the floor, a kernel timer signalling a thread of its\n"
		"              own; carried as in the drop-in, three turns each, and with\n"
		"              PTIMERS_HANDOFF=0); the engine's wakeups for 1,000 timers with\n"
		"              1 ms of leeway (against none), for a million armed timers none\n"
		"              of which is due, and for 95,000-100,000 one-shots due over 200\n"
		"              ms (CPU against the kernel's; the last one's lateness against\n"
		"              the target and against bare signals sent at the deadlines);\n"
		"              and the CPU other threads spend an expiry of a profiler's\n"
		"              timer (10 ms of a spinning thread's CPU, its signal to that\n"
		"              thread; handed off as in the drop-in, and relayed,\n"
		"              PTIMERS_HANDOFF=0; and 10 ms of the process's CPU, its signal\n"
		"              to the process, handed off)\n"
		"  expiry      a million timers due within one second: how late the last ones\n"
		"              are, and the CPU per expiry and the rate signals arrive against\n"
		"              bare signals sent and taken (6 turns each, alternating; the\n"
		"              receiving thread pinned to one CPU), and bare signals' even\n"
		"              turns against their odd ones: the noise\n"
		"  restore     checkpoint and restore: the seed's two sparse IDs (engine, the\n"
		"              kernel's prctl, the kernel's walk), a million random sparse\n"
		"              IDs (engine; the kernel as many as RLIMIT_SIGPENDING allows,\n"
		"              extrapolated; the walk estimated), settime beside an ls reader\n"
		"              (against alone, and against beside a process that only spins)\n"
		"  slice       time-slice extension: begin+end on this kernel (against the\n"
		"              2 ns target); the enabled path and a contended spinlock under\n"
		"              emulated preemption come from build/bench/slice-emulated\n"
		"  memory      bytes per timer at N timers (default ten million), and what is\n"
		"              left once they are deleted\n"
		"\n"
		"  --only=GROUPS    comma-separated, e.g. --only=calls,latency (default: all)\n"
		"  --iterations=N   calls per round (default 200000)\n"
		"  --rounds=R       rounds per call, best of (default 5)\n"
		"  --seconds=S      length of the contention runs, each side (default 3)\n"
		"  --timers=N       timers for the memory group (default 10000000)\n"
		"  --criu=PATH      the criu to run (default: PATH's when 4.1 or newer, else the\n"
		"                   one the CRIU suite built, build/tests/criu/)\n"
		"  --json           {\"reference_costs\": {...}, \"rows\": [{\"name\", \"unit\", \"engine\",\n"
		"                   \"reference\", \"reference_value\", \"ratio\", \"note\"}, ...]}\n"
		"\n"
		"ratio: how many times better the engine is than its reference (above 1: the\n"
		"engine wins).  Every run first prints this machine's reference costs (a\n"
		"system call, a vDSO clock read, a signal sent and taken): ratios against the\n"
		"kernel move with them.  All groups take about five minutes; memory needs\n"
		"about 2 GB.  PTIMERS_SPIN=N: the engine spins at most N%% of a CPU (default 2).\n");
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

/* One of the preloaded libraries: $env; in the build tree, one directory
 * above tools/; installed, in the library directory as it lies from this
 * program's (a staged or moved install finds its own); last, where the
 * build said it would be installed. */
static const char *find_lib(const char *name, const char *env_name, char *buf, size_t len)
{
	const char *env = getenv(env_name);
	if (env && *env)
		return env;
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(buf, len, "%s/../%s", self, name);
			if (access(buf, R_OK) == 0)
				return buf;
			snprintf(buf, len, "%s/%s/%s", self, PTIMERS_LIBDIR_FROM_BIN, name);
			if (access(buf, R_OK) == 0)
				return buf;
		}
	}
	snprintf(buf, len, "%s", PTIMERS_PRELOAD_INSTALLED);
	char *slash = strrchr(buf, '/');
	if (slash)
		snprintf(slash + 1, len - (size_t)(slash + 1 - buf), "%s", name);
	return buf;
}

static const char *find_preload(char *buf, size_t len)
{
	return find_lib(PRELOAD_NAME, "PTIMERS_PRELOAD", buf, len);
}

/* Put lib in front of LD_PRELOAD and run the program: only returns (127)
 * when it cannot. */
static int exec_with(const char *cmd, const char *lib, char **argv)
{
	if (access(lib, R_OK) != 0) {
		fprintf(stderr, "%s %s: cannot read %s: %s\n", prog, cmd, lib, strerror(errno));
		return 127;
	}
	const char *old = getenv("LD_PRELOAD");
	char *preload;
	if (asprintf(&preload, "%s%s%s", lib, old && *old ? ":" : "", old && *old ? old : "") < 0) {
		fprintf(stderr, "%s %s: out of memory\n", prog, cmd);
		return 127;
	}
	setenv("LD_PRELOAD", preload, 1);
	free(preload);
	execvp(argv[0], argv);
	fprintf(stderr, "%s %s: cannot run %s: %s\n", prog, cmd, argv[0], strerror(errno));
	return 127;
}

static int cmd_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "ids", required_argument, NULL, 'i' },
		{ "max-timers", required_argument, NULL, 'm' },
		{ "stats", no_argument, NULL, 's' },
		{ "require-engine", no_argument, NULL, 'r' },
		{ 0 },
	};
	bool require = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage_exec(stdout);
			return 0;
		case 'V':
			return pt_print_version();
		case 'r':
			require = true;
			break;
		case 'i':
			if (strcmp(optarg, "linux") && strcmp(optarg, "dense"))
				return pt_usage_error("exec", "--ids takes linux or dense, not '%s'", optarg);
			setenv("PTIMERS_IDS", optarg, 1);
			break;
		case 'm': {
			long v;
			if (parse_long(optarg, 0, &v))
				return pt_usage_error("exec", "--max-timers takes a whole number >= 0, not '%s'",
						   optarg);
			setenv("PTIMERS_MAX_TIMERS", optarg, 1);
			break;
		}
		case 's':
			setenv("PTIMERS_STATS", "1", 1);
			break;
		default:
			return pt_bad_option("exec", argv);
		}
	}
	if (optind >= argc)
		return pt_usage_error("exec", "no program given");
	char why[512];
	if (pt_program_enterable(argv[optind], why, sizeof(why)) != 0) {
		if (require) {
			fprintf(stderr, "%s exec: %s cannot run on the engine: %s\n", prog, argv[optind], why);
			return 127;
		}
		fprintf(stderr, "%s exec: warning: %s runs on the kernel's timers, not the engine's: %s\n",
			prog, argv[optind], why);
	}
	char buf[PATH_MAX + 64];
	return exec_with("exec", find_preload(buf, sizeof(buf)), &argv[optind]);
}

static void usage_restore(FILE *f)
{
	fprintf(f,
		"usage: ptimers restore [--kernel | --walk [--walk-limit=S]] [--hold-signals]\n"
		"                       FILE|- [--] PROGRAM [ARGS...]\n"
		"\n"
		"Start PROGRAM with the timers of the image FILE (from `ptimers checkpoint`,\n"
		"ptimer_checkpoint(), ptimer_kernel_checkpoint(), CRIU, or `crit encode`) in\n"
		"place before its main: the same IDs, clocks, notification, remaining times\n"
		"(absolute timers: their deadlines), intervals and overrun counts.  FILE may\n"
		"be a pipe (<(...), /dev/stdin); - reads the image from standard input.\n"
		"\n"
		"By default PROGRAM runs on the engine through the drop-in (as under `ptimers\n"
		"exec`), and its restored timers are engine timers.\n"
		"\n"
		"  --kernel        kernel timers instead, with the same IDs, made through\n"
		"                  prctl(PR_TIMER_CREATE_RESTORE_IDS) (the walk where the kernel\n"
		"                  lacks it); PROGRAM's timer_* calls go to the kernel as always.\n"
		"                  The kernel cannot take an overrun count: those start at 0.\n"
		"  --walk          kernel timers, by the create/delete walk even where the\n"
		"                  kernel has the prctl: create and delete timers until the\n"
		"                  kernel's ID counter reaches each wanted ID.  Says how many\n"
		"                  calls and how long before it starts, then its progress.\n"
		"  --walk-limit=S  do not start a walk estimated at more than S seconds\n"
		"  --hold-signals  start PROGRAM with the image's signals blocked (it unblocks\n"
		"                  them, or waits for them, once ready).  Without it, a timer\n"
		"                  that expires before PROGRAM has set its handlers (an absolute\n"
		"                  deadline already past, say) meets the signal's default\n"
		"                  action, as any signal sent then would.\n"
		"\n"
		"Threads: a timer aimed at a thread (SIGEV_THREAD_ID, a thread's CPU clock) is\n"
		"aimed at PROGRAM's main thread, and each such mapping is said on stderr.\n"
		"SIGEV_THREAD timers cannot be restored this way (their function is code, not\n"
		"data): use ptimer_restore() with a thread_notify callback.\n"
		"\n"
		"Exit status: PROGRAM's; 127 when the image cannot be restored (nothing is\n"
		"then created and PROGRAM's main never runs), PROGRAM cannot be run, or it is\n"
		"a program the preloaded library cannot enter (statically linked, for another\n"
		"machine, or run by the kernel in secure mode: see `ptimers exec --help`);\n"
		"2 for bad arguments.\n");
}

/* All of a stream, at most PT_IMAGE_MAX bytes, into a memfd at its start
 * that an exec keeps open: its descriptor, or -1 with why. */
static int stream_to_memory(int fd, char *why, size_t why_size)
{
	int mem = memfd_create("ptimers-image", 0);
	if (mem < 0) {
		snprintf(why, why_size, "memfd_create: %s", strerror(errno));
		return -1;
	}
	char buf[65536];
	unsigned long long total = 0;
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(why, why_size, "%s", strerror(errno));
			break;
		}
		if (r == 0) {
			if (lseek(mem, 0, SEEK_SET) == 0)
				return mem;
			snprintf(why, why_size, "%s", strerror(errno));
			break;
		}
		total += (unsigned long long)r;
		if (total > PT_IMAGE_MAX) {
			snprintf(why, why_size, "longer than ptimers reads (%llu bytes)",
				 (unsigned long long)PT_IMAGE_MAX);
			break;
		}
		if (pt_sys_write_all(mem, buf, (size_t)r) != 0) {
			snprintf(why, why_size, "%s", strerror(errno));
			break;
		}
	}
	close(mem);
	return -1;
}

static int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "kernel", no_argument, NULL, 'k' },
		{ "walk", no_argument, NULL, 'w' },
		{ "walk-limit", required_argument, NULL, 'l' },
		{ "hold-signals", no_argument, NULL, 's' },
		{ 0 },
	};
	const char *mode = "engine", *limit = NULL;
	bool hold = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage_restore(stdout);
			return 0;
		case 'V':
			return pt_print_version();
		case 'k':
			mode = strcmp(mode, "walk") ? "prctl" : mode;
			break;
		case 'w':
			mode = "walk";
			break;
		case 's':
			hold = true;
			break;
		case 'l': {
			char *end;
			double v = strtod(optarg, &end);
			if (*end || end == optarg || v < 0)
				return pt_usage_error("restore", "--walk-limit takes seconds, not '%s'", optarg);
			limit = optarg;
			break;
		}
		default:
			return pt_bad_option("restore", argv);
		}
	}
	if (limit && strcmp(mode, "walk"))
		return pt_usage_error("restore", "--walk-limit bounds a walk: it needs --walk");
	if (optind >= argc)
		return pt_usage_error("restore", "no image given");
	const char *file = argv[optind++];
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	if (optind >= argc)
		return pt_usage_error("restore", "no program given");
	/* A program the preloaded library cannot enter would run with no
	 * timer restored: refused before anything starts. */
	char nowhy[512];
	if (pt_program_enterable(argv[optind], nowhy, sizeof(nowhy)) != 0) {
		fprintf(stderr, "%s restore: %s cannot be restored into: %s\n", prog, argv[optind], nowhy);
		return 127;
	}
	/* A file is read once, by the program's own restore before its main:
	 * a bad one ends it there with 127, having run nothing.  A stream (a
	 * pipe, -, <(...)) cannot be read twice: it is read here, with the
	 * same bound, into memory the program gets as a descriptor. */
	bool stdin_image = !strcmp(file, "-");
	int fd = stdin_image ? fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3) : open(file, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		fprintf(stderr, "%s restore: cannot read %s: %s\n", prog,
			stdin_image ? "standard input" : file, strerror(errno));
		return 127;
	}
	if (S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s restore: %s is a directory, not an image\n", prog, file);
		return 127;
	}
	char path[PATH_MAX];
	if (S_ISREG(st.st_mode) && !stdin_image) {
		close(fd);
		if (!realpath(file, path)) {
			fprintf(stderr, "%s restore: cannot read %s: %s\n", prog, file, strerror(errno));
			return 127;
		}
		setenv("PTIMERS_RESTORE", path, 1);
	} else {
		char why[256];
		int mem = stream_to_memory(fd, why, sizeof(why));
		close(fd);
		if (mem < 0) {
			fprintf(stderr, "%s restore: cannot read %s: %s\n", prog,
				stdin_image ? "standard input" : file, why);
			return 127;
		}
		char num[16];
		snprintf(num, sizeof(num), "%d", mem);
		setenv("PTIMERS_RESTORE_FD", num, 1);
		setenv("PTIMERS_RESTORE", stdin_image ? "standard input" : file, 1);
	}
	setenv("PTIMERS_RESTORE_MODE", mode, 1);
	if (limit)
		setenv("PTIMERS_RESTORE_WALK_LIMIT", limit, 1);
	if (hold)
		setenv("PTIMERS_RESTORE_HOLD", "1", 1);
	char lib[PATH_MAX + 64];
	if (!strcmp(mode, "engine"))
		return exec_with("restore", find_preload(lib, sizeof(lib)), &argv[optind]);
	return exec_with("restore", find_lib(RESTORE_NAME, "PTIMERS_RESTORE_LIB", lib, sizeof(lib)),
			 &argv[optind]);
}

static const struct bench_group bench_groups[] = {
	/* First: its processes are forked from the bench, small while it is. */
	{ "outside", bench_outside },
	{ "calls", bench_calls },
	{ "contention", bench_contention },
	{ "latency", bench_latency },
	{ "wakeups", bench_wakeups },
	{ "expiry", bench_expiry },
	{ "restore", bench_restore },
	{ "slice", bench_slice },
	/* Last: ten million timers leave a 1.2 GB process behind, whose
	 * forked children (the restore group's) fault several times slower. */
	{ "memory", bench_memory },
};
static const size_t bench_ngroups = sizeof(bench_groups) / sizeof(bench_groups[0]);

static int cmd_bench(int argc, char **argv)
{
	return bench_main("ptimers bench", argc, argv, bench_groups, bench_ngroups, usage_bench);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "%s: no command given (try '%s --help')\n", prog, prog);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage_main(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V"))
		return pt_print_version();
	if (!strcmp(cmd, "exec"))
		return cmd_exec(argc - 1, argv + 1);
	if (!strcmp(cmd, "bench"))
		return cmd_bench(argc - 1, argv + 1);
	if (!strcmp(cmd, "ls"))
		return cmd_ls(argc - 1, argv + 1);
	if (!strcmp(cmd, "checkpoint"))
		return cmd_checkpoint(argc - 1, argv + 1);
	if (!strcmp(cmd, "ps"))
		return cmd_ps(argc - 1, argv + 1);
	if (!strcmp(cmd, "restore"))
		return cmd_restore(argc - 1, argv + 1);
	if (!strcmp(cmd, "show"))
		return cmd_show(argc - 1, argv + 1);
	fprintf(stderr, "%s: unknown command '%s' (try 'ptimers --help')\n", prog, cmd);
	return 2;
}
