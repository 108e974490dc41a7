/* SPDX-License-Identifier: MIT */
/*
 * The image codec's direct decoder of the common entry
 * (pt_image_fast_entry, src/image.c) against protobuf-c, on the same
 * bytes: every entry protobuf-c writes must be taken directly, and every
 * set of bytes the direct decoder takes (reordered, repeated, padded,
 * mutated, truncated) must be one protobuf-c decodes to the same fields,
 * with nothing unknown.  A TAP test; the fuzz target checks the same on
 * any bytes (tests/fuzz/image_fuzz.c).
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "image.pb-c.h"
#include "image_fast_check.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A value of about `bits` bits, now and then an extreme. */
static uint64_t value(unsigned bits)
{
	switch (next() % 8) {
	case 0: return 0;
	case 1: return bits >= 64 ? UINT64_MAX : (1ull << bits) - 1;
	default: return bits >= 64 ? next() >> (next() % 64) : next() % (1ull << bits);
	}
}

static void random_entry(PtimersEntry *e, PtimersTimer *x)
{
	ptimers_entry__init(e);
	e->it_id = (uint32_t)value(32);
	e->clock_id = (uint32_t)value(32);
	e->si_signo = (uint32_t)value(7);
	e->it_sigev_notify = (uint32_t)value(3);
	e->sival_ptr = value(64);
	e->overrun = (uint32_t)value(32);
	e->isec = value(40);
	e->insec = value(30);
	e->vsec = value(40);
	e->vnsec = value(30);
	if (next() % 2) {
		e->has_notify_thread_id = 1;
		e->notify_thread_id = (int32_t)(uint32_t)value(32);
	}
	if (next() % 2) {
		ptimers_timer__init(x);
		x->has_absolute = next() % 2, x->absolute = next() % 2;
		x->has_deadline_sec = next() % 2, x->deadline_sec = value(40);
		x->has_deadline_nsec = next() % 2, x->deadline_nsec = (uint32_t)value(30);
		x->has_signal_pending = next() % 2, x->signal_pending = next() % 2;
		e->ptimers = x;
	}
}

/* A random entry as protobuf-c writes it, into buf (512 bytes, with room
 * for mutate() to add 64): its length. */
static size_t random_packed(uint8_t *buf)
{
	PtimersEntry e;
	PtimersTimer x;
	random_entry(&e, &x);
	size_t len = ptimers_entry__get_packed_size(&e);
	if (len > 512 - 64)
		abort();
	ptimers_entry__pack(&e, buf);
	return len;
}

static int failures, checks;

static void check(bool ok, const char *what, unsigned i)
{
	checks++;
	if (!ok) {
		failures++;
		if (failures < 10)
			printf("# case %u: %s\n", i, what);
	}
}

/* A mutation of buf (len bytes, room for 64 more): new length. */
static size_t mutate(uint8_t *buf, size_t len, size_t room)
{
	switch (next() % 7) {
	case 6: { /* a second ptimers part (protobuf merges repeated messages) */
		PtimersTimer x;
		ptimers_timer__init(&x);
		x.has_deadline_nsec = 1, x.deadline_nsec = (uint32_t)value(30);
		size_t n = ptimers_timer__get_packed_size(&x);
		if (len + 3 + n > room)
			return len;
		buf[len] = 0xc2, buf[len + 1] = 0x3e; /* field 1000, length-delimited */
		buf[len + 2] = (uint8_t)n;
		ptimers_timer__pack(&x, buf + len + 3);
		return len + 3 + n;
	}
	case 0: /* a flipped bit */
		if (len)
			buf[next() % len] ^= (uint8_t)(1u << (next() % 8));
		return len;
	case 1: /* cut short */
		return len ? next() % len : 0;
	case 2: { /* the first field again at the end (a repeat) */
		size_t n = len < 6 ? len : 2 + next() % 4;
		if (len + n > room)
			return len;
		memcpy(buf + len, buf, n);
		return len + n;
	}
	case 3: { /* a field of another number appended */
		if (len + 3 > room)
			return len;
		buf[len] = (uint8_t)((next() % 16) << 3 | (next() % 6));
		buf[len + 1] = (uint8_t)(next() % 128);
		buf[len + 2] = (uint8_t)next();
		return len + 3;
	}
	case 4: { /* two halves swapped: fields reordered when the cut falls between */
		if (len < 2)
			return len;
		uint8_t tmp[512];
		size_t cut = 1 + next() % (len - 1);
		memcpy(tmp, buf + cut, len - cut);
		memcpy(tmp + len - cut, buf, cut);
		memcpy(buf, tmp, len);
		return len;
	}
	default: /* a random byte */
		if (len)
			buf[next() % len] = (uint8_t)next();
		return len;
	}
}

int main(void)
{
	enum { N = 200000 };
	printf("1..2\n");
	unsigned taken = 0;
	for (unsigned i = 0; i < N; i++) {
		PtimersEntry f;
		PtimersTimer fx;
		uint8_t buf[512];
		size_t len = random_packed(buf);
		bool fast = pt_image_fast_entry(buf, len, &f, &fx);
		check(fast, "protobuf-c's own encoding not taken directly", i);
		if (fast)
			check(pt_image_fast_matches(buf, len, &f), "decoded differently", i);
	}
	printf("%s 1 - every entry protobuf-c writes is decoded directly, to the same fields "
	       "(%d checks)\n", failures ? "not ok" : "ok", checks);
	int before = failures;
	for (unsigned i = 0; i < N; i++) {
		PtimersEntry f;
		PtimersTimer fx;
		uint8_t buf[512];
		size_t len = random_packed(buf);
		for (unsigned m = 1 + next() % 3; m > 0; m--)
			len = mutate(buf, len, sizeof(buf));
		if (pt_image_fast_entry(buf, len, &f, &fx)) {
			taken++;
			check(pt_image_fast_matches(buf, len, &f), "a mutated entry taken, but not as protobuf-c has it", i);
		}
	}
	printf("%s 2 - mutated entries: what is taken directly is what protobuf-c decodes "
	       "(%u of %d taken)\n", failures > before ? "not ok" : "ok", taken, N);
	return failures ? 1 : 0;
}
