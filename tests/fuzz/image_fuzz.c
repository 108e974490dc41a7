/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the image decoder (src/image.c) on any bytes.  It must
 * refuse or accept without a crash, a leak, undefined behaviour, or memory
 * beyond what the input's size allows (scripts/fuzz.sh runs it with
 * -malloc_limit_mb), and what it accepts must satisfy what a restore
 * relies on.
 */
#include <stdint.h>
#include <stdlib.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pt_image_summary sum;
	char why[256];
	if (pt_image_check(data, size, &sum, why, sizeof(why)) == 0) {
		/* Accepted: at least a length and an entry per timer, IDs in
		 * order and in range. */
		if (sum.count && (sum.count * 24 > size || sum.min_id < 0 || sum.min_id > sum.max_id))
			abort();
		if (!sum.count && size != 12)
			abort(); /* no timers: only the magic and one empty record */
	} else if (!why[0]) {
		abort(); /* refused without a word */
	}
	return 0;
}
