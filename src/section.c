/* SPDX-License-Identifier: MIT */
/* Engine sections (section.h): the per-thread depth and the exit hook. */
#include "section.h"

__thread unsigned pt_section_depth __attribute__((tls_model("initial-exec")));
__thread unsigned pt_section_deferred __attribute__((tls_model("initial-exec")));
static void (*section_exit_hook)(void);

void pt_section_set_exit_hook(void (*fn)(void))
{
	__atomic_store_n(&section_exit_hook, fn, __ATOMIC_RELEASE);
}

void pt_section_exit_slow(void)
{
	void (*fn)(void) = __atomic_load_n(&section_exit_hook, __ATOMIC_ACQUIRE);

	pt_section_deferred = 0;
	if (fn)
		fn();
}
