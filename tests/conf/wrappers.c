/* SPDX-License-Identifier: MIT */
/*
 * Conformance: which functions the program runs on.  The kernel side must
 * run on libc alone, or the comparison the suite exists for is weakened:
 * every libc function the hooks stand in for must come from libc (or from
 * a sanitizer's runtime, which stands in front of libc in those builds),
 * and nothing of ptimers may be loaded at all.  The engine side must run
 * with the hooks in front of libc.
 */
#include "conf.h"

#include <dlfcn.h>
#include <link.h>

static const char *const wrapped[] = {
	"sigaction", "signal", "bsd_signal", "sysv_signal", "sigtimedwait", "sigwaitinfo",
	"sigwait", "signalfd", "read", "close", "dup", "dup2", "dup3",
};

static bool is_runtime(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	return strncmp(base, "libc.so", 7) == 0 || strncmp(base, "libasan", 7) == 0 ||
	       strncmp(base, "libtsan", 7) == 0 || strncmp(base, "libubsan", 8) == 0;
}

static int find_ptimers(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	if (strstr(info->dlpi_name, "ptimers")) {
		*(const char **)data = info->dlpi_name;
		return 1;
	}
	return 0;
}

CONF_CASE(wrappers)
{
	const char *loaded = NULL;
	dl_iterate_phdr(find_ptimers, &loaded);
	for (size_t i = 0; i < sizeof(wrapped) / sizeof(wrapped[0]); i++) {
		void *def = dlsym(RTLD_DEFAULT, wrapped[i]);
		Dl_info where;
		CHECK(def && dladdr(def, &where) && where.dli_fname);
		if (!B->engine && !is_runtime(where.dli_fname))
			failf(__LINE__, "%s comes from %s, not libc", wrapped[i], where.dli_fname);
		if (B->engine && strstr(where.dli_fname, "libc.so"))
			failf(__LINE__, "%s comes from libc: the hooks are not in front", wrapped[i]);
	}
	if (!B->engine && loaded)
		failf(__LINE__, "%s is loaded into the kernel side", loaded);
#ifdef CONF_ENGINE
	CHECK(loaded != NULL);
	CHECK_EQ(ptimer_hooks_linked(), 1);
#endif
}
