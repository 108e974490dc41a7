/* SPDX-License-Identifier: MIT */
/*
 * The outside reader (reader.h): another process's engine, read from its
 * memory with process_vm_readv() as the published layout (layout.h) says.
 *
 * Timers are read chunk by chunk, each in three reads: every timer's
 * sequence word, then the chunk's timers in one piece, then the words
 * again.  A timer whose word showed no open write window and counted the
 * same windows both times was copied whole between two moments it was not
 * being changed (lock.h; a holder that only holds it does not count); one
 * that changed is read again by itself.  A timer whose window stays open
 * (a thread stopped in the few instructions of a change) is counted and
 * left out (a checkpoint refuses then).  No step waits for the process, and the process never
 * waits for the reader.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdarg.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "lock.h"
#include "private.h"
#include "reader.h"

#define ATTEMPTS 8           /* walks of a chunk list that changed under us */
#define RETRIES 200          /* reads of one timer being changed */
#define MAX_CHUNKS (1u << 24)
#define NSEC 1000000000LL

static int say(char *why, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int say(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (why && size)
		vsnprintf(why, size, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- the process's memory ---- */

/* All of [addr, addr + len) or -errno (-EFAULT when only a part was). */
static int peek(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EFAULT;
}

/* ---- why the kernel refused ---- */

static long ptrace_scope(void)
{
	FILE *f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
	long v = -1;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static bool have_cap_sys_ptrace(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) != 0)
		return false;
	return d[CAP_SYS_PTRACE / 32].effective >> (CAP_SYS_PTRACE % 32) & 1;
}

long pt_remote_status(pid_t pid, const char *field, long dflt)
{
	char path[64], line[256];
	size_t len = strlen(field);
	long v = dflt;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, field, len) && line[len] == ':' && sscanf(line + len + 1, "%ld", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

/* The rule of the kernel's ptrace access check that refused. */
static int refused(pid_t pid, char *why, size_t size)
{
	long uid = pt_remote_status(pid, "Uid", -1), scope = ptrace_scope();
	bool cap = have_cap_sys_ptrace();
	errno = EACCES;
	if (uid >= 0 && uid != (long)geteuid() && !cap)
		return say(why, size, "process %d belongs to uid %ld: only its own user, or root, may read "
			   "it (the kernel's ptrace access check)", (int)pid, uid);
	if (scope == 3)
		return say(why, size, "the kernel forbids reading another process's memory to everyone "
			   "(kernel.yama.ptrace_scope = 3)");
	if (scope == 2 && !cap)
		return say(why, size, "the kernel lets only a process with CAP_SYS_PTRACE read another's "
			   "memory (kernel.yama.ptrace_scope = 2)");
	if (scope == 1 && !cap)
		return say(why, size, "the kernel lets a process read only its descendants' memory "
			   "(kernel.yama.ptrace_scope = 1); run as root, or from the process's parent");
	return say(why, size, "the kernel's ptrace access check refused to read process %d (it may "
		   "not be dumpable: a set-user-ID program, or one that said so with prctl)", (int)pid);
}

static int read_error(pid_t pid, int err, char *why, size_t size)
{
	if (err == -ESRCH) {
		errno = ESRCH;
		return say(why, size, "no process %d (it has ended)", (int)pid);
	}
	if (err == -EPERM || err == -EACCES)
		return refused(pid, why, size);
	errno = EIO;
	return say(why, size, "reading process %d: %s", (int)pid, strerror(-err));
}

/* ---- finding the root ---- */

/* Candidates: shared anonymous pages of the root's size. */
static int roots_in_maps(pid_t pid, uint64_t *addr, int max, int *n, char *why, size_t size)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "re");
	*n = 0;
	if (!f) {
		if (errno == ENOENT) {
			errno = ESRCH;
			return say(why, size, "no process %d", (int)pid);
		}
		if (errno == EACCES || errno == EPERM)
			return refused(pid, why, size);
		return say(why, size, "cannot read %s: %s", path, strerror(errno));
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || hi - lo != PT_ROOT_MAP_SIZE ||
		    perms[3] != 's' || !strstr(line, "/dev/zero (deleted)"))
			continue;
		if (*n < max)
			addr[(*n)++] = lo;
	}
	fclose(f);
	return 0;
}

