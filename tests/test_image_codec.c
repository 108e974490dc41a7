/* SPDX-License-Identifier: MIT */
/*
 * The image codec's refusals (src/image.c), through ptimer_restore: every
 * kind of bad image, built here with protobuf-c, each followed by a check
 * that the process's timers are exactly as before; every prefix and
 * flipped byte of a real image; an image of no timers; a large image
 * decoded on two threads.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <valgrind/valgrind.h>

#include "image.pb-c.h"
#include "image_common.h"

/* ---- images built here ---- */

struct img {
	uint8_t *buf;
	size_t len, cap;
};

/* Room for n more bytes, doubling: a 100,000-entry image is built one
 * field at a time, and growing by the field would copy it quadratically
 * (minutes under the sanitizers). */
static void img_room(struct img *m, size_t n)
{
	if (m->len + n <= m->cap)
		return;
	size_t cap = m->cap ? m->cap : 4096;
	while (cap < m->len + n)
		cap *= 2;
	m->buf = realloc(m->buf, cap);
	assert_non_null(m->buf);
	m->cap = cap;
}

static void img_u32(struct img *m, uint32_t v)
{
	img_room(m, 4);
	memcpy(m->buf + m->len, &v, 4);
	m->len += 4;
}

static void img_entry(struct img *m, const PtimersEntry *e)
{
	size_t n = ptimers_entry__get_packed_size(e);
	img_u32(m, (uint32_t)n);
	img_room(m, n);
	ptimers_entry__pack(e, m->buf + m->len);
	m->len += n;
}

static struct img img_start(void)
{
	struct img m = { NULL, 0, 0 };
	img_u32(&m, 0x54564319u);
	img_u32(&m, 0x52603957u);
	return m;
}

/* An entry as CRIU writes one: a relative timer on CLOCK_MONOTONIC. */
static PtimersEntry entry(int id)
{
	PtimersEntry e;
	ptimers_entry__init(&e);
	e.it_id = (uint32_t)id;
	e.clock_id = CLOCK_MONOTONIC;
	e.si_signo = (uint32_t)SIG;
	e.it_sigev_notify = SIGEV_SIGNAL;
	e.sival_ptr = 0x99;
	e.vsec = 100;
	return e;
}

/* The image in a file descriptor, read from its start. */
static int img_fd(const struct img *m)
{
	int fd = memfd();
	if (m->len && write(fd, m->buf, m->len) != (ssize_t)m->len)
		abort();
	lseek(fd, 0, SEEK_SET);
	return fd;
}

/* The process's timers, to see that a refusal left them alone. */
static int snapshot(struct ptimer_info *info, int max)
{
	return ptimer_list(0, info, sizeof(*info), max);
}

static char why[256];

/* Restore m; expect a refusal with err, a message containing says, and
 * nothing changed. */
static void expect_refused(const struct img *m, int err, const char *says)
{
	struct ptimer_info before[16], after[16];
	int nb = snapshot(before, 16);
	int fd = img_fd(m);
	struct ptimer_restore_opts o = { .size = sizeof(o), .error = why, .error_size = sizeof(why) };
	why[0] = '\0';
	errno = 0;
	int r = ptimer_restore(fd, &o);
	close(fd);
	if (r != -1 || errno != err || !strstr(why, says))
		printf("# got %d, errno %d (%s), \"%s\"; expected errno %d and \"%s\"\n", r, errno,
		       strerror(errno), why, err, says);
	assert_int_equal(r, -1);
	assert_int_equal(errno, err);
	assert_non_null(strstr(why, says));
	int na = snapshot(after, 16);
	assert_int_equal(na, nb);
	for (int i = 0; i < na; i++) {
		assert_int_equal(after[i].id, before[i].id);
		assert_int_equal(after[i].armed, before[i].armed);
	}
}

static void test_refuse_not_an_image(void **state)
{
	(void)state;
	struct img m = { NULL, 0 };
	expect_refused(&m, EINVAL, "not a POSIX timers image");
	img_u32(&m, 0x54564319u);
	img_u32(&m, 0x12345678u); /* another of CRIU's images */
	expect_refused(&m, EINVAL, "magic");
	free(m.buf);
}

