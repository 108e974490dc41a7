/* SPDX-License-Identifier: MIT */
/*
 * Checkpoint images (ptimers.h): CRIU's POSIX_TIMERS image, read and
 * written with protobuf-c (src/image.proto), for the engine's timers and
 * for the process's kernel timers.
 *
 * Layout: u32 IMG_COMMON, u32 POSIX_TIMERS, then records of a u32 length
 * and one entry, all little-endian.  ptimers' own fields sit at field
 * numbers CRIU does not use.  The first entry carries the image's header:
 * a version, the number of entries, and a CRC-32C over the first entry
 * encoded without its header followed by every later record as written
 * (lengths included), so that truncation, corruption and reordering are
 * all caught.  Images without a header (CRIU's, crit's) carry no checksum
 * and are taken as CRIU would take them.
 *
 * Reading never trusts the image: the whole input is read first with its
 * size bounded (MAX_IMAGE), each record's length is checked against what
 * is left and against MAX_RECORD before it is decoded, and decoding uses
 * a fixed arena per record, so memory follows the image's size; every
 * entry is checked (IDs, clocks, notification, signals, times, threads,
 * duplicates) before anything is created, and the restore itself is all
 * or nothing (pt_timer_restore, or the kernel timers made and unmade).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <protobuf-c/protobuf-c.h>

#include "base.h"
#include "cpu.h"
#include "ids.h"
#include "image.h"
#include "image.pb-c.h"
#include "private.h"
#include "ptimers.h"
#include "rcu.h"
#include "sys.h"
#include "timer.h"
#include "uaccess.h"

#define IMG_COMMON 0x54564319u
#define IMG_POSIX_TIMERS 0x52603957u
#define IMAGE_VERSION 1
#define MAX_RECORD 1024u              /* an entry is well under 200 bytes */
#define MIN_RECORD 20u                /* ten required fields, two bytes each at least */
#define MAX_IMAGE (1ull << 31)        /* 2 GiB: some ten million timers */
#define ARENA 2048                    /* decoding a valid record needs well under 1 KiB */
#define SOURCE_ENGINE 1
#define SOURCE_KERNEL 2

/* ---- refusing ---- */

static int refuse(const struct ptimer_restore_opts *o, int err, const char *fmt, ...)
{
	if (o && o->error && o->error_size) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(o->error, o->error_size, fmt, ap);
		va_end(ap);
	}
	errno = err;
	return -1;
}