int pt_remote_open(pid_t pid, struct pt_remote *r, char *why, size_t why_size)
{
	uint64_t cand[16];
	int n, other_version = 0;
	memset(r, 0, sizeof(*r));
	r->pid = pid;
	if (roots_in_maps(pid, cand, 16, &n, why, why_size) != 0)
		return -1;
	for (int i = 0; i < n; i++) {
		struct pt_root root;
		int err = peek(pid, cand[i], &root, sizeof(root));
		if (err == -EPERM || err == -EACCES || err == -ESRCH)
			return read_error(pid, err, why, why_size);
		if (err || root.magic != PT_ROOT_MAGIC || root.self != cand[i])
			continue;
		if (root.version != PT_LAYOUT_VERSION) {
			other_version = (int)root.version;
			continue;
		}
		if (root.pid != pid || root.size != sizeof(root))
			continue; /* a fork child's copy of its parent's, not yet gone */
		if (r->nroots++ == 0) {
			r->root = root;
			r->root_addr = cand[i];
		}
	}
	if (r->nroots) {
		uint64_t c = 0;
		int err = peek(pid, r->root.cookie_at, &c, sizeof(c));
		if (err == -ESRCH)
			return read_error(pid, err, why, why_size);
		if (err || c != r->root.cookie) {
			/* The root page is back, the rest not yet (CRIU restores
			 * it), or it is not where the root says. */
			errno = EAGAIN;
			return say(why, why_size, "process %d's engine is not in place yet (a restore under "
				   "way?): try again", (int)pid);
		}
		return 0;
	}
	if (other_version) {
		errno = EPROTO;
		return say(why, why_size, "process %d runs an engine of layout version %d; this ptimers "
			   "reads version %d", (int)pid, other_version, PT_LAYOUT_VERSION);
	}
	errno = ENOENT;
	return say(why, why_size, "process %d is not on the ptimers engine (it has made no timer on it)",
		   (int)pid);
}

/* ---- clocks, as the process reads them ---- */

/* The target's time namespace offsets, less the reader's own: what to add
 * to the reader's CLOCK_MONOTONIC and CLOCK_BOOTTIME. */
static void timens_offsets(pid_t pid, int64_t *mono, int64_t *boot)
{
	int64_t m[2] = { 0, 0 }, b[2] = { 0, 0 };
	for (int k = 0; k < 2; k++) {
		char path[64], name[32];
		long long sec, nsec;
		snprintf(path, sizeof(path), k ? "/proc/%d/timens_offsets" : "/proc/self/timens_offsets",
			 (int)pid);
		FILE *f = fopen(path, "re");
		while (f && fscanf(f, "%31s %lld %lld", name, &sec, &nsec) == 3) {
			if (!strcmp(name, "monotonic"))
				m[k] = sec * NSEC + nsec;
			else if (!strcmp(name, "boottime"))
				b[k] = sec * NSEC + nsec;
		}
		if (f)
			fclose(f);
	}
	*mono = m[1] - m[0];
	*boot = b[1] - b[0];
}

static int64_t now_of(clockid_t c)
{
	struct timespec ts;
	return clock_gettime(c, &ts) == 0 ? ts.tv_sec * NSEC + ts.tv_nsec : -1;
}

/* A thread's CPU time: the kernel gives another process's thread clocks
 * to no one, and /proc does (schedstat: its run time, as CPUCLOCK_SCHED;
 * stat: user and system ticks, for the other two). */
static int64_t thread_cpu(pid_t pid, pid_t tid, int which)
{
	char path[96], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/%s", (int)pid, (int)tid,
		 which == CPUCLOCK_SCHED ? "schedstat" : "stat");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (which == CPUCLOCK_SCHED)
		return strtoll(buf, NULL, 10);
	const char *p = strrchr(buf, ')'); /* past the name */
	unsigned long long ut = 0, st = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	long hz = sysconf(_SC_CLK_TCK);
	unsigned long long ticks = which == 1 ? ut : ut + st; /* VIRT: user; PROF: both */
	return (int64_t)(ticks * (NSEC / (hz > 0 ? hz : 100)));
}

struct clocks {
	pid_t pid;
	int64_t mono_off, boot_off;
	int64_t *now;        /* per base, INT64_MIN until read */
	int64_t *shift;      /* per base, the engine's shift (base.h) */
	clockid_t *cpu;      /* per CPU base, its clock, 0: not read */
};

