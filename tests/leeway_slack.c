/* SPDX-License-Identifier: MIT */
/* Under `ptimers exec`: the leeway the drop-in gave a timer made by libc's
 * timer_create after the thread set its timer slack to 200 us.  Prints it
 * in ns, or "no engine" when not on the drop-in. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <time.h>

int main(void)
{
	int (*getleeway)(timer_t, struct timespec *) =
		(int (*)(timer_t, struct timespec *))dlsym(RTLD_DEFAULT, "ptimer_getleeway");
	if (!getleeway) {
		puts("no engine");
		return 1;
	}
	if (prctl(PR_SET_TIMERSLACK, 200000, 0, 0, 0) != 0)
		return 1;
	struct sigevent sev = { .sigev_notify = SIGEV_NONE };
	timer_t t;
	struct timespec l;
	if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0 || getleeway(t, &l) != 0)
		return 1;
	printf("%ld\n", l.tv_sec * 1000000000L + l.tv_nsec);
	return 0;
}