static int check_opts(const struct ptimer_restore_opts **o, struct ptimer_restore_opts *copy)
{
	if (!*o) {
		memset(copy, 0, sizeof(*copy));
		*o = copy;
		return 0;
	}
	struct ptimer_restore_opts given;
	size_t n = 0;
	/* Read the size first, then as much of the rest as both sides know. */
	if (!*o || pt_copy_from_user(&n, &(*o)->size, sizeof(n)) != 0) {
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

/* ---- CRC-32C (Castagnoli), for the image's checksum ---- */

static uint32_t crc_table[8][256];
static bool have_sse42;

__attribute__((constructor(106))) static void crc_init(void)
{
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[0][i] = c;
	}
	for (int t = 1; t < 8; t++)
		for (uint32_t i = 0; i < 256; i++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

/* The SSE 4.2 instruction computes exactly this CRC, eight bytes at a
 * time: the reason for CRC-32C. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t c = ~crc;
	for (; n >= 8; p += 8, n -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
	}
	uint32_t c32 = (uint32_t)c;
	while (n--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return ~c32;
}

static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
	if (have_sse42)
		return crc32c_hw(crc, p, n);
	crc = ~crc;
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		w ^= crc;
		crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
		      crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
		      crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
		      crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
		p += 8;
		n -= 8;
	}
	while (n--)
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

/* The image's checksum: over the first entry without the header, every
 * later record as written, and the header itself with its crc at 0. */
static uint32_t image_crc(const uint8_t *first, size_t first_len, const uint8_t *rest,
			  size_t rest_len, const PtimersImage *h)
{
	PtimersImage z = *h;
	uint8_t hb[128];
	z.crc = 0;
	size_t hl = ptimers_image__get_packed_size(&z);
	if (hl > sizeof(hb))
		return ~h->crc; /* cannot be ours: never matches */
	ptimers_image__pack(&z, hb);
	uint32_t crc = crc32c(0, first, first_len);
	crc = crc32c(crc, rest, rest_len);
	return crc32c(crc, hb, hl);
}

/* ---- the timers, as the image has them ---- */

/* One timer to write. */
struct img_timer {
	int id;
	clockid_t clock;      /* a thread's CPU clock explicitly, with its thread */
	int notify, signo;
	union sigval value;
	int overrun;
	int64_t interval, remaining;
	pid_t tid;            /* SIGEV_THREAD_ID's thread */
	bool absolute;
	int64_t deadline;
	bool pending;
};

/* An image read and checked: its timers as the engine takes them, with
 * the clocks and threads as saved (mapped to this process's later). */
struct image {
	struct pt_restore_item *t;
	size_t n;
	size_t t_mapped;      /* t is mapped (this many bytes), else malloc'ed */
	bool has_header;
	int id_policy;        /* -1: not given */
	int64_t next_id;      /* -1: not given */
	int source;
};

static void image_free(struct image *img)
{
	if (img->t_mapped)
		munmap(img->t, img->t_mapped);
	else
		free(img->t);
	img->t = NULL;
	img->t_mapped = 0;
}

/* ---- writing ---- */

struct out {
	uint8_t *buf;
	size_t len, cap;
};

static int out_room(struct out *o, size_t n)
{
	if (o->len + n <= o->cap)
		return 0;
	size_t cap = o->cap ? o->cap : 4096;
	while (cap < o->len + n)
		cap *= 2;
	uint8_t *b = realloc(o->buf, cap);
	if (!b)
		return -ENOMEM;
	o->buf = b;
	o->cap = cap;
	return 0;
}

static void put_u32(struct out *o, uint32_t v)
{
	/* Little-endian, as the machine is (x86-64). */
	memcpy(o->buf + o->len, &v, 4);
	o->len += 4;
}

static int put_record(struct out *o, const PtimersEntry *e)
{
	/* Room for the largest entry, then packed in place: one pass. */
	if (out_room(o, 4 + MAX_RECORD) != 0)
		return -ENOMEM;
	size_t n = ptimers_entry__pack(e, o->buf + o->len + 4);
	put_u32(o, (uint32_t)n);
	o->len += n;
	return 0;
}

/* The entry for one timer; x is its ptimers part (filled in too). */
static void to_entry(const struct img_timer *s, PtimersEntry *e, PtimersTimer *x, bool extras)
{
	ptimers_entry__init(e);
	ptimers_timer__init(x);
	e->it_id = (uint32_t)s->id;
	e->clock_id = (uint32_t)s->clock;
	e->si_signo = (uint32_t)s->signo;
	e->it_sigev_notify = (uint32_t)s->notify;
	e->sival_ptr = (uint64_t)(uintptr_t)s->value.sival_ptr;
	e->overrun = (uint32_t)s->overrun;
	e->isec = (uint64_t)(s->interval / PT_NSEC_PER_SEC);
	e->insec = (uint64_t)(s->interval % PT_NSEC_PER_SEC);
	e->vsec = (uint64_t)(s->remaining / PT_NSEC_PER_SEC);
	e->vnsec = (uint64_t)(s->remaining % PT_NSEC_PER_SEC);
	if (s->notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID)) {
		e->has_notify_thread_id = 1;
		e->notify_thread_id = s->tid;
	}
	if (!extras)
		return;
	if (s->absolute) {
		x->has_absolute = x->absolute = 1;
		x->has_deadline_sec = x->has_deadline_nsec = 1;
		x->deadline_sec = (uint64_t)(s->deadline / PT_NSEC_PER_SEC);
		x->deadline_nsec = (uint32_t)(s->deadline % PT_NSEC_PER_SEC);
	}
	if (s->pending)
		x->has_signal_pending = x->signal_pending = 1;
	/* Only where there is something to say: every entry then costs
	 * neither the bytes nor the decoding. */
	if (x->has_absolute || x->has_signal_pending)
		e->ptimers = x;
}

/* Write an image of these timers to fd: the first entry carries the
 * header; its checksum covers the first entry without it and every later
 * record as written. */
static int write_image(int fd, const struct img_timer *t, size_t n, int source, int id_policy,
		       unsigned next_id, const struct ptimer_restore_opts *o)
{
	struct out first = { 0 }, rest = { 0 }, head = { 0 };
	PtimersEntry e;
	PtimersTimer x;
	PtimersImage h;
	int err = 0;

	/* An entry is some 40 bytes: room for most images at once. */
	err = n > 1 ? out_room(&rest, (n - 1) * 48) : 0;
	for (size_t i = 1; i < n && !err; i++) {
		to_entry(&t[i], &e, &x, true);
		err = put_record(&rest, &e);
	}
	ptimers_image__init(&h);
	h.version = IMAGE_VERSION;
	h.count = (uint32_t)n;
	h.crc = 0;
	h.has_id_policy = h.has_next_id = h.has_source = 1;
	h.id_policy = (uint32_t)id_policy;
	h.next_id = next_id;
	h.source = (uint32_t)source;
	if (!err && n) {
		to_entry(&t[0], &e, &x, true);
		err = put_record(&first, &e);
		if (!err)
			h.crc = image_crc(first.buf + 4, first.len - 4, rest.buf, rest.len, &h);
	}
	if (!err && out_room(&head, 8) == 0) {
		put_u32(&head, IMG_COMMON);
		put_u32(&head, IMG_POSIX_TIMERS);
		if (n) {
			to_entry(&t[0], &e, &x, true);
			e.image = &h;
			err = put_record(&head, &e);
		}
	} else if (!err) {
		err = -ENOMEM;
	}
	/* Out in one go where possible: a pipe's reader sees it whole. */
	const struct out *parts[] = { &head, &rest };
	for (int p = 0; p < 2 && !err; p++)
		if (pt_sys_write_all(fd, parts[p]->buf, parts[p]->len) != 0)
			err = -errno;
	free(first.buf);
	free(rest.buf);
	free(head.buf);
	if (err)
		return refuse(o, -err, "cannot write the image: %s", strerror(-err));
	return (int)n;
}

static struct img_timer from_saved(const struct pt_saved *s)
{
	struct img_timer t = {
		.id = s->id, .clock = s->clockid, .notify = s->notify, .signo = s->signo,
		.value = s->value, .overrun = s->overrun, .interval = s->armed ? s->interval : 0,
		.remaining = s->armed ? s->remaining : 0, .absolute = s->absolute,
		.deadline = s->deadline,
		.pending = s->signal_pending,
	};
	if (s->notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID))
		t.tid = s->target;
	/* A thread's CPU clock explicitly, naming its thread (mapped at
	 * restore); the process's as it was given. */
	if (s->cpu == 2)
		t.clock = s->cpu_clock;
	return t;
}

int ptimer_checkpoint(int fd, const struct ptimer_restore_opts *opts)
{
	struct ptimer_restore_opts copy;
	if (check_opts(&opts, &copy) != 0)
		return -1;
	size_t n = 0, cap = 1024;
	struct img_timer *t = malloc(cap * sizeof(*t));
	if (!t)
		return refuse(opts, ENOMEM, "no memory for the image");
	int id = 0;
	bool more = true;
	int64_t *now = malloc(PT_MAX_BASES * sizeof(*now));
	if (!now) {
		free(t);
		return refuse(opts, ENOMEM, "no memory for the image");
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
					struct img_timer *nt = realloc(t, 2 * cap * sizeof(*t));
					if (!nt) {
						pt_rcu_read_unlock();
						free(t);
						free(now);
						return refuse(opts, ENOMEM, "no memory for the image");
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
	int r = write_image(fd, t, n, SOURCE_ENGINE, pt_ids_get_policy(), pt_ids_counter(), opts);
	free(t);
	return r;
}

int pt_image_write_saved(int fd, const struct pt_saved *s, size_t n, int id_policy, unsigned next_id,
			 char *why, size_t why_size)
{
	struct ptimer_restore_opts o = { .size = sizeof(o), .error = why, .error_size = why_size };
	struct img_timer *t = malloc((n ? n : 1) * sizeof(*t));
	if (!t)
		return refuse(&o, ENOMEM, "no memory for the image");
	for (size_t i = 0; i < n; i++)
		t[i] = from_saved(&s[i]);
	int r = write_image(fd, t, n, SOURCE_ENGINE, id_policy, next_id, &o);
	free(t);
	return r;
}

/* ---- reading ---- */

struct arena {
	uint8_t buf[ARENA];
	size_t used;
};

static void *arena_alloc(void *data, size_t size)
{
	struct arena *a = data;
	size_t at = (a->used + 15) & ~(size_t)15;
	if (size > ARENA || at > ARENA - size)
		return NULL; /* protobuf-c then refuses the record */
	a->used = at + size;
	return a->buf + at;
}

static void arena_free(void *data, void *p)
{
	(void)data;
	(void)p;
}

/* Read all of fd: at most MAX_IMAGE bytes, and no more memory than what
 * was read (a regular file's size sets the buffer at once). */
static int read_all(int fd, uint8_t **out, size_t *len, const struct ptimer_restore_opts *o)
{
	struct stat st;
	size_t cap = 65536, n = 0;
	if (fstat(fd, &st) != 0)
		return refuse(o, errno, "cannot read the image: %s", strerror(errno));
	if (S_ISREG(st.st_mode)) {
		if ((uint64_t)st.st_size > MAX_IMAGE)
			return refuse(o, EINVAL, "the image is %lld bytes, more than ptimers reads (%llu)",
				      (long long)st.st_size, (unsigned long long)MAX_IMAGE);
		cap = (size_t)st.st_size + 1;
	}
	uint8_t *buf = malloc(cap);
	if (!buf)
		return refuse(o, ENOMEM, "no memory to read the image");
	for (;;) {
		if (n == cap) {
			if (cap >= MAX_IMAGE) {
				free(buf);
				return refuse(o, EINVAL, "the image is longer than ptimers reads (%llu bytes)",
					      (unsigned long long)MAX_IMAGE);
			}
			uint8_t *b = realloc(buf, cap * 2);
			if (!b) {
				free(buf);
				return refuse(o, ENOMEM, "no memory to read the image");
			}
			buf = b;
			cap *= 2;
		}
		ssize_t r = pt_sys_read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			return refuse(o, e, "cannot read the image: %s", strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*out = buf;
	*len = n;
	return 0;
}

static bool clock_plausible(clockid_t c)
{
	if (c >= 0)
		return c <= CLOCK_TAI && c != 3 /* no such clock */;
	return (c & 3) != 3; /* a CPU clock (3: a dynamic clock's descriptor) */
}

/* Check and take one decoded entry. */
static int take_entry(const PtimersEntry *e, size_t rec, struct pt_restore_item *t,
		      const struct ptimer_restore_opts *o)
{
	memset(t, 0, sizeof(*t));
	if (e->it_id > INT_MAX)
		return refuse(o, EINVAL, "entry %zu: timer ID %u is outside 0..%d", rec, e->it_id, INT_MAX);
	t->id = (int)e->it_id;
	t->clockid = (clockid_t)e->clock_id;
	if (!clock_plausible(t->clockid))
		return refuse(o, EINVAL, "entry %zu (timer %d): clock %d cannot drive a timer", rec,
			      t->id, (int)t->clockid);
	t->notify = (uint8_t)e->it_sigev_notify;
	switch (e->it_sigev_notify) {
	case SIGEV_SIGNAL | SIGEV_THREAD_ID:
		if (!e->has_notify_thread_id || e->notify_thread_id <= 0)
			return refuse(o, EINVAL, "entry %zu (timer %d): SIGEV_THREAD_ID without a thread",
				      rec, t->id);
		t->target = e->notify_thread_id; /* as saved: mapped at restore */
		/* fall through */
	case SIGEV_SIGNAL:
		if (e->si_signo < 1 || e->si_signo > 64)
			return refuse(o, EINVAL, "entry %zu (timer %d): signal %u is not 1..64", rec,
				      t->id, e->si_signo);
		t->signo = (uint8_t)e->si_signo;
		break;
	case SIGEV_NONE:
	case SIGEV_THREAD:
		break;
	default:
		return refuse(o, EINVAL, "entry %zu (timer %d): notification %u is not a SIGEV_* kind",
			      rec, t->id, e->it_sigev_notify);
	}
	t->value.sival_ptr = (void *)(uintptr_t)e->sival_ptr;
	t->overrun = e->overrun > INT_MAX ? INT_MAX : (int)e->overrun;
	if (e->insec >= PT_NSEC_PER_SEC || e->vnsec >= PT_NSEC_PER_SEC ||
	    e->isec >= (uint64_t)(PT_NEVER / PT_NSEC_PER_SEC) || e->vsec >= (uint64_t)(PT_NEVER / PT_NSEC_PER_SEC))
		return refuse(o, EINVAL, "entry %zu (timer %d): a time out of range", rec, t->id);
	t->interval_ns = (int64_t)e->isec * PT_NSEC_PER_SEC + (int64_t)e->insec;
	t->value_ns = (int64_t)e->vsec * PT_NSEC_PER_SEC + (int64_t)e->vnsec;
	const PtimersTimer *x = e->ptimers;
	if (x && x->has_absolute && x->absolute) {
		if (!x->has_deadline_sec || x->deadline_nsec >= PT_NSEC_PER_SEC ||
		    x->deadline_sec >= (uint64_t)(PT_NEVER / PT_NSEC_PER_SEC))
			return refuse(o, EINVAL, "entry %zu (timer %d): a bad deadline", rec, t->id);
		t->absolute = true;
		t->value_ns = (int64_t)x->deadline_sec * PT_NSEC_PER_SEC + x->deadline_nsec;
	}
	t->armed = t->value_ns > 0 || t->absolute;
	if (!t->armed)
		t->interval_ns = 0; /* as timer_gettime shows a disarmed timer */
	return 0;
}

static int cmp_timer(const void *a, const void *b)
{
	int x = ((const struct pt_restore_item *)a)->id, y = ((const struct pt_restore_item *)b)->id;
	return x < y ? -1 : x > y;
}

/* Decoding a run of records, [lo, hi) starting at byte at: one thread's
 * share of a large image. */
struct decode_job {
	const uint8_t *buf;
	size_t lo, hi, at;
	struct pt_restore_item *t;
	int err;                  /* errno of the first refusal, 0 if none */
	size_t err_rec;
	char why[256];
	size_t ptimers_entries;   /* entries with ptimers' own fields */
	/* Record 0's header, when this job has record 0. */
	bool has_header;
	PtimersImage header;
	uint8_t plain[MAX_RECORD]; /* record 0 packed without its header */
	size_t plain_len;
};

static void *decode_run(void *arg)
{
	struct decode_job *j = arg;
	struct ptimer_restore_opts jo = { .size = sizeof(jo), .error = j->why, .error_size = sizeof(j->why) };
	struct arena arena_buf, *arena = &arena_buf; /* one record's decoding at a time */
	size_t at = j->at;
	for (size_t rec = j->lo; rec < j->hi; rec++) {
		uint32_t rl;
		memcpy(&rl, j->buf + at, 4); /* checked by the caller's first pass */
		arena->used = 0;
		ProtobufCAllocator alloc = { arena_alloc, arena_free, arena };
		PtimersEntry *e = ptimers_entry__unpack(&alloc, rl, j->buf + at + 4);
		int r = 0;
		if (!e) {
			r = refuse(&jo, EINVAL, "entry %zu cannot be decoded (corrupted?)", rec);
		} else if (e->base.n_unknown_fields || (e->ptimers && e->ptimers->base.n_unknown_fields) ||
			   (e->image && e->image->base.n_unknown_fields)) {
			/* Fields no version of the image has: corruption (a
			 * flipped tag) rather than something to skip. */
			r = refuse(&jo, EINVAL, "entry %zu has fields no POSIX timers image has "
				   "(corrupted?)", rec);
		} else if (e->image && rec != 0) {
			r = refuse(&jo, EINVAL, "entry %zu carries the image's header: only the first may",
				   rec);
		} else if (e->image) {
			j->has_header = true;
			j->header = *e->image; /* its unknown fields: none, checked above */
			/* The checksum starts with this entry as it would be
			 * without the header. */
			e->image = NULL;
			j->plain_len = ptimers_entry__get_packed_size(e);
			if (j->plain_len > sizeof(j->plain))
				r = refuse(&jo, EINVAL, "entry 0 is too long");
			else
				ptimers_entry__pack(e, j->plain);
		}
		if (!r) {
			j->ptimers_entries += e->ptimers != NULL;
			r = take_entry(e, rec, &j->t[rec], &jo);
		}
		if (r) {
			j->err = errno;
			j->err_rec = rec;
			break;
		}
		at += 4 + rl;
	}
	return NULL;
}

/* Large images are decoded by two threads, each taking half. */
#define PARALLEL_FROM 65536

/* Where the items of an image live: n exactly, prefaulted when large. */
static struct pt_restore_item *items_alloc(size_t n, size_t *mapped)
{
	size_t bytes = (n ? n : 1) * sizeof(struct pt_restore_item);
	*mapped = 0;
	if (bytes >= (1u << 20)) {
		void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (m != MAP_FAILED) {
			*mapped = bytes;
			return m;
		}
	}
	return malloc(bytes);
}

/* Decode and check a whole image; nothing of the process is touched. */
static int parse_image(const uint8_t *buf, size_t len, struct image *img,
		       const struct ptimer_restore_opts *o)
{
	uint32_t m1, m2;
	memset(img, 0, sizeof(*img));
	img->id_policy = -1;
	img->next_id = -1;
	if (len < 8)
		return refuse(o, EINVAL, "not a POSIX timers image: %zu bytes", len);
	memcpy(&m1, buf, 4);
	memcpy(&m2, buf + 4, 4);
	if (m1 != IMG_COMMON || m2 != IMG_POSIX_TIMERS)
		return refuse(o, EINVAL, "not a POSIX timers image (magic %#x %#x, expected %#x %#x)", m1,
			      m2, IMG_COMMON, IMG_POSIX_TIMERS);
	/* First the lengths alone: every record within the image and of a
	 * size an entry can have.  Then the count is known, and the memory
	 * for the entries: at most 64 bytes for every 24 of the image's. */
	size_t n = 0, at = 8, first_len = 0;
	while (at < len) {
		uint32_t rl;
		if (len - at < 4)
			return refuse(o, EINVAL, "truncated: %zu bytes after entry %zu", len - at, n);
		memcpy(&rl, buf + at, 4);
		if (rl > MAX_RECORD || rl < MIN_RECORD)
			return refuse(o, EINVAL, "entry %zu claims %u bytes (an entry has %u to %u)", n, rl,
				      MIN_RECORD, MAX_RECORD);
		if (rl > len - at - 4)
			return refuse(o, EINVAL, "truncated: entry %zu claims %u bytes, %zu are left", n, rl,
				      len - at - 4);
		if (n == 0)
			first_len = 4 + rl;
		at += 4 + rl;
		n++;
	}
	img->t = items_alloc(n, &img->t_mapped);
	if (!img->t)
		return refuse(o, ENOMEM, "no memory for the image's %zu entries", n);
	struct decode_job jobs[2];
	int njobs = n >= PARALLEL_FROM ? 2 : 1;
	jobs[0] = (struct decode_job){ .buf = buf, .lo = 0, .hi = n, .at = 8, .t = img->t };
	if (njobs == 2) {
		size_t half = n / 2, mid = 8;
		for (size_t k = 0; k < half; k++) {
			uint32_t rl;
			memcpy(&rl, buf + mid, 4);
			mid += 4 + rl;
		}
		jobs[0].hi = half;
		jobs[1] = (struct decode_job){ .buf = buf, .lo = half, .hi = n, .at = mid, .t = img->t };
	}
	pthread_t th;
	bool helper = false;
	if (njobs == 2) {
		sigset_t all, old;
		sigfillset(&all);
		pt_sys_sigmask(SIG_BLOCK, &all, &old);
		helper = pthread_create(&th, NULL, decode_run, &jobs[1]) == 0;
		pt_sys_sigmask(SIG_SETMASK, &old, NULL);
	}
	decode_run(&jobs[0]);
	if (njobs == 2) {
		if (helper)
			pthread_join(th, NULL);
		else
			decode_run(&jobs[1]);
	}
	/* The first refusal in the image's order. */
	for (int k = 0; k < njobs; k++) {
		if (jobs[k].err)
			return refuse(o, jobs[k].err, "%s", jobs[k].why);
	}
	img->n = n;
	size_t ptimers_entries = jobs[0].ptimers_entries + (njobs == 2 ? jobs[1].ptimers_entries : 0);
	int r = 0;
	if (jobs[0].has_header) {
		const PtimersImage *h = &jobs[0].header;
		img->has_header = true;
		if (h->version != IMAGE_VERSION)
			r = refuse(o, EINVAL, "image version %u: this ptimers reads version %d", h->version,
				   IMAGE_VERSION);
		else if (h->has_id_policy && h->id_policy > 1)
			r = refuse(o, EINVAL, "the image's ID policy %u is unknown", h->id_policy);
		else if (h->has_next_id && h->next_id > INT_MAX)
			r = refuse(o, EINVAL, "the image's next ID %u is outside 0..%d", h->next_id, INT_MAX);
		else if (h->count != n)
			r = refuse(o, EINVAL, "the image has %zu entries, its header says %u (truncated?)", n,
				   h->count);
		if (!r) {
			uint32_t crc = image_crc(jobs[0].plain, jobs[0].plain_len, buf + 8 + first_len,
						 len - 8 - first_len, h);
			if (crc != h->crc)
				r = refuse(o, EINVAL, "the image's checksum does not match (%#x, expected "
					   "%#x): corrupted", crc, h->crc);
		}
		if (!r) {
			img->id_policy = h->has_id_policy ? (int)h->id_policy : -1;
			img->next_id = h->has_next_id ? (int64_t)h->next_id : -1;
			img->source = h->has_source ? (int)h->source : 0;
		}
	} else if (ptimers_entries) {
		r = refuse(o, EINVAL, "the image has ptimers' entries but not its header (corrupted?)");
	}
	if (r)
		return r;
	/* In ID order (ptimers writes them so; CRIU's need not be). */
	bool sorted = true;
	for (size_t i = 1; i < img->n && sorted; i++)
		sorted = img->t[i].id > img->t[i - 1].id;
	if (!sorted)
		qsort(img->t, img->n, sizeof(*img->t), cmp_timer);
	for (size_t i = 1; i < img->n; i++)
		if (img->t[i].id == img->t[i - 1].id)
			return refuse(o, EINVAL, "timer ID %d appears twice", img->t[i].id);
	return 0;
}

int pt_image_check(const uint8_t *buf, size_t len, struct pt_image_summary *sum, char *why,
		   size_t why_size)
{
	struct ptimer_restore_opts o = { .size = sizeof(o), .error = why, .error_size = why_size };
	struct image img;
	if (parse_image(buf, len, &img, &o) != 0) {
		image_free(&img);
		return -1;
	}
	if (sum) {
		memset(sum, 0, sizeof(*sum));
		sum->count = img.n;
		sum->has_header = img.has_header;
		sum->source = img.source;
		if (img.n) {
			sum->min_id = img.t[0].id;
			sum->max_id = img.t[img.n - 1].id;
		}
		for (size_t i = 0; i < img.n; i++) {
			clockid_t c = img.t[i].clockid;
			sum->threads += img.t[i].notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID) ||
					(c < 0 && (c & CPUCLOCK_PERTHREAD_MASK) && CPUCLOCK_PID(c));
			sum->thread_notify += img.t[i].notify == SIGEV_THREAD;
			if ((img.t[i].notify & ~SIGEV_THREAD_ID) == SIGEV_SIGNAL)
				sum->signals |= 1ull << (img.t[i].signo - 1);
		}
	}
	image_free(&img);
	return 0;
}

#define MAP_FROM (256 << 10)

/* A regular file from where fd stands to its end, mapped rather than
 * read: its pages are the page cache's, nothing to copy or clear.  0, or
 * -1 (then it is read instead). */
static int map_file(int fd, const uint8_t **buf, size_t *len, void **map, size_t *map_len)
{
	struct stat st;
	off_t at = lseek(fd, 0, SEEK_CUR);
	if (at < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= at ||
	    (uint64_t)st.st_size > MAX_IMAGE || st.st_size < MAP_FROM)
		return -1; /* small ones are read: fewer system calls */
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (m == MAP_FAILED)
		return -1;
	lseek(fd, 0, SEEK_END); /* read to its end, as read_all leaves it */
	*map = m;
	*map_len = (size_t)st.st_size;
	*buf = (const uint8_t *)m + at;
	*len = (size_t)(st.st_size - at);
	return 0;
}

static int load_image(int fd, struct image *img, const struct ptimer_restore_opts *o)
{
	uint8_t *buf = NULL;
	const uint8_t *in;
	size_t len = 0, map_len = 0;
	void *map = NULL;
	if (map_file(fd, &in, &len, &map, &map_len) != 0) {
		if (read_all(fd, &buf, &len, o) != 0)
			return -1;
		in = buf;
	}
	int r = parse_image(in, len, img, o);
	if (map)
		munmap(map, map_len);
	free(buf);
	if (r)
		image_free(img);
	return r;
}

/* ---- threads and clocks of the new process ---- */

static bool own_thread(pid_t tid)
{
	return tid > 0 && syscall(SYS_tgkill, pt_pid, tid, 0) == 0;
}

static int map_thread(pid_t saved, pid_t *live, int id, const struct ptimer_restore_opts *o)
{
	*live = o->map_tid ? o->map_tid(o->arg, saved) : pt_gettid();
	if (!own_thread(*live))
		return refuse(o, ESRCH, "timer %d: thread %d %s", id, (int)saved,
			      *live ? "maps to no thread of this process" : "was refused by map_tid");
	return 0;
}

/* The clock of this process a saved one stands for: a CPU clock named
 * by a process or thread ID (the kernel's encoding) is this process's, or
 * the mapped thread's. */
static int map_clock(struct pt_restore_item *t, const struct ptimer_restore_opts *o)
{
	clockid_t c = t->clockid;
	if (c >= 0 || !CPUCLOCK_PID(c))
		return 0; /* a clock of its own, or "the calling process/thread" */
	if (!(c & CPUCLOCK_PERTHREAD_MASK)) {
		t->clockid = MAKE_PROCESS_CPUCLOCK(pt_pid, c & 3);
		return 0;
	}
	pid_t live;
	if (map_thread(CPUCLOCK_PID(c), &live, t->id, o) != 0)
		return -1;
	t->clockid = MAKE_THREAD_CPUCLOCK(live, c & 3);
	return 0;
}

/* Map the saved threads and clocks of every timer to this process's, and
 * ask for the functions of SIGEV_THREAD ones (thread_fn: not for the
 * kernel). */
static int map_all(struct image *img, bool thread_fn, const struct ptimer_restore_opts *o)
{
	for (size_t i = 0; i < img->n; i++) {
		struct pt_restore_item *t = &img->t[i];
		if (map_clock(t, o) != 0)
			return -1;
		if (t->notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID) &&
		    map_thread(t->target, &t->target, t->id, o) != 0)
			return -1;
		if (t->notify != SIGEV_THREAD)
			continue;
		if (!thread_fn)
			return refuse(o, EINVAL, "timer %d is SIGEV_THREAD: kernel timers cannot run a "
				      "function (restore it on the engine)", t->id);
		if (!o->thread_notify)
			return refuse(o, EINVAL, "timer %d is SIGEV_THREAD: its function is not in the "
				      "image (restore it with a thread_notify callback)", t->id);
		if (o->thread_notify(o->arg, t->id, t->value, &t->thread_fn, &t->thread_attr) != 0 ||
		    !t->thread_fn)
			return refuse(o, EINVAL, "timer %d is SIGEV_THREAD: no function given for it", t->id);
	}
	return 0;
}

/* ---- restoring on the engine ---- */

int ptimer_restore(int fd, const struct ptimer_restore_opts *opts)
{
	struct ptimer_restore_opts copy;
	struct image img;
	if (check_opts(&opts, &copy) != 0)
		return -1;
	if (load_image(fd, &img, opts) != 0)
		return -1;
	int r = map_all(&img, true, opts);
	/* The ID policy is the process's: taken from the image only while
	 * the process has no timers (it cannot change under live ones). */
	if (!r && img.id_policy >= 0 && img.id_policy != pt_ids_get_policy()) {
		if (pt_ids_set_policy(img.id_policy) != 0)
			r = refuse(opts, EBUSY, "the image's ID policy is %s, this process's %s, and it has "
				   "timers", img.id_policy ? "dense" : "linux", img.id_policy ? "linux" : "dense");
	}
	if (!r) {
		size_t bad = 0;
		int e = pt_timer_restore(img.t, img.n, &bad);
		if (e) {
			const char *why = e == -EBUSY ? "its ID is in use"
					  : e == -EINVAL ? "its clock, notification or thread cannot be had here"
					  : strerror(-e);
			r = refuse(opts, -e, "timer %d cannot be restored: %s; nothing was restored",
				   bad < img.n ? img.t[bad].id : -1, why);
		}
	}
	if (!r) {
		/* Past the restored IDs, as the kernel's restore mode leaves it
		 * (or where the image says the counter was). */
		if (img.next_id >= 0)
			pt_ids_set_counter((unsigned)img.next_id);
		else if (img.n)
			pt_ids_set_counter((unsigned)img.t[img.n - 1].id + 1);
		r = (int)img.n;
	}
	image_free(&img);
	return r;
}

/* ---- the process's kernel timers ---- */

static int ksys_gettime(int id, struct itimerspec *cur)
{
	return (int)syscall(SYS_timer_gettime, id, cur);
}

static void kernel_delete(const int *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		syscall(SYS_timer_delete, ids[i]);
}

/* /proc/self/timers, one block per timer. */
static int read_kernel_timers(struct img_timer **out, size_t *count,
			      const struct ptimer_restore_opts *o)
{
	FILE *f = fopen("/proc/self/timers", "re");
	if (!f)
		return refuse(o, errno, "cannot read /proc/self/timers: %s", strerror(errno));
	/* Read in large pieces: the kernel walks its timers from the start
	 * again for each read() of the file. */
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	size_t n = 0, cap = 16;
	struct img_timer *t = malloc(cap * sizeof(*t));
	char line[256];
	int err = t ? 0 : ENOMEM;
	struct img_timer *cur = NULL;
	while (!err && fgets(line, sizeof(line), f)) {
		int v, sig;
		unsigned long long ptr;
		char kind[16], who[8];
		if (sscanf(line, "ID: %d", &v) == 1) {
			cur = NULL;
			if (pt_cpu_owns_ktimer(v))
				continue; /* the engine's own, for a CPU clock */
			if (n == cap) {
				struct img_timer *nt = realloc(t, 2 * cap * sizeof(*t));
				if (!nt) {
					err = ENOMEM;
					break;
				}
				t = nt;
				cap *= 2;
			}
			cur = &t[n++];
			memset(cur, 0, sizeof(*cur));
			cur->id = v;
		} else if (cur && sscanf(line, "signal: %d/%llx", &sig, &ptr) == 2) {
			cur->signo = sig;
			cur->value.sival_ptr = (void *)(uintptr_t)ptr;
		} else if (cur && sscanf(line, "notify: %15[a-z]/%7[a-z].%d", kind, who, &v) == 3) {
			cur->notify = !strcmp(kind, "none") ? SIGEV_NONE : !strcmp(kind, "thread") ? SIGEV_THREAD
												     : SIGEV_SIGNAL;
			if (!strcmp(who, "tid")) {
				cur->notify |= SIGEV_THREAD_ID;
				cur->tid = v;
			}
		} else if (cur && sscanf(line, "ClockID: %d", &v) == 1) {
			cur->clock = v;
		}
	}
	fclose(f);
	if (err) {
		free(t);
		return refuse(o, err, "cannot read /proc/self/timers: %s", strerror(err));
	}
	*out = t;
	*count = n;
	return 0;
}

static int cmp_written(const void *a, const void *b)
{
	int x = ((const struct img_timer *)a)->id, y = ((const struct img_timer *)b)->id;
	return x < y ? -1 : x > y;
}

int ptimer_kernel_checkpoint(int fd, const struct ptimer_restore_opts *opts)
{
	struct ptimer_restore_opts copy;
	struct img_timer *t = NULL;
	size_t n = 0;
	if (check_opts(&opts, &copy) != 0 || read_kernel_timers(&t, &n, opts) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct itimerspec cur;
		/* glibc's SIGEV_THREAD timers signal its helper thread with its
		 * own signal (SIGRTMIN as the kernel numbers it, 32): their
		 * function is glibc's, nothing a restore could give back. */
		if ((t[i].notify & SIGEV_THREAD_ID) && t[i].signo == 32) {
			int id = t[i].id;
			free(t);
			return refuse(opts, EINVAL, "kernel timer %d is glibc's SIGEV_THREAD (signal 32 to "
				      "its helper thread): it cannot be checkpointed", id);
		}
		if (ksys_gettime(t[i].id, &cur) != 0) {
			int id = t[i].id, e = errno;
			free(t);
			return refuse(opts, e, "kernel timer %d: timer_gettime: %s (deleted meanwhile?)", id,
				      strerror(e));
		}
		t[i].remaining = pt_ts_to_ns(&cur.it_value);
		t[i].interval = pt_ts_to_ns(&cur.it_interval);
		long ov = syscall(SYS_timer_getoverrun, t[i].id);
		t[i].overrun = ov > 0 ? (int)ov : 0;
	}
	qsort(t, n, sizeof(*t), cmp_written);
	int r = write_image(fd, t, n, SOURCE_KERNEL, pt_ids_get_policy(), pt_ids_counter(), opts);
	free(t);
	return r;
}

/* The kernel timer one image entry asks for: its sigevent and setting. */
struct ktimer {
	int id;
	clockid_t clock;
	struct sigevent sev;
	struct itimerspec its;
	int flags;
};

static int kernel_plan(const struct image *img, struct ktimer *k, const struct ptimer_restore_opts *o)
{
	for (size_t i = 0; i < img->n; i++) {
		const struct pt_restore_item *t = &img->t[i];
		memset(&k[i], 0, sizeof(k[i]));
		k[i].id = t->id;
		k[i].clock = t->clockid;
		k[i].sev.sigev_notify = t->notify;
		k[i].sev.sigev_signo = t->signo;
		k[i].sev.sigev_value = t->value;
		k[i].sev._sigev_un._tid = t->target;
		k[i].its.it_interval = pt_ns_to_ts(t->interval_ns);
		k[i].its.it_value = pt_ns_to_ts(t->value_ns);
		k[i].flags = t->absolute ? TIMER_ABSTIME : 0;
		struct itimerspec cur;
		if (ksys_gettime(t->id, &cur) == 0)
			return refuse(o, EBUSY, "kernel timer ID %d is in use", t->id);
	}
	return 0;
}

/* Arm every timer once all are made, so that none fires while the rest
 * are still being made (a long walk), and relative ones keep their time
 * from the end of the restore. */
static int kernel_arm_all(const struct ktimer *k, size_t n, int *made,
			  const struct ptimer_restore_opts *o)
{
	for (size_t i = 0; i < n; i++) {
		if (syscall(SYS_timer_settime, k[i].id, k[i].flags, &k[i].its, NULL) != 0) {
			int e = errno;
			kernel_delete(made, n);
			return refuse(o, e, "kernel timer %d: timer_settime: %s; nothing was restored",
				      k[i].id, strerror(e));
		}
	}
	return 0;
}

/* The kernel's restore mode: each ID asked for. */
static int kernel_by_prctl(const struct ktimer *k, size_t n, int *made, const struct ptimer_restore_opts *o)
{
	for (size_t i = 0; i < n; i++) {
		int id = k[i].id;
		if (syscall(SYS_timer_create, k[i].clock, &k[i].sev, &id) != 0) {
			int e = errno;
			kernel_delete(made, i);
			return refuse(o, e, "kernel timer %d: timer_create: %s; nothing was restored",
				      k[i].id, strerror(e));
		}
		made[i] = id;
		if (id != k[i].id) { /* the mode was turned off meanwhile */
			kernel_delete(made, i + 1);
			return refuse(o, EBUSY, "kernel timer %d: the kernel gave ID %d; nothing was "
				      "restored", k[i].id, id);
		}
	}
	return kernel_arm_all(k, n, made, o);
}

/* How far the kernel's ID counter must go from just after `from` to hand
 * out id: it counts up and wraps from INT_MAX to 0. */
static long walk_distance(int from, int id)
{
	return ((long)id - from - 1 + (long)INT_MAX + 1) % ((long)INT_MAX + 1) + 1;
}

#define CALIBRATE 256

/* The walk: create timers until the kernel's counter hands out each ID
 * wanted, deleting the others.  Every create takes the next ID, so the
 * first one also tells where the counter is; it is made with the lowest
 * wanted ID's settings and kept if that is the ID it got.  Up to
 * CALIBRATE more, short of the nearest wanted ID, time a step for the
 * estimate.  The IDs are then taken in the order the counter reaches
 * them: those above it, then, after the wrap at INT_MAX, those below.
 * made[] is filled in the order of k[]. */
static int kernel_walk(struct ktimer *k, size_t n, int *made, const struct ptimer_restore_opts *o)
{
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	bool *have = calloc(n ? n : 1, sizeof(bool));
	size_t nmade = 0;
	int at;
	if (!have)
		return refuse(o, ENOMEM, "no memory for the walk");
	if (n == 0)
		goto done;
	int64_t t0 = pt_clock_ns(CLOCK_MONOTONIC);
	if (syscall(SYS_timer_create, k[0].clock, &k[0].sev, &at) != 0) {
		free(have);
		return refuse(o, errno, "walk: timer_create: %s; nothing was restored", strerror(errno));
	}
	if (at == k[0].id) {
		made[0] = at;
		have[0] = true;
		nmade = 1;
	} else {
		syscall(SYS_timer_delete, at);
	}
	double step = (double)(pt_clock_ns(CLOCK_MONOTONIC) - t0) / 1e9;
	long nearest = LONG_MAX;
	for (size_t j = 0; j < n; j++)
		if (!have[j] && walk_distance(at, k[j].id) < nearest)
			nearest = walk_distance(at, k[j].id);
	long calib = nearest - 1 < CALIBRATE ? nearest - 1 : CALIBRATE;
	if (calib > 0) {
		t0 = pt_clock_ns(CLOCK_MONOTONIC);
		for (long c = 0; c < calib; c++) {
			int id;
			if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &none, &id) != 0)
				break;
			syscall(SYS_timer_delete, id);
			at = id;
		}
		step = (double)(pt_clock_ns(CLOCK_MONOTONIC) - t0) / 1e9 / (double)calib;
	}
	long total = 0; /* the farthest one sets the length */
	for (size_t j = 0; j < n; j++)
		if (!have[j] && walk_distance(at, k[j].id) > total)
			total = walk_distance(at, k[j].id);
	if (o->progress && o->progress(o->arg, 0, total, (double)total * step) != 0) {
		kernel_delete(made, nmade);
		free(have);
		return refuse(o, ECANCELED, "the walk of %ld timer_create calls (about %.0f s) was "
			      "cancelled before it started; nothing was restored", total, (double)total * step);
	}
	/* In the order the counter reaches them. */
	size_t start = 0;
	while (start < n && k[start].id <= at)
		start++;
	const int from = at;
	long done = 0;
	int64_t started = pt_clock_ns(CLOCK_MONOTONIC);
	for (size_t j = 0; j < n; j++) {
		size_t w = (start + j) % n;
		struct ktimer *want = &k[w];
		if (have[w])
			continue;
		long goal = walk_distance(from, want->id);
		for (;;) {
			int id;
			if (syscall(SYS_timer_create, want->clock, &want->sev, &id) != 0) {
				int e = errno;
				kernel_delete(made, nmade);
				free(have);
				return refuse(o, e, "walk: timer_create: %s; nothing was restored", strerror(e));
			}
			done++;
			if (id == want->id)
				break;
			syscall(SYS_timer_delete, id);
			if (walk_distance(from, id) > goal || done > total + 1024) {
				/* Passed it: another thread took the ID meanwhile. */
				kernel_delete(made, nmade);
				free(have);
				return refuse(o, EBUSY, "walk: kernel timer ID %d was taken meanwhile; nothing "
					      "was restored", want->id);
			}
			if (o->progress && done % 65536 == 0) {
				double per = (double)(pt_clock_ns(CLOCK_MONOTONIC) - started) / 1e9 / (double)done;
				if (o->progress(o->arg, done, total, (double)(total - done) * per) != 0) {
					kernel_delete(made, nmade);
					free(have);
					return refuse(o, ECANCELED, "the walk was cancelled after %ld of %ld "
						      "calls; nothing was restored", done, total);
				}
			}
		}
		made[nmade++] = want->id;
		have[w] = true;
	}
	if (o->progress)
		o->progress(o->arg, total, total, 0);
done:
	free(have);
	return kernel_arm_all(k, n, made, o);
}

int ptimer_kernel_restore(int fd, const struct ptimer_restore_opts *opts)
{
	struct ptimer_restore_opts copy;
	struct image img;
	if (check_opts(&opts, &copy) != 0 || load_image(fd, &img, opts) != 0)
		return -1;
	struct ktimer *k = calloc(img.n ? img.n : 1, sizeof(*k));
	int *made = calloc(img.n ? img.n : 1, sizeof(int));
	int r = k && made ? 0 : refuse(opts, ENOMEM, "no memory for %zu timers", img.n);
	if (!r)
		r = map_all(&img, false, opts);
	if (!r)
		r = kernel_plan(&img, k, opts);
	if (!r) {
		long mode = -1;
		if (!(opts->flags & PTIMER_RESTORE_WALK))
			mode = syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 2, 0, 0, 0);
		if (mode >= 0 && syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) == 0) {
			r = kernel_by_prctl(k, img.n, made, opts);
			syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, mode, 0, 0, 0);
		} else {
			r = kernel_walk(k, img.n, made, opts);
		}
	}
	if (!r)
		r = (int)img.n;
	free(k);
	free(made);
	image_free(&img);
	return r;
}
