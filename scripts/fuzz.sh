#!/usr/bin/env bash
# Fuzz the checkpoint image decoder with libFuzzer (clang), under ASan and
# UBSan, for SECONDS (default 60), from the seed images in tests/fuzz/seeds.
#   scripts/fuzz.sh [SECONDS] [libFuzzer options...]
# Builds into build-fuzz/.  The test command runs it for 20 s; a longer run:
#   scripts/fuzz.sh 3600 -jobs=2
# Exit status 0 when nothing was found; a crashing input is left in
# build-fuzz/ (crash-*, leak-*, oom-*) and named on the output.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
out=build-fuzz
mkdir -p "$out/corpus"
command -v clang >/dev/null || { echo "fuzz: clang is missing (scripts/setup.sh installs it)"; exit 1; }
protoc-c --proto_path=src --c_out="$out" src/image.proto
srcs=(src/sys.c src/section.c src/uaccess.S src/uaccess.c src/lock.c src/rcu.c src/slice.c src/pool.c src/heap.c src/ids.c
      src/dispatch.c src/base.c src/cpu.c src/clocks.c src/notify.c src/workers.c src/timer.c
      src/root.c src/engine.c src/readout.c src/image.c "$out/image.pb-c.c" tests/fuzz/image_fuzz.c)
bin=$out/image_fuzz
if [ ! -x "$bin" ] || [ -n "$(find "${srcs[@]}" src/*.h -newer "$bin" 2>/dev/null | head -1)" ]; then
  clang -std=gnu11 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -DPTIMERS_NO_URCU_INLINE -Iinclude -Isrc -I"$out" "${srcs[@]}" \
    $(pkg-config --cflags --libs liburcu-bp libprotobuf-c) -lpthread -o "$bin"
fi
cp -n tests/fuzz/seeds/* "$out/corpus/" 2>/dev/null || true
echo "fuzz: the image decoder for $seconds s"
"$bin" -max_total_time="$seconds" -max_len=65536 -malloc_limit_mb=64 -rss_limit_mb=1024 \
  -timeout=10 -print_final_stats=1 -artifact_prefix="$out/" "$@" "$out/corpus" tests/fuzz/seeds 2>&1 |
  grep -E '^(#[0-9]+ *DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)|INFO: Seed' || true
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo "fuzz: FAILED (status $status): see the input written above"
  exit 1
fi
echo "fuzz: nothing found"
