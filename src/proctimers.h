/* SPDX-License-Identifier: MIT */
/*
 * The /proc/PID/timers text, written and parsed in this one place: the
 * kernel's four lines per timer
 *
 *     ID: 1000000
 *     signal: 34/0000000000000001
 *     notify: signal/pid.4242       (none/..., thread/..., or .../tid.N)
 *     ClockID: 1
 *
 * which the engine's readout writes alike, adding with
 * PTIMER_READOUT_EXTENDED "remaining:", "interval:", "overrun:" and
 * "state:" lines.  The kernel's file is parsed for checkpoints of a
 * process's own kernel timers and for `ptimers ls` of a process on them.
 */
#ifndef PTIMERS_PROCTIMERS_H
#define PTIMERS_PROCTIMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

struct pt_proc_timer {
	int id;
	int signo;
	uint64_t value;          /* sigev_value, as the pointer the kernel prints */
	int notify;              /* SIGEV_SIGNAL, _NONE or _THREAD, | SIGEV_THREAD_ID for "tid"; -1 unknown */
	pid_t target;            /* the pid or tid after the dot */
	clockid_t clockid;
	/* The extended lines (written only; the kernel has none). */
	bool extended;
	struct itimerspec setting;
	int overrun;
	bool armed, signal_pending;
};

/* How the text names a notification kind: "signal", "none", "thread". */
const char *pt_proc_notify_name(int notify);

/* One timer's block to out: 0, or -1 with errno (out's). */
int pt_proc_timer_write(FILE *out, const struct pt_proc_timer *t);

/* Every timer block of text (len bytes; lines it does not know are
 * skipped) into *out, malloc'ed, *n of them, in the text's order: 0, or
 * -ENOMEM. */
int pt_proc_timers_parse(const char *text, size_t len, struct pt_proc_timer **out, size_t *n);

/* /proc/PID/timers whole (pid 0: this process's), NUL-terminated, into
 * *text (malloc'ed): 0, or -errno (ENOENT: no such process; EACCES or
 * EPERM: the kernel's ptrace access check refused).  Read in large pieces:
 * the kernel walks the timers from the start again for each read. */
int pt_proc_timers_read(pid_t pid, char **text, size_t *len);
#endif
