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

/*
 * A fault is turned into -EFAULT only in a thread that takes SIGSEGV and
 * SIGBUS: where either is blocked, the kernel kills the process for it
 * instead.  So each thread learns its mask once (a system call) and keeps
 * it here; a thread that blocks them copies what is on its own stack
 * plainly (it cannot fault) and anything else through the kernel
 * (process_vm_readv/writev), which says EFAULT without a signal.  The
 * hooks forget what a thread learned whenever its mask may have changed
 * (pthread_sigmask, sigprocmask, a handler); without them a thread's
 * mask is learned once (README).
 */
enum { PT_FAULTS_UNKNOWN, PT_FAULTS_TAKEN, PT_FAULTS_BLOCKED };
extern __thread unsigned char pt_fault_mode __attribute__((tls_model("initial-exec")));
int pt_uaccess_careful(void *dst, const void *src, size_t n, bool to_user);

static inline int pt_uaccess(void *dst, const void *src, size_t n, bool to_user)
{
	if (!dst || !src)
		return -EFAULT;
	if (__builtin_expect(pt_fault_mode != PT_FAULTS_TAKEN, 0))
		return pt_uaccess_careful(dst, src, n, to_user);
	return pt_uaccess_copy(dst, src, n);
}

static inline int pt_copy_from_user(void *dst, const void *src, size_t n)
{
	return pt_uaccess(dst, src, n, false);
}

static inline int pt_copy_to_user(void *dst, const void *src, size_t n)
{
	return pt_uaccess(dst, src, n, true);
}

/* The program sets the action of SIGSEGV or SIGBUS (the hooks see it):
 * the engine's handler stays in place and passes faults not its own to
 * act.  old (if not NULL) gets the program's previous action.  0 or -1
 * with errno, like sigaction(). */
int pt_fault_set_action(int sig, const struct sigaction *act, struct sigaction *old);
bool pt_fault_signal(int sig);

/* The calling thread's mask may have changed: learn it again. */
static inline void pt_fault_mask_changed(void)
{
	pt_fault_mode = PT_FAULTS_UNKNOWN;
}
#endif
