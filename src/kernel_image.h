/* SPDX-License-Identifier: MIT */
/* The process's kernel timers to and from images (kernel_image.c). */
#ifndef PTIMERS_KERNEL_IMAGE_H
#define PTIMERS_KERNEL_IMAGE_H

#include "image.h"
#include "ptimers.h"

/* Restore a decoded image as kernel timers, as ptimer_kernel_restore()
 * does (o: taken already, see restoring.h): the number restored, or -1
 * with errno and o's error.  The image's threads and clocks are mapped in
 * place. */
int pt_kernel_restore_image(struct pt_image *img, const struct ptimer_restore_opts *o);
#endif