static clockid_t cpu_base_clock(struct pt_remote *r, struct clocks *c, uint16_t b, int *err)
{
	if (c->cpu[b])
		return c->cpu[b];
	uint64_t base = 0;
	clockid_t clock = 0;
	*err = peek(r->pid, r->root.base_table + (uint64_t)b * sizeof(uint64_t), &base, sizeof(base));
	if (!*err && base)
		*err = peek(r->pid, base + r->root.cpu_clock_off, &clock, sizeof(clock));
	c->cpu[b] = clock;
	return clock;
}

/* Base b's clock now, as the process reads it (-1: a thread gone). */
static int64_t base_now(struct pt_remote *r, struct clocks *c, uint16_t b)
{
	if (c->now[b] != INT64_MIN)
		return c->now[b];
	int64_t now = -1;
	switch (b) {
	case 0: now = now_of(CLOCK_MONOTONIC) + c->mono_off; break;
	case 1: now = now_of(CLOCK_REALTIME); break;
	case 2: now = now_of(CLOCK_BOOTTIME) + c->boot_off; break;
	case 3: now = now_of(CLOCK_TAI); break;
	default: {
		int err = 0;
		clockid_t k = cpu_base_clock(r, c, b, &err);
		if (err || !k)
			break;
		if (k & CPUCLOCK_PERTHREAD_MASK)
			now = thread_cpu(r->pid, CPUCLOCK_PID(k), CPUCLOCK_WHICH(k));
		else
			now = now_of(MAKE_PROCESS_CPUCLOCK(r->pid, CPUCLOCK_WHICH(k)));
	}
	}
	if (now >= 0)
		now += c->shift[b]; /* the engine's clock after a restore (base.h) */
	c->now[b] = now;
	return now;
}

/* ---- the timers ---- */

struct chunk_ref {
	uint64_t addr;
	unsigned bump;
};

/* The chunk list, walked whole; -EAGAIN when it changed under the walk. */
static int chunk_list(struct pt_remote *r, struct chunk_ref **out, size_t *n)
{
	const struct pt_root *rt = &r->root;
	uint64_t c = 0;
	size_t cap = 64, k = 0;
	struct chunk_ref *list = malloc(cap * sizeof(*list));
	uint8_t *hdr = malloc(rt->chunk_header);
	int err = list && hdr ? peek(r->pid, rt->chunks, &c, sizeof(c)) : -ENOMEM;
	while (!err && c) {
		if (k == MAX_CHUNKS || (c & (rt->chunk_size - 1))) {
			err = -EAGAIN;
			break;
		}
		err = peek(r->pid, c, hdr, rt->chunk_header);
		if (err == -EFAULT) {
			err = -EAGAIN; /* given back meanwhile */
			break;
		}
		uint32_t magic;
		uint16_t bump;
		memcpy(&magic, hdr + rt->chunk_magic_off, sizeof(magic));
		memcpy(&bump, hdr + rt->chunk_bump_off, sizeof(bump));
		if (err || magic != PT_CHUNK_MAGIC ||
		    (size_t)bump * rt->timer_size > rt->chunk_size - rt->chunk_header) {
			err = err ? err : -EAGAIN;
			break;
		}
		if (k == cap) {
			struct chunk_ref *l = realloc(list, 2 * cap * sizeof(*list));
			if (!l) {
				err = -ENOMEM;
				break;
			}
			list = l;
			cap *= 2;
		}
		list[k++] = (struct chunk_ref){ c, bump };
		memcpy(&c, hdr + rt->chunk_next_off, sizeof(c));
	}
	free(hdr);
	if (err) {
		free(list);
		return err;
	}
	*out = list;
	*n = k;
	return 0;
}

/* A timer's fields from its copied bytes (the same fields, the same way,
 * as pt_timer_read() inside the process). */
static void fields_of(const void *bytes, struct pt_timer_fields *f)
{
	struct pt_timer t;
	memcpy(&t, bytes, sizeof(t));
	f->valid = t.valid;
	f->id = t.id;
	f->gen = t.gen;
	f->status = t.status;
	f->flags = t.flags;
	f->notify = t.notify;
	f->signo = t.signo;
	f->clockid = t.clockid;
	f->base = t.base;
	f->cbase = t.cbase;
	f->expires = t.expires;
	f->interval = t.interval;
	f->overrun_last = t.overrun_last;
	f->value = t.value;
	f->target = t.notify != SIGEV_THREAD ? t.target : 0;
}

#define SEQ_OFF offsetof(struct pt_timer, lock)

