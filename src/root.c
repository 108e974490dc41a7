/* SPDX-License-Identifier: MIT */
/*
 * The root a reader outside the process finds (layout.h): one shared
 * anonymous page, made the first time the process has a timer, filled
 * with where the engine keeps its state, its magic written last.
 *
 * A page no other mapping shares a name with: /proc/PID/maps shows a
 * shared anonymous mapping as "/dev/zero (deleted)", and few programs have
 * one.  It takes no descriptor.  Shared, so a fork child would see the
 * parent's: the child unmaps it at once (fork handler), and makes its own
 * when it has a timer.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base.h"
#include "cpu.h"
#include "dispatch.h"
#include "ids.h"
#include "layout.h"
#include "lock.h"
#include "pool.h"
#include "root.h"
#include "sys.h"

static struct pt_root *root;
static uint64_t cookie; /* in the engine's private memory (layout.h) */

static uint64_t new_cookie(void)
{
	uint64_t c = 0;
	if (syscall(SYS_getrandom, &c, sizeof(c), GRND_NONBLOCK) != (long)sizeof(c))
		c = (uint64_t)pt_clock_ns(CLOCK_MONOTONIC) * 0x9e3779b97f4a7c15ull ^ (uint64_t)pt_pid;
	return c ? c : 1;
}
static pt_lock_t root_lock = PT_LOCK_INIT;

void pt_root_publish_slow(void)
{
	pt_slice_pause(); /* mmap under the lock: outside the extension */
	pt_lock(&root_lock);
	if (!root) {
		struct pt_root *r = mmap(NULL, PT_ROOT_MAP_SIZE, PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (r != MAP_FAILED) {
			r->version = PT_LAYOUT_VERSION;
			r->size = sizeof(*r);
			r->self = (uint64_t)(uintptr_t)r;
			r->pid = pt_pid;
			r->engine_signo = pt_dispatch_signo();
			pt_pool_describe(r);
			pt_ids_describe(r);
			r->base_table = (uint64_t)(uintptr_t)pt_base_table;
			r->max_bases = PT_MAX_BASES;
			r->cpu_clock_off = pt_cpu_clock_offset();
			r->base_shift = (uint64_t)(uintptr_t)pt_base_shift;
			cookie = new_cookie();
			r->cookie = cookie;
			r->cookie_at = (uint64_t)(uintptr_t)&cookie;
			__atomic_store_n(&r->magic, PT_ROOT_MAGIC, __ATOMIC_RELEASE);
			__atomic_store_n(&root, r, __ATOMIC_RELEASE);
		}
	}
	pt_unlock(&root_lock);
	pt_slice_resume();
}

bool pt_root_published(void)
{
	return __atomic_load_n(&root, __ATOMIC_ACQUIRE) != NULL;
}

void pt_root_fork_prepare(void)
{
	pt_lock(&root_lock);
}

void pt_root_fork_parent(void)
{
	pt_unlock(&root_lock);
}

/* The page is the parent's too: this process's view of it goes. */
void pt_root_fork_child(void)
{
	if (root)
		munmap(root, PT_ROOT_MAP_SIZE);
	root = NULL;
	pt_lock_reset(&root_lock);
}
