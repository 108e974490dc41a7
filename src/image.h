/* SPDX-License-Identifier: MIT */
/*
 * The checkpoint image's codec (image.c): CRIU's POSIX_TIMERS image, read
 * and written with protobuf-c, the common entry read directly (any other
 * goes to protobuf-c, which decides), and nothing else.  It knows the format and
 * its checks; it never calls into the engine or the kernel's timers (the
 * engine's checkpoint and restore are engine_image.c, the kernel timers'
 * kernel_image.c), and depends on protobuf-c and the system layer only.
 *
 * Errors: -1 with errno and a one-line reason in why (why_size bytes; why
 * may be NULL).
 */
#ifndef PTIMERS_IMAGE_H
#define PTIMERS_IMAGE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* The largest image ptimers reads: 2 GiB, some ten million timers. */
#define PT_IMAGE_MAX (1ull << 31)

/* One timer, as the image has it.  Decoding fills every field; writing
 * uses remaining for CRIU's entry and, for an absolute timer, deadline for
 * ptimers' own. */
struct pt_image_timer {
	int id;
	clockid_t clockid;       /* as saved: a CPU clock names its process or thread */
	uint8_t notify, signo;
	bool armed, absolute;
	bool pending;            /* a signal was on its way */
	pid_t tid;               /* SIGEV_THREAD_ID: its thread, as saved */
	int overrun;
	union sigval value;
	int64_t remaining;       /* ns left (0: disarmed) */
	int64_t interval;        /* ns (0 when disarmed) */
	int64_t deadline;        /* ns on its clock, when absolute */
};

/* The value a timer is armed with: its deadline, or the time it had left. */
static inline int64_t pt_image_timer_value(const struct pt_image_timer *t)
{
	return t->absolute ? t->deadline : t->remaining;
}

/* One entry of the common kind decoded directly (image.c), else false:
 * then protobuf-c decodes it.  Exposed for the differential tests. */
struct PtimersEntry;
struct PtimersTimer;
bool pt_image_fast_entry(const uint8_t *p, size_t len, struct PtimersEntry *e, struct PtimersTimer *x);

#define PT_IMAGE_SOURCE_ENGINE 1
#define PT_IMAGE_SOURCE_KERNEL 2

/* An image decoded and checked: its timers in ascending ID order. */
struct pt_image {
	struct pt_image_timer *t;
	size_t n;
	size_t t_mapped;         /* t is mapped (this many bytes), else malloc'ed */
	bool has_header;         /* written by ptimers (else CRIU's or crit's) */
	unsigned version;        /* of ptimers' fields, when has_header */
	uint32_t crc;            /* CRC-32C the header gave, and found right */
	int id_policy;           /* -1: not given */
	int64_t next_id;         /* -1: not given */
	int source;              /* PT_IMAGE_SOURCE_*, 0 unknown */
};

/* Write an image of these timers (ascending IDs) to fd, in one write where
 * it can: the number written, or -1.  id_policy, next_id: the process's
 * ID policy and next-ID counter, -1 when not to be said. */
int pt_image_write(int fd, const struct pt_image_timer *t, size_t n, int source, int id_policy,
		   int64_t next_id, char *why, size_t why_size);

/* Decode and check an image in memory: 0, or -1.  On success img holds
 * it (pt_image_free); on failure nothing is held. */
int pt_image_decode(const uint8_t *buf, size_t len, struct pt_image *img, char *why, size_t why_size);

/* Read fd to its end, once (a regular file mapped, anything else read),
 * at most 2 GiB, and decode it: 0, or -1. */
int pt_image_load(int fd, struct pt_image *img, char *why, size_t why_size);

void pt_image_free(struct pt_image *img);

struct pt_image_summary {
	size_t count;        /* timers */
	bool has_header;     /* written by ptimers (else CRIU's or crit's) */
	int source;          /* PT_IMAGE_SOURCE_*, 0 unknown */
	int min_id, max_id;
	size_t threads;      /* timers naming a thread (SIGEV_THREAD_ID, a thread's CPU clock) */
	size_t thread_notify; /* SIGEV_THREAD timers */
	uint64_t signals;    /* bit s - 1 for each signal s a timer sends */
};

void pt_image_summarize(const struct pt_image *img, struct pt_image_summary *sum);

/* Decode and check an image in memory, exactly as a restore would, and
 * keep nothing: 0, or -1. */
int pt_image_check(const uint8_t *buf, size_t len, struct pt_image_summary *sum, char *why,
		   size_t why_size);
#endif
