/* SPDX-License-Identifier: MIT */
/* The /proc/PID/timers text (proctimers.h).  The engine's own reads and
 * closes (sys.h): the hooks stand in for libc's. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proctimers.h"
#include "sys.h"

const char *pt_proc_notify_name(int notify)
{
	switch (notify & ~SIGEV_THREAD_ID) {
	case SIGEV_SIGNAL: return "signal";
	case SIGEV_NONE: return "none";
	case SIGEV_THREAD: return "thread";
	default: return "?";
	}
}

static int notify_of(const char *name)
{
	return !strcmp(name, "signal") ? SIGEV_SIGNAL
	       : !strcmp(name, "none") ? SIGEV_NONE
	       : !strcmp(name, "thread") ? SIGEV_THREAD
					 : -1;
}

int pt_proc_timer_write(FILE *out, const struct pt_proc_timer *t)
{
	int r = fprintf(out, "ID: %d\nsignal: %d/%016" PRIx64 "\nnotify: %s/%s.%d\nClockID: %d\n", t->id,
			t->signo, t->value, pt_proc_notify_name(t->notify),
			(t->notify & SIGEV_THREAD_ID) ? "tid" : "pid", (int)t->target, (int)t->clockid);
	if (r >= 0 && t->extended)
		r = fprintf(out, "remaining: %lld.%09ld\ninterval: %lld.%09ld\noverrun: %d\nstate: %s\n",
			    (long long)t->setting.it_value.tv_sec, t->setting.it_value.tv_nsec,
			    (long long)t->setting.it_interval.tv_sec, t->setting.it_interval.tv_nsec,
			    t->overrun, !t->armed ? "disarmed"
					: t->signal_pending ? "armed signal-pending" : "armed");
	return r < 0 ? -1 : 0;
}

int pt_proc_timers_parse(const char *text, size_t len, struct pt_proc_timer **out, size_t *n)
{
	size_t count = 0, cap = 16;
	struct pt_proc_timer *t = malloc(cap * sizeof(*t)), *cur = NULL;
	if (!t)
		return -ENOMEM;
	for (const char *p = text, *end = text + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char line[256];
		snprintf(line, sizeof(line), "%.*s", (int)(ll < sizeof(line) ? ll : sizeof(line) - 1), p);
		p += ll + (nl ? 1 : 0);
		int v;
		if (sscanf(line, "ID: %d", &v) == 1) {
			if (count == cap) {
				struct pt_proc_timer *nt = realloc(t, 2 * cap * sizeof(*t));
				if (!nt) {
					free(t);
					return -ENOMEM;
				}
				t = nt;
				cap *= 2;
			}
			cur = &t[count++];
			memset(cur, 0, sizeof(*cur));
			cur->id = v;
			cur->notify = -1;
			continue;
		}
		if (!cur)
			continue;
		char kind[16], who[8];
		int sig;
		uint64_t value;
		if (sscanf(line, "signal: %d/%" SCNx64, &sig, &value) == 2) {
			cur->signo = sig;
			cur->value = value;
		} else if (sscanf(line, "notify: %15[a-z?]/%7[a-z].%d", kind, who, &v) == 3) {
			cur->notify = notify_of(kind);
			if (cur->notify >= 0 && !strcmp(who, "tid"))
				cur->notify |= SIGEV_THREAD_ID;
			cur->target = v;
		} else if (sscanf(line, "ClockID: %d", &v) == 1) {
			cur->clockid = v;
		}
	}
	*out = t;
	*n = count;
	return 0;
}

int pt_proc_timers_read(pid_t pid, char **text, size_t *len)
{
	char path[64];
	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/timers", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/timers");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t n = 0, cap = 1 << 20;
	char *buf = malloc(cap + 1);
	int err = buf ? 0 : -ENOMEM;
	while (!err) {
		if (n == cap) {
			char *b = realloc(buf, 2 * cap + 1);
			if (!b) {
				err = -ENOMEM;
				break;
			}
			buf = b;
			cap *= 2;
		}
		ssize_t r = pt_sys_read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			err = -errno;
		else if (r == 0)
			break;
		else
			n += (size_t)r;
	}
	pt_sys_close(fd);
	if (err) {
		free(buf);
		return err;
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
}
