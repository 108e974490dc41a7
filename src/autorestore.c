/* SPDX-License-Identifier: MIT */
/*
 * Restoring before main: `ptimers restore FILE -- PROG` starts PROG with
 * a preloaded library whose constructor restores the image, so that the
 * timers are in place when PROG's main runs.
 *
 *   PTIMERS_RESTORE=FILE              the image
 *   PTIMERS_RESTORE_MODE=engine       on the engine (the drop-in does it)
 *                        prctl|walk   as kernel timers (libptimers-restore.so):
 *                                     through PR_TIMER_CREATE_RESTORE_IDS
 *                                     where the kernel has it, or the walk
 *   PTIMERS_RESTORE_WALK_LIMIT=S      cancel a walk estimated at more than S s
 *   PTIMERS_RESTORE_HOLD=1            leave the image's signals blocked in the
 *                                     main thread: PROG unblocks them once its
 *                                     handlers are in place
 *
 * Every signal is blocked while the timers are made; a timer that expires
 * at once (an absolute deadline already past) has its signal delivered
 * when the restore ends, before main, unless held.
 *
 * What was restored, and which thread of the image became which thread
 * here, is said on stderr; a restore that cannot be done is said there
 * too and the process ends with status 127 before PROG's main, having
 * created nothing.  The variables are removed from the environment
 * afterwards, so that PROG's own children do not restore again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autorestore.h"
#include "ptimers.h"
#include "sys.h"

#define MAX_SHOWN 16

static struct {
	const char *file;
	double walk_limit;    /* seconds, or < 0 */
	int64_t walk_started; /* ns */
	int64_t last_said;
	struct { pid_t saved, live; } map[MAX_SHOWN];
	int nmap, more;
} ar;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		(void)!pt_sys_write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* Every thread the image names becomes the thread that restores (the
 * program's main thread, the only one there is before main). */
static pid_t map_to_main(void *arg, pid_t saved)
{
	(void)arg;
	pid_t live = pt_gettid();
	for (int i = 0; i < ar.nmap; i++)
		if (ar.map[i].saved == saved)
			return live;
	if (ar.nmap < MAX_SHOWN)
		ar.map[ar.nmap++] = (typeof(ar.map[0])){ saved, live };
	else
		ar.more++;
	return live;
}

static int walk_progress(void *arg, long done, long total, double seconds_left)
{
	(void)arg;
	int64_t now = pt_clock_ns(CLOCK_MONOTONIC);
	if (done == 0) {
		ar.walk_started = ar.last_said = now;
		say("ptimers restore: the walk needs %ld timer_create calls, about %.1f s%s\n", total,
		    seconds_left, total > (long)1 << 30 ? " (it goes round past INT_MAX)" : "");
		if (ar.walk_limit >= 0 && seconds_left > ar.walk_limit) {
			say("ptimers restore: that is more than --walk-limit=%g s: not started\n",
			    ar.walk_limit);
			return 1;
		}
		return 0;
	}
	if (done == total) {
		say("ptimers restore: the walk took %.2f s (%ld calls)\n",
		    (double)(now - ar.walk_started) / 1e9, done);
		return 0;
	}
	if (now - ar.last_said >= 1000000000) {
		ar.last_said = now;
		say("ptimers restore: walk %ld of %ld calls (%.0f%%), about %.0f s left\n", done, total,
		    100.0 * (double)done / (double)total, seconds_left);
	}
	return 0;
}

static void unset(void)
{
	unsetenv("PTIMERS_RESTORE");
	unsetenv("PTIMERS_RESTORE_FD");
	unsetenv("PTIMERS_RESTORE_MODE");
	unsetenv("PTIMERS_RESTORE_WALK_LIMIT");
	unsetenv("PTIMERS_RESTORE_HOLD");
}

/* Take name out of LD_PRELOAD: the program's children run without it. */
static void unpreload(const char *name)
{
	const char *old = getenv("LD_PRELOAD");
	if (!old)
		return;
	char *copy = strdup(old), *out = calloc(1, strlen(old) + 1), *save = NULL;
	if (!copy || !out) {
		free(copy);
		free(out);
		return;
	}
	for (char *w = strtok_r(copy, ": ", &save); w; w = strtok_r(NULL, ": ", &save)) {
		const char *base = strrchr(w, '/');
		if (!strcmp(base ? base + 1 : w, name))
			continue;
		if (*out)
			strcat(out, ":");
		strcat(out, w);
	}
	if (*out)
		setenv("LD_PRELOAD", out, 1);
	else
		unsetenv("LD_PRELOAD");
	free(copy);
	free(out);
}

void pt_autorestore(bool kernel, pt_restore_fn restore)
{
	const char *file = getenv("PTIMERS_RESTORE");
	if (!file || !*file)
		return;
	const char *mode = getenv("PTIMERS_RESTORE_MODE");
	if (!mode || !*mode)
		mode = "engine";
	bool on_engine = !strcmp(mode, "engine"), walk = !strcmp(mode, "walk");
	if (!on_engine && !walk && strcmp(mode, "prctl")) {
		say("ptimers restore: PTIMERS_RESTORE_MODE=%s: expected engine, prctl or walk\n", mode);
		_exit(127);
	}
	if (on_engine == kernel)
		return; /* the other library's to do */
	ar.file = file;
	ar.walk_limit = -1;
	const char *lim = getenv("PTIMERS_RESTORE_WALK_LIMIT");
	if (lim && *lim) {
		char *end;
		ar.walk_limit = strtod(lim, &end);
		if (*end || ar.walk_limit < 0) {
			say("ptimers restore: PTIMERS_RESTORE_WALK_LIMIT=%s: expected seconds\n", lim);
			_exit(127);
		}
	}
	/* PTIMERS_RESTORE_FD: the image in a descriptor left open for this
	 * (`ptimers restore` read a pipe into one); file then only names it. */
	int fd = -1;
	const char *fd_env = getenv("PTIMERS_RESTORE_FD");
	if (fd_env && *fd_env) {
		char *end;
		long v = strtol(fd_env, &end, 10);
		if (*end || v < 0 || v > INT_MAX || fcntl((int)v, F_GETFD) < 0) {
			say("ptimers restore: PTIMERS_RESTORE_FD=%s: not an open descriptor\n", fd_env);
			_exit(127);
		}
		fd = (int)v;
	} else {
		fd = open(file, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0) {
		say("ptimers restore: cannot open %s: %s\n", file, strerror(errno));
		_exit(127);
	}
	const char *hold_env = getenv("PTIMERS_RESTORE_HOLD");
	bool hold = hold_env && !strcmp(hold_env, "1");
	sigset_t all, old;
	sigfillset(&all);
	pt_sys_sigmask(SIG_BLOCK, &all, &old);
	char why[256] = "";
	struct ptimer_restore_opts o = {
		.size = sizeof(o), .flags = walk ? PTIMER_RESTORE_WALK : 0, .map_tid = map_to_main,
		.progress = walk_progress, .error = why, .error_size = sizeof(why),
	};
	int64_t t0 = pt_clock_ns(CLOCK_MONOTONIC);
	struct pt_image img;
	int n = pt_image_load(fd, &img, why, sizeof(why));
	pt_sys_close(fd);
	uint64_t held = 0;
	if (n == 0) {
		struct pt_image_summary sum;
		pt_image_summarize(&img, &sum);
		held = hold ? sum.signals : 0;
		n = restore(&img, &o);
		int e = errno;
		pt_image_free(&img);
		errno = e;
	}
	int e = errno;
	double ms = (double)(pt_clock_ns(CLOCK_MONOTONIC) - t0) / 1e6;
	if (n < 0) {
		say("ptimers restore: cannot restore %s: %s\n", file, why[0] ? why : strerror(e));
		_exit(127);
	}
	for (int sig = 1; sig <= 64; sig++)
		if (held & (1ull << (sig - 1)))
			sigaddset(&old, sig);
	if (held)
		say("ptimers restore: the image's signals are blocked: the program unblocks them\n");
	say("ptimers restore: %d timer%s from %s %s in %.3f ms\n", n, n == 1 ? "" : "s", file,
	    !kernel ? "on the engine" : ar.walk_started ? "as kernel timers, by the walk"
							: "as kernel timers, through PR_TIMER_CREATE_RESTORE_IDS",
	    ms);
	for (int i = 0; i < ar.nmap; i++)
		say("ptimers restore: thread %d of the image is thread %d (the main thread) here\n",
		    (int)ar.map[i].saved, (int)ar.map[i].live);
	if (ar.more)
		say("ptimers restore: and %d more threads of the image, all the main thread here\n",
		    ar.more);
	unset();
	if (kernel)
		unpreload("libptimers-restore.so");
	pt_sys_sigmask(SIG_SETMASK, &old, NULL);
}