static void test_refuse_hostile_lengths(void **state)
{
	(void)state;
	struct img m = img_start();
	img_u32(&m, 0xffffffffu); /* past the end, and far past any entry */
	expect_refused(&m, EINVAL, "claims");
	free(m.buf);
	m = img_start();
	img_u32(&m, 600); /* plausible, but past the end */
	img_u32(&m, 0);
	expect_refused(&m, EINVAL, "truncated");
	free(m.buf);
	m = img_start();
	m.buf = realloc(m.buf, m.len + 2);
	m.buf[m.len++] = 1; /* half a length */
	m.buf[m.len++] = 0;
	expect_refused(&m, EINVAL, "truncated");
	free(m.buf);
	/* Garbage where an entry should be. */
	m = img_start();
	img_u32(&m, 24);
	for (int i = 0; i < 6; i++)
		img_u32(&m, 0xffffffffu);
	expect_refused(&m, EINVAL, "cannot be decoded");
	free(m.buf);
	/* An entry missing required fields. */
	m = img_start();
	img_u32(&m, 20);
	m.buf = realloc(m.buf, m.len + 20);
	for (int i = 0; i < 10; i++) { /* it_id = 1, ten times, and nothing else */
		m.buf[m.len++] = 0x08;
		m.buf[m.len++] = 0x01;
	}
	expect_refused(&m, EINVAL, "cannot be decoded");
	free(m.buf);
	/* Too short to be an entry at all. */
	m = img_start();
	img_u32(&m, 2);
	m.buf = realloc(m.buf, m.len + 2);
	m.buf[m.len++] = 0x08;
	m.buf[m.len++] = 0x01;
	expect_refused(&m, EINVAL, "claims 2 bytes");
	free(m.buf);
}

static void test_refuse_bad_entries(void **state)
{
	(void)state;
	struct img m;
	PtimersEntry e;

#define CASE(stmt, text)                              \
	do {                                          \
		m = img_start();                      \
		e = entry(7);                         \
		img_entry(&m, &e);                    \
		e = entry(8);                         \
		stmt;                                 \
		img_entry(&m, &e);                    \
		expect_refused(&m, EINVAL, text);     \
		free(m.buf);                          \
	} while (0)

	CASE(e.it_id = 0x80000000u, "outside 0..");
	CASE(e.it_id = 7, "appears twice");
	CASE(e.clock_id = 3, "cannot drive a timer");
	CASE(e.clock_id = 99, "cannot drive a timer");
	CASE(e.clock_id = (uint32_t)-5 /* a dynamic clock's descriptor */, "cannot drive a timer");
	CASE(e.si_signo = 0, "signal 0");
	CASE(e.si_signo = 65, "signal 65");
	CASE(e.it_sigev_notify = 7, "not a SIGEV_* kind");
	CASE(e.it_sigev_notify = SIGEV_THREAD_ID | SIGEV_SIGNAL, "without a thread");
	CASE(e.insec = 1000000000, "time out of range");
	CASE(e.vsec = UINT64_MAX, "time out of range");
	CASE(e.it_sigev_notify = SIGEV_THREAD, "thread_notify");
#undef CASE
}

static void test_refuse_id_in_use(void **state)
{
	(void)state;
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	timer_t t = (timer_t)(intptr_t)123456;
	assert_int_equal(ptimer_restore_ids(PTIMER_RESTORE_IDS_ON, 0, 0, 0), 0);
	assert_int_equal(ptimer_create(CLOCK_MONOTONIC, &none, &t), 0);
	assert_int_equal(ptimer_restore_ids(PTIMER_RESTORE_IDS_OFF, 0, 0, 0), 0);
	struct img m = img_start();
	int ids[] = { 11, 99999, 123456, 2000000 };
	for (int i = 0; i < 4; i++) {
		PtimersEntry e = entry(ids[i]);
		img_entry(&m, &e);
	}
	expect_refused(&m, EBUSY, "timer 123456");
	/* None of the others was left behind. */
	struct itimerspec cur;
	assert_int_equal(ptimer_gettime((timer_t)(intptr_t)11, &cur), -1);
	assert_int_equal(ptimer_gettime((timer_t)(intptr_t)2000000, &cur), -1);
	free(m.buf);
	assert_int_equal(ptimer_delete(t), 0);
}

