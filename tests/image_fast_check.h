/* SPDX-License-Identifier: MIT */
/*
 * Whether protobuf-c decodes [buf, buf + len) to the entry the codec's
 * direct decoder gave (f): decoded at all, nothing unknown, no image
 * header, every field the same.  For tests/test_image_fast.c and the fuzz
 * target.
 */
#ifndef PTIMERS_TESTS_IMAGE_FAST_CHECK_H
#define PTIMERS_TESTS_IMAGE_FAST_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.pb-c.h"

static inline bool pt_image_fast_matches(const uint8_t *buf, size_t len, const PtimersEntry *f)
{
	PtimersEntry *e = ptimers_entry__unpack(NULL, len, buf);
	if (!e)
		return false;
	const PtimersTimer *x = e->ptimers, *fx = f->ptimers;
	bool same = !e->base.n_unknown_fields && !e->image && e->it_id == f->it_id &&
		    e->clock_id == f->clock_id && e->si_signo == f->si_signo &&
		    e->it_sigev_notify == f->it_sigev_notify && e->sival_ptr == f->sival_ptr &&
		    e->overrun == f->overrun && e->isec == f->isec && e->insec == f->insec &&
		    e->vsec == f->vsec && e->vnsec == f->vnsec &&
		    e->has_notify_thread_id == f->has_notify_thread_id &&
		    (!e->has_notify_thread_id || e->notify_thread_id == f->notify_thread_id) &&
		    !x == !fx;
	if (same && x)
		same = !x->base.n_unknown_fields && x->has_absolute == fx->has_absolute &&
		       (!x->has_absolute || !x->absolute == !fx->absolute) &&
		       x->has_deadline_sec == fx->has_deadline_sec &&
		       (!x->has_deadline_sec || x->deadline_sec == fx->deadline_sec) &&
		       x->has_deadline_nsec == fx->has_deadline_nsec &&
		       (!x->has_deadline_nsec || x->deadline_nsec == fx->deadline_nsec) &&
		       x->has_signal_pending == fx->has_signal_pending &&
		       (!x->has_signal_pending || !x->signal_pending == !fx->signal_pending);
	ptimers_entry__free_unpacked(e, NULL);
	return same;
}
#endif
