/* SPDX-License-Identifier: MIT */
/* Can the drop-in enter a program (tools/enterable.c)? */
#ifndef PTIMERS_ENTERABLE_H
#define PTIMERS_ENTERABLE_H

#include <stddef.h>

/* 0 when the drop-in can be loaded into PROG (or that cannot be told
 * before exec, which then says what is wrong); -1 with why filled in
 * (one line, no program name) when it cannot. */
int pt_program_enterable(const char *prog, char *why, size_t why_size);

#endif
