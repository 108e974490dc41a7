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
/* "ptimers X.Y.Z" on standard output, for --version: 0. */
int pt_print_version(void);
#endif
