/* SPDX-License-Identifier: MIT */
/* The seed's restore scenario through libc's timer_create and prctl, as an
 * unmodified program would do it; meant to run under `ptimers exec`. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>

#include "private.h" /* PR_TIMER_CREATE_RESTORE_IDS */

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "dropin_restore: %s (errno %d)\n", #c, errno); return 1; } } while (0)

int main(void)
{
	CHECK(dlsym(RTLD_DEFAULT, "ptimer_create") != NULL); /* running on the engine */
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	timer_t t;
	CHECK(prctl(PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) == 0);
	CHECK(prctl(PR_TIMER_CREATE_RESTORE_IDS, 2, 0, 0, 0) == 1);
	t = (timer_t)(intptr_t)1000000;
	CHECK(timer_create(CLOCK_MONOTONIC, &none, &t) == 0 && (intptr_t)t == 1000000);
	t = (timer_t)(intptr_t)2000000;
	CHECK(timer_create(CLOCK_MONOTONIC, &none, &t) == 0 && (intptr_t)t == 2000000);
	t = (timer_t)(intptr_t)1000000;
	CHECK(timer_create(CLOCK_MONOTONIC, &none, &t) == -1 && errno == EBUSY);
	CHECK(prctl(PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0) == 0);
	CHECK(timer_create(CLOCK_MONOTONIC, &none, &t) == 0 && (intptr_t)t == 2000001);
	CHECK(prctl(PR_TIMER_CREATE_RESTORE_IDS, 3, 0, 0, 0) == -1 && errno == EINVAL);
	/* The mode reaches the kernel too (where the kernel has it): a timer
	 * made by the raw system call gets the wanted ID, and the engine's
	 * own kernel timers (a CPU clock's) are not disturbed by the mode. */
	if (syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 2, 0, 0, 0) >= 0) {
		CHECK(prctl(PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) == 0);
		CHECK(syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 2, 0, 0, 0) == 1);
		t = (timer_t)(intptr_t)7777;
		CHECK(timer_create(CLOCK_PROCESS_CPUTIME_ID, &none, &t) == 0 && (intptr_t)t == 7777);
		int kid = 5000;
		CHECK(syscall(SYS_timer_create, CLOCK_MONOTONIC, &none, &kid) == 0 && kid == 5000);
		CHECK(prctl(PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0) == 0);
		CHECK(syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 2, 0, 0, 0) == 0);
		kid = 0;
		CHECK(syscall(SYS_timer_create, CLOCK_MONOTONIC, &none, &kid) == 0 && kid == 5001);
	}
	/* Other prctl options still reach the kernel. */
	CHECK(prctl(PR_SET_NAME, "restored", 0, 0, 0) == 0);
	char name[16];
	CHECK(prctl(PR_GET_NAME, name, 0, 0, 0) == 0 && name[0] == 'r');
	/* A NULL timer_t pointer is EFAULT, not a crash. */
	CHECK(timer_create(CLOCK_MONOTONIC, &none, NULL) == -1 && errno == EFAULT);
	puts("ok");
	return 0;
}
