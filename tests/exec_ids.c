/* SPDX-License-Identifier: MIT */
/*
 * The timer ID counter across exec, through each exec function the
 * drop-in wraps: the kernel's counter survives exec (a fork child starts
 * again at 0).  Prints one line per stage; tests/dropin.sh compares the
 * lines natively and on the drop-in.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int make(void)
{
	timer_t t;
	struct sigevent sev = { .sigev_notify = SIGEV_NONE };
	if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0) {
		perror("timer_create");
		exit(1);
	}
	return (int)(long)t;
}

int main(int argc, char **argv)
{
	int stage = argc > 1 ? atoi(argv[1]) : 0;
	const char *self = "/proc/self/exe";
	if (stage == 0) {
		int a = make(), b = make(), c = make();
		printf("stage 0: %d %d %d\n", a, b, c);
		fflush(stdout);
		pid_t p = fork();
		if (p == 0) {
			printf("fork child: %d\n", make());
			fflush(stdout);
			_exit(0);
		}
		waitpid(p, NULL, 0);
		execl(self, "exec_ids", "1", (char *)NULL);
	} else if (stage == 1) {
		printf("stage 1 (execl): %d\n", make());
		fflush(stdout);
		char *args[] = { "exec_ids", "2", NULL };
		execv(self, args);
	} else if (stage == 2) {
		printf("stage 2 (execv): %d\n", make());
		fflush(stdout);
		char *env[] = { "A=1", NULL };
		for (char **e = environ; *e; e++) /* keep LD_PRELOAD, if any */
			if (strncmp(*e, "LD_PRELOAD=", 11) == 0)
				env[0] = *e;
		execle(self, "exec_ids", "3", (char *)NULL, env);
	} else if (stage == 3) {
		printf("stage 3 (execle): %d, counter variable %s\n", make(),
		       getenv("PTIMERS_NEXT_ID") ? "visible" : "not visible");
		fflush(stdout);
		char *args[] = { "exec_ids", "4", NULL };
		execvp(self, args);
	} else {
		printf("stage 4 (execvp): %d\n", make());
		return 0;
	}
	perror("exec");
	return 1;
}