/* One timer read by itself until it holds still: 1 consistent, 0 left
 * out (held through every try: a thread stopped mid-change), -errno. */
/* A sequence word read at two moments: nothing changed in between. */
static bool steady(uint32_t s1, uint32_t s2)
{
	return !(s1 & PT_SEQ_WRITING) && (s1 & ~PT_SEQ_HELD) == (s2 & ~PT_SEQ_HELD);
}

static int read_one(pid_t pid, uint64_t addr, void *bytes, size_t size)
{
	for (int i = 0; i < RETRIES; i++) {
		uint32_t s1, s2 = 0;
		int err = peek(pid, addr + SEQ_OFF, &s1, sizeof(s1));
		if (!err && !(s1 & PT_SEQ_WRITING))
			err = peek(pid, addr, bytes, size);
		if (!err && !(s1 & PT_SEQ_WRITING))
			err = peek(pid, addr + SEQ_OFF, &s2, sizeof(s2));
		if (err)
			return err;
		if (steady(s1, s2))
			return 1;
		if (i > 10)
			sched_yield();
	}
	return 0;
}

/* The sequence of each of n timers of `size` bytes from first, read
 * together (scratch: n * size bytes). */
static int peek_seqs(pid_t pid, uint64_t first, size_t n, size_t size, uint8_t *scratch, uint32_t *seq)
{
	int err = peek(pid, first, scratch, n * size);
	for (size_t i = 0; !err && i < n; i++)
		memcpy(&seq[i], scratch + i * size + SEQ_OFF, sizeof(*seq));
	return err;
}

static int cmp_saved(const void *a, const void *b)
{
	int x = ((const struct pt_saved *)a)->id, y = ((const struct pt_saved *)b)->id;
	return x < y ? -1 : x > y;
}

struct found {
	struct pt_saved *s;
	size_t n, cap;
};

static int keep(struct found *f, const struct pt_saved *s)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 256;
		struct pt_saved *p = realloc(f->s, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		f->s = p;
		f->cap = cap;
	}
	f->s[f->n++] = *s;
	return 0;
}

/* One chunk's live timers, made no later than `made`. */
static int read_chunk(struct pt_remote *r, struct clocks *c, const struct chunk_ref *ch, uint32_t made,
		      struct found *out, size_t *changing)
{
	size_t size = r->root.timer_size, n = ch->bump;
	if (!n)
		return 0;
	uint64_t first = ch->addr + r->root.chunk_header;
	uint32_t *s1 = malloc(n * sizeof(*s1)), *s2 = malloc(n * sizeof(*s2));
	uint8_t *bytes = malloc(n * size), *scratch = malloc(n * size);
	int err = s1 && s2 && bytes && scratch ? 0 : -ENOMEM;
	/* Every sequence, then every timer, then every sequence again: three
	 * reads, in that order.  The sequences are read as the whole chunk,
	 * not as a vector of 4-byte pieces: the kernel pins a page for each
	 * piece it is given, and a piece per timer cost several times the
	 * whole chunk's copy. */
	if (!err)
		err = peek_seqs(r->pid, first, n, size, scratch, s1);
	if (!err)
		err = peek(r->pid, first, bytes, n * size);
	if (!err)
		err = peek_seqs(r->pid, first, n, size, scratch, s2);
	for (size_t i = 0; !err && i < n; i++) {
		uint8_t *b = bytes + i * size;
		if (!steady(s1[i], s2[i])) {
			int ok = read_one(r->pid, first + i * size, b, size);
			if (ok < 0) {
				err = ok;
				break;
			}
			if (!ok) {
				struct pt_timer_fields f;
				fields_of(b, &f);
				*changing += f.valid != 0;
				continue;
			}
		}
		struct pt_timer_fields f;
		fields_of(b, &f);
		if (!f.valid || (int32_t)(f.gen - made) > 0)
			continue; /* free, or made after the listing began */
		uint16_t base = f.cbase != PT_BASE_NONE ? f.cbase : f.base;
		if (base >= r->root.max_bases)
			continue;
		int64_t now = f.status != PT_DISARMED ? base_now(r, c, base) : 0;
		struct pt_saved s;
		pt_timer_fields_save(&f, r->pid, now, c->shift[base], &s);
		if (f.cbase != PT_BASE_NONE) {
			int e = 0;
			clockid_t k = cpu_base_clock(r, c, f.cbase, &e);
			s.cpu_clock = k;
			s.cpu = (k & CPUCLOCK_PERTHREAD_MASK) ? 2 : 1;
			s.cpu_tid = s.cpu == 2 ? CPUCLOCK_PID(k) : 0;
		}
		err = keep(out, &s);
	}
	free(s1);
	free(s2);
	free(bytes);
	free(scratch);
	return err;
}

