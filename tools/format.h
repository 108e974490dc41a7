/* SPDX-License-Identifier: MIT */
/* How the commands (ls, show) print timers: one form for each thing. */
#ifndef PTIMERS_FORMAT_H
#define PTIMERS_FORMAT_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A clockid: its CLOCK_ name without the prefix, CPU:pidN / CPU:tidN for
 * a CPU clock, else the number. */
void pt_fmt_clock(int c, char *buf, size_t size);
/* SIGALRM, SIGRTMIN+2, or the number. */
void pt_fmt_signal(int sig, char *buf, size_t size);
/* Seconds with six places, "0" for none. */
void pt_fmt_seconds(int64_t ns, char *buf, size_t size);
/* s as a JSON string, quoted and escaped. */
void pt_fmt_json_string(FILE *f, const char *s);
/* A usage error of command cmd ("exec"): one line on standard error,
 * "ptimers CMD: MESSAGE (try 'ptimers CMD --help')".  Returns 2. */
int pt_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* What getopt_long (opterr 0) did not take, said as pt_usage_error: 2. */
int pt_bad_option(const char *cmd, char **argv);

/* "ptimers X.Y.Z" on standard output, for --version: 0. */
int pt_print_version(void);
#endif
