/* SPDX-License-Identifier: MIT */
/*
 * `ptimers ls PID`, `ptimers checkpoint PID` and `ptimers ps`: another
 * process's timers, read from its memory by the outside reader
 * (src/reader.c), running, stopped, frozen or traced alike; for a process
 * on the kernel's timers, what /proc/PID/timers shows.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "engine_image.h"
#include "format.h"
#include "image.h"
#include "output.h"
#include "proctimers.h"
#include "reader.h"
#include "remote.h"
#include "sys.h"

/* ---- the timers, as ls shows them ---- */

struct row {
	int id, signo, clock, target, overrun;
	char notify[8], who[4];
	uint64_t value;
	bool have_times;
	int64_t remaining, interval; /* ns */
	char state[32];
};

static void row_of(const struct pt_saved *s, struct row *r)
{
	memset(r, 0, sizeof(*r));
	r->id = s->id;
	r->signo = s->signo;
	r->clock = s->cpu == 2 ? (int)s->cpu_clock : s->clockid;
	r->target = s->target;
	r->overrun = s->overrun;
	snprintf(r->notify, sizeof(r->notify), "%s", pt_proc_notify_name(s->notify));
	snprintf(r->who, sizeof(r->who), "%s", (s->notify & SIGEV_THREAD_ID) ? "tid" : "pid");
	r->value = (uint64_t)(uintptr_t)s->value.sival_ptr;
	r->have_times = true;
	r->remaining = s->armed ? s->remaining : 0;
	r->interval = s->armed ? s->interval : 0;
	/* "kernel": handed to a kernel timer of its ID, or carried by a
	 * worker (src/handoff.h); the kernel holds its overruns. */
	snprintf(r->state, sizeof(r->state), "%s",
		 !s->armed ? "disarmed" : s->kernel ? "armed kernel"
				      : s->signal_pending ? "armed signal-pending" : "armed");
}

/* The kernel's timers of a process, from its /proc/PID/timers text. */
static int parse_rows(const char *text, size_t len, struct row **out)
{
	struct pt_proc_timer *t = NULL;
	size_t n = 0;
	if (pt_proc_timers_parse(text, len, &t, &n) != 0)
		return -1;
	struct row *rows = malloc((n ? n : 1) * sizeof(*rows));
	if (!rows) {
		free(t);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct row *r = &rows[i];
		memset(r, 0, sizeof(*r));
		r->id = t[i].id;
		r->signo = t[i].signo;
		r->value = t[i].value;
		r->clock = t[i].clockid;
		r->target = t[i].target;
		snprintf(r->notify, sizeof(r->notify), "%s", pt_proc_notify_name(t[i].notify));
		snprintf(r->who, sizeof(r->who), "%s", (t[i].notify & SIGEV_THREAD_ID) ? "tid" : "pid");
	}
	free(t);
	*out = rows;
	return (int)n;
}

static int by_id(const void *a, const void *b)
{
	int x = ((const struct row *)a)->id, y = ((const struct row *)b)->id;
	return x < y ? -1 : x > y;
}

static void print_table(FILE *f, pid_t pid, const char *source, const struct row *rows, int n,
			bool kernel)
{
	fprintf(f, "process %d: %d timer%s (%s)\n", (int)pid, n, n == 1 ? "" : "s", source);
	if (n == 0)
		return;
	fprintf(f, "%10s  %-16s  %-16s  %-12s  %-18s  %14s  %14s  %8s  %s\n", "ID", "CLOCK", "NOTIFY",
		"SIGNAL", "VALUE", "REMAINING", "INTERVAL", "OVERRUNS", "STATE");
	for (int i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		char clock[32], notify[32], sig[24], rem[32], ival[32], ov[16];
		pt_fmt_clock(r->clock, clock, sizeof(clock));
		if (!strcmp(r->notify, "signal"))
			snprintf(notify, sizeof(notify), "signal>%s %d", r->who, r->target);
		else
			snprintf(notify, sizeof(notify), "%s", r->notify);
		if (!strcmp(r->notify, "signal"))
			pt_fmt_signal(r->signo, sig, sizeof(sig));
		else
			snprintf(sig, sizeof(sig), "-");
		if (r->have_times) {
			pt_fmt_seconds(r->remaining, rem, sizeof(rem));
			pt_fmt_seconds(r->interval, ival, sizeof(ival));
			snprintf(ov, sizeof(ov), "%d", r->overrun);
		} else {
			snprintf(rem, sizeof(rem), "n/a");
			snprintf(ival, sizeof(ival), "n/a");
			snprintf(ov, sizeof(ov), "n/a");
		}
		fprintf(f, "%10d  %-16s  %-16s  %-12s  0x%016" PRIx64 "  %14s  %14s  %8s  %s\n", r->id,
			clock, notify, sig, r->value, rem, ival, ov, r->have_times ? r->state : "n/a");
	}
	if (kernel)
		fprintf(f, "(kernel timers: /proc/%d/timers has no remaining time, interval, overruns "
			"or state; those columns say n/a)\n", (int)pid);
}

