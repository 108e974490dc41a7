/* SPDX-License-Identifier: MIT */
/*
 * `ptimers ls PID` and `ptimers checkpoint PID`: another process's timers,
 * read through its engine's control socket (src/control.c) without
 * stopping it, or, for a process on the kernel's timers, what
 * /proc/PID/timers shows.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "remote.h"
#include "sys.h"

int ptimer__control_connect(pid_t pid, char *why, size_t why_size);

#define REPLY_TIMEOUT 30 /* seconds without a byte from the process */

/* ---- talking to a process ---- */

struct reply {
	char *buf;
	size_t len, cap;
};

/* Send one request; read the whole answer.  0, or -1 with *why. */
/* At least want bytes free in r (and one more for a closing NUL),
 * doubling from first: 0, or -1 out of memory. */
static int reply_room(struct reply *r, size_t want, size_t first)
{
	if (r->cap - r->len >= want)
		return 0;
	size_t cap = r->cap ? r->cap * 2 : first;
	char *b = realloc(r->buf, cap + 1);
	if (!b)
		return -1;
	r->buf = b;
	r->cap = cap;
	return 0;
}

static int request(pid_t pid, const char *req, struct reply *r, char *why, size_t why_size)
{
	int fd = ptimer__control_connect(pid, why, why_size);
	if (fd < 0)
		return -1;
	struct timeval tv = { REPLY_TIMEOUT, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* A refusal can come, and the socket close, before the request is
	 * written: the answer is read all the same. */
	(void)send(fd, req, strlen(req), MSG_NOSIGNAL);
	r->len = 0;
	for (;;) {
		if (reply_room(r, 65536, 1 << 20) != 0) {
			snprintf(why, why_size, "out of memory reading the answer");
			close(fd);
			return -1;
		}
		ssize_t n = recv(fd, r->buf + r->len, r->cap - r->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		/* A refusal closes the socket without reading the request:
		 * the kernel then reports a reset after the answer. */
		if (n < 0 && errno == ECONNRESET && r->len > 0)
			break;
		if (n < 0) {
			snprintf(why, why_size, "reading the answer: %s",
				 errno == EAGAIN ? "no answer within 30 s" : strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		r->len += (size_t)n;
	}
	close(fd);
	r->buf[r->len] = '\0';
	return 0;
}

/* The answer's first line: "OK <what> <pid>" and the rest, or an error. */
static const char *answer_body(const struct reply *r, const char *what, pid_t pid, size_t *body_len,
			       char *why, size_t why_size)
{
	char *nl = memchr(r->buf, '\n', r->len);
	if (!nl) {
		snprintf(why, why_size, "process %d gave no answer", (int)pid);
		return NULL;
	}
	*nl = '\0';
	char want[64];
	snprintf(want, sizeof(want), "OK %s %d", what, (int)pid);
	if (strcmp(r->buf, want) != 0) {
		snprintf(why, why_size, "%s", !strncmp(r->buf, "ERR ", 4) ? r->buf + 4 : r->buf);
		return NULL;
	}
	*body_len = r->len - (size_t)(nl + 1 - r->buf);
	return nl + 1;
}

/* ---- the timers, as ls shows them ---- */

struct row {
	int id, signo, clock, target, overrun;
	char notify[8], who[4];
	uint64_t value;
	bool have_times;
	char remaining[32], interval[32], state[32];
};

/* Parse the /proc/PID/timers layout, with the engine's extended lines
 * where they are. */
static int parse_rows(const char *text, struct row **out)
{
	size_t n = 0, cap = 64;
	struct row *rows = malloc(cap * sizeof(*rows)), *cur = NULL;
	if (!rows)
		return -1;
	const char *p = text;
	while (*p) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char line[256];
		snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) ? len : sizeof(line) - 1), p);
		p += len + (e ? 1 : 0);
		int v;
		if (sscanf(line, "ID: %d", &v) == 1) {
			if (n == cap) {
				struct row *r = realloc(rows, 2 * cap * sizeof(*rows));
				if (!r) {
					free(rows);
					return -1;
				}
				rows = r;
				cap *= 2;
			}
			cur = &rows[n++];
			memset(cur, 0, sizeof(*cur));
			cur->id = v;
		} else if (!cur) {
			continue;
		} else if (!strncmp(line, "signal: ", 8)) {
			sscanf(line + 8, "%d/%" SCNx64, &cur->signo, &cur->value);
		} else if (!strncmp(line, "notify: ", 8)) {
			sscanf(line + 8, "%7[a-z?]/%3[a-z].%d", cur->notify, cur->who, &cur->target);
		} else if (sscanf(line, "ClockID: %d", &v) == 1) {
			cur->clock = v;
		} else if (!strncmp(line, "remaining: ", 11)) {
			cur->have_times = true;
			snprintf(cur->remaining, sizeof(cur->remaining), "%.31s", line + 11);
		} else if (!strncmp(line, "interval: ", 10)) {
			snprintf(cur->interval, sizeof(cur->interval), "%.31s", line + 10);
		} else if (sscanf(line, "overrun: %d", &v) == 1) {
			cur->overrun = v;
		} else if (!strncmp(line, "state: ", 7)) {
			snprintf(cur->state, sizeof(cur->state), "%.31s", line + 7);
		}
	}
	*out = rows;
	return (int)n;
}

