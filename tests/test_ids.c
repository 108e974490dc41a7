/* SPDX-License-Identifier: MIT */
/* Unit tests of the ID space (src/ids.c) on its own: the two policies,
 * restore mode, sparse and dense leaves, memory, and concurrent use. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ids.h"
#include "nodes.h"
#include "rcu.h"

static char objs[1 << 16]; /* distinct addresses to file under IDs */
#define OBJ(i) ((void *)&objs[(i) & 0xffff])

static void *lookup(int id)
{
	pt_rcu_read_lock();
	void *o = pt_ids_lookup(id);
	pt_rcu_read_unlock();
	return o;
}

/* Free every allocated ID, checking that iteration is ascending. */
static void free_all(void)
{
	int id = 0, prev = -1, ids[4096], n;
	do {
		n = 0;
		pt_rcu_read_lock();
		for (void *o; n < 4096 && (o = pt_ids_next(&id)) != NULL; id++) {
			assert_true(id > prev);
			prev = id;
			ids[n++] = id;
			if (id == INT_MAX)
				break;
		}
		pt_rcu_read_unlock();
		for (int i = 0; i < n; i++)
			pt_ids_free(ids[i]);
	} while (n == 4096);
	assert_int_equal(pt_ids_count(), 0);
}

static void test_linux_counter_skips_and_wraps(void **state)
{
	(void)state;
	assert_int_equal(pt_ids_set_policy(PT_IDS_LINUX), 0);
	pt_ids_set_counter(0);
	assert_int_equal(pt_ids_alloc(OBJ(1), -1, NULL), 0);
	assert_int_equal(pt_ids_alloc(OBJ(2), -1, NULL), 1);
	pt_ids_free(0);
	assert_int_equal(pt_ids_alloc(OBJ(3), -1, NULL), 2); /* next, not the freed 0 */
	/* Restored IDs move the counter past them; in-use ones are skipped. */
	assert_int_equal(pt_ids_alloc(OBJ(4), 100, NULL), 100);
	assert_int_equal(pt_ids_alloc(OBJ(5), 102, NULL), 102);
	pt_ids_set_counter(100);
	assert_int_equal(pt_ids_alloc(OBJ(6), -1, NULL), 101);
	assert_int_equal(pt_ids_alloc(OBJ(7), -1, NULL), 103);
	/* Wrap at INT_MAX to the lowest free ID. */
	assert_int_equal(pt_ids_alloc(OBJ(8), INT_MAX - 1, NULL), INT_MAX - 1);
	assert_int_equal(pt_ids_alloc(OBJ(9), -1, NULL), INT_MAX);
	assert_int_equal(pt_ids_alloc(OBJ(10), -1, NULL), 0);
	assert_int_equal(pt_ids_alloc(OBJ(11), -1, NULL), 3);
	assert_ptr_equal(lookup(INT_MAX), OBJ(9));
	assert_ptr_equal(lookup(3), OBJ(11));
	assert_null(lookup(4));
	assert_null(lookup(-1));
	assert_int_equal(pt_ids_alloc(OBJ(12), 3, NULL), -EBUSY);
	free_all();
}

static void test_dense_lowest_free(void **state)
{
	(void)state;
	assert_int_equal(pt_ids_set_policy(PT_IDS_DENSE), 0);
	for (int i = 0; i < 3000; i++)
		assert_int_equal(pt_ids_alloc(OBJ(i), -1, NULL), i);
	assert_int_equal(pt_ids_set_policy(PT_IDS_LINUX), -EBUSY);
	pt_ids_free(5);
	pt_ids_free(1500);
	pt_ids_free(2);
	assert_int_equal(pt_ids_alloc(OBJ(1), -1, NULL), 2);
	assert_int_equal(pt_ids_alloc(OBJ(1), -1, NULL), 5);
	assert_int_equal(pt_ids_alloc(OBJ(1), -1, NULL), 1500);
	assert_int_equal(pt_ids_alloc(OBJ(1), -1, NULL), 3000);
	/* A full leaf (0..1023) is skipped by its hint and still found free
	 * again once an ID in it is freed. */
	pt_ids_free(700);
	assert_int_equal(pt_ids_alloc(OBJ(1), -1, NULL), 700);
	free_all();
	assert_int_equal(pt_ids_set_policy(PT_IDS_LINUX), 0);
	assert_int_equal(pt_ids_set_policy(7), -EINVAL);
}

