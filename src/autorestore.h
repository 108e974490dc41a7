/* SPDX-License-Identifier: MIT */
/* Restoring an image before main (src/autorestore.c). */
#ifndef PTIMERS_AUTORESTORE_H
#define PTIMERS_AUTORESTORE_H

#include <stdbool.h>

#include "image.h"
#include "ptimers.h"
#include "restoring.h" /* pt_restore_fn: the drop-in's on the engine, libptimers-restore.so's as kernel timers */

/* If PTIMERS_RESTORE names an image and PTIMERS_RESTORE_MODE is this
 * library's (engine for the drop-in, prctl or walk for kernel timers):
 * read it once, restore it with restore, say so on stderr, or end the
 * process with 127. */
void pt_autorestore(bool kernel, pt_restore_fn restore);

#endif
