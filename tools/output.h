/* SPDX-License-Identifier: MIT */
/*
 * Where a command writes what it made (an image): "-" is standard output;
 * a character device (/dev/null, a terminal), a FIFO or a socket is
 * written straight through, never replaced; a symlink is followed to
 * what it names; a regular file, or a new name, is replaced atomically
 * (a temporary file beside it, fsync, rename, fsync of the directory),
 * keeping an existing file's mode.  A directory, a block device, or a
 * dangling symlink is refused.
 */
#ifndef PTIMERS_OUTPUT_H
#define PTIMERS_OUTPUT_H
#include <stddef.h>

/* 0, or -1 with a one-line reason in why (errno set).  Nothing is left
 * behind on failure: no temporary file, no half-written file. */
int pt_output_write(const char *path, const void *buf, size_t len, char *why, size_t why_size);

/* What path names now, in a few words, for messages ("standard output",
 * "the FIFO /tmp/f", "/tmp/img"). */
const char *pt_output_kind(const char *path);
#endif