static void test_restore_mode_switch(void **state)
{
	(void)state;
	assert_int_equal(pt_ids_restore_mode(2), 0);
	assert_int_equal(pt_ids_restore_mode(1), 0);
	assert_true(pt_ids_restore_on());
	assert_int_equal(pt_ids_restore_mode(2), 1);
	assert_int_equal(pt_ids_restore_mode(3), -EINVAL);
	assert_int_equal(pt_ids_restore_mode(0), 0);
	assert_false(pt_ids_restore_on());
}

/* A million sparse IDs would cost gigabytes in 1024-slot leaves; the
 * sparse leaves keep memory in proportion to the IDs in use. */
static void test_sparse_memory(void **state)
{
	(void)state;
	enum { N = 100000 };
	size_t before = pt_ids_bytes();
	uint64_t r = 7;
	int *ids = malloc(N * sizeof(int));
	int n = 0;
	for (int i = 0; i < N; i++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		int id = (int)((r >> 33) & INT_MAX);
		int got = pt_ids_alloc(OBJ(id), id, NULL);
		if (got == -EBUSY)
			continue;
		assert_int_equal(got, id);
		ids[n++] = id;
	}
	size_t per = (pt_ids_bytes() - before) / (size_t)n;
	print_message("# %d sparse IDs: %zu bytes each\n", n, per);
	assert_true(per < 256);
	for (int i = 0; i < n; i++)
		assert_ptr_equal(lookup(ids[i]), OBJ(ids[i]));
	for (int i = 0; i < n; i++)
		pt_ids_free(ids[i]);
	assert_int_equal(pt_ids_count(), 0);
	free(ids);
	/* Everything given back but the few nodes kept for the next use. */
	assert_true(pt_ids_bytes() - before < 64 * 1024);
}

/* A sparse leaf becomes dense when it fills up, and when the policy
 * allocates into its range; nothing is lost on the way. */
static void test_sparse_to_dense(void **state)
{
	(void)state;
	int base = 5 << 20;
	for (int i = 0; i < 200; i++)
		assert_int_equal(pt_ids_alloc(OBJ(i), base + 3 * i, NULL), base + 3 * i);
	for (int i = 0; i < 200; i++)
		assert_ptr_equal(lookup(base + 3 * i), OBJ(i));
	assert_int_equal(pt_ids_alloc(OBJ(1), base + 3, NULL), -EBUSY);
	/* The policy into a sparse range: the counter points there. */
	int other = 9 << 20;
	assert_int_equal(pt_ids_alloc(OBJ(1), other, NULL), other);
	assert_int_equal(pt_ids_alloc(OBJ(2), other + 1, NULL), other + 1);
	assert_int_equal(pt_ids_alloc(OBJ(3), -1, NULL), other + 2);
	assert_ptr_equal(lookup(other), OBJ(1));
	assert_ptr_equal(lookup(other + 2), OBJ(3));
	free_all();
}

static void test_cap(void **state)
{
	(void)state;
	pt_ids_set_max(3);
	for (int i = 0; i < 3; i++)
		assert_true(pt_ids_alloc(OBJ(i), -1, NULL) >= 0);
	assert_int_equal(pt_ids_alloc(OBJ(9), -1, NULL), -EAGAIN);
	assert_int_equal(pt_ids_alloc(OBJ(9), 77777, NULL), -EAGAIN);
	pt_ids_set_max(0);
	free_all();
}

/* Memory follows the IDs in use: a create/delete cycle allocates nothing
 * per cycle, and a million IDs come and go leaving little behind. */
static void test_memory_follows_use(void **state)
{
	(void)state;
	size_t before = pt_ids_bytes();
	for (int i = 0; i < 100000; i++) {
		int id = pt_ids_alloc(OBJ(i), -1, NULL);
		assert_true(id >= 0);
		pt_ids_free(id);
	}
	assert_true(pt_ids_bytes() - before <= 2 * 9000);
	int *ids = malloc(1000000 * sizeof(int));
	for (int i = 0; i < 1000000; i++)
		ids[i] = pt_ids_alloc(OBJ(i), -1, NULL);
	size_t full = pt_ids_bytes() - before;
	print_message("# 1000000 IDs: %zu bytes each\n", full / 1000000);
	assert_true(full / 1000000 <= 10);
	for (int i = 0; i < 1000000; i++)
		pt_ids_free(ids[i]);
	free(ids);
	assert_true(pt_ids_bytes() - before <= 2 * 9000 + 17000);
}

