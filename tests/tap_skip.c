/* SPDX-License-Identifier: MIT */
/*
 * Skipped cases that read as skipped.
 *
 * cmocka (1.1.5, Debian 12) reports a case that called skip() as
 * "not ok N # SKIP name", and meson's TAP parser counts a "not ok" line
 * as a failure whatever its directive: a case that skips for a reason it
 * names (a kernel without the restore-ID mode, a user whose
 * RLIMIT_SIGPENDING is spent) failed the run instead.  Every cmocka suite
 * is built with this file: before main(), stdout becomes a line-buffered
 * stream that passes every line through to descriptor 1 unchanged except
 * that one, which it writes "ok N - name # SKIP".  Nothing else changes:
 * a failing case still reads "not ok".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* stdio's own lock is held around each write already; this one is for
 * the sanitizers, which do not see that lock, and is taken around fork. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static bool watching = true; /* the current line may be the skip line */
static char line[4096];
static size_t held; /* its bytes so far */

static void out(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* stdout gone: as stdio would, drop it */
		p += w;
		n -= (size_t)w;
	}
}

/* A whole line (with its newline): rewritten if it is the skip line. */
static void line_done(const char *p, size_t n)
{
	char text[sizeof(line) + 1];
	memcpy(text, p, n);
	text[n] = '\0';
	unsigned num;
	int at = 0;
	if (sscanf(text, "not ok %u # SKIP%n", &num, &at) == 1 && at > 0) {
		const char *name = text + at + strspn(text + at, " ");
		char buf[sizeof(text) + 32];
		int k = snprintf(buf, sizeof(buf), "ok %u - %.*s # SKIP\n", num, (int)strcspn(name, "\n"), name);
		if (k > 0 && (size_t)k < sizeof(buf)) {
			out(buf, (size_t)k);
			return;
		}
	}
	out(p, n);
}

/* The current line is held back while it may still be the skip line (it
 * began "not ok", as far as it goes); any other goes on as it comes. */
static ssize_t filter_write(void *cookie, const char *p, size_t n)
{
	(void)cookie;
	pthread_mutex_lock(&mu);
	for (size_t done = 0; done < n;) {
		const char *nl = memchr(p + done, '\n', n - done);
		size_t len = nl ? (size_t)(nl - (p + done)) + 1 : n - done;
		if (!watching) {
			out(p + done, len);
		} else if (held + len > sizeof(line)) {
			out(line, held); /* too long to be the skip line */
			out(p + done, len);
			held = 0;
			watching = false;
		} else {
			memcpy(line + held, p + done, len);
			held += len;
			if (memcmp(line, "not ok", held < 6 ? held : 6) != 0) {
				out(line, held);
				held = 0;
				watching = false;
			} else if (nl) {
				line_done(line, held);
				held = 0;
			}
		}
		if (nl)
			watching = true;
		done += len;
	}
	pthread_mutex_unlock(&mu);
	return (ssize_t)n;
}

static int filter_close(void *cookie)
{
	(void)cookie;
	pthread_mutex_lock(&mu);
	if (held)
		out(line, held);
	held = 0;
	pthread_mutex_unlock(&mu);
	return 0;
}

static void lock(void)
{
	pthread_mutex_lock(&mu);
}

static void unlock(void)
{
	pthread_mutex_unlock(&mu);
}

__attribute__((constructor)) static void tap_skip_init(void)
{
	static char buf[BUFSIZ];
	FILE *f = fopencookie(NULL, "w", (cookie_io_functions_t){ .write = filter_write, .close = filter_close });
	if (!f)
		return; /* stdout as it was: a skip reads as a failure, nothing is lost */
	fflush(stdout);
	setvbuf(f, buf, _IOLBF, sizeof(buf));
	pthread_atfork(lock, unlock, unlock);
	stdout = f;
}