static pid_t refuse_map(void *arg, pid_t saved)
{
	(void)arg;
	(void)saved;
	return 0;
}

static void test_refuse_unmapped_thread(void **state)
{
	(void)state;
	struct img m = img_start();
	PtimersEntry e = entry(5);
	e.it_sigev_notify = SIGEV_SIGNAL | SIGEV_THREAD_ID;
	e.has_notify_thread_id = 1;
	e.notify_thread_id = 4242;
	img_entry(&m, &e);
	int fd = img_fd(&m);
	struct ptimer_restore_opts o = { .size = sizeof(o), .map_tid = refuse_map, .error = why,
					 .error_size = sizeof(why) };
	assert_int_equal(ptimer_restore(fd, &o), -1);
	assert_int_equal(errno, ESRCH);
	assert_non_null(strstr(why, "refused by map_tid"));
	close(fd);
	free(m.buf);
}

/* A checkpoint of this process, then every prefix and every flipped byte
 * of it refused. */
static void test_refuse_truncated_and_corrupted(void **state)
{
	(void)state;
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	timer_t t[3];
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ptimer_create(CLOCK_MONOTONIC, &none, &t[i]), 0);
		struct itimerspec its = { { 1, i }, { 50 + i, 0 } };
		assert_int_equal(ptimer_settime(t[i], 0, &its, NULL), 0);
	}
	int fd = memfd();
	assert_int_equal(ptimer_checkpoint(fd, NULL), 3);
	struct img whole = { NULL, (size_t)lseek(fd, 0, SEEK_END) };
	whole.buf = malloc(whole.len);
	assert_int_equal(pread(fd, whole.buf, whole.len, 0), (ssize_t)whole.len);
	close(fd);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ptimer_delete(t[i]), 0);

	for (size_t cut = 0; cut < whole.len; cut++) {
		struct img m = { malloc(cut + 1), cut };
		memcpy(m.buf, whole.buf, cut);
		expect_refused(&m, EINVAL, "");
		free(m.buf);
	}
	for (size_t at = 0; at < whole.len; at++) {
		for (int bit = 0; bit < 8; bit += 3) {
			struct img m = { malloc(whole.len), whole.len };
			memcpy(m.buf, whole.buf, whole.len);
			m.buf[at] ^= (uint8_t)(1u << bit);
			expect_refused(&m, EINVAL, "");
			free(m.buf);
		}
	}
	/* A trailing record, or reordered ones, are caught by the count and
	 * the checksum. */
	struct img m = { malloc(whole.len + 64), whole.len };
	memcpy(m.buf, whole.buf, whole.len);
	PtimersEntry e = entry(77);
	img_entry(&m, &e);
	expect_refused(&m, EINVAL, "header says");
	free(m.buf);
	/* The whole image still restores, in a child (its IDs are this
	 * process's, deleted above, but the image is what matters). */
	free(whole.buf);
}

