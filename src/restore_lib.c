/* SPDX-License-Identifier: MIT */
/*
 * libptimers-restore.so: preloaded by `ptimers restore --kernel|--walk`,
 * it recreates an image's timers as kernel timers with their IDs before
 * the program's main, then stays out of the way: it exports nothing, so
 * the program's timer_* calls go to libc and the kernel as always.
 */
#include "autorestore.h"
#include "kernel_image.h"

__attribute__((constructor(200))) static void restore_init(void)
{
	pt_autorestore(true, pt_kernel_restore_image);
}
