#!/usr/bin/env bash
# The USDT probes (src/probes.h): listed in the library's notes, and one
# attached to with perf where perf can attach here.  Prints TAP.
# Args: libptimers.so ptimers
set -u
lib=$1 ptimers=$2
n=0 fails=0
ok() { n=$((n+1)); echo "ok $n - $1"; }
notok() { n=$((n+1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "$l" | sed 's/^/# /'; done; fails=$((fails+1)); }
skip() { n=$((n+1)); echo "ok $n - $1 # SKIP $2"; }
echo "1..3"

notes=$(readelf -n "$lib" 2>&1)
want="create arm fire deliver delete"
missing=""
for p in $want; do
  echo "$notes" | grep -A1 'Provider: ptimers' | grep -q "Name: $p\$" || missing="$missing $p"
done
if [ -z "$missing" ]; then ok "readelf -n lists the probes: $want"; else notok "readelf -n lists the probes: $want" "missing:$missing"; fi
if echo "$notes" | grep -q 'Provider: ptimers' && readelf -n "$ptimers" | grep -q 'Provider: ptimers'; then
  ok "the ptimers command carries them too (its engine is linked in)"
else
  notok "the ptimers command carries them too (its engine is linked in)" "$(readelf -n "$ptimers" | head -5)"
fi

# perf: a uprobe on sdt_ptimers:arm while the CLI arms timers; the probe
# is removed again whatever happens (no system setting is left changed).
if ! command -v perf >/dev/null || ! perf --version >/dev/null 2>&1; then
  skip "perf counts the arm probe" "perf is not installed (Debian's linux-perf)"
elif [ "$(id -u)" != 0 ]; then
  skip "perf counts the arm probe" "uprobes need root"
else
  tmp=$(mktemp -d)
  cleanup() {
    perf probe -q -d 'sdt_ptimers:*' >/dev/null 2>&1
    perf buildid-cache --remove "$ptimers" >/dev/null 2>&1
    rm -rf "$tmp"
  }
  trap cleanup EXIT
  if ! out=$(perf buildid-cache --add "$ptimers" 2>&1 && perf probe -x "$ptimers" sdt_ptimers:arm 2>&1); then
    skip "perf counts the arm probe" "perf cannot place a uprobe here: $(echo "$out" | tail -n 1)"
  else
    perf record -q -e sdt_ptimers:arm -o "$tmp/perf.data" -- \
      "$ptimers" bench --only=calls --iterations=100 --rounds=1 >/dev/null 2>&1
    count=$(perf script -i "$tmp/perf.data" 2>/dev/null | grep -c 'sdt_ptimers:arm')
    # arm+disarm and settime: 100 calls each, two per arm+disarm, at least
    if [ "$count" -ge 300 ]; then ok "perf counts the arm probe ($count hits)"
    else notok "perf counts the arm probe" "$count hits, expected at least 300"; fi
  fi
fi
exit $((fails > 0))
