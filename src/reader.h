/* SPDX-License-Identifier: MIT */
/*
 * Reading another process's engine from outside it (src/reader.c): its
 * timers, as a checkpoint keeps them, through process_vm_readv() and the
 * published layout (layout.h).  Nothing is asked of the process: it may
 * be running, stopped, frozen or traced.  The kernel's ptrace access
 * check decides who may read, as it does for /proc/PID/mem.
 */
#ifndef PTIMERS_READER_H
#define PTIMERS_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layout.h"
#include "timer.h"

struct pt_remote {
	pid_t pid;
	uint64_t root_addr;
	struct pt_root root;
	int nroots;             /* engines found in the process (the first is read) */
};

/* A reader's errors: -1 with errno and why (one line, no program name):
 *   ESRCH    no such process
 *   ENOENT   the process is not on the engine (no root in its maps)
 *   EACCES   the kernel's ptrace access check refused (why says which rule)
 *   EPROTO   an engine of another layout version (why says which)
 *   EAGAIN   its engine is not in place yet (CRIU is restoring it)
 *   EIO      its memory changed under the reader too often, or was bad */
int pt_remote_open(pid_t pid, struct pt_remote *r, char *why, size_t why_size);

/* What the process's engine says of itself. */
struct pt_remote_meta {
	uint64_t alive;         /* timers alive when the listing began */
	int id_policy;          /* 0 linux, 1 dense */
	unsigned next_id;       /* the Linux policy's counter */
	size_t changing;        /* timers left out: held by a thread stopped mid-change */
};

/* Every timer that was alive when the reading began and still is when
 * read (a timer made or deleted meanwhile may be left out; one whose
 * delete had returned never is), ascending IDs, consistent one by one,
 * with remaining times as of the reading.  *out is malloc'ed.  0 or -1
 * as above. */
int pt_remote_timers(struct pt_remote *r, struct pt_saved **out, size_t *n,
		     struct pt_remote_meta *meta, char *why, size_t why_size);

/* The first number of a field of /proc/PID/status ("Uid", "Tgid"), or
 * dflt when the process or the field is not there. */
long pt_remote_status(pid_t pid, const char *field, long dflt);

/* Every process on the engine the caller may read: pids (malloc'ed) and
 * their count; processes it may not read are counted in *refused. */
int pt_remote_list(pid_t **pids, size_t *n, size_t *refused);

#endif
