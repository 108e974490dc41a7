/* SPDX-License-Identifier: MIT */
/*
 * The checkpoint image's codec (image.h): CRIU's POSIX_TIMERS image, read
 * and written with protobuf-c (src/image.proto).
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
 * Reading never trusts the image: the whole input is read once with its
 * size bounded (MAX_IMAGE), each record's length is checked against what
 * is left and against MAX_RECORD before it is decoded, and decoding uses
 * a fixed arena per record, so memory follows the image's size; every
 * entry is checked (IDs, clocks, notification, signals, times,
 * duplicates) before the image is handed on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <protobuf-c/protobuf-c.h>

#include "image.h"
#include "image.pb-c.h"
#include "private.h"
#include "sys.h"

#define IMG_COMMON 0x54564319u
#define IMG_POSIX_TIMERS 0x52603957u
#define IMAGE_VERSION 1
#define MAX_RECORD 1024u              /* an entry is well under 200 bytes */
#define MIN_RECORD 20u                /* ten required fields, two bytes each at least */
#define MAX_IMAGE PT_IMAGE_MAX
#define ARENA 2048                    /* decoding a valid record needs well under 1 KiB */

/* ---- refusing ---- */

/* Why, said once: the reason in why (if given), errno set, -1. */
struct why {
	char *buf;
	size_t size;
};