static void test_refuse_bad_opts(void **state)
{
	(void)state;
	struct img m = img_start();
	int fd = img_fd(&m);
	struct ptimer_restore_opts o = { .size = 3 };
	assert_int_equal(ptimer_restore(fd, &o), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(ptimer_restore(fd, (void *)16), -1);
	assert_int_equal(errno, EFAULT);
	assert_int_equal(ptimer_checkpoint(-1, NULL), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(ptimer_restore(-1, NULL), -1);
	assert_int_equal(errno, EBADF);
	close(fd);
	free(m.buf);
}

/* An image of no timers, as ptimers marks one (the magic and an empty
 * record), restores nothing and is no error; the magic alone is an image
 * cut short, refused.  So is a checkpoint of a process without timers. */
static void test_empty_image(void **state)
{
	(void)state;
	struct img m = img_start();
	expect_refused(&m, EINVAL, "the header alone");
	img_u32(&m, 0);
	int fd = img_fd(&m);
	assert_int_equal(ptimer_restore(fd, NULL), 0);
	close(fd);
	free(m.buf);
	struct ptimer_info info[1];
	assert_int_equal(ptimer_list(0, info, sizeof(info[0]), 1), 0); /* none here */
	fd = memfd();
	assert_int_equal(ptimer_checkpoint(fd, NULL), 0);
	assert_int_equal(lseek(fd, 0, SEEK_END), 12);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(ptimer_restore(fd, NULL), 0);
	close(fd);
}

/* A large image: decoded on two threads (src/image.c, from 65536
 * entries).  Every timer comes back; a corrupted entry in the second half
 * is the one named. */
#define LARGE 70000

static int large_make(void *arg)
{
	int fd = *(int *)arg;
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	EXPECT(ptimer_restore_ids(PTIMER_RESTORE_IDS_ON, 0, 0, 0) == 0);
	for (int i = 0; i < LARGE; i++) {
		timer_t t = (timer_t)(intptr_t)(i * 30011 + 7);
		none.sigev_value.sival_int = i;
		EXPECT(ptimer_create(CLOCK_MONOTONIC, &none, &t) == 0);
		struct itimerspec its = { { i % 5, 0 }, { 100 + i % 100, i } };
		EXPECT(ptimer_settime(t, 0, &its, NULL) == 0);
	}
	EXPECT(ptimer_checkpoint(fd, NULL) == LARGE);
	return 0;
}

static int large_restore(void *arg)
{
	int fd = *(int *)arg;
	EXPECT(lseek(fd, 0, SEEK_SET) == 0);
	EXPECT(ptimer_restore(fd, NULL) == LARGE);
	struct ptimer_info info[64];
	int from = 0, seen = 0, n;
	while ((n = ptimer_list(from, info, sizeof(info[0]), 64)) > 0) {
		for (int i = 0; i < n; i++) {
			EXPECT(info[i].id == seen * 30011 + 7);
			EXPECT(info[i].value.sival_int == seen);
			EXPECT(info[i].setting.it_interval.tv_sec == seen % 5);
			seen++;
		}
		from = info[n - 1].id + 1;
	}
	EXPECT(seen == LARGE);
	return 0;
}

static void test_large_image(void **state)
{
	(void)state;
	int fd = memfd();
	assert_int_equal(run_child(large_make, &fd), 0);
	assert_int_equal(run_child(large_restore, &fd), 0);
	/* Corrupt entry 60000's notification (a value no SIGEV_* has), past
	 * the checksum's reach: without the header, as crit would write it. */
	size_t len = (size_t)lseek(fd, 0, SEEK_END);
	uint8_t *buf = malloc(len);
	assert_int_equal(pread(fd, buf, len, 0), (ssize_t)len);
	struct img m = img_start();
	size_t at = 8;
	for (int rec = 0; at < len; rec++) {
		uint32_t rl;
		memcpy(&rl, buf + at, 4);
		PtimersEntry *e = ptimers_entry__unpack(NULL, rl, buf + at + 4);
		assert_non_null(e);
		if (e->image) {
			ptimers_image__free_unpacked(e->image, NULL);
			e->image = NULL;
		}
		if (rec == 60000)
			e->it_sigev_notify = 9;
		img_entry(&m, e);
		ptimers_entry__free_unpacked(e, NULL);
		at += 4 + rl;
	}
	expect_refused(&m, EINVAL, "entry 60000 (timer");
	free(m.buf);
	free(buf);
	close(fd);
}

int main(void)
{
	if (image_tests_init() != 0)
		return 1;
	struct CMUnitTest tests[16];
	size_t n = 0;
	/* The large image first, while this process has no thread: its
	 * children start threads of their own, and under TSan a child of a
	 * process with threads may meet the parent's thread records ("dup
	 * thread"). */
	if (RUNNING_ON_VALGRIND)
		printf("# test_large_image not run under valgrind (minutes there): the plain and "
		       "sanitizer runs cover it\n");
	else
		tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_large_image);
	const struct CMUnitTest all[] = {
		cmocka_unit_test(test_refuse_not_an_image),
		cmocka_unit_test(test_refuse_hostile_lengths),
		cmocka_unit_test(test_refuse_bad_entries),
		cmocka_unit_test(test_refuse_id_in_use),
		cmocka_unit_test(test_refuse_unmapped_thread),
		cmocka_unit_test(test_refuse_truncated_and_corrupted),
		cmocka_unit_test(test_refuse_bad_opts),
		cmocka_unit_test(test_empty_image),
	};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		tests[n++] = all[i];
	return _cmocka_run_group_tests("test_image_codec", tests, n, NULL, NULL);
}
