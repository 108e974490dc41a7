/* SPDX-License-Identifier: MIT */
/* How the commands print timers (format.h). */
#define _GNU_SOURCE
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "format.h"

void pt_fmt_clock(int c, char *buf, size_t size)
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

void pt_fmt_signal(int sig, char *buf, size_t size)
{
	const char *abbrev = sig > 0 && sig < SIGRTMIN ? sigabbrev_np(sig) : NULL;
	if (abbrev)
		snprintf(buf, size, "SIG%s", abbrev);
	else if (sig >= SIGRTMIN && sig <= SIGRTMAX)
		snprintf(buf, size, sig == SIGRTMIN ? "SIGRTMIN" : "SIGRTMIN+%d", sig - SIGRTMIN);
	else
		snprintf(buf, size, "%d", sig);
}

/* Seconds, shorter than the readout's nine places. */
void pt_fmt_seconds(int64_t ns, char *buf, size_t size)
{
	if (ns == 0)
		snprintf(buf, size, "0");
	else
		snprintf(buf, size, "%.6f", (double)ns / 1e9);
}

void pt_fmt_json_string(FILE *f, const char *s)
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

int pt_print_version(void)
{
	printf("ptimers %s\n", PTIMERS_VERSION_STRING);
	return 0;
}

int pt_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "ptimers %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (try 'ptimers %s --help')\n", cmd);
	va_end(ap);
	return 2;
}

int pt_bad_option(const char *cmd, char **argv)
{
	const char *arg = argv[optind - 1];
	if (!strncmp(arg, "--", 2)) {
		if (!optopt)
			return pt_usage_error(cmd, "unknown option '%s'", arg);
		return pt_usage_error(cmd, strchr(arg, '=') ? "option '%s' takes no value"
							     : "option '%s' needs a value", arg);
	}
	return pt_usage_error(cmd, "unknown option '%s', or one without its value", arg);
}
