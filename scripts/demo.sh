#!/usr/bin/env bash
# Install dependencies, build, and run the main job: the example program on
# the engine through the drop-in, then a running program's timers
# checkpointed and restored, with their IDs, into a new program.  (The
# benchmark against the kernel is `build/tools/ptimers bench`.)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
echo "== ptimers exec -- build/examples/demo"
build/tools/ptimers exec -- build/examples/demo

# The headline: checkpoint a running program's timers and restore them, with
# the same sparse IDs, into a new program (the README's worked example).
p=build/tools/ptimers t=build/examples/ticker
img=$(mktemp /tmp/ticker.XXXXXX.img)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -f "$img"' EXIT
wait_for() { for _ in $(seq 1 100); do "$p" ls "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }
echo
echo "== $p exec -- $t &          (three timers, IDs 1000000, 2000000 and the next)"
"$p" exec -- "$t" >/dev/null & pids+=($!); old=$!
wait_for "$old"
echo "== $p ls $old"
"$p" ls "$old"
echo "== $p checkpoint $old -o $img"
"$p" checkpoint "$old" -o "$img"
echo "== crit decode -i $img      (CRIU's own tool reads the image)"
crit decode -i "$img" | python3 -c 'import json,sys; [print("  it_id %(it_id)d clock %(clock_id)d signal %(si_signo)d interval %(isec)d.%(insec)09d s remaining %(vsec)d.%(vnsec)09d s" % e) for e in json.load(sys.stdin)["entries"]]'
echo "== $p show $img           (the image without crit: entries and ptimers' own fields)"
"$p" show "$img"
echo "== $p restore --hold-signals $img -- $t --adopt &"
"$p" restore --hold-signals "$img" -- "$t" --adopt --seconds=3 & pids+=($!); new=$!
wait_for "$new"
echo "== $p ls $new              (the same timers, before its main ran)"
"$p" ls "$new"
wait "$new"
