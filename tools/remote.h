/* SPDX-License-Identifier: MIT */
/* The CLI's commands that read another process (tools/remote.c). */
#ifndef PTIMERS_REMOTE_H
#define PTIMERS_REMOTE_H

int cmd_ls(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_show(int argc, char **argv);

#endif
