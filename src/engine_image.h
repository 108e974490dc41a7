/* SPDX-License-Identifier: MIT */
/* The engine's timers to and from images (engine_image.c). */
#ifndef PTIMERS_ENGINE_IMAGE_H
#define PTIMERS_ENGINE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "ptimers.h"

/* Restore a decoded image on the engine, as ptimer_restore() does (o:
 * taken already, see restoring.h): the number restored, or -1 with errno
 * and o's error.  The image's threads and clocks are mapped in place. */
int pt_engine_restore_image(struct pt_image *img, const struct ptimer_restore_opts *o);

/* An image of these timers (ascending IDs, as the outside reader saw
 * them), from a process with this ID policy and next-ID counter, to fd:
 * the number written, or -1 with errno and why. */
struct pt_saved;
int pt_image_write_saved(int fd, const struct pt_saved *s, size_t n, int id_policy, unsigned next_id,
			 char *why, size_t why_size);
#endif
