/* SPDX-License-Identifier: MIT */
/* ptimers show: an image, entry by entry, without CRIU's crit. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "image.h"
#include "proctimers.h"
#include "remote.h"

static void usage_show(FILE *f)
{
	fprintf(f,
		"usage: ptimers show [--json] IMAGE|-\n"
		"\n"
		"Print a checkpoint image (from `ptimers checkpoint`, ptimer_checkpoint(),\n"
		"ptimer_kernel_checkpoint(), CRIU or `crit encode`) without CRIU's crit: every\n"
		"entry, and ptimers' own fields (their version, the CRC-32C, absolute\n"
		"deadlines, a signal on its way, the ID policy and the next-ID counter).  The\n"
		"image is checked as a restore checks it: a bad one is refused with exactly\n"
		"what is wrong.  IMAGE may be a pipe; - reads standard input.\n"
		"\n"
		"  --json   {\"image\", \"ptimers_fields\", \"version\", \"crc\", \"source\",\n"
		"            \"id_policy\", \"next_id\", \"count\", \"restore\", \"timers\": [...]}\n"
		"\n"
		"Exit status: 0 for an image a restore takes, 1 for one it refuses (or that\n"
		"cannot be read), 2 for bad arguments.\n");
}

static const char *source_name(int source)
{
	return source == PT_IMAGE_SOURCE_ENGINE ? "engine" : source == PT_IMAGE_SOURCE_KERNEL ? "kernel" : NULL;
}

/* What `ptimers restore` (not the library call) would refuse. */
static const char *cli_refuses(const struct pt_image *img)
{
	struct pt_image_summary sum;
	pt_image_summarize(img, &sum);
	if (sum.thread_notify)
		return "it has SIGEV_THREAD timers (a function is code, not data): `ptimers "
		       "restore` refuses it; ptimer_restore() with a thread_notify callback takes it";
	return NULL;
}

static void print_text(const char *name, const struct pt_image *img)
{
	printf("image %s: %zu timer%s, ", name, img->n, img->n == 1 ? "" : "s");
	if (!img->has_header) {
		printf("without ptimers' fields (CRIU's or crit's: no CRC; checked entry by entry)\n");
	} else {
		printf("written by ptimers (fields version %u", img->version);
		if (img->n)
			printf(", CRC-32C %#010" PRIx32 " verified", img->crc);
		else
			printf(", the empty record of an image of no timers");
		printf(")");
		if (source_name(img->source))
			printf(", the %s's timers", source_name(img->source));
		if (img->id_policy >= 0)
			printf(", ID policy %s", img->id_policy ? "dense" : "linux");
		if (img->next_id >= 0)
			printf(", next ID %" PRId64, img->next_id);
		printf("\n");
	}
	if (!img->n)
		return;
	printf("%10s  %-16s  %-16s  %-12s  %-18s  %-8s  %20s  %14s  %8s  %s\n", "ID", "CLOCK", "NOTIFY",
	       "SIGNAL", "VALUE", "ARMED", "REMAINING/DEADLINE", "INTERVAL", "OVERRUNS", "PENDING");
	for (size_t i = 0; i < img->n; i++) {
		const struct pt_image_timer *t = &img->t[i];
		char clock[32], notify[40], sig[24], when[40], ival[32];
		pt_fmt_clock(t->clockid, clock, sizeof(clock));
		if (t->notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID))
			snprintf(notify, sizeof(notify), "signal>tid %d", (int)t->tid);
		else
			snprintf(notify, sizeof(notify), "%s", pt_proc_notify_name(t->notify));
		if (t->notify == SIGEV_NONE || t->notify == SIGEV_THREAD)
			snprintf(sig, sizeof(sig), "-");
		else
			pt_fmt_signal(t->signo, sig, sizeof(sig));
		if (!t->armed) {
			snprintf(when, sizeof(when), "-");
		} else if (t->absolute) {
			char s[32];
			pt_fmt_seconds(t->deadline, s, sizeof(s));
			snprintf(when, sizeof(when), "at %s", s);
		} else {
			pt_fmt_seconds(t->remaining, when, sizeof(when));
		}
		pt_fmt_seconds(t->interval, ival, sizeof(ival));
		printf("%10d  %-16s  %-16s  %-12s  0x%016" PRIxPTR "  %-8s  %20s  %14s  %8d  %s\n", t->id,
		       clock, notify, sig, (uintptr_t)t->value.sival_ptr,
		       !t->armed ? "no" : t->absolute ? "absolute" : "relative", when, ival, t->overrun,
		       t->pending ? "yes" : "no");
	}
}

