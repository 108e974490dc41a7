#!/usr/bin/env bash
# Print the path of a criu the CRIU suite can use: PATH's when it is 4.1 or
# newer, else the copy in this directory, built into DIR (once).  On
# failure, print why on one line and exit 1.
set -uo pipefail
dir=${1:?usage: build.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
sum=2b4a71ec83a8264d51088b54a8527160f52a56494119d16913e143f4fea84d37

new_enough() { # criu binary
  "$1" --version 2>/dev/null |
    awk '/^Version:/ { split($2, v, "."); ok = v[1] > 4 || (v[1] == 4 && v[2] >= 1) } END { exit !ok }'
}

if c=$(command -v criu) && new_enough "$c"; then
  echo "$c"
  exit 0
fi
mkdir -p "$dir" || { echo "cannot make $dir"; exit 1; }
out="$dir/criu-4.2/criu/criu"
exec 9>"$dir/.lock"
flock 9
if [ ! -x "$out" ]; then
  echo "$sum  $here/criu-4.2.tar.xz" | sha256sum -c --quiet - >/dev/null 2>&1 ||
    { echo "tests/criu/criu-4.2.tar.xz is missing or not the expected file"; exit 1; }
  rm -rf "$dir/criu-4.2"
  tar -xJf "$here/criu-4.2.tar.xz" -C "$dir" || { echo "cannot unpack criu-4.2.tar.xz"; exit 1; }
  if ! make -C "$dir/criu-4.2" -j"$(nproc)" criu >"$dir/build.log" 2>&1; then
    echo "building CRIU 4.2 failed (scripts/setup.sh installs what it needs): $(tail -n 1 "$dir/build.log")"
    exit 1
  fi
fi
if ! "$out" check >"$dir/check.log" 2>&1; then
  echo "criu check fails on this machine: $(grep -v '^Warn' "$dir/check.log" | tail -n 1)"
  exit 1
fi
echo "$out"
