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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <protobuf-c/protobuf-c.h>

#include "cpu.h"
#include "ids.h"
#include "image.h"
#include "image.pb-c.h"
#include "ptimers.h"
#include "rcu.h"
#include "sys.h"
#include "timer.h"
#include "uaccess.h"

#define IMG_COMMON 0x54564319u
#define IMG_POSIX_TIMERS 0x52603957u
#define IMAGE_VERSION 1
#define MAX_RECORD 1024u              /* an entry is well under 200 bytes */
#define MAX_IMAGE (1ull << 31)        /* 2 GiB: some ten million timers */
#define ARENA 8192                    /* decoding one record needs far less */
#define SOURCE_ENGINE 1
#define SOURCE_KERNEL 2
#define PR_TIMER_CREATE_RESTORE_IDS 77
#define CPUCLOCK_PERTHREAD_MASK 4
#define CPUCLOCK_PID(c) ((pid_t)(~(c) >> 3))
#define MAKE_PROCESS_CPUCLOCK(pid) ((clockid_t)((unsigned)~(pid) << 3) | 2)
#define MAKE_THREAD_CPUCLOCK(tid) (MAKE_PROCESS_CPUCLOCK(tid) | 4)

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

__attribute__((constructor(106))) static void crc_init(void)
{
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

static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
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

/* One entry, decoded and checked. */
struct img_timer {
	int id;
	clockid_t clock;
	int notify, signo;
	union sigval value;
	int overrun;
	int64_t interval, remaining;
	pid_t tid;            /* SIGEV_THREAD_ID's thread, as saved */
	bool absolute;
	int64_t deadline;
	int cpu;              /* 0, 1 the process's CPU clock, 2 a thread's */
	pid_t cpu_tid;
	bool pending;
};

struct image {
	struct img_timer *t;
	size_t n;
	bool has_header;
	int id_policy;        /* -1: not given */
	int64_t next_id;      /* -1: not given */
	int source;
};

static void image_free(struct image *img)
{
	free(img->t);
	img->t = NULL;
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
	size_t n = ptimers_entry__get_packed_size(e);
	if (out_room(o, 4 + n) != 0)
		return -ENOMEM;
	put_u32(o, (uint32_t)n);
	ptimers_entry__pack(e, o->buf + o->len);
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
	if (s->cpu && s->clock < 0) { /* CLOCK_PROCESS_CPUTIME_ID needs no more */
		x->has_cpu_clock = 1;
		x->cpu_clock = (uint32_t)s->cpu;
		if (s->cpu == 2) {
			x->has_cpu_tid = 1;
			x->cpu_tid = s->cpu_tid;
		}
	}
	if (s->pending)
		x->has_signal_pending = x->signal_pending = 1;
	e->ptimers = x;
}

/* Write an image of these timers to fd: the first entry carries the
 * header; its checksum covers the first entry without it and every later
 * record as written. */
static int write_image(int fd, const struct img_timer *t, size_t n, int source,
		       const struct ptimer_restore_opts *o)
{
	struct out first = { 0 }, rest = { 0 }, head = { 0 };
	PtimersEntry e;
	PtimersTimer x;
	PtimersImage h;
	int err = 0;

	for (size_t i = 1; i < n && !err; i++) {
		to_entry(&t[i], &e, &x, true);
		err = put_record(&rest, &e);
	}
	ptimers_image__init(&h);
	h.version = IMAGE_VERSION;
	h.count = (uint32_t)n;
	h.crc = 0;
	h.has_id_policy = h.has_next_id = h.has_source = 1;
	h.id_policy = (uint32_t)pt_ids_get_policy();
	h.next_id = pt_ids_counter();
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
	for (int p = 0; p < 2 && !err; p++) {
		for (size_t done = 0; done < parts[p]->len;) {
			ssize_t w = pt_sys_write(fd, parts[p]->buf + done, parts[p]->len - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				err = w < 0 ? -errno : -EIO;
				break;
			}
			done += (size_t)w;
		}
	}
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
		.deadline = s->deadline, .cpu = s->cpu, .cpu_tid = s->cpu_tid,
		.pending = s->signal_pending,
	};
	if (s->notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID))
		t.tid = s->target;
	/* A CPU clock, as the kernel names it: a thread's explicitly (its
	 * thread is mapped at restore), the process's as it was given. */
	if (s->cpu == 2 || (s->cpu == 1 && s->clockid < 0))
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
			if (pt_timer_save(x, id, &s)) {
				if (n == cap) {
					struct img_timer *nt = realloc(t, 2 * cap * sizeof(*t));
					if (!nt) {
						pt_rcu_read_unlock();
						free(t);
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
	int r = write_image(fd, t, n, SOURCE_ENGINE, opts);
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
static int take_entry(const PtimersEntry *e, size_t rec, struct img_timer *t,
		      const struct ptimer_restore_opts *o)
{
	memset(t, 0, sizeof(*t));
	if (e->it_id > INT_MAX)
		return refuse(o, EINVAL, "entry %zu: timer ID %u is outside 0..%d", rec, e->it_id, INT_MAX);
	t->id = (int)e->it_id;
	t->clock = (clockid_t)e->clock_id;
	if (!clock_plausible(t->clock))
		return refuse(o, EINVAL, "entry %zu (timer %d): clock %d cannot drive a timer", rec,
			      t->id, (int)t->clock);
	t->notify = (int)e->it_sigev_notify;
	switch (t->notify) {
	case SIGEV_SIGNAL | SIGEV_THREAD_ID:
		if (!e->has_notify_thread_id || e->notify_thread_id <= 0)
			return refuse(o, EINVAL, "entry %zu (timer %d): SIGEV_THREAD_ID without a thread",
				      rec, t->id);
		t->tid = e->notify_thread_id;
		/* fall through */
	case SIGEV_SIGNAL:
		if (e->si_signo < 1 || e->si_signo > 64)
			return refuse(o, EINVAL, "entry %zu (timer %d): signal %u is not 1..64", rec,
				      t->id, e->si_signo);
		break;
	case SIGEV_NONE:
	case SIGEV_THREAD:
		break;
	default:
		return refuse(o, EINVAL, "entry %zu (timer %d): notification %d is not a SIGEV_* kind",
			      rec, t->id, t->notify);
	}
	t->signo = (int)(e->si_signo <= 255 ? e->si_signo : 0);
	t->value.sival_ptr = (void *)(uintptr_t)e->sival_ptr;
	t->overrun = e->overrun > INT_MAX ? INT_MAX : (int)e->overrun;
	if (e->insec >= PT_NSEC_PER_SEC || e->vnsec >= PT_NSEC_PER_SEC ||
	    e->isec >= (uint64_t)(PT_NEVER / PT_NSEC_PER_SEC) || e->vsec >= (uint64_t)(PT_NEVER / PT_NSEC_PER_SEC))
		return refuse(o, EINVAL, "entry %zu (timer %d): a time out of range", rec, t->id);
	t->interval = (int64_t)e->isec * PT_NSEC_PER_SEC + (int64_t)e->insec;
	t->remaining = (int64_t)e->vsec * PT_NSEC_PER_SEC + (int64_t)e->vnsec;
	const PtimersTimer *x = e->ptimers;
	if (x) {
		if (x->has_absolute && x->absolute) {
			if (!x->has_deadline_sec || x->deadline_nsec >= PT_NSEC_PER_SEC ||
			    x->deadline_sec >= (uint64_t)(PT_NEVER / PT_NSEC_PER_SEC))
				return refuse(o, EINVAL, "entry %zu (timer %d): a bad deadline", rec, t->id);
			t->absolute = true;
			t->deadline = (int64_t)x->deadline_sec * PT_NSEC_PER_SEC + x->deadline_nsec;
		}
		if (x->has_cpu_clock) {
			if (x->cpu_clock < 1 || x->cpu_clock > 2 || t->clock >= 0 ||
			    (x->cpu_clock == 2 && (!x->has_cpu_tid || x->cpu_tid <= 0)))
				return refuse(o, EINVAL, "entry %zu (timer %d): a bad CPU clock", rec, t->id);
			t->cpu = (int)x->cpu_clock;
			t->cpu_tid = x->cpu_tid;
		}
		t->pending = x->has_signal_pending && x->signal_pending;
	}
	if (t->clock < 0 && !t->cpu) {
		/* CRIU's image, a CPU clock: whose is in the clock ID. */
		t->cpu = (t->clock & CPUCLOCK_PERTHREAD_MASK) ? 2 : 1;
		t->cpu_tid = t->cpu == 2 ? CPUCLOCK_PID(t->clock) : 0;
		if (t->cpu == 2 && t->cpu_tid == 0)
			return refuse(o, EINVAL, "entry %zu (timer %d): a thread's CPU clock without the "
				      "thread", rec, t->id);
	}
	return 0;
}

static int cmp_timer(const void *a, const void *b)
{
	int x = ((const struct img_timer *)a)->id, y = ((const struct img_timer *)b)->id;
	return x < y ? -1 : x > y;
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
	/* A record is at least 24 bytes (a length and ten required fields):
	 * the count of entries, and the memory for them, follow the size. */
	size_t cap = (len - 8) / 24 + 1;
	img->t = malloc(cap * sizeof(*img->t));
	if (!img->t)
		return refuse(o, ENOMEM, "no memory for the image's %zu bytes", len);
	uint32_t want_crc = 0, count = 0, crc = 0;
	size_t at = 8, rest_at = 0, plain_len = 0, ptimers_entries = 0;
	uint8_t plain[MAX_RECORD];
	PtimersImage header_copy;
	const PtimersImage *header = NULL;
	while (at < len) {
		uint32_t rl;
		if (img->n == cap)
			return refuse(o, EINVAL, "entry %zu: more entries than %zu bytes can hold", img->n, len);
		if (len - at < 4)
			return refuse(o, EINVAL, "truncated: %zu bytes after entry %zu", len - at, img->n);
		memcpy(&rl, buf + at, 4);
		if (rl > MAX_RECORD)
			return refuse(o, EINVAL, "entry %zu claims %u bytes (an entry has at most %u)",
				      img->n, rl, MAX_RECORD);
		if (rl > len - at - 4)
			return refuse(o, EINVAL, "truncated: entry %zu claims %u bytes, %zu are left",
				      img->n, rl, len - at - 4);
		struct arena arena = { .used = 0 };
		ProtobufCAllocator alloc = { arena_alloc, arena_free, &arena };
		PtimersEntry *e = ptimers_entry__unpack(&alloc, rl, buf + at + 4);
		if (!e)
			return refuse(o, EINVAL, "entry %zu cannot be decoded (corrupted?)", img->n);
		/* Fields no version of the image has: corruption (a flipped
		 * tag) rather than something to skip. */
		if (e->base.n_unknown_fields || (e->ptimers && e->ptimers->base.n_unknown_fields) ||
		    (e->image && e->image->base.n_unknown_fields))
			return refuse(o, EINVAL, "entry %zu has fields no POSIX timers image has (corrupted?)",
				      img->n);
		if (e->ptimers)
			ptimers_entries++;
		if (e->image) {
			if (img->n != 0)
				return refuse(o, EINVAL, "entry %zu carries the image's header: only the first may",
					      img->n);
			const PtimersImage *h = e->image;
			if (h->version != IMAGE_VERSION)
				return refuse(o, EINVAL, "image version %u: this ptimers reads version %d",
					      h->version, IMAGE_VERSION);
			img->has_header = true;
			count = h->count;
			want_crc = h->crc;
			if (h->has_id_policy) {
				if (h->id_policy > 1)
					return refuse(o, EINVAL, "the image's ID policy %u is unknown",
						      h->id_policy);
				img->id_policy = (int)h->id_policy;
			}
			if (h->has_next_id) {
				if (h->next_id > INT_MAX)
					return refuse(o, EINVAL, "the image's next ID %u is outside 0..%d",
						      h->next_id, INT_MAX);
				img->next_id = h->next_id;
			}
			img->source = h->has_source ? (int)h->source : 0;
			/* The checksum starts with this entry as it would be
			 * without the header. */
			e->image = NULL;
			size_t pl = ptimers_entry__get_packed_size(e);
			if (pl > sizeof(plain))
				return refuse(o, EINVAL, "entry 0 is too long");
			ptimers_entry__pack(e, plain);
			plain_len = pl;
			header_copy = *h; /* h is in this record's arena */
			header_copy.base.n_unknown_fields = 0;
			header_copy.base.unknown_fields = NULL;
			header = &header_copy;
			rest_at = at + 4 + rl;
		}
		int r = take_entry(e, img->n, &img->t[img->n], o);
		if (r)
			return r;
		img->n++;
		at += 4 + rl;
	}
	if (!img->has_header && ptimers_entries)
		return refuse(o, EINVAL, "the image has ptimers' entries but not its header (corrupted?)");
	if (img->has_header) {
		if (count != img->n)
			return refuse(o, EINVAL, "the image has %zu entries, its header says %u (truncated?)",
				      img->n, count);
		crc = image_crc(plain, plain_len, buf + rest_at, len - rest_at, header);
		if (crc != want_crc)
			return refuse(o, EINVAL, "the image's checksum does not match (%#x, expected %#x): "
				      "corrupted", crc, want_crc);
	}
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
			sum->threads += img.t[i].notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID) || img.t[i].cpu == 2;
			sum->thread_notify += img.t[i].notify == SIGEV_THREAD;
			if ((img.t[i].notify & ~SIGEV_THREAD_ID) == SIGEV_SIGNAL)
				sum->signals |= 1ull << (img.t[i].signo - 1);
		}
	}
	image_free(&img);
	return 0;
}