static void print_json(const char *name, const struct pt_image *img, const char *refused)
{
	printf("{\"image\": ");
	pt_fmt_json_string(stdout, name);
	printf(", \"ptimers_fields\": %s", img->has_header ? "true" : "false");
	if (img->has_header)
		printf(", \"version\": %u, \"crc\": \"%#010" PRIx32 "\"", img->version, img->crc);
	else
		printf(", \"version\": null, \"crc\": null");
	printf(", \"source\": ");
	if (source_name(img->source))
		pt_fmt_json_string(stdout, source_name(img->source));
	else
		printf("null");
	printf(", \"id_policy\": %s", img->id_policy < 0 ? "null" : img->id_policy ? "\"dense\"" : "\"linux\"");
	if (img->next_id >= 0)
		printf(", \"next_id\": %" PRId64, img->next_id);
	else
		printf(", \"next_id\": null");
	printf(", \"count\": %zu, \"restore\": ", img->n);
	pt_fmt_json_string(stdout, refused ? refused : "ok");
	printf(", \"timers\": [");
	for (size_t i = 0; i < img->n; i++) {
		const struct pt_image_timer *t = &img->t[i];
		char clock[32], sig[24];
		pt_fmt_clock(t->clockid, clock, sizeof(clock));
		pt_fmt_signal(t->signo, sig, sizeof(sig));
		printf("%s\n  {\"id\": %d, \"clock\": ", i ? "," : "", t->id);
		pt_fmt_json_string(stdout, clock);
		printf(", \"clock_id\": %d, \"notify\": ", (int)t->clockid);
		pt_fmt_json_string(stdout, pt_proc_notify_name(t->notify));
		if (t->notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID))
			printf(", \"tid\": %d", (int)t->tid);
		printf(", \"signal\": %d, \"signal_name\": ", t->signo);
		pt_fmt_json_string(stdout, sig);
		printf(", \"value\": \"0x%" PRIxPTR "\", \"armed\": %s, \"absolute\": %s",
		       (uintptr_t)t->value.sival_ptr, t->armed ? "true" : "false",
		       t->absolute ? "true" : "false");
		printf(", \"remaining_ns\": %" PRId64 ", \"deadline_ns\": ", t->remaining);
		if (t->absolute)
			printf("%" PRId64, t->deadline);
		else
			printf("null");
		printf(", \"interval_ns\": %" PRId64 ", \"overrun\": %d, \"signal_pending\": %s}",
		       t->interval, t->overrun, t->pending ? "true" : "false");
	}
	printf("%s]}\n", img->n ? "\n" : "");
}

int cmd_show(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	bool json = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage_show(stdout);
			return 0;
		case 'V':
			return pt_print_version();
		case 'j':
			json = true;
			break;
		default:
			return pt_bad_option("show", argv);
		}
	}
	if (optind >= argc)
		return pt_usage_error("show", "no image given");
	if (optind < argc - 1)
		return pt_usage_error("show", "one image at a time, not %d", argc - optind);
	const char *file = argv[optind];
	bool std_in = !strcmp(file, "-");
	const char *name = std_in ? "standard input" : file;
	int fd = std_in ? STDIN_FILENO : open(file, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		fprintf(stderr, "ptimers show: cannot read %s: %s\n", name, strerror(errno));
		return 1;
	}
	if (S_ISDIR(st.st_mode)) {
		fprintf(stderr, "ptimers show: %s is a directory, not an image\n", name);
		return 1;
	}
	struct pt_image img;
	char why[512] = "";
	int r = pt_image_load(fd, &img, why, sizeof(why));
	if (!std_in)
		close(fd);
	if (r != 0) {
		fprintf(stderr, "ptimers show: %s is refused: %s\n", name, why[0] ? why : strerror(errno));
		return 1;
	}
	const char *refused = cli_refuses(&img);
	if (json)
		print_json(name, &img, refused);
	else
		print_text(name, &img);
	if (refused && !json)
		fprintf(stderr, "ptimers show: note: %s\n", refused);
	pt_image_free(&img);
	return fflush(stdout) == 0 ? 0 : 1;
}
