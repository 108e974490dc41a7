#!/bin/sh
# Runs a test program with all its threads on one CPU (the first this
# process may use), as in a container limited to one: a thread that holds
# a timer's lock is then often put aside for the thread it woke, which
# wants that lock next.  The program's own output and exit status stand.
set -eu
cpu=$(taskset -cp $$ | sed 's/.*: *//; s/[,-].*//')
exec taskset -c "$cpu" "$@"
