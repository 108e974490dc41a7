/* SPDX-License-Identifier: MIT */
/*
 * Can the drop-in enter a program?  It is a library the dynamic linker
 * preloads, so it cannot enter a program the dynamic linker does not
 * load (statically linked), one of another architecture, or one the
 * kernel runs in secure mode, where LD_PRELOAD is ignored: set-user-ID or
 * set-group-ID to someone else, or granted file capabilities.  A script
 * is as enterable as its interpreter.  Decided before exec, from the file,
 * as the kernel and the dynamic linker will decide it.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "enterable.h"

#define MAX_SCRIPT_DEPTH 4 /* the kernel's own limit on nested interpreters */

/* Where execvp() would find prog. */
static bool resolve(const char *prog, char *out, size_t size)
{
	if (strchr(prog, '/')) {
		snprintf(out, size, "%s", prog);
		return true;
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/bin:/usr/bin";
	for (const char *p = path; *p;) {
		const char *e = strchr(p, ':');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		snprintf(out, size, "%.*s/%s", (int)n, n ? p : ".", prog);
		if (access(out, X_OK) == 0)
			return true;
		p += n + (e ? 1 : 0);
	}
	return false;
}

static const char *owner_name(uid_t uid, char *buf, size_t size)
{
	struct passwd *pw = getpwuid(uid);
	if (pw)
		snprintf(buf, size, "%s", pw->pw_name);
	else
		snprintf(buf, size, "uid %d", (int)uid);
	return buf;
}

/* Secure mode: the kernel sets AT_SECURE, and the dynamic linker then
 * ignores LD_PRELOAD for a library outside the trusted directories. */
static bool secure_exec(const char *path, const struct stat *st, char *why, size_t size)
{
	struct statvfs fs;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1)
		return false; /* set-ID bits and file capabilities are then ignored */
	if (statvfs(path, &fs) == 0 && (fs.f_flag & ST_NOSUID))
		return false;
	char who[64];
	if ((st->st_mode & S_ISUID) && st->st_uid != getuid()) {
		snprintf(why, size, "it is set-user-ID %s: the kernel runs it in secure mode, where "
			 "LD_PRELOAD is ignored", owner_name(st->st_uid, who, sizeof(who)));
		return true;
	}
	if ((st->st_mode & S_ISGID) && st->st_gid != getgid()) {
		snprintf(why, size, "it is set-group-ID %d: the kernel runs it in secure mode, where "
			 "LD_PRELOAD is ignored", (int)st->st_gid);
		return true;
	}
	if (getuid() != 0 && getxattr(path, "security.capability", NULL, 0) > 0) {
		snprintf(why, size, "it has file capabilities: the kernel runs it in secure mode, where "
			 "LD_PRELOAD is ignored");
		return true;
	}
	return false;
}

/* This program's own ELF class and machine: the drop-in's. */
static bool own_elf(unsigned char *cls, uint16_t *machine)
{
	Elf64_Ehdr eh;
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	bool ok = fd >= 0 && read(fd, &eh, sizeof(eh)) == (ssize_t)sizeof(eh);
	if (fd >= 0)
		close(fd);
	if (ok) {
		*cls = eh.e_ident[EI_CLASS];
		*machine = eh.e_machine;
	}
	return ok;
}

/* path: taken as it is (an interpreter: the kernel does not search
 * PATH for it), or searched for as execvp() does. */
static int check(const char *prog, bool as_path, int depth, char *why, size_t size)
{
	char path[PATH_MAX];
	if (as_path)
		snprintf(path, sizeof(path), "%s", prog);
	else if (!resolve(prog, path, sizeof(path)))
		return 0; /* exec itself will say it is not found */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* unreadable (execute-only): exec decides */
	struct stat st;
	unsigned char head[4096];
	ssize_t n = fstat(fd, &st) == 0 ? pread(fd, head, sizeof(head), 0) : -1;
	int r = 0;
	if (n < 0)
		goto out;
	if (secure_exec(path, &st, why, size)) {
		r = -1;
		goto out;
	}
	if (n >= 2 && head[0] == '#' && head[1] == '!') {
		/* A script: its interpreter is what the kernel runs. */
		char interp[PATH_MAX];
		size_t i = 2, k = 0;
		while (i < (size_t)n && (head[i] == ' ' || head[i] == '\t'))
			i++;
		while (i < (size_t)n && head[i] != ' ' && head[i] != '\t' && head[i] != '\n' &&
		       k < sizeof(interp) - 1)
			interp[k++] = (char)head[i++];
		interp[k] = '\0';
		if (k && depth < MAX_SCRIPT_DEPTH) {
			r = check(interp, true, depth + 1, why, size);
			if (r) {
				char inner[512];
				snprintf(inner, sizeof(inner), "%s", why);
				snprintf(why, size, "its interpreter %s: %s", interp, inner);
			}
		}
		goto out;
	}
	if (n < (ssize_t)sizeof(Elf64_Ehdr) || memcmp(head, ELFMAG, SELFMAG) != 0)
		goto out; /* not ELF: exec decides */
	unsigned char cls = 0;
	uint16_t machine = 0;
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)head;
	if (own_elf(&cls, &machine) && (head[EI_CLASS] != cls || eh->e_machine != machine)) {
		snprintf(why, size, "it is a %s program for another machine: the drop-in is a "
			 "library of this one", head[EI_CLASS] == ELFCLASS32 ? "32-bit" : "foreign");
		r = -1;
		goto out;
	}
	bool interp = false;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		off_t at = (off_t)eh->e_phoff + (off_t)i * eh->e_phentsize;
		if (pread(fd, &ph, sizeof(ph), at) != (ssize_t)sizeof(ph))
			break;
		if (ph.p_type == PT_INTERP) {
			interp = true;
			break;
		}
	}
	if (!interp) {
		snprintf(why, size, "it is statically linked: the dynamic linker, which loads the "
			 "drop-in, does not run");
		r = -1;
	}
out:
	close(fd);
	return r;
}

int pt_program_enterable(const char *prog, char *why, size_t why_size)
{
	why[0] = '\0';
	return check(prog, false, 0, why, why_size);
}
