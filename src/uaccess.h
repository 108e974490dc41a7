/* SPDX-License-Identifier: MIT */
/*
 * Reading and writing the caller's memory.  Every pointer a public call
 * is given goes through these, so that a bad one (NULL, unmapped, or an
 * output in read-only memory) is EFAULT, as the kernel's copy_from_user()
 * and copy_to_user() make it, never a crash.
 *
 * The copy itself is plain (uaccess.S: its instructions must lie between
 * two known labels, which C cannot promise); a fault inside it is turned
 * into -EFAULT by the engine's SIGSEGV/SIGBUS handler (uaccess.c), which
 * passes every other fault on to the program's own handler.  The handler
 * is put in place on first use.
 */
#ifndef PTIMERS_UACCESS_H
#define PTIMERS_UACCESS_H

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

int pt_uaccess_copy(void *dst, const void *src, size_t n);

extern int pt_fault_ready;
void pt_fault_init(void);

static inline int pt_uaccess(void *dst, const void *src, size_t n)
{
	if (!dst || !src)
		return -EFAULT;
	if (__builtin_expect(!__atomic_load_n(&pt_fault_ready, __ATOMIC_ACQUIRE), 0))
		pt_fault_init();
	return pt_uaccess_copy(dst, src, n);
}

static inline int pt_copy_from_user(void *dst, const void *src, size_t n)
{
	return pt_uaccess(dst, src, n);
}

static inline int pt_copy_to_user(void *dst, const void *src, size_t n)
{
	return pt_uaccess(dst, src, n);
}

/* The program sets the action of SIGSEGV or SIGBUS (the hooks see it):
 * the engine's handler stays in place and passes faults not its own to
 * act.  old (if not NULL) gets the program's previous action.  0 or -1
 * with errno, like sigaction(). */
int pt_fault_set_action(int sig, const struct sigaction *act, struct sigaction *old);
bool pt_fault_signal(int sig);
#endif