static int cmp_int(const void *a, const void *b);

/* Whether cond(arg) comes to hold within 10 s.  Nodes are freed after a
 * grace period, on liburcu's thread; (urcu_bp_barrier() would wait for
 * them, but ThreadSanitizer cannot see its synchronisation.) */
static bool settles(bool (*cond)(void *), void *arg)
{
	for (int i = 0; i < 1000; i++) {
		if (cond(arg))
			return true;
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	}
	return cond(arg);
}

static bool no_region(void *arg)
{
	(void)arg;
	return pt_nodes_overhead() == 0;
}

struct below {
	size_t before, limit;
};

static bool bytes_below(void *arg)
{
	struct below *b = arg;
	return pt_ids_bytes() - b->before < b->limit;
}


/* n sorted, distinct random IDs (of at most N) in idv, their objects in
 * objv; crowd: every fifth ID in a range of its own, filling dense
 * leaves. */
static int random_batch(int *idv, void **objv, int N, uint64_t r, bool crowd)
{
	for (int i = 0; i < N; i++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		idv[i] = (int)((r >> 33) & INT_MAX);
		if (crowd && i % 5 == 0)
			idv[i] = (40 << 20) + i;
	}
	qsort(idv, N, sizeof(int), cmp_int);
	int n = 0;
	for (int i = 0; i < N; i++)
		if (n == 0 || idv[i] != idv[n - 1])
			idv[n++] = idv[i];
	for (int i = 0; i < n; i++)
		objv[i] = OBJ(i);
	return n;
}

/* A batch goes in whole or not at all, into sparse and dense leaves, new
 * and existing alike. */
static void test_batch(void **state)
{
	(void)state;
	enum { N = 20000 };
	int *idv = malloc(N * sizeof(int));
	void **objv = malloc(N * sizeof(void *));
	int n = random_batch(idv, objv, N, 99, true); /* some crowded into dense leaves */
	/* One ID of the batch already taken: nothing of it goes in. */
	int taken = idv[n / 2];
	assert_int_equal(pt_ids_alloc(OBJ(7), taken, NULL), taken);
	size_t bad = 0, count = pt_ids_count();
	assert_int_equal(pt_ids_alloc_batch(objv, idv, sizeof(int), (size_t)n, &bad, NULL), -EBUSY);
	assert_int_equal(idv[bad], taken);
	assert_int_equal(pt_ids_count(), count);
	for (int i = 0; i < n; i++)
		assert_true(idv[i] == taken || lookup(idv[i]) == NULL);
	pt_ids_free(taken);
	/* Existing IDs beside the batch, in the same leaves, stay. */
	int beside = idv[10] + 1 == idv[11] ? idv[10] - 1 : idv[10] + 1;
	assert_int_equal(pt_ids_alloc(OBJ(8), beside, NULL), beside);
	assert_int_equal(pt_ids_alloc_batch(objv, idv, sizeof(int), (size_t)n, &bad, NULL), 0);
	for (int i = 0; i < n; i++)
		assert_ptr_equal(lookup(idv[i]), OBJ(i));
	assert_ptr_equal(lookup(beside), OBJ(8));
	assert_int_equal(pt_ids_count(), count + (size_t)n); /* taken went, beside came */
	free_all();
	free(idv);
	free(objv);
	assert_true(settles(no_region, NULL)); /* the leaves it replaced, then the rest */
}

/* A big batch's nodes come from a region of its own (src/nodes.c): its
 * pages go back as their IDs go, and all of it with the last. */
static void test_batch_region(void **state)
{
	(void)state;
	enum { N = 200000 };
	int *idv = malloc(N * sizeof(int));
	void **objv = malloc(N * sizeof(void *));
	int n = random_batch(idv, objv, N, 4242, false);
	size_t before = pt_ids_bytes(), bad = 0;
	assert_int_equal(pt_nodes_overhead(), 0);
	assert_int_equal(pt_ids_alloc_batch(objv, idv, sizeof(int), (size_t)n, &bad, NULL), 0);
	assert_true(pt_nodes_overhead() > 0); /* a region's header at least */
	size_t full = pt_ids_bytes() - before;
	for (int i = 0; i < n; i++)
		assert_ptr_equal(lookup(idv[i]), OBJ(i));
	/* The lower half's IDs go, and with them the pages that held their
	 * leaves and mids (in ID order, as the batch made them). */
	for (int i = 0; i < n / 2; i++)
		pt_ids_free(idv[i]);
	bool gone = settles(bytes_below, &(struct below){ before, full * 3 / 5 });
	print_message("# %d IDs in a batch: %zu bytes, %zu once half are gone\n", n, full,
		      pt_ids_bytes() - before);
	assert_true(gone);
	for (int i = n / 2; i < n; i++)
		assert_ptr_equal(lookup(idv[i]), OBJ(i));
	for (int i = n / 2; i < n; i++)
		pt_ids_free(idv[i]);
	assert_int_equal(pt_ids_count(), 0);
	assert_true(settles(no_region, NULL));
	assert_true(pt_ids_bytes() - before < 64 * 1024);
	free(idv);
	free(objv);
}

