/* SPDX-License-Identifier: MIT */
/*
 * How another process reads this one's timers: `ptimers ls PID` and
 * `ptimers checkpoint PID`.
 *
 * When the engine starts, it listens on the abstract Unix socket
 * "@ptimers/PID" (no file to clean up; gone with the process).  The
 * dispatcher accepts; the kernel's credentials of the peer (SO_PEERCRED)
 * decide: the same user, or root, gets an answer, anyone else a refusal,
 * and the connection is closed.  Each accepted request is served by a
 * short-lived thread, with every signal blocked, so that a slow reader
 * never holds up an expiry, and what it reads is the lock-free readout
 * or checkpoint, which never stalls the timers' owners.
 *
 * Protocol: one request line ("LIST", "IMAGE" or "STATS", at most 64
 * bytes, within two seconds), then one answer: "OK LIST <pid>\n" and the
 * extended readout, "OK IMAGE <pid>\n" and the checkpoint image, "OK STATS
 * <pid> ...\n", or "ERR <why>\n".  A malformed request costs the process a
 * refused line and a closed socket, nothing else.
 *
 * PTIMERS_CONTROL=0 in the environment turns it off.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dispatch.h"
#include "ptimers.h"
#include "sys.h"

#define MAX_SERVING 8

/* The serving side runs on threads whose descriptor table is the
 * dispatcher's own (dispatch.c): its socket calls are the system calls
 * themselves, which ThreadSanitizer, keeping one table per process, does
 * not mistake for the program's descriptors of the same numbers. */
static ssize_t sys_send(int fd, const void *p, size_t n)
{
	return syscall(SYS_sendto, fd, p, n, MSG_NOSIGNAL, NULL, 0);
}

static ssize_t sys_recv(int fd, void *p, size_t n)
{
	return syscall(SYS_recvfrom, fd, p, n, 0, NULL, NULL);
}

static struct {
	int fd;      /* the listening socket, -1: none */
	pid_t pid;   /* the process it was made for */
	int serving; /* requests being served */
} ctl = { .fd = -1 };