static void print_json(FILE *f, pid_t pid, const char *source, const struct row *rows, int n,
		       bool kernel)
{
	fprintf(f, "{\"pid\": %d, \"source\": ", (int)pid);
	pt_fmt_json_string(f, source);
	fprintf(f, ", \"missing\": [%s], \"timers\": [", kernel ? "\"remaining\", \"interval\", "
								  "\"overrun\", \"state\"" : "");
	for (int i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		char clock[32], sig[24];
		pt_fmt_clock(r->clock, clock, sizeof(clock));
		pt_fmt_signal(r->signo, sig, sizeof(sig));
		fprintf(f, "%s\n  {\"id\": %d, \"clock\": ", i ? "," : "", r->id);
		pt_fmt_json_string(f, clock);
		fprintf(f, ", \"clock_id\": %d, \"notify\": ", r->clock);
		pt_fmt_json_string(f, r->notify);
		fprintf(f, ", \"target\": {\"%s\": %d}, \"signal\": %d, \"signal_name\": ", r->who,
			r->target, r->signo);
		pt_fmt_json_string(f, sig);
		fprintf(f, ", \"value\": \"0x%" PRIx64 "\"", r->value);
		if (r->have_times) {
			fprintf(f, ", \"remaining\": %.9f, \"interval\": %.9f, \"overrun\": %d, \"state\": ",
				(double)r->remaining / 1e9, (double)r->interval / 1e9, r->overrun);
			pt_fmt_json_string(f, r->state);
		}
		fputc('}', f);
	}
	fprintf(f, "%s]}\n", n ? "\n" : "");
}

/* /proc/PID/timers, whole: 0, or -1 with why. */
static int read_proc(pid_t pid, char **out, size_t *len, char *why, size_t why_size)
{
	int e = pt_proc_timers_read(pid, out, len);
	if (e == -ENOENT)
		snprintf(why, why_size, "no process %d", (int)pid);
	else if (e == -EACCES || e == -EPERM)
		snprintf(why, why_size, "the kernel's ptrace access check refused to show the timers "
			 "of process %d (/proc/%d/timers)", (int)pid, (int)pid);
	else if (e)
		snprintf(why, why_size, "cannot read /proc/%d/timers: %s", (int)pid, strerror(-e));
	return e ? -1 : 0;
}

/* Kernel timers of the process's own: not the engine's (whose signal is
 * its own), nor those carrying an engine timer handed off to the kernel
 * (same ID, same signal: src/handoff.h).  How many. */
static int own_kernel_timers(pid_t pid, int engine_signo, const struct row *engine, size_t nengine)
{
	char *text = NULL, why[64];
	size_t len = 0;
	if (read_proc(pid, &text, &len, why, sizeof(why)) != 0)
		return 0;
	struct row *rows = NULL;
	int n = parse_rows(text, len, &rows), own = 0;
	for (int i = 0; i < n; i++) {
		bool handed = false;
		for (size_t j = 0; j < nengine && !handed; j++)
			handed = engine[j].id == rows[i].id && engine[j].signo == rows[i].signo;
		own += rows[i].signo != engine_signo && !handed;
	}
	free(rows);
	free(text);
	return own;
}

static int parse_pid(const char *s, pid_t *pid)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > INT_MAX)
		return -1;
	*pid = (pid_t)v;
	return 0;
}

/* A thread's process (its thread group): pid itself, or its leader. */
/* The one process ID the arguments from optind give: 0, or a usage
 * error said (2). */
static int pid_arg(const char *cmd, int argc, char **argv, pid_t *pid)
{
	if (optind >= argc)
		return pt_usage_error(cmd, "no process ID given");
	if (optind < argc - 1)
		return pt_usage_error(cmd, "one process ID at a time, not %d", argc - optind);
	if (parse_pid(argv[optind], pid) != 0)
		return pt_usage_error(cmd, "'%s' is not a process ID", argv[optind]);
	return 0;
}

/* The process of pid (a thread's ID names its process), said when they
 * differ, with what is done then. */
