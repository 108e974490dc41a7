#!/usr/bin/env bash
# Unmodified programs from Debian's packages that import timer_create, run
# natively (the kernel's timers) and under `ptimers exec` (the engine's),
# with what each does compared.  Prints TAP; exits non-zero on a mismatch.
#
#   bash scripts/real-programs.sh [path/to/ptimers]
#
# Each program is first checked to import timer_create (its dynamic
# symbols), and each run on the engine must report, through
# `ptimers exec --stats`, that its timers really were the engine's.
#
#   timeout (coreutils)   timer_create(CLOCK_REALTIME, NULL): SIGALRM ends a
#                         command that runs too long (exit 124), and a
#                         short command is not disturbed (exit 0).
#   flock (util-linux)    flock -w: a SIGALRM timer bounds the wait for a
#                         lock held elsewhere (exit 1 after the wait).
#   vim                   SIGEV_THREAD through glibc: the timeout of a
#                         regular-expression search runs in a notify thread.
#   shellcheck            the GHC runtime's ticker, a periodic SIGEV_SIGNAL
#                         timer; the analysis output must be byte-identical.
set -u
ptimers=$(readlink -f "${1:-$(dirname "$0")/../build/tools/ptimers}")
[ -x "$ptimers" ] || { echo "real-programs: no $ptimers; build first (scripts/demo.sh does)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; kill $(jobs -p) 2>/dev/null' EXIT
n=0 fails=0

ok()   { n=$((n+1)); echo "ok $n - $1"; }
bad()  { n=$((n+1)); echo "not ok $n - $1"; fails=$((fails+1)); shift; for l in "$@"; do echo "# $l"; done; }

# run NAME -- CMD...: sets rc, ms, out (stdout), stats (engine report)
run() {
  local mode=$1; shift
  local t0 t1
  t0=$(date +%s%N)
  if [ "$mode" = engine ]; then
    out=$("$ptimers" exec --stats -- "$@" 2>"$tmp/err"); rc=$?
  else
    out=$("$@" 2>"$tmp/err"); rc=$?
  fi
  t1=$(date +%s%N)
  ms=$(( (t1 - t0) / 1000000 ))
  stats=$(grep '^ptimers: ' "$tmp/err" | grep -v '^ptimers: \(sleep\|true\)\[' || true)
}

imports_timer_create() {
  local path
  path=$(command -v "$1") || return 1
  nm -D --undefined-only "$(readlink -f "$path")" 2>/dev/null | grep -q ' timer_create'
}

# compare DESC EXPECT_RC MIN_MS MAX_MS STATS_PATTERN -- CMD...
compare() {
  local desc=$1 want_rc=$2 lo=$3 hi=$4 pat=$5; shift 6
  local prog=$1
  if ! imports_timer_create "$prog"; then
    bad "$desc: $prog is missing or does not import timer_create" "run scripts/setup.sh"
    return
  fi
  run kernel "$@"; local k_rc=$rc k_ms=$ms k_out=$out
  run engine "$@"; local e_rc=$rc e_ms=$ms e_out=$out e_stats=$stats
  local why=()
  [ "$k_rc" = "$want_rc" ] || why+=("kernel: exit $k_rc, expected $want_rc")
  [ "$e_rc" = "$want_rc" ] || why+=("engine: exit $e_rc, expected $want_rc")
  [ "$k_ms" -ge "$lo" ] && [ "$k_ms" -le "$hi" ] || why+=("kernel: took $k_ms ms, expected $lo..$hi")
  [ "$e_ms" -ge "$lo" ] && [ "$e_ms" -le "$hi" ] || why+=("engine: took $e_ms ms, expected $lo..$hi")
  [ "$k_out" = "$e_out" ] || why+=("output differs: kernel '${k_out:0:200}' engine '${e_out:0:200}'")
  echo "$e_stats" | grep -q "$pat" || why+=("engine report does not show its timers: '$e_stats'")
  if [ ${#why[@]} -eq 0 ]; then
    ok "$desc (kernel ${k_ms} ms, engine ${e_ms} ms, exit $e_rc; ${e_stats#ptimers: })"
  else
    bad "$desc" "${why[@]}"
  fi
}

echo "1..6"

# timeout: the timer fires and ends the command; or is disarmed unused.
compare "timeout 0.3 sleep 10 ends the command at the deadline" 124 250 3000 'signal 1.* 1 signals sent' \
  -- timeout 0.3 sleep 10
compare "timeout 5 true is not disturbed" 0 0 3000 'signal 1.* 0 signals sent' \
  -- timeout 5 true

# flock -w: a wait bounded by a timer, against a lock held elsewhere.
lock=$tmp/lock
flock -o "$lock" sleep 30 & # -o: the lock is flock's alone, gone with it
holder=$!
for _ in $(seq 1 100); do flock -n "$lock" true 2>/dev/null || break; sleep 0.02; done
# Its timer repeats every 10 ms: where the kernel can make a timer with a
# given ID the engine hands it to one (src/handoff.h), which sends the signal.
compare "flock -w 0.3 gives up on a held lock at the deadline" 1 250 3000 'signal 1.* \(1 signals sent.*0 handed\|0 signals sent.*1 handed\)' \
  -- flock -w 0.3 "$lock" true
pkill -P "$holder" sleep 2>/dev/null; wait "$holder" 2>/dev/null
compare "flock -w 5 takes a free lock at once" 0 0 3000 'signal 1' \
  -- flock -w 5 "$lock" true

# vim: SIGEV_THREAD.  A backtracking search that cannot finish is cut
# short by its 300 ms timeout, which vim's notify thread signals.
python3 -c "print('a' * 60)" >"$tmp/line.txt"
cat >"$tmp/search.vim" <<'VIM'
let t0 = reltime()
let r = search('\%#=1\(a\|aa\)*[bc]', 'n', 0, 300)
let ms = float2nr(reltimefloat(reltime(t0)) * 1000)
call writefile(['found=' . r, 'stopped_by_timeout=' . (ms >= 250 && ms < 3000)], $OUT)
qa!
VIM
vim_run() { OUT="$tmp/vim.out" vim -u NONE -i NONE -N -es -S "$tmp/search.vim" "$tmp/line.txt" && cat "$tmp/vim.out"; }
export -f vim_run; export tmp
if imports_timer_create vim; then
  run kernel bash -c vim_run; k_out=$out k_ms=$ms
  run engine bash -c vim_run; e_out=$out e_ms=$ms
  e_stats=$(grep '^ptimers: vim' "$tmp/err" || true)
  want=$'found=0\nstopped_by_timeout=1'
  if [ "$k_out" = "$want" ] && [ "$e_out" = "$want" ] && echo "$e_stats" | grep -q 'thread 1.* 1 notify threads started'; then
    ok "vim regexp timeout through a SIGEV_THREAD timer (kernel ${k_ms} ms, engine ${e_ms} ms; ${e_stats#ptimers: })"
  else
    bad "vim regexp timeout through a SIGEV_THREAD timer" "kernel: $k_out" "engine: $e_out" "report: $e_stats"
  fi
else
  bad "vim regexp timeout: vim is missing or does not import timer_create" "run scripts/setup.sh"
fi

# shellcheck: the GHC runtime's periodic ticker timer.
cat >"$tmp/sample.sh" <<'SH'
#!/bin/sh
for f in $(ls *.txt); do
  echo $f
done
cd /tmp
[ $x == 1 ] && echo yes
SH
compare "shellcheck output is identical on the GHC runtime's ticker timer" 1 0 20000 'signal 1' \
  -- shellcheck "$tmp/sample.sh"

[ $fails -eq 0 ]