/* Write all of it, or give up (a reader that went away, or timed out). */
static int send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = sys_send(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		send_all(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* Read one request line: 0, or -1 (too long, closed, or too slow). */
static int read_request(int fd, char *req, size_t size)
{
	size_t n = 0;
	while (n < size - 1) {
		ssize_t r = sys_recv(fd, req + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (req[n] == '\n') {
			req[n] = '\0';
			return 0;
		}
		n++;
	}
	return -1;
}

/* End a connection for every copy of it: a fork the program makes while
 * a request is served gives the child a copy of the socket, and a plain
 * close would leave the client waiting for an end of file until that
 * child exits.  Closed through libc, as the serving thread's dup of it
 * is (the hooks only forget the number; ThreadSanitizer, which tracks
 * descriptors, must see the number become free before accept reuses it). */
static void hang_up(int fd)
{
	syscall(SYS_shutdown, fd, SHUT_RDWR);
	pt_sys_close(fd);
}

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char req[64];

	if (read_request(fd, req, sizeof(req)) != 0) {
		say(fd, "ERR expected one request line (LIST, IMAGE or STATS) within 2 s\n");
	} else if (!strcmp(req, "LIST")) {
		say(fd, "OK LIST %d\n", (int)pt_pid);
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);
		if (f) {
			ptimer_readout(f, PTIMER_READOUT_EXTENDED);
			fclose(f);
			send_all(fd, text, len);
			free(text);
		}
	} else if (!strcmp(req, "IMAGE")) {
		say(fd, "OK IMAGE %d\n", (int)pt_pid);
		ptimer_checkpoint(fd, NULL);
	} else if (!strcmp(req, "STATS")) {
		struct ptimer_stats st;
		ptimer_get_stats(&st, sizeof(st));
		say(fd, "OK STATS %d timers=%llu bytes=%llu signals=%llu threads=%llu put_off=%llu\n",
		    (int)pt_pid, (unsigned long long)st.timers, (unsigned long long)st.bytes,
		    (unsigned long long)st.signals_sent, (unsigned long long)st.threads_started,
		    (unsigned long long)st.sends_put_off);
	} else {
		say(fd, "ERR unknown request (LIST, IMAGE or STATS)\n");
	}
	hang_up(fd);
	__atomic_sub_fetch(&ctl.serving, 1, __ATOMIC_RELAXED);
	return NULL;
}

static void refuse_peer(int fd, const struct ucred *cr)
{
	say(fd, "ERR permission denied: uid %d may not read process %d (uid %d)\n", (int)cr->uid,
	    (int)pt_pid, (int)geteuid());
	hang_up(fd);
}

/* The control thread: take each connection as it comes.  The socket is
 * a descriptor the program may close or replace (the engine itself holds
 * none): then the thread ends, and the process can no longer be asked. */
static void *accept_loop(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	for (;;) {
		int fd = (int)syscall(SYS_accept4, lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				continue;
			return NULL;
		}
		struct ucred cr;
		socklen_t len = sizeof(cr);
		if (syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 ||
		    (cr.uid != 0 && cr.uid != geteuid())) {
			refuse_peer(fd, &cr);
			continue;
		}
		struct timeval tv = { 2, 0 };
		syscall(SYS_setsockopt, fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		syscall(SYS_setsockopt, fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (__atomic_add_fetch(&ctl.serving, 1, __ATOMIC_RELAXED) > MAX_SERVING) {
			__atomic_sub_fetch(&ctl.serving, 1, __ATOMIC_RELAXED);
			say(fd, "ERR busy: %d requests being served\n", MAX_SERVING);
			hang_up(fd);
			continue;
		}
		/* Threads started here inherit the dispatcher's mask: every
		 * signal blocked, none taken from the program. */
		pthread_attr_t attr;
		pthread_t th;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &attr, serve, (void *)(intptr_t)fd) != 0) {
			__atomic_sub_fetch(&ctl.serving, 1, __ATOMIC_RELAXED);
			say(fd, "ERR cannot serve now\n");
			hang_up(fd);
		}
		pthread_attr_destroy(&attr);
	}
}

/* The socket's name for a process. */
static socklen_t address(struct sockaddr_un *a, pid_t pid)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "ptimers/%d", (int)pid);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static void control_start(void)
{
	const char *env = getenv("PTIMERS_CONTROL");
	if (env && !strcmp(env, "0"))
		return;
	int fd = (int)syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a;
	socklen_t len = address(&a, pt_pid);
	if (fd < 0)
		return;
	if (syscall(SYS_bind, fd, (struct sockaddr *)&a, len) != 0 || syscall(SYS_listen, fd, 16) != 0) {
		pt_sys_close(fd); /* taken (a process of another namespace?): no control */
		return;
	}
	/* Its own thread, started from the dispatcher's: every signal
	 * blocked, none taken from the program. */
	pthread_attr_t attr;
	pthread_t th;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, accept_loop, (void *)(intptr_t)fd) != 0) {
		pt_sys_close(fd);
	} else {
		ctl.fd = fd;
		ctl.pid = pt_pid;
	}
	pthread_attr_destroy(&attr);
}

/* The socket lives in the dispatcher's descriptor table, which a fork
 * child (made by a program thread) does not have: nothing to close.  The
 * child listens on its own when its engine starts. */
static void control_fork_child(void)
{
	ctl.fd = -1;
	ctl.serving = 0;
}

__attribute__((constructor(105))) static void control_init(void)
{
	pt_dispatch_on_start(control_start);
	pthread_atfork(NULL, NULL, control_fork_child);
}

/* ---- the client's side (the ptimers command) ---- */

int ptimer__control_connect(pid_t pid, char *why, size_t why_size);
int ptimer__control_connect(pid_t pid, char *why, size_t why_size)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a;
	socklen_t len = address(&a, pid);
	if (fd < 0) {
		snprintf(why, why_size, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&a, len) != 0) {
		int e = errno;
		snprintf(why, why_size, "%s", e == ECONNREFUSED ? "no ptimers engine listens there"
								 : strerror(e));
		pt_sys_close(fd);
		errno = e;
		return -1;
	}
	/* Whoever holds the name must be that very process. */
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cr.pid != pid) {
		snprintf(why, why_size, "the socket of process %d is held by process %d", (int)pid,
			 (int)cr.pid);
		pt_sys_close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}
