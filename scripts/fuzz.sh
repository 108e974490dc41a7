#!/usr/bin/env bash
# Fuzz the checkpoint image decoder with libFuzzer (clang), under ASan and
# UBSan, for SECONDS (default 60), from the seed images in tests/fuzz/seeds.
#   scripts/fuzz.sh [SECONDS] [libFuzzer options...]
# Builds meson's image_fuzz target (-Dfuzz=true: the codec alone) in
# build-fuzz/.  The test command runs it for 20 s; a longer run:
#   scripts/fuzz.sh 3600 -jobs=2
# Exit status 0 when nothing was found; a crashing input is left in
# build-fuzz/ (crash-*, leak-*, oom-*) and named on the output.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
out=build-fuzz
command -v clang >/dev/null || { echo "fuzz: clang is missing (scripts/setup.sh installs it)"; exit 1; }
if [ ! -f "$out/build.ninja" ]; then
  CC=clang meson setup "$out" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C "$out" tests/image_fuzz >/dev/null || { ninja -C "$out" tests/image_fuzz; exit 1; }
bin=$out/tests/image_fuzz
mkdir -p "$out/corpus"
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
