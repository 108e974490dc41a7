/* SPDX-License-Identifier: MIT */
/* Restoring an image before main (src/autorestore.c). */
#ifndef PTIMERS_AUTORESTORE_H
#define PTIMERS_AUTORESTORE_H

#include <stdbool.h>

#include "image.h"
#include "ptimers.h"

/* How this library restores a decoded image: on the engine (the drop-in,
 * engine_image.h) or as kernel timers (libptimers-restore.so,
 * kernel_image.h). */
typedef int (*pt_restore_fn)(struct pt_image *img, const struct ptimer_restore_opts *o);

/* If PTIMERS_RESTORE names an image and PTIMERS_RESTORE_MODE is this
 * library's (engine for the drop-in, prctl or walk for kernel timers):
 * read it once, restore it with restore, say so on stderr, or end the
 * process with 127. */
void pt_autorestore(bool kernel, pt_restore_fn restore);

#endif