static pid_t as_process(const char *cmd, pid_t pid, const char *then)
{
	pid_t proc = (pid_t)pt_remote_status(pid, "Tgid", pid);
	if (proc != pid)
		fprintf(stderr, "ptimers %s: %d is a thread of process %d: %s\n", cmd, (int)pid, (int)proc,
			then);
	return proc;
}

static void usage_ls(FILE *f)
{
	fprintf(f,
		"usage: ptimers ls [--json] [--kernel] PID\n"
		"\n"
		"Show every timer of process PID: ID, clock, notification, signal, value,\n"
		"remaining time, interval, overruns and state.\n"
		"\n"
		"A process on the ptimers engine (linked with -lptimers or run under `ptimers\n"
		"exec`) is read from its memory: the values are live, and the process is\n"
		"neither asked nor slowed, whether it runs or is stopped, frozen or traced.\n"
		"For any other process, or with --kernel, the kernel's timers are read from\n"
		"/proc/PID/timers, which has no remaining time, interval, overruns or state\n"
		"(shown as n/a).  A thread's ID shows its process's timers.\n"
		"\n"
		"The kernel's ptrace access check decides who may read a process (its own\n"
		"user, or root, as for /proc/PID/mem).\n"
		"\n"
		"  --json     {\"pid\", \"source\", \"missing\": [columns], \"timers\": [{\"id\",\n"
		"             \"clock\", \"clock_id\", \"notify\", \"target\", \"signal\",\n"
		"             \"signal_name\", \"value\", \"remaining\", \"interval\", \"overrun\",\n"
		"             \"state\"}, ...]} (times in seconds)\n"
		"  --kernel   the kernel's timers even of a process on the engine\n"
		"\n"
		"Exit status: 0, 1 when the process cannot be read, 2 for bad arguments.\n");
}

static int ls_kernel(pid_t pid, bool json, const char *note)
{
	char why[512], *text = NULL;
	size_t len = 0;
	if (read_proc(pid, &text, &len, why, sizeof(why)) != 0) {
		fprintf(stderr, "ptimers ls: %s\n", why);
		return 1;
	}
	struct row *rows = NULL;
	int n = parse_rows(text, len, &rows);
	free(text);
	if (n < 0) {
		fprintf(stderr, "ptimers ls: out of memory\n");
		return 1;
	}
	qsort(rows, (size_t)n, sizeof(*rows), by_id); /* /proc lists the newest first */
	if (note)
		fprintf(stderr, "ptimers ls: %s\n", note);
	if (json)
		print_json(stdout, pid, "kernel", rows, n, true);
	else
		print_table(stdout, pid, "kernel timers, from /proc", rows, n, true);
	free(rows);
	return fflush(stdout) == 0 ? 0 : 1;
}