static int by_id(const void *a, const void *b)
{
	int x = ((const struct row *)a)->id, y = ((const struct row *)b)->id;
	return x < y ? -1 : x > y;
}

static void clock_name(int c, char *buf, size_t size)
{
	static const char *names[] = { "REALTIME", "MONOTONIC", "PROCESS_CPUTIME", "THREAD_CPUTIME",
				       "MONOTONIC_RAW", "REALTIME_COARSE", "MONOTONIC_COARSE",
				       "BOOTTIME", "REALTIME_ALARM", "BOOTTIME_ALARM", "SGI_CYCLE",
				       "TAI" };
	if (c >= 0 && c < (int)(sizeof(names) / sizeof(names[0])))
		snprintf(buf, size, "%s", names[c]);
	else if (c < 0 && (c & 3) != 3)
		snprintf(buf, size, "CPU:%s%d", (c & 4) ? "tid" : "pid", (int)(~c >> 3));
	else
		snprintf(buf, size, "%d", c);
}

static void signal_name(int sig, char *buf, size_t size)
{
	const char *abbrev = sig > 0 && sig < SIGRTMIN ? sigabbrev_np(sig) : NULL;
	if (abbrev)
		snprintf(buf, size, "SIG%s", abbrev);
	else if (sig >= SIGRTMIN && sig <= SIGRTMAX)
		snprintf(buf, size, sig == SIGRTMIN ? "SIGRTMIN" : "SIGRTMIN+%d", sig - SIGRTMIN);
	else
		snprintf(buf, size, "%d", sig);
}

