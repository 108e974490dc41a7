/* SPDX-License-Identifier: MIT */
/*
 * The engine's timers to and from checkpoint images (ptimers.h): a
 * checkpoint is a lock-free walk of the ID space, every timer read under
 * its sequence count and every clock read once; a restore is all or
 * nothing (pt_timer_restore).  The format is the codec's (image.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "engine_image.h"
#include "ids.h"
#include "image.h"
#include "rcu.h"
#include "restoring.h"
#include "timer.h"

static struct pt_image_timer from_saved(const struct pt_saved *s)
{
	struct pt_image_timer t = {
		.id = s->id, .clockid = s->clockid, .notify = s->notify, .signo = s->signo,
		.value = s->value, .overrun = s->overrun, .interval = s->armed ? s->interval : 0,
		.remaining = s->armed ? s->remaining : 0, .absolute = s->absolute,
		.deadline = s->deadline,
		.pending = s->signal_pending,
	};
	if (s->notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID))
		t.tid = s->target;
	t.armed = s->armed;
	/* A thread's CPU clock explicitly, naming its thread (mapped at
	 * restore); the process's as it was given. */
	if (s->cpu == 2)
		t.clockid = s->cpu_clock;
	return t;
}

int ptimer_checkpoint(int fd, const struct ptimer_restore_opts *opts)
{
	struct ptimer_restore_opts copy;
	if (pt_restore_opts_take(&opts, &copy) != 0)
		return -1;
	size_t n = 0, cap = 1024;
	struct pt_image_timer *t = malloc(cap * sizeof(*t));
	if (!t)
		return pt_restore_refuse(opts, ENOMEM, "no memory for the image");
	int id = 0;
	bool more = true;
	int64_t *now = malloc(PT_MAX_BASES * sizeof(*now));
	if (!now) {
		free(t);
		return pt_restore_refuse(opts, ENOMEM, "no memory for the image");
	}
	for (unsigned b = 0; b < PT_MAX_BASES; b++)
		now[b] = INT64_MIN;
	uint32_t made = pt_ids_made(), gen; /* the timers alive when it began */
	while (more) {
		/* Short read-side sections: a checkpoint of millions of timers
		 * must not hold up the grace periods that frees wait for. */
		pt_rcu_read_lock();
		for (int k = 0; k < 256; k++) {
			struct pt_timer *x = pt_ids_next(&id);
			struct pt_saved s;
			if (!x) {
				more = false;
				break;
			}
			if (pt_timer_save(x, id, &s, now, &gen) && (int32_t)(gen - made) <= 0) {
				if (n == cap) {
					struct pt_image_timer *nt = realloc(t, 2 * cap * sizeof(*t));
					if (!nt) {
						pt_rcu_read_unlock();
						free(t);
						free(now);
						return pt_restore_refuse(opts, ENOMEM, "no memory for the image");
					}
					t = nt;
					cap *= 2;
				}
				t[n++] = from_saved(&s);
			}
			if (id == INT_MAX) {
				more = false;
				break;
			}
			id++;
		}
		pt_rcu_read_unlock();
	}
	free(now);
	int r = pt_image_write(fd, t, n, PT_IMAGE_SOURCE_ENGINE, pt_ids_get_policy(), pt_ids_counter(),
			       opts->error, opts->error_size);
	free(t);
	return r;
}

int pt_image_write_saved(int fd, const struct pt_saved *s, size_t n, int id_policy, unsigned next_id,
			 char *why, size_t why_size)
{
	struct ptimer_restore_opts o = { .size = sizeof(o), .error = why, .error_size = why_size };
	struct pt_image_timer *t = malloc((n ? n : 1) * sizeof(*t));
	if (!t)
		return pt_restore_refuse(&o, ENOMEM, "no memory for the image");
	for (size_t i = 0; i < n; i++)
		t[i] = from_saved(&s[i]);
	int r = pt_image_write(fd, t, n, PT_IMAGE_SOURCE_ENGINE, id_policy, next_id, why, why_size);
	free(t);
	return r;
}

/* The SIGEV_THREAD timers' functions, from the caller: the image has
 * only their values.  NULL when there are none. */
static int thread_functions(const struct pt_image *img, struct pt_thread_fn **out,
			    const struct ptimer_restore_opts *o)
{
	*out = NULL;
	for (size_t i = 0; i < img->n; i++) {
		const struct pt_image_timer *t = &img->t[i];
		if (t->notify != SIGEV_THREAD)
			continue;
		if (!o->thread_notify)
			return pt_restore_refuse(o, EINVAL, "timer %d is SIGEV_THREAD: its function is not in the "
						 "image (restore it with a thread_notify callback)", t->id);
		if (!*out && !(*out = calloc(img->n, sizeof(**out))))
			return pt_restore_refuse(o, ENOMEM, "no memory for %zu timers", img->n);
		struct pt_thread_fn *f = &(*out)[i];
		if (o->thread_notify(o->arg, t->id, t->value, &f->fn, &f->attr) != 0 || !f->fn)
			return pt_restore_refuse(o, EINVAL, "timer %d is SIGEV_THREAD: no function given for it",
						 t->id);
	}
	return 0;
}

int pt_engine_restore_image(struct pt_image *img, const struct ptimer_restore_opts *o)
{
	struct pt_thread_fn *fns = NULL;
	int r = pt_restore_map_threads(img, o);
	if (!r)
		r = thread_functions(img, &fns, o);
	/* The ID policy is the process's: taken from the image only while
	 * the process has no timers (it cannot change under live ones). */
	if (!r && img->id_policy >= 0 && img->id_policy != pt_ids_get_policy()) {
		if (pt_ids_set_policy(img->id_policy) != 0)
			r = pt_restore_refuse(o, EBUSY, "the image's ID policy is %s, this process's %s, and it "
					      "has timers", img->id_policy ? "dense" : "linux",
					      img->id_policy ? "linux" : "dense");
	}
	if (!r) {
		size_t bad = 0;
		int e = pt_timer_restore(img->t, fns, img->n, &bad);
		if (e) {
			const char *why = e == -EBUSY ? "its ID is in use"
					  : e == -EINVAL ? "its clock, notification or thread cannot be had here"
					  : strerror(-e);
			r = pt_restore_refuse(o, -e, "timer %d cannot be restored: %s; nothing was restored",
					      bad < img->n ? img->t[bad].id : -1, why);
		}
	}
	free(fns);
	if (r)
		return -1;
	/* Past the restored IDs, as the kernel's restore mode leaves it (or
	 * where the image says the counter was). */
	if (img->next_id >= 0)
		pt_ids_set_counter((unsigned)img->next_id);
	else if (img->n)
		pt_ids_set_counter((unsigned)img->t[img->n - 1].id + 1);
	return (int)img->n;
}

int ptimer_restore(int fd, const struct ptimer_restore_opts *opts)
{
	return pt_restore_fd(fd, opts, pt_engine_restore_image);
}
