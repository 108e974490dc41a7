/* SPDX-License-Identifier: MIT */
/*
 * The engine's state as a reader outside the process finds it: the
 * published layout, version PT_LAYOUT_VERSION (docs/layout.md).
 *
 * A process on the engine maps one shared anonymous page, which
 * /proc/PID/maps shows as "/dev/zero (deleted)", holding struct pt_root:
 * its magic, this layout's version, its own address, the process it
 * describes, and where the rest is.  A reader (src/reader.c, `ptimers ls`,
 * `checkpoint`, `ps`) finds the page in the maps, reads it and what it
 * points to with process_vm_readv() -- allowed by the kernel's ptrace
 * access check, as /proc/PID/mem is -- and needs nothing from the
 * process's threads: a stopped, frozen or traced process reads as well as
 * a running one, and a running one never waits for it.
 *
 *   - The timers are in the pool's chunks (a list from root->chunks), each
 *     CHUNK bytes, aligned to its size, a header then objects of
 *     root->timer_size bytes, of which the first `bump` were ever handed
 *     out; a live timer has valid set.  Memory stays a timer until its
 *     whole chunk is given back (pool.h), so a stale pointer still finds a
 *     timer, never something else.
 *   - Each timer's lock word is a sequence lock (lock.h): bit 0 held,
 *     bit 1 a write window open, the rest counts windows.  A reader that
 *     reads it with bit 1 clear, then the fields, then the same count
 *     again has a consistent copy, as the engine's own readout does.
 *   - root->count_word: timers alive (low half) and creation numbers
 *     handed out (high half).  A listing leaves out timers made after it
 *     began (their creation number, struct pt_timer's gen, is higher).
 *   - The CPU clocks a timer can run on are bases (base.h); a CPU base
 *     records its clock (the process's, or a thread's) at
 *     root->cpu_clock_off from its start.
 *   - root->cookie_at holds root->cookie when the process's own memory is
 *     where the root says: not so while CRIU restores it (the root page
 *     may be back before the rest), and the reader waits for that.
 *
 * The version changes with any change a reader would see: a timer's
 * layout (timer.h), a chunk's header, this struct.  A reader of another
 * version refuses, saying which.
 */
#ifndef PTIMERS_LAYOUT_H
#define PTIMERS_LAYOUT_H

#include <stdint.h>

#define PT_ROOT_MAGIC 0x007372656d697470ull /* "ptimers" and a NUL, as bytes in memory */
#define PT_LAYOUT_VERSION 1
#define PT_ROOT_MAP_SIZE 4096
#define PT_CHUNK_MAGIC 0x6b6e6863u          /* "chnk" */

struct pt_root {
	uint64_t magic;          /* PT_ROOT_MAGIC, written last */
	uint32_t version;        /* PT_LAYOUT_VERSION */
	uint32_t size;           /* sizeof(struct pt_root) */
	uint64_t self;           /* this root's address in the process */
	int32_t pid;             /* the process it describes */
	int32_t engine_signo;    /* the engine's own signal */
	/* the timers */
	uint64_t chunks;         /* address of the pointer to the first chunk */
	uint32_t chunk_size;     /* bytes, and alignment */
	uint32_t chunk_header;   /* bytes before the first object */
	uint32_t chunk_next_off; /* offset of the next chunk's address in a header */
	uint32_t chunk_bump_off; /* offset of the uint16_t count of objects handed out */
	uint32_t chunk_magic_off;/* offset of the uint32_t PT_CHUNK_MAGIC */
	uint32_t timer_size;     /* bytes of a timer */
	/* the ID space */
	uint64_t count_word;     /* address of the uint64_t: alive (low), made (high) */
	uint64_t id_counter;     /* address of the unsigned next ID (Linux policy) */
	uint64_t id_policy;      /* address of the int policy (0 linux, 1 dense) */
	/* the clocks */
	uint64_t base_table;     /* address of the base pointers, max_bases of them */
	uint32_t max_bases;
	uint32_t cpu_clock_off;  /* offset of a CPU base's clockid_t from the base */
	uint64_t base_shift;     /* address of int64_t[max_bases]: added to each base's clock (base.h) */
	/* the engine's private memory is in place */
	uint64_t cookie;         /* a random value, never 0 ... */
	uint64_t cookie_at;      /* ... that this address holds too */
};

#endif