static int load_image(int fd, struct image *img, const struct ptimer_restore_opts *o)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	if (read_all(fd, &buf, &len, o) != 0)
		return -1;
	int r = parse_image(buf, len, img, o);
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

/* The clock of this process a saved one stands for. */
static int map_clock(const struct img_timer *t, clockid_t *clock, const struct ptimer_restore_opts *o)
{
	if (!t->cpu) {
		*clock = t->clock;
		return 0;
	}
	if (t->cpu == 1) {
		/* This process's, named as the saved one was. */
		*clock = t->clock < 0 ? MAKE_PROCESS_CPUCLOCK(pt_pid) : CLOCK_PROCESS_CPUTIME_ID;
		return 0;
	}
	pid_t live;
	if (map_thread(t->cpu_tid, &live, t->id, o) != 0)
		return -1;
	*clock = MAKE_THREAD_CPUCLOCK(live);
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
	struct pt_restore_item *it = calloc(img.n ? img.n : 1, sizeof(*it));
	if (!it) {
		image_free(&img);
		return refuse(opts, ENOMEM, "no memory for %zu timers", img.n);
	}
	int r = 0;
	for (size_t i = 0; i < img.n && !r; i++) {
		const struct img_timer *t = &img.t[i];
		struct pt_restore_item *x = &it[i];
		x->id = t->id;
		x->notify = t->notify;
		x->signo = t->signo;
		x->value = t->value;
		x->interval_ns = t->interval;
		x->overrun = t->overrun;
		x->armed = t->remaining > 0 || t->absolute;
		x->absolute = t->absolute;
		x->value_ns = t->absolute ? t->deadline : t->remaining;
		r = map_clock(t, &x->clockid, opts);
		if (!r && t->notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID))
			r = map_thread(t->tid, &x->target, t->id, opts);
		if (!r && t->notify == SIGEV_THREAD) {
			if (!opts->thread_notify)
				r = refuse(opts, EINVAL, "timer %d is SIGEV_THREAD: its function is not in "
					   "the image (restore it with a thread_notify callback)", t->id);
			else if (opts->thread_notify(opts->arg, t->id, t->value, &x->thread_fn,
						     &x->thread_attr) != 0 || !x->thread_fn)
				r = refuse(opts, EINVAL, "timer %d is SIGEV_THREAD: no function given for it",
					   t->id);
		}
	}
	/* The ID policy is the process's: taken from the image only while
	 * the process has no timers (it cannot change under live ones). */
	if (!r && img.id_policy >= 0 && img.id_policy != pt_ids_get_policy()) {
		if (pt_ids_set_policy(img.id_policy) != 0)
			r = refuse(opts, EBUSY, "the image's ID policy is %s, this process's %s, and it has "
				   "timers", img.id_policy ? "dense" : "linux", img.id_policy ? "linux" : "dense");
	}
	if (!r) {
		size_t bad = 0;
		int e = pt_timer_restore(it, img.n, &bad);
		if (e) {
			const char *why = e == -EBUSY ? "its ID is in use"
					  : e == -EINVAL ? "its clock, notification or thread cannot be had here"
					  : strerror(-e);
			r = refuse(opts, -e, "timer %d cannot be restored: %s; nothing was restored",
				   bad < img.n ? it[bad].id : -1, why);
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
	free(it);
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
		if (t[i].clock < 0) {
			t[i].cpu = (t[i].clock & CPUCLOCK_PERTHREAD_MASK) ? 2 : 1;
			t[i].cpu_tid = t[i].cpu == 2 ? CPUCLOCK_PID(t[i].clock) : 0;
			if (t[i].cpu == 2 && !t[i].cpu_tid) {
				/* CLOCK_THREAD_CPUTIME_ID: the creating thread's, which
				 * /proc does not name; the calling thread stands in. */
				t[i].cpu_tid = pt_gettid();
				t[i].clock = MAKE_THREAD_CPUCLOCK(t[i].cpu_tid);
			}
		}
	}
	qsort(t, n, sizeof(*t), cmp_timer);
	int r = write_image(fd, t, n, SOURCE_KERNEL, opts);
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
		const struct img_timer *t = &img->t[i];
		memset(&k[i], 0, sizeof(k[i]));
		k[i].id = t->id;
		if (t->notify == SIGEV_THREAD)
			return refuse(o, EINVAL, "timer %d is SIGEV_THREAD: kernel timers cannot run a "
				      "function (restore it on the engine)", t->id);
		if (map_clock(t, &k[i].clock, o) != 0)
			return -1;
		k[i].sev.sigev_notify = t->notify;
		k[i].sev.sigev_signo = t->signo;
		k[i].sev.sigev_value = t->value;
		if (t->notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID) &&
		    map_thread(t->tid, &k[i].sev._sigev_un._tid, t->id, o) != 0)
			return -1;
		k[i].its.it_interval = pt_ns_to_ts(t->interval);
		if (t->absolute) {
			k[i].its.it_value = pt_ns_to_ts(t->deadline);
			k[i].flags = TIMER_ABSTIME;
		} else {
			k[i].its.it_value = pt_ns_to_ts(t->remaining);
		}
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