/* A child of fork() forgets the parent's regions, and makes its own.
 * (_Fork: the engine's own fork handlers would take this test's stand-in
 * objects for timers; the child calls the ID space's handler itself.) */
static void test_batch_region_fork(void **state)
{
	(void)state;
	enum { N = 20000 };
	int *idv = malloc(N * sizeof(int));
	void **objv = malloc(N * sizeof(void *));
	int n = random_batch(idv, objv, N, 77, false);
	size_t bad = 0;
	assert_int_equal(pt_ids_alloc_batch(objv, idv, sizeof(int), (size_t)n, &bad, NULL), 0);
	pid_t child = _Fork();
	if (child == 0) {
		pt_ids_fork_child();
		bool ok = pt_nodes_overhead() == 0 && pt_ids_count() == 0 && lookup(idv[0]) == NULL;
		ok = ok && pt_ids_alloc_batch(objv, idv, sizeof(int), (size_t)n, &bad, NULL) == 0;
		for (int i = 0; ok && i < n; i++)
			ok = lookup(idv[i]) == OBJ(i);
		ok = ok && pt_nodes_overhead() > 0;
		free(idv); /* (valgrind checks the child too) */
		free(objv);
		_exit(ok ? 0 : 1);
	}
	int st = 0;
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	for (int i = 0; i < n; i++)
		assert_ptr_equal(lookup(idv[i]), OBJ(i));
	free_all();
	assert_true(settles(no_region, NULL));
	free(idv);
	free(objv);
}

#define THREADS 4
#define PER 20000
static int got[THREADS][PER];

static void *churn(void *arg)
{
	int me = (int)(intptr_t)arg;
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < PER; i++) {
			got[me][i] = pt_ids_alloc(OBJ(me * PER + i), -1, NULL);
			if (got[me][i] < 0)
				return (void *)1;
		}
		for (int i = 0; i < PER; i++)
			if (lookup(got[me][i]) != OBJ(me * PER + i))
				return (void *)2;
		if (round < 2)
			for (int i = 0; i < PER; i++)
				pt_ids_free(got[me][i]);
	}
	return NULL;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Threads allocating and freeing at once: no ID is handed out twice. */
static void test_concurrent(void **state)
{
	(void)state;
	for (int policy = PT_IDS_LINUX; policy <= PT_IDS_DENSE; policy++) {
		assert_int_equal(pt_ids_set_policy(policy), 0);
		pthread_t th[THREADS];
		for (int i = 0; i < THREADS; i++)
			pthread_create(&th[i], NULL, churn, (void *)(intptr_t)i);
		for (int i = 0; i < THREADS; i++) {
			void *r;
			pthread_join(th[i], &r);
			assert_null(r);
		}
		int *all = malloc(sizeof(got));
		memcpy(all, got, sizeof(got));
		qsort(all, THREADS * PER, sizeof(int), cmp_int);
		for (int i = 1; i < THREADS * PER; i++)
			assert_true(all[i] != all[i - 1]);
		if (policy == PT_IDS_DENSE)
			assert_int_equal(all[THREADS * PER - 1], THREADS * PER - 1);
		free(all);
		assert_int_equal(pt_ids_count(), THREADS * PER);
		free_all();
	}
	assert_int_equal(pt_ids_set_policy(PT_IDS_LINUX), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_linux_counter_skips_and_wraps),
		cmocka_unit_test(test_dense_lowest_free),
		cmocka_unit_test(test_restore_mode_switch),
		cmocka_unit_test(test_sparse_memory),
		cmocka_unit_test(test_sparse_to_dense),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_memory_follows_use),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_batch_region),
		cmocka_unit_test(test_batch_region_fork),
	};
	return cmocka_run_group_tests_name("ids", tests, NULL, NULL);
}
