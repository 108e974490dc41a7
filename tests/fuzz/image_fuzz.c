/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the image decoder (src/image.c) on any bytes.  It must
 * refuse or accept without a crash, a leak, undefined behaviour, or memory
 * beyond what the input's size allows (scripts/fuzz.sh runs it with
 * -malloc_limit_mb), and what it accepts must satisfy what a restore
 * relies on; and the bytes taken as one entry by the direct decoder must
 * be what protobuf-c decodes.
 */
#include <stdint.h>
#include <stdlib.h>

#include "image.h"
#include "../image_fast_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The bytes as one entry: what the direct decoder takes, protobuf-c
	 * must decode to the same fields. */
	PtimersEntry f;
	PtimersTimer fx;
	if (pt_image_fast_entry(data, size, &f, &fx) && !pt_image_fast_matches(data, size, &f))
		abort();
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
