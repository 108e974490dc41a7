/* SPDX-License-Identifier: MIT */
/*
 * LeakSanitizer scans the heap, not anonymous mappings: what live objects
 * in the engine's own mappings (the pool's timers, the ID space's
 * regions) point to would look leaked unless those mappings are roots.
 */
#ifndef PTIMERS_LSAN_H
#define PTIMERS_LSAN_H

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#define LSAN_ROOT(p, n) __lsan_register_root_region(p, n)
#define LSAN_UNROOT(p, n) __lsan_unregister_root_region(p, n)
#else
#define LSAN_ROOT(p, n) do { } while (0)
#define LSAN_UNROOT(p, n) do { } while (0)
#endif

#endif
