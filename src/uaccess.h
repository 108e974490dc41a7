/* SPDX-License-Identifier: MIT */
/*
 * Reading and writing the caller's memory: every pointer a public call is
 * given goes through these, so that a bad one is EFAULT, as the kernel's
 * copy_from_user()/copy_to_user() make it.
 */
#ifndef PTIMERS_UACCESS_H
#define PTIMERS_UACCESS_H

#include <errno.h>
#include <stddef.h>
#include <string.h>

static inline int pt_copy_from_user(void *dst, const void *src, size_t n)
{
	if (!src)
		return -EFAULT;
	memcpy(dst, src, n);
	return 0;
}

static inline int pt_copy_to_user(void *dst, const void *src, size_t n)
{
	if (!dst)
		return -EFAULT;
	memcpy(dst, src, n);
	return 0;
}
#endif
