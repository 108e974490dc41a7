#!/usr/bin/env bash
# Run every test: the suites on a normal build, again under ASan+UBSan and
# under TSan, and the unit tests under valgrind.  Ends with
# "N passed, N failed" over all of them; exit status 0 only if none failed.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh || exit 1

tally=$(mktemp)
trap 'rm -f "$tally"' EXIT
export CMOCKA_MESSAGE_OUTPUT=TAP
status=0

build() { # dir, meson options...
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >/dev/null || return 1
  fi
  ninja -C "$dir" >/dev/null || { ninja -C "$dir"; return 1; }
}

run() { # label, build dir, meson test arguments...
  local label=$1 dir=$2; shift 2
  rm -f "$dir"/meson-logs/testlog*.json
  meson test -C "$dir" --print-errorlogs "$@" >"$dir/meson-logs/console.txt" 2>&1 || {
    status=1
    tail -n 60 "$dir/meson-logs/console.txt"
  }
  # meson names the log after the wrapper when there is one
  local log
  log=$(ls -t "$dir"/meson-logs/testlog*.json 2>/dev/null | head -n 1)
  python3 scripts/summarize.py "${log:-$dir/meson-logs/testlog.json}" "$label" "$tally"
}

if build build; then
  run "suites" build
  PTIMERS_STRESS_SECONDS=2 run "valgrind" build --suite unit \
    --wrapper "valgrind --fair-sched=yes --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-possibly-lost=no --suppressions=$PWD/tests/valgrind.supp -q"
else
  echo "normal build failed"; echo "0 1 0" >>"$tally"; status=1
fi
if build build-asan -Db_sanitize=address,undefined -Db_lundef=false; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run "asan+ubsan" build-asan --no-suite dropin
else
  echo "asan build failed"; echo "0 1 0" >>"$tally"; status=1
fi
if build build-tsan -Db_sanitize=thread -Db_lundef=false; then
  TSAN_OPTIONS=halt_on_error=1:exitcode=66:die_after_fork=0 run "tsan" build-tsan --no-suite dropin
else
  echo "tsan build failed"; echo "0 1 0" >>"$tally"; status=1
fi

# The image decoder under libFuzzer, time-bounded (a longer run: README).
mkdir -p build-fuzz
if scripts/fuzz.sh 20 >build-fuzz/run.log 2>&1; then
  echo "1 0 0" >>"$tally"; tail -n 1 build-fuzz/run.log
else
  echo "0 1 0" >>"$tally"; status=1; tail -n 20 build-fuzz/run.log
fi

read -r p f k < <(awk '{p+=$1; f+=$2; k+=$3} END {print p+0, f+0, k+0}' "$tally")
[ "$f" -eq 0 ] || status=1
echo "$p passed, $f failed, $k skipped"
exit $status
