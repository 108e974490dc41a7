/* SPDX-License-Identifier: MIT */
/* Restoring an image before main (src/autorestore.c). */
#ifndef PTIMERS_AUTORESTORE_H
#define PTIMERS_AUTORESTORE_H

#include <stdbool.h>

/* If PTIMERS_RESTORE names an image and PTIMERS_RESTORE_MODE is this
 * library's (engine for the drop-in, prctl or walk for kernel timers):
 * restore it, say so on stderr, or end the process with 127. */
void pt_autorestore(bool kernel);

#endif