int cmd_ls(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "json", no_argument, NULL, 'j' },
		{ "kernel", no_argument, NULL, 'k' },
		{ 0 },
	};
	bool json = false, kernel = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage_ls(stdout);
			return 0;
		case 'V':
			return pt_print_version();
		case 'j':
			json = true;
			break;
		case 'k':
			kernel = true;
			break;
		default:
			return pt_bad_option("ls", argv);
		}
	}
	pid_t pid;
	if (pid_arg("ls", argc, argv, &pid) != 0)
		return 2;
	pid = as_process("ls", pid, "its timers are the process's");
	if (kernel)
		return ls_kernel(pid, json, NULL);
	char why[512];
	struct pt_remote r;
	if (pt_remote_open(pid, &r, why, sizeof(why)) != 0) {
		if (errno != ENOENT) {
			fprintf(stderr, "ptimers ls: %s\n", why);
			return 1;
		}
		char note[160];
		snprintf(note, sizeof(note), "process %d is not on the ptimers engine: its kernel timers, "
			 "from /proc/%d/timers", (int)pid, (int)pid);
		return ls_kernel(pid, json, note);
	}
	struct pt_saved *s = NULL;
	size_t n = 0;
	struct pt_remote_meta meta;
	if (pt_remote_timers(&r, &s, &n, &meta, why, sizeof(why)) != 0) {
		fprintf(stderr, "ptimers ls: %s\n", why);
		return 1;
	}
	struct row *rows = malloc((n ? n : 1) * sizeof(*rows));
	if (!rows) {
		free(s);
		fprintf(stderr, "ptimers ls: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		row_of(&s[i], &rows[i]);
	free(s);
	if (meta.changing)
		fprintf(stderr, "ptimers ls: %zu timer%s left out: held by a thread that stopped in the "
			"middle of changing %s\n", meta.changing, meta.changing == 1 ? "" : "s",
			meta.changing == 1 ? "it" : "them");
	int own = own_kernel_timers(pid, r.root.engine_signo, rows, n);
	if (own)
		fprintf(stderr, "ptimers ls: process %d also has %d kernel timer%s of its own, not shown "
			"(ptimers ls --kernel %d)\n", (int)pid, own, own == 1 ? "" : "s", (int)pid);
	if (json)
		print_json(stdout, pid, "engine", rows, (int)n, false);
	else
		print_table(stdout, pid, "the ptimers engine", rows, (int)n, false);
	free(rows);
	return fflush(stdout) == 0 ? 0 : 1;
}

static void usage_checkpoint(FILE *f)
{
	fprintf(f,
		"usage: ptimers checkpoint PID -o FILE\n"
		"\n"
		"Write the image of every timer of process PID, which runs on the ptimers\n"
		"engine, to FILE.  The process is read from its memory: running, stopped,\n"
		"frozen or traced, it is neither asked nor slowed.  The image is CRIU's POSIX\n"
		"timers image (`crit decode -i FILE` lists it); `ptimers restore FILE -- PROG`\n"
		"starts a program with those timers.  A regular FILE is replaced whole or not\n"
		"at all (a temporary file beside it, renamed into place; a symlink is followed\n"
		"to its file); a device, FIFO or socket is written straight through, never\n"
		"replaced; -o - writes to standard output.  A directory, a block device or a\n"
		"dangling symlink is refused.\n"
		"\n"
		"The kernel's timers of a process cannot be read from outside it (their times\n"
		"are only given to the process itself): inside, ptimer_kernel_checkpoint()\n"
		"writes the same image.\n"
		"\n"
		"  -o, --output=FILE   where the image goes (- for standard output)\n"
		"\n"
		"The kernel's ptrace access check decides who may read a process (its own\n"
		"user, or root).\n"
		"Exit status: 0, 1 when it cannot be done, 2 for bad arguments.\n");
}

/* The image in memory, as a memfd: 0 with *fd at its start, or -1. */
static int image_of(pid_t pid, int *fd_out, size_t *count, size_t *threads, char *why, size_t why_size)
{
	struct pt_remote r;
	if (pt_remote_open(pid, &r, why, why_size) != 0) {
		if (errno == ENOENT)
			snprintf(why, why_size, "process %d is not on the ptimers engine: its kernel timers "
				 "can only be checkpointed from inside it, with ptimer_kernel_checkpoint()",
				 (int)pid);
		return -1;
	}
	struct pt_saved *s = NULL;
	size_t n = 0;
	struct pt_remote_meta meta;
	if (pt_remote_timers(&r, &s, &n, &meta, why, why_size) != 0)
		return -1;
	if (meta.changing) {
		free(s);
		snprintf(why, why_size, "%zu timer%s of process %d %s held by a thread that stopped in the "
			 "middle of changing %s: let the process run a moment, then checkpoint again",
			 meta.changing, meta.changing == 1 ? "" : "s", (int)pid,
			 meta.changing == 1 ? "is" : "are", meta.changing == 1 ? "it" : "them");
		return -1;
	}
	*threads = 0;
	for (size_t i = 0; i < n; i++)
		*threads += s[i].notify == SIGEV_THREAD;
	int fd = memfd_create("ptimers-image", MFD_CLOEXEC);
	if (fd < 0) {
		free(s);
		snprintf(why, why_size, "memfd_create: %s", strerror(errno));
		return -1;
	}
	int w = pt_image_write_saved(fd, s, n, meta.id_policy, meta.next_id, why, why_size);
	free(s);
	if (w < 0 || lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return -1;
	}
	*fd_out = fd;
	*count = n;
	return 0;
}

int cmd_checkpoint(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "output", required_argument, NULL, 'o' },
		{ 0 },
	};
	const char *out = NULL;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage_checkpoint(stdout);
			return 0;
		case 'V':
			return pt_print_version();
		case 'o':
			out = optarg;
			break;
		default:
			if (optopt == 'o')
				return pt_usage_error("checkpoint", "-o needs a file");
			return pt_bad_option("checkpoint", argv);
		}
	}
	pid_t pid;
	if (pid_arg("checkpoint", argc, argv, &pid) != 0)
		return 2;
	if (!out || !*out)
		return pt_usage_error("checkpoint", "no output file: -o FILE, or -o - for standard output");
	pid = as_process("checkpoint", pid, "checkpointing the process");
	char why[512] = "";
	int fd = -1;
	size_t count = 0, threads = 0;
	if (image_of(pid, &fd, &count, &threads, why, sizeof(why)) != 0) {
		fprintf(stderr, "ptimers checkpoint: %s\n", why);
		return 1;
	}
	struct stat st;
	void *img = NULL;
	if (fstat(fd, &st) != 0 ||
	    (st.st_size > 0 && (img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0)) ==
	     MAP_FAILED)) {
		fprintf(stderr, "ptimers checkpoint: the image: %s\n", strerror(errno));
		close(fd);
		return 1;
	}
	size_t len = (size_t)st.st_size;
	/* What came is checked as a restore would check it, before it is
	 * kept anywhere. */
	struct pt_image_summary sum;
	if (pt_image_check(img, len, &sum, why, sizeof(why)) != 0) {
		fprintf(stderr, "ptimers checkpoint: the image of process %d is bad: %s\n", (int)pid, why);
		munmap(img, len);
		close(fd);
		return 1;
	}
	int rc = 0;
	if (pt_output_write(out, img, len, why, sizeof(why)) != 0) {
		fprintf(stderr, "ptimers checkpoint: %s\n", why);
		rc = 1;
	}
	munmap(img, len);
	close(fd);
	if (!rc) {
		fprintf(stderr, "ptimers checkpoint: %zu timer%s of process %d to %s%s (%zu bytes)\n",
			count, count == 1 ? "" : "s", (int)pid, pt_output_kind(out),
			strcmp(out, "-") ? out : "", len);
		if (threads)
			fprintf(stderr, "ptimers checkpoint: warning: %zu of them %s SIGEV_THREAD: a function "
				"is code, not data, so `ptimers restore` refuses the image; restore it with "
				"ptimer_restore() and a thread_notify callback\n", threads,
				threads == 1 ? "is" : "are");
	}
	return rc;
}

