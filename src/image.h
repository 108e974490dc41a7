/* SPDX-License-Identifier: MIT */
/* Checkpoint images (src/image.c): checking one without restoring it. */
#ifndef PTIMERS_IMAGE_H
#define PTIMERS_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pt_image_summary {
	size_t count;        /* timers */
	bool has_header;     /* written by ptimers (else CRIU's or crit's) */
	int source;          /* 1 engine timers, 2 kernel timers, 0 unknown */
	int min_id, max_id;
	size_t threads;      /* timers naming a thread (SIGEV_THREAD_ID, a thread's CPU clock) */
	size_t thread_notify; /* SIGEV_THREAD timers */
	uint64_t signals;    /* bit s - 1 for each signal s a timer sends */
};

/* Decode and check an image in memory, exactly as a restore would, and
 * create nothing: 0, or -1 with errno and why filled in. */
int pt_image_check(const uint8_t *buf, size_t len, struct pt_image_summary *sum, char *why,
		   size_t why_size);

/* An image of these timers (ascending IDs), from a process with this ID
 * policy and next-ID counter, to fd: the number written, or -1 with
 * errno and why. */
struct pt_saved;
int pt_image_write_saved(int fd, const struct pt_saved *s, size_t n, int id_policy, unsigned next_id,
			 char *why, size_t why_size);

#endif
