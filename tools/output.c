/* SPDX-License-Identifier: MIT */
/* Writing a command's output without harming what its path names (output.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "output.h"
#include "sys.h"

const char *pt_output_kind(const char *path)
{
	struct stat st;
	if (!strcmp(path, "-"))
		return "standard output";
	if (stat(path, &st) != 0)
		return "";
	if (S_ISCHR(st.st_mode))
		return "the device ";
	if (S_ISFIFO(st.st_mode))
		return "the FIFO ";
	if (S_ISSOCK(st.st_mode))
		return "the socket ";
	return "";
}

/* Straight through to what is already open for writing. */
static int write_through(int fd, const char *path, const void *buf, size_t len, char *why,
			 size_t why_size)
{
	if (pt_sys_write_all(fd, buf, len) != 0)
		return pt_refuse(why, why_size, errno, "cannot write %s: %s", path, strerror(errno));
	return 0;
}

int pt_output_write(const char *path, const void *buf, size_t len, char *why, size_t why_size)
{
	if (!strcmp(path, "-"))
		return write_through(STDOUT_FILENO, "standard output", buf, len, why, why_size);
	struct stat st, lst;
	bool exists = stat(path, &st) == 0;
	if (!exists && errno != ENOENT)
		return pt_refuse(why, why_size, errno, "cannot write %s: %s", path, strerror(errno));
	if (!exists && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode))
		return pt_refuse(why, why_size, ENOENT, "cannot write %s: it is a symlink to nothing", path);
	if (exists) {
		if (S_ISDIR(st.st_mode))
			return pt_refuse(why, why_size, EISDIR, "cannot write %s: it is a directory", path);
		if (S_ISBLK(st.st_mode))
			return pt_refuse(why, why_size, EINVAL,
				    "refusing to write %s: it is a block device (a disk, not a file)", path);
		if (!S_ISREG(st.st_mode)) {
			/* A device, a FIFO, a socket: written to, never replaced. */
			int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
			if (fd < 0)
				return pt_refuse(why, why_size, errno, "cannot open %s: %s", path, strerror(errno));
			int r = write_through(fd, path, buf, len, why, why_size);
			if (close(fd) != 0 && r == 0)
				r = pt_refuse(why, why_size, errno, "cannot write %s: %s", path, strerror(errno));
			return r;
		}
	}
	/* A regular file (a symlink followed to it), or a new name: replaced
	 * whole, through a temporary file in the same directory. */
	char target[PATH_MAX];
	if (exists) {
		if (!realpath(path, target))
			return pt_refuse(why, why_size, errno, "cannot write %s: %s", path, strerror(errno));
	} else if (snprintf(target, sizeof(target), "%s", path) >= (int)sizeof(target)) {
		return pt_refuse(why, why_size, ENAMETOOLONG, "cannot write %s: the name is too long", path);
	}
	char dirbuf[PATH_MAX], basebuf[PATH_MAX];
	snprintf(dirbuf, sizeof(dirbuf), "%s", target);
	snprintf(basebuf, sizeof(basebuf), "%s", target);
	const char *dir = dirname(dirbuf), *base = basename(basebuf);
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, base) >= (int)sizeof(tmp))
		return pt_refuse(why, why_size, ENAMETOOLONG, "cannot write %s: the name is too long", path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return pt_refuse(why, why_size, errno,
			    "cannot write %s: no file can be made in %s to replace it whole (%s)", path,
			    dir, strerror(errno));
	mode_t mode = exists ? (st.st_mode & 07777) : 0;
	if (!exists) {
		mode_t mask = umask(0);
		umask(mask);
		mode = 0666 & ~mask;
	}
	int err = 0;
	if (fchmod(fd, mode) != 0 || pt_sys_write_all(fd, buf, len) != 0 || fsync(fd) != 0)
		err = errno;
	if (close(fd) != 0 && !err)
		err = errno;
	if (!err && rename(tmp, target) != 0)
		err = errno;
	if (err) {
		unlink(tmp);
		return pt_refuse(why, why_size, err, "cannot write %s: %s", path, strerror(err));
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd); /* the rename itself, on disk */
		close(dfd);
	}
	return 0;
}