int pt_remote_timers(struct pt_remote *r, struct pt_saved **out, size_t *n,
		     struct pt_remote_meta *meta, char *why, size_t why_size)
{
	struct clocks c = { .pid = r->pid };
	struct found f = { 0 };
	uint64_t count = 0;
	int err = 0;

	memset(meta, 0, sizeof(*meta));
	c.now = malloc(r->root.max_bases * sizeof(*c.now));
	c.shift = calloc(r->root.max_bases, sizeof(*c.shift));
	c.cpu = calloc(r->root.max_bases, sizeof(*c.cpu));
	if (!c.now || !c.shift || !c.cpu) {
		free(c.now);
		free(c.shift);
		free(c.cpu);
		errno = ENOMEM;
		return say(why, why_size, "out of memory");
	}
	timens_offsets(r->pid, &c.mono_off, &c.boot_off);
	for (int attempt = 0;; attempt++) {
		for (uint32_t b = 0; b < r->root.max_bases; b++)
			c.now[b] = INT64_MIN;
		f.n = 0;
		meta->changing = 0;
		err = peek(r->pid, r->root.count_word, &count, sizeof(count));
		if (!err && r->root.base_shift)
			err = peek(r->pid, r->root.base_shift, c.shift, r->root.max_bases * sizeof(*c.shift));
		if (!err)
			err = peek(r->pid, r->root.id_policy, &meta->id_policy, sizeof(meta->id_policy));
		if (!err)
			err = peek(r->pid, r->root.id_counter, &meta->next_id, sizeof(meta->next_id));
		meta->alive = count & 0xffffffffu;
		meta->next_id &= INT_MAX;
		struct chunk_ref *chunks = NULL;
		size_t nchunks = 0;
		if (!err)
			err = chunk_list(r, &chunks, &nchunks);
		for (size_t i = 0; !err && i < nchunks; i++)
			err = read_chunk(r, &c, &chunks[i], (uint32_t)(count >> 32), &f, &meta->changing);
		free(chunks);
		/* A chunk given back under the walk: walk again. */
		if ((err == -EAGAIN || err == -EFAULT) && attempt + 1 < ATTEMPTS)
			continue;
		break;
	}
	free(c.now);
	free(c.shift);
	free(c.cpu);
	if (err) {
		free(f.s);
		if (err == -ENOMEM) {
			errno = ENOMEM;
			return say(why, why_size, "out of memory");
		}
		if (err == -EAGAIN || err == -EFAULT) {
			errno = EIO;
			return say(why, why_size, "process %d's timers changed under %d readings in a row",
				   (int)r->pid, ATTEMPTS);
		}
		return read_error(r->pid, err, why, why_size);
	}
	qsort(f.s, f.n, sizeof(*f.s), cmp_saved);
	*out = f.s;
	*n = f.n;
	return 0;
}

int pt_remote_list(pid_t **pids, size_t *n, size_t *refused_out)
{
	DIR *d = opendir("/proc");
	size_t k = 0, cap = 16, refused_n = 0;
	pid_t *list = malloc(cap * sizeof(*list));
	if (!d || !list) {
		if (d)
			closedir(d);
		free(list);
		return -1;
	}
	for (struct dirent *e; (e = readdir(d));) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		pid_t pid = (pid_t)atoi(e->d_name);
		uint64_t cand[16];
		int nc = 0;
		char why[256];
		if (roots_in_maps(pid, cand, 16, &nc, why, sizeof(why)) != 0) {
			refused_n += errno == EACCES;
			continue;
		}
		if (!nc)
			continue;
		struct pt_remote r;
		if (pt_remote_open(pid, &r, why, sizeof(why)) != 0) {
			refused_n += errno == EACCES;
			continue;
		}
		if (k == cap) {
			pid_t *l = realloc(list, 2 * cap * sizeof(*list));
			if (!l)
				break;
			list = l;
			cap *= 2;
		}
		list[k++] = pid;
	}
	closedir(d);
	*pids = list;
	*n = k;
	*refused_out = refused_n;
	return 0;
}