/* Seconds as the readout gives them ("12.000500000"), shorter. */
static void short_time(const char *s, char *buf, size_t size)
{
	double v = strtod(s, NULL);
	if (v == 0)
		snprintf(buf, size, "0");
	else
		snprintf(buf, size, "%.6f", v);
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
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
		clock_name(r->clock, clock, sizeof(clock));
		if (!strcmp(r->notify, "signal"))
			snprintf(notify, sizeof(notify), "signal>%s %d", r->who, r->target);
		else
			snprintf(notify, sizeof(notify), "%s", r->notify);
		if (!strcmp(r->notify, "signal"))
			signal_name(r->signo, sig, sizeof(sig));
		else
			snprintf(sig, sizeof(sig), "-");
		if (r->have_times) {
			short_time(r->remaining, rem, sizeof(rem));
			short_time(r->interval, ival, sizeof(ival));
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
	json_string(f, source);
	fprintf(f, ", \"missing\": [%s], \"timers\": [", kernel ? "\"remaining\", \"interval\", "
								  "\"overrun\", \"state\"" : "");
	for (int i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		char clock[32], sig[24];
		clock_name(r->clock, clock, sizeof(clock));
		signal_name(r->signo, sig, sizeof(sig));
		fprintf(f, "%s\n  {\"id\": %d, \"clock\": ", i ? "," : "", r->id);
		json_string(f, clock);
		fprintf(f, ", \"clock_id\": %d, \"notify\": ", r->clock);
		json_string(f, r->notify);
		fprintf(f, ", \"target\": {\"%s\": %d}, \"signal\": %d, \"signal_name\": ", r->who,
			r->target, r->signo);
		json_string(f, sig);
		fprintf(f, ", \"value\": \"0x%" PRIx64 "\"", r->value);
		if (r->have_times) {
			fprintf(f, ", \"remaining\": %s, \"interval\": %s, \"overrun\": %d, \"state\": ",
				r->remaining, r->interval, r->overrun);
			json_string(f, r->state);
		}
		fputc('}', f);
	}
	fprintf(f, "%s]}\n", n ? "\n" : "");
}

/* /proc/PID/timers: the kernel's timers of a process not on the engine. */
static int read_proc(pid_t pid, struct reply *r, char *why, size_t why_size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/timers", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			snprintf(why, why_size, "no process %d", (int)pid);
		else if (e == EACCES || e == EPERM)
			snprintf(why, why_size, "permission denied: only its user or root may read the "
				 "timers of process %d", (int)pid);
		else
			snprintf(why, why_size, "cannot read %s: %s", path, strerror(e));
		return -1;
	}
	r->len = 0;
	for (;;) {
		if (reply_room(r, 4096, 65536) != 0) {
			close(fd);
			snprintf(why, why_size, "out of memory");
			return -1;
		}
		ssize_t n = read(fd, r->buf + r->len, r->cap - r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			snprintf(why, why_size, "cannot read %s: %s", path,
				 e == EACCES || e == EPERM ? "permission denied (only its user or root may)"
							   : strerror(e));
			return -1;
		}
		if (n == 0)
			break;
		r->len += (size_t)n;
	}
	close(fd);
	r->buf[r->len] = '\0';
	return 0;
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

static void usage_ls(FILE *f)
{
	fprintf(f,
		"usage: ptimers ls [--json] [--kernel] PID\n"
		"\n"
		"Show every timer of process PID: ID, clock, notification, signal, value,\n"
		"remaining time, interval, overruns and state.\n"
		"\n"
		"A process on the ptimers engine (linked with -lptimers or run under `ptimers\n"
		"exec`) is asked through its control socket: the values are live, read without\n"
		"stopping it or slowing its timer calls.  For any other process, or with\n"
		"--kernel, the kernel's timers are read from /proc/PID/timers, which has no\n"
		"remaining time, interval, overruns or state (shown as n/a).\n"
		"\n"
		"Only PID's own user or root may read it.\n"
		"\n"
		"  --json     {\"pid\", \"source\", \"missing\": [columns], \"timers\": [{\"id\",\n"
		"             \"clock\", \"clock_id\", \"notify\", \"target\", \"signal\",\n"
		"             \"signal_name\", \"value\", \"remaining\", \"interval\", \"overrun\",\n"
		"             \"state\"}, ...]} (times in seconds)\n"
		"  --kernel   the kernel's timers even of a process on the engine\n"
		"\n"
		"Exit status: 0, 1 when the process cannot be read, 2 for bad arguments.\n");
}

int cmd_ls(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "kernel", no_argument, NULL, 'k' },
		{ 0 },
	};
	bool json = false, kernel = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage_ls(stdout);
			return 0;
		case 'j':
			json = true;
			break;
		case 'k':
			kernel = true;
			break;
		default:
			usage_ls(stderr);
			return 2;
		}
	}
	pid_t pid;
	if (optind != argc - 1 || parse_pid(argv[optind], &pid) != 0) {
		fprintf(stderr, "ptimers ls: expected one process ID%s%s\n", optind < argc ? ", not " : "",
			optind < argc ? argv[optind] : "");
		return 2;
	}
	char why[512] = "";
	struct reply r = { 0 };
	const char *source = "the ptimers engine";
	const char *body = NULL;
	size_t body_len = 0;
	if (!kernel) {
		if (request(pid, "LIST\n", &r, why, sizeof(why)) == 0) {
			body = answer_body(&r, "LIST", pid, &body_len, why, sizeof(why));
			if (!body) {
				fprintf(stderr, "ptimers ls: process %d: %s\n", (int)pid, why);
				free(r.buf);
				return 1;
			}
		} else if (errno != ECONNREFUSED) {
			fprintf(stderr, "ptimers ls: process %d: %s\n", (int)pid, why);
			free(r.buf);
			return 1;
		}
	}
	if (!body) {
		/* No engine listens there: the kernel's view. */
		kernel = true;
		source = "kernel timers, from /proc";
		if (read_proc(pid, &r, why, sizeof(why)) != 0) {
			fprintf(stderr, "ptimers ls: %s\n", why);
			free(r.buf);
			return 1;
		}
		body = r.buf;
	}
	struct row *rows = NULL;
	int n = parse_rows(body, &rows);
	if (n < 0) {
		fprintf(stderr, "ptimers ls: out of memory\n");
		free(r.buf);
		return 1;
	}
	qsort(rows, (size_t)n, sizeof(*rows), by_id); /* /proc lists the newest first */
	if (json)
		print_json(stdout, pid, kernel ? "kernel" : "engine", rows, n, kernel);
	else
		print_table(stdout, pid, source, rows, n, kernel);
	free(rows);
	free(r.buf);
	return fflush(stdout) == 0 ? 0 : 1;
}