static int refuse(const struct why *w, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(const struct why *w, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pt_refusev(w ? w->buf : NULL, w ? w->size : 0, err, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- CRC-32C (Castagnoli), for the image's checksum ---- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static bool have_sse42;

/* On the first checksum, not at load: every program that loads the
 * library would pay for the table otherwise. */
static void crc_init(void)
{
	have_sse42 = pt_cpu_has(PT_CPU_SSE4_2);
	if (have_sse42)
		return;
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
	pthread_once(&crc_once, crc_init);
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
static void to_entry(const struct pt_image_timer *s, PtimersEntry *e, PtimersTimer *x, bool extras)
{
	ptimers_entry__init(e);
	ptimers_timer__init(x);
	e->it_id = (uint32_t)s->id;
	e->clock_id = (uint32_t)s->clockid;
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

/* The first entry carries the header; its checksum covers the first
 * entry without it and every later record as written. */
int pt_image_write(int fd, const struct pt_image_timer *t, size_t n, int source, int id_policy,
		   int64_t next_id, char *why, size_t why_size)
{
	struct why w = { why, why_size };
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
	h.has_source = 1;
	h.source = (uint32_t)source;
	if (id_policy >= 0) {
		h.has_id_policy = 1;
		h.id_policy = (uint32_t)id_policy;
	}
	if (next_id >= 0) {
		h.has_next_id = 1;
		h.next_id = (uint32_t)next_id;
	}
	if (!err && n) {
		to_entry(&t[0], &e, &x, true);
		err = put_record(&first, &e);
		if (!err)
			h.crc = image_crc(first.buf + 4, first.len - 4, rest.buf, rest.len, &h);
	}
	if (!err && out_room(&head, 12) == 0) {
		put_u32(&head, IMG_COMMON);
		put_u32(&head, IMG_POSIX_TIMERS);
		if (n) {
			to_entry(&t[0], &e, &x, true);
			e.image = &h;
			err = put_record(&head, &e);
		} else {
			put_u32(&head, 0); /* no timers: an empty record says so */
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
		return refuse(&w, -err, "cannot write the image: %s", strerror(-err));
	return (int)n;
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
static int read_all(int fd, uint8_t **out, size_t *len, const struct why *o)
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
static int take_entry(const PtimersEntry *e, size_t rec, struct pt_image_timer *t, const struct why *o)
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
		t->tid = e->notify_thread_id; /* as saved: mapped at restore */
		/* fall through */
	case SIGEV_SIGNAL:
		if (e->si_signo < 1 || e->si_signo > KERNEL_SIGRTMAX)
			return refuse(o, EINVAL, "entry %zu (timer %d): signal %u is not 1..%d", rec,
				      t->id, e->si_signo, KERNEL_SIGRTMAX);
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
	t->interval = (int64_t)e->isec * PT_NSEC_PER_SEC + (int64_t)e->insec;
	t->remaining = (int64_t)e->vsec * PT_NSEC_PER_SEC + (int64_t)e->vnsec;
	const PtimersTimer *x = e->ptimers;
	if (x && x->has_absolute && x->absolute) {
		if (!x->has_deadline_sec || x->deadline_nsec >= PT_NSEC_PER_SEC ||
		    x->deadline_sec >= (uint64_t)(PT_NEVER / PT_NSEC_PER_SEC))
			return refuse(o, EINVAL, "entry %zu (timer %d): a bad deadline", rec, t->id);
		t->absolute = true;
		t->deadline = (int64_t)x->deadline_sec * PT_NSEC_PER_SEC + x->deadline_nsec;
	}
	t->pending = x && x->has_signal_pending && x->signal_pending;
	t->armed = t->remaining > 0 || t->absolute;
	if (!t->armed)
		t->interval = 0; /* as timer_gettime shows a disarmed timer */
	return 0;
}

static int cmp_timer(const void *a, const void *b)
{
	int x = ((const struct pt_image_timer *)a)->id, y = ((const struct pt_image_timer *)b)->id;
	return x < y ? -1 : x > y;
}

/* ---- the common entry, decoded without protobuf-c ---- */

/* One varint at *p (below end): false when it runs past end or past ten
 * bytes, or has bits a 64-bit value cannot hold. */
static inline bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	for (unsigned i = 0; i < 10 && *p < end; i++) {
		uint8_t b = *(*p)++;
		if (i == 9 && b > 1)
			return false;
		r |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*v = r;
			return true;
		}
	}
	return false;
}

static bool fast_timer(const uint8_t *p, const uint8_t *end, PtimersTimer *x)
{
	unsigned seen = 0;
	ptimers_timer__init(x);
	while (p < end) {
		uint64_t tag, v;
		if (!varint(&p, end, &tag) || (tag & 7) != 0 || !varint(&p, end, &v))
			return false;
		uint64_t f = tag >> 3;
		if (f > 6 || (seen >> f & 1))
			return false;
		seen |= 1u << f;
		switch (f) {
		case 1:
			if (v > 1)
				return false;
			x->has_absolute = 1, x->absolute = (protobuf_c_boolean)v;
			break;
		case 2:
			x->has_deadline_sec = 1, x->deadline_sec = v;
			break;
		case 3:
			if (v > UINT32_MAX)
				return false;
			x->has_deadline_nsec = 1, x->deadline_nsec = (uint32_t)v;
			break;
		case 6:
			if (v > 1)
				return false;
			x->has_signal_pending = 1, x->signal_pending = (protobuf_c_boolean)v;
			break;
		default:
			return false; /* reserved or unknown */
		}
	}
	return true;
}

/*
 * The entry of [p, p + len) as ptimers_entry__unpack() would give it,
 * for the plain case only: each field once, as protobuf-c writes it, no
 * field of another kind, no image header (record 0's).  Anything else is
 * false, and the record goes to protobuf-c, which decides.  A million
 * entries decode in about a tenth of protobuf-c's time.  x: the entry's
 * ptimers part, when it has one.
 */
bool pt_image_fast_entry(const uint8_t *p, size_t len, PtimersEntry *e, PtimersTimer *x)
{
	const uint8_t *end = p + len;
	uint32_t seen = 0;
	ptimers_entry__init(e);
	while (p < end) {
		uint64_t tag, v;
		if (!varint(&p, end, &tag))
			return false;
		uint64_t f = tag >> 3;
		if (f == 1000) {
			if ((tag & 7) != 2 || e->ptimers || !varint(&p, end, &v) || v > (uint64_t)(end - p) ||
			    !fast_timer(p, p + v, x))
				return false;
			e->ptimers = x;
			p += v;
			continue;
		}
		if (f < 1 || f > 11 || (tag & 7) != 0 || (seen >> f & 1) || !varint(&p, end, &v))
			return false;
		seen |= 1u << f;
		bool u32 = f <= 4 || f == 6;
		if (u32 && v > UINT32_MAX)
			return false;
		switch (f) {
		case 1: e->it_id = (uint32_t)v; break;
		case 2: e->clock_id = (uint32_t)v; break;
		case 3: e->si_signo = (uint32_t)v; break;
		case 4: e->it_sigev_notify = (uint32_t)v; break;
		case 5: e->sival_ptr = v; break;
		case 6: e->overrun = (uint32_t)v; break;
		case 7: e->isec = v; break;
		case 8: e->insec = v; break;
		case 9: e->vsec = v; break;
		case 10: e->vnsec = v; break;
		case 11:
			/* int32: as written, a positive one or a negative one
			 * sign-extended to 64 bits. */
			if (v > INT32_MAX && v < (uint64_t)INT32_MIN)
				return false;
			e->has_notify_thread_id = 1;
			e->notify_thread_id = (int32_t)(uint32_t)v;
			break;
		}
	}
	return (seen & 0x7fe) == 0x7fe; /* the required ones, 1 to 10 */
}

/* Decoding a run of records, [lo, hi) starting at byte at: one thread's
 * share of a large image. */
struct decode_job {
	const uint8_t *buf;
	size_t lo, hi, at;
	struct pt_image_timer *t;
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
	struct why jo = { j->why, sizeof(j->why) };
	struct arena arena_buf, *arena = &arena_buf; /* one record's decoding at a time */
	size_t at = j->at;
	for (size_t rec = j->lo; rec < j->hi; rec++) {
		uint32_t rl;
		memcpy(&rl, j->buf + at, 4); /* checked by the caller's first pass */
		PtimersEntry fe, *e = &fe;
		PtimersTimer fx;
		if (!pt_image_fast_entry(j->buf + at + 4, rl, &fe, &fx)) {
			arena->used = 0;
			ProtobufCAllocator alloc = { arena_alloc, arena_free, arena };
			e = ptimers_entry__unpack(&alloc, rl, j->buf + at + 4);
		}
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

/* Where the items of an image live: n exactly; when large, on huge pages
 * where the system allows them, prefaulted (a million items: 56 MB, 28
 * faults instead of 13,700; the restore's decoding took 86-94 ms instead
 * of 110-137 here). */
static struct pt_image_timer *items_alloc(size_t n, size_t *mapped)
{
	size_t bytes = (n ? n : 1) * sizeof(struct pt_image_timer);
	*mapped = 0;
	if (bytes >= (1u << 20)) {
		void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m != MAP_FAILED) {
			(void)madvise(m, bytes, MADV_HUGEPAGE);
			(void)madvise(m, bytes, MADV_POPULATE_WRITE);
			*mapped = bytes;
			return m;
		}
	}
	return malloc(bytes);
}

/* Decode and check a whole image; nothing of the process is touched. */
static int parse_image(const uint8_t *buf, size_t len, struct pt_image *img, const struct why *o)
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
	/* No timers: ptimers marks such an image with one empty record after
	 * the magic, so that an image cut to its magic is told from it.  (A
	 * record of CRIU's is never empty: its entry has required fields.) */
	if (len == 8)
		return refuse(o, EINVAL, "truncated: the header alone (an image of no timers, as "
			      "ptimers writes one, has an empty record after it)");
	if (len == 12 && !memcmp(buf + 8, "\0\0\0\0", 4)) {
		img->has_header = true;
		img->version = IMAGE_VERSION;
		return 0;
	}
	/* Then the lengths alone: every record within the image and of a
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
			img->version = h->version;
			img->crc = h->crc;
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

void pt_image_free(struct pt_image *img)
{
	if (img->t_mapped)
		munmap(img->t, img->t_mapped);
	else
		free(img->t);
	img->t = NULL;
	img->t_mapped = 0;
	img->n = 0;
}

int pt_image_decode(const uint8_t *buf, size_t len, struct pt_image *img, char *why, size_t why_size)
{
	struct why w = { why, why_size };
	if (parse_image(buf, len, img, &w) != 0) {
		int e = errno;
		pt_image_free(img);
		errno = e;
		return -1;
	}
	return 0;
}

void pt_image_summarize(const struct pt_image *img, struct pt_image_summary *sum)
{
	memset(sum, 0, sizeof(*sum));
	sum->count = img->n;
	sum->has_header = img->has_header;
	sum->source = img->source;
	if (img->n) {
		sum->min_id = img->t[0].id;
		sum->max_id = img->t[img->n - 1].id;
	}
	for (size_t i = 0; i < img->n; i++) {
		const struct pt_image_timer *t = &img->t[i];
		clockid_t c = t->clockid;
		sum->threads += t->notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID) ||
				(c < 0 && (c & CPUCLOCK_PERTHREAD_MASK) && CPUCLOCK_PID(c));
		sum->thread_notify += t->notify == SIGEV_THREAD;
		if ((t->notify & ~SIGEV_THREAD_ID) == SIGEV_SIGNAL)
			sum->signals |= 1ull << (t->signo - 1);
	}
}

int pt_image_check(const uint8_t *buf, size_t len, struct pt_image_summary *sum, char *why,
		   size_t why_size)
{
	struct pt_image img;
	if (pt_image_decode(buf, len, &img, why, why_size) != 0)
		return -1;
	if (sum)
		pt_image_summarize(&img, sum);
	pt_image_free(&img);
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

int pt_image_load(int fd, struct pt_image *img, char *why, size_t why_size)
{
	struct why w = { why, why_size };
	uint8_t *buf = NULL;
	const uint8_t *in;
	size_t len = 0, map_len = 0;
	void *map = NULL;
	memset(img, 0, sizeof(*img));
	if (map_file(fd, &in, &len, &map, &map_len) != 0) {
		if (read_all(fd, &buf, &len, &w) != 0)
			return -1;
		in = buf;
	}
	int r = pt_image_decode(in, len, img, why, why_size);
	int e = errno;
	if (map)
		munmap(map, map_len);
	free(buf);
	errno = e;
	return r;
}