static void usage_ps(FILE *f)
{
	fprintf(f,
		"usage: ptimers ps [--json]\n"
		"\n"
		"List every process on the ptimers engine that this user may read (the kernel's\n"
		"ptrace access check decides), with its number of timers and its command.\n"
		"\n"
		"  --json     [{\"pid\", \"timers\", \"command\"}, ...]\n"
		"\n"
		"Exit status: 0, 1 when /proc cannot be read, 2 for bad arguments.\n");
}

static void command_of(pid_t pid, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	buf[0] = '\0';
	FILE *f = fopen(path, "re");
	if (f) {
		if (fgets(buf, (int)size, f))
			buf[strcspn(buf, "\n")] = '\0';
		fclose(f);
	}
}

int cmd_ps(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	bool json = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage_ps(stdout);
			return 0;
		case 'V':
			return pt_print_version();
		case 'j':
			json = true;
			break;
		default:
			return pt_bad_option("ps", argv);
		}
	}
	if (optind < argc)
		return pt_usage_error("ps", "unexpected argument '%s'", argv[optind]);
	pid_t *pids = NULL;
	size_t n = 0, refused = 0;
	if (pt_remote_list(&pids, &n, &refused) != 0) {
		fprintf(stderr, "ptimers ps: cannot read /proc: %s\n", strerror(errno));
		return 1;
	}
	if (json)
		printf("[");
	else
		printf("%8s  %8s  %s\n", "PID", "TIMERS", "COMMAND");
	size_t shown = 0;
	for (size_t i = 0; i < n; i++) {
		struct pt_remote r;
		char why[256], comm[64];
		uint64_t count = 0;
		if (pt_remote_open(pids[i], &r, why, sizeof(why)) != 0)
			continue; /* ended meanwhile */
		struct iovec local = { &count, sizeof(count) },
			     remote = { (void *)(uintptr_t)r.root.count_word, sizeof(count) };
		if (process_vm_readv(pids[i], &local, 1, &remote, 1, 0) != (ssize_t)sizeof(count))
			continue;
		command_of(pids[i], comm, sizeof(comm));
		if (json) {
			printf("%s\n  {\"pid\": %d, \"timers\": %llu, \"command\": ", shown ? "," : "",
			       (int)pids[i], (unsigned long long)(count & 0xffffffffu));
			pt_fmt_json_string(stdout, comm);
			printf("}");
		} else {
			printf("%8d  %8llu  %s\n", (int)pids[i], (unsigned long long)(count & 0xffffffffu),
			       comm);
		}
		shown++;
	}
	if (json)
		printf("%s]\n", shown ? "\n" : "");
	free(pids);
	if (refused && !json)
		fprintf(stderr, "ptimers ps: %zu process%s this user may not read (the kernel's ptrace "
			"access check) not looked at\n", refused, refused == 1 ? "" : "es");
	return fflush(stdout) == 0 ? 0 : 1;
}
