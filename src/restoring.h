/* SPDX-License-Identifier: MIT */
/*
 * What every restore shares (engine_image.c, kernel_image.c): the
 * caller's options, read at the public edge, and an image's threads and
 * clocks mapped to this process's.
 */
#ifndef PTIMERS_RESTORING_H
#define PTIMERS_RESTORING_H

#include "image.h"
#include "ptimers.h"

/* How an image is restored: on the engine (engine_image.h) or as kernel
 * timers (kernel_image.h). */
typedef int (*pt_restore_fn)(struct pt_image *img, const struct ptimer_restore_opts *o);

/* The public restores' common part: opts taken, the image read from fd
 * once (pt_image_load), restored by restore, freed; restore's result
 * (errno kept), or -1. */
int pt_restore_fd(int fd, const struct ptimer_restore_opts *opts, pt_restore_fn restore);

/* The caller's options (NULL: none), copied as far as both sides know
 * them: *o then points at copy.  0, or -1 with errno (EFAULT, EINVAL). */
int pt_restore_opts_take(const struct ptimer_restore_opts **o, struct ptimer_restore_opts *copy);

/* The reason into o's error buffer, errno = err; -1. */
int pt_restore_refuse(const struct ptimer_restore_opts *o, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Every CPU clock the image names by process or thread, and every
 * SIGEV_THREAD_ID thread, made this process's (threads through
 * o->map_tid, by default the calling thread): 0, or -1 (ESRCH). */
int pt_restore_map_threads(struct pt_image *img, const struct ptimer_restore_opts *o);
#endif