static void usage_checkpoint(FILE *f)
{
	fprintf(f,
		"usage: ptimers checkpoint PID -o FILE\n"
		"\n"
		"Write the image of every timer of process PID, which runs on the ptimers\n"
		"engine, to FILE, without stopping the process.  The image is CRIU's POSIX\n"
		"timers image (`crit decode -i FILE` lists it); `ptimers restore FILE -- PROG`\n"
		"starts a program with those timers.  FILE is written whole or not at all\n"
		"(through a temporary file renamed into place); -o - writes to standard output.\n"
		"\n"
		"The kernel's timers of a process cannot be read from outside it (their times\n"
		"are only given to the process itself): inside, ptimer_kernel_checkpoint()\n"
		"writes the same image.\n"
		"\n"
		"Only PID's own user or root may checkpoint it.\n"
		"Exit status: 0, 1 when it cannot be done, 2 for bad arguments.\n");
}

int cmd_checkpoint(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "output", required_argument, NULL, 'o' },
		{ 0 },
	};
	const char *out = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage_checkpoint(stdout);
			return 0;
		case 'o':
			out = optarg;
			break;
		default:
			usage_checkpoint(stderr);
			return 2;
		}
	}
	pid_t pid;
	if (optind != argc - 1 || parse_pid(argv[optind], &pid) != 0) {
		fprintf(stderr, "ptimers checkpoint: expected one process ID\n");
		return 2;
	}
	if (!out || !*out) {
		fprintf(stderr, "ptimers checkpoint: no output file (-o FILE, or -o - for standard "
			"output)\n");
		return 2;
	}
	char why[512] = "";
	struct reply r = { 0 };
	if (request(pid, "IMAGE\n", &r, why, sizeof(why)) != 0) {
		if (errno == ECONNREFUSED)
			fprintf(stderr, "ptimers checkpoint: process %d is not on the ptimers engine (no "
				"control socket): its kernel timers can only be checkpointed from inside "
				"it, with ptimer_kernel_checkpoint()\n", (int)pid);
		else
			fprintf(stderr, "ptimers checkpoint: process %d: %s\n", (int)pid, why);
		free(r.buf);
		return 1;
	}
	size_t len;
	const char *body = answer_body(&r, "IMAGE", pid, &len, why, sizeof(why));
	if (!body) {
		fprintf(stderr, "ptimers checkpoint: process %d: %s\n", (int)pid, why);
		free(r.buf);
		return 1;
	}
	/* What came is checked as a restore would check it, before it is
	 * kept anywhere. */
	struct pt_image_summary sum;
	if (pt_image_check((const uint8_t *)body, len, &sum, why, sizeof(why)) != 0) {
		fprintf(stderr, "ptimers checkpoint: process %d sent a bad image: %s\n", (int)pid, why);
		free(r.buf);
		return 1;
	}
	int rc = 0;
	if (!strcmp(out, "-")) {
		if (pt_sys_write_all(STDOUT_FILENO, body, len) != 0) {
			fprintf(stderr, "ptimers checkpoint: writing standard output: %s\n", strerror(errno));
			rc = 1;
		}
	} else {
		char *tmp;
		if (asprintf(&tmp, "%s.tmp.%d", out, (int)getpid()) < 0) {
			free(r.buf);
			return 1;
		}
		int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || pt_sys_write_all(fd, body, len) != 0 || fsync(fd) != 0 || close(fd) != 0 ||
		    rename(tmp, out) != 0) {
			fprintf(stderr, "ptimers checkpoint: cannot write %s: %s\n", out, strerror(errno));
			if (fd >= 0)
				unlink(tmp);
			rc = 1;
		}
		free(tmp);
	}
	if (!rc)
		fprintf(stderr, "ptimers checkpoint: %zu timer%s of process %d%s%s (%zu bytes)\n",
			sum.count, sum.count == 1 ? "" : "s", (int)pid, strcmp(out, "-") ? " to " : "",
			strcmp(out, "-") ? out : "", len);
	free(r.buf);
	return rc;
}
