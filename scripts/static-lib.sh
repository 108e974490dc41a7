#!/bin/sh
# libptimers.a for static linking: the engine's objects merged into one
# (so that linking any public function brings the whole engine, its
# start-up and fork handling included), with only the names that the
# version script exports left global.
#   static-lib.sh ENGINE.a VERSION-SCRIPT OUT.a
set -eu
engine=$1 map=$2 out=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ld -r --whole-archive "$engine" -o "$tmp/ptimers.o"
# Global names of the version script: the words before ';' between "global:" and "local:".
sed -n '/global:/,/local:/p;/PTIMERS_PRIVATE/,/}/p' "$map" | grep -v ':' | tr ';' '\n' |
  sed 's/[[:space:]]//g; /^$/d; /^[{}/*]/d' | grep -v '\*' >"$tmp/keep"
objcopy --keep-global-symbols="$tmp/keep" "$tmp/ptimers.o"
rm -f "$out"
ar rcs "$out" "$tmp/ptimers.o"
