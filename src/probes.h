/* SPDX-License-Identifier: MIT */
/*
 * USDT probes (provider "ptimers"), as glibc, PostgreSQL and Python ship
 * them: a no-op instruction and an ELF note each, which perf, bpftrace
 * and systemtap attach to (`readelf -n libptimers.so` lists them):
 *
 *   create  (id, clockid, notify, signo)   a timer made
 *   arm     (id, expires_ns, interval_ns)  settime; expires 0: disarmed
 *   fire    (id, now_ns)                   an expiry notified (signal or thread)
 *   deliver (id, overrun)                  its signal taken by the program
 *   delete  (id)
 *
 * Without <sys/sdt.h> (Debian's systemtap-sdt-dev) they compile to nothing.
 */
#ifndef PTIMERS_PROBES_H
#define PTIMERS_PROBES_H
#if __has_include(<sys/sdt.h>)
#include <sys/sdt.h>
#define PT_PROBE1(n, a) STAP_PROBE1(ptimers, n, a)
#define PT_PROBE2(n, a, b) STAP_PROBE2(ptimers, n, a, b)
#define PT_PROBE3(n, a, b, c) STAP_PROBE3(ptimers, n, a, b, c)
#define PT_PROBE4(n, a, b, c, d) STAP_PROBE4(ptimers, n, a, b, c, d)
#else
#define PT_PROBE1(n, a) ((void)0)
#define PT_PROBE2(n, a, b) ((void)0)
#define PT_PROBE3(n, a, b, c) ((void)0)
#define PT_PROBE4(n, a, b, c, d) ((void)0)
#endif
#endif
