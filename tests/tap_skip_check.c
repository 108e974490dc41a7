/* SPDX-License-Identifier: MIT */
/*
 * tap_skip.c's own check: a case that skips reads as skipped, one that
 * passes as passed (meson reads this suite's output), and one that fails
 * still as failed ("check": the suite run again with "fail", its output
 * read here).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

static void test_passes(void **state)
{
	(void)state;
}

static void test_skips(void **state)
{
	(void)state;
	printf("# skipping on purpose\n");
	skip();
}

static void test_fails(void **state)
{
	(void)state;
	fail_msg("failing on purpose");
}

/* The suite with its failing case, run as a child: its lines, and its
 * exit status, must say so. */
static int check(const char *self)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "'%s' fail 2>/dev/null", self);
	FILE *p = popen(cmd, "r");
	if (!p) {
		printf("Bail out! popen: %m\n");
		return 1;
	}
	static const char *want[] = { "ok 1 - test_passes\n", "ok 2 - test_skips # SKIP\n",
				      "not ok 3 - test_fails\n" };
	static const char *said[] = { "test_passes passed", "test_skips skipped", "test_fails failed" };
	bool seen[3] = { false };
	char line[512];
	while (fgets(line, sizeof(line), p))
		for (int i = 0; i < 3; i++)
			seen[i] |= strcmp(line, want[i]) == 0;
	int status = pclose(p);
	printf("1..4\n");
	for (int i = 0; i < 3; i++)
		printf("%sok %d - the child says %s\n", seen[i] ? "" : "not ", i + 1, said[i]);
	bool failed = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) != 0;
	printf("%sok 4 - the child exited non-zero (status %d)\n", failed ? "" : "not ", status);
	return !(seen[0] && seen[1] && seen[2] && failed);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "check") == 0)
		return check(argv[0]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_passes),
		cmocka_unit_test(test_skips),
		cmocka_unit_test(test_fails),
	};
	size_t n = argc > 1 && strcmp(argv[1], "fail") == 0 ? 3 : 2;
	return _cmocka_run_group_tests("tap_skip", tests, n, NULL, NULL);
}
