/* SPDX-License-Identifier: MIT */
/* What every restore shares (restoring.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "private.h"
#include "restoring.h"
#include "sys.h"
#include "uaccess.h"

int pt_restore_refuse(const struct ptimer_restore_opts *o, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pt_refusev(o ? o->error : NULL, o ? o->error_size : 0, err, fmt, ap);
	va_end(ap);
	return -1;
}

int pt_restore_opts_take(const struct ptimer_restore_opts **o, struct ptimer_restore_opts *copy)
{
	if (!*o) {
		memset(copy, 0, sizeof(*copy));
		*o = copy;
		return 0;
	}
	struct ptimer_restore_opts given;
	size_t n = 0;
	/* Read the size first, then as much of the rest as both sides know. */
	if (pt_copy_from_user(&n, &(*o)->size, sizeof(n)) != 0) {
		errno = EFAULT;
		return -1;
	}
	if (n < offsetof(struct ptimer_restore_opts, error)) {
		errno = EINVAL;
		return -1;
	}
	memset(&given, 0, sizeof(given));
	if (pt_copy_from_user(&given, *o, n < sizeof(given) ? n : sizeof(given)) != 0) {
		errno = EFAULT;
		return -1;
	}
	*copy = given;
	*o = copy;
	return 0;
}

static bool own_thread(pid_t tid)
{
	return tid > 0 && syscall(SYS_tgkill, pt_pid, tid, 0) == 0;
}

static int map_thread(pid_t saved, pid_t *live, int id, const struct ptimer_restore_opts *o)
{
	*live = o->map_tid ? o->map_tid(o->arg, saved) : pt_gettid();
	if (!own_thread(*live))
		return pt_restore_refuse(o, ESRCH, "timer %d: thread %d %s", id, (int)saved,
					 *live ? "maps to no thread of this process" : "was refused by map_tid");
	return 0;
}

/* The clock of this process a saved one stands for: a CPU clock named
 * by a process or thread ID (the kernel's encoding) is this process's, or
 * the mapped thread's. */
static int map_clock(struct pt_image_timer *t, const struct ptimer_restore_opts *o)
{
	clockid_t c = t->clockid;
	if (c >= 0 || !CPUCLOCK_PID(c))
		return 0; /* a clock of its own, or "the calling process/thread" */
	if (!(c & CPUCLOCK_PERTHREAD_MASK)) {
		t->clockid = MAKE_PROCESS_CPUCLOCK(pt_pid, CPUCLOCK_WHICH(c));
		return 0;
	}
	pid_t live;
	if (map_thread(CPUCLOCK_PID(c), &live, t->id, o) != 0)
		return -1;
	t->clockid = MAKE_THREAD_CPUCLOCK(live, CPUCLOCK_WHICH(c));
	return 0;
}

int pt_restore_map_threads(struct pt_image *img, const struct ptimer_restore_opts *o)
{
	for (size_t i = 0; i < img->n; i++) {
		struct pt_image_timer *t = &img->t[i];
		if (map_clock(t, o) != 0)
			return -1;
		if (t->notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID) && map_thread(t->tid, &t->tid, t->id, o) != 0)
			return -1;
	}
	return 0;
}

int pt_restore_fd(int fd, const struct ptimer_restore_opts *opts, pt_restore_fn restore)
{
	struct ptimer_restore_opts copy;
	struct pt_image img;
	if (pt_restore_opts_take(&opts, &copy) != 0 ||
	    pt_image_load(fd, &img, opts->error, opts->error_size) != 0)
		return -1;
	int r = restore(&img, opts);
	int e = errno;
	pt_image_free(&img);
	errno = e;
	return r;
}
