#!/usr/bin/env bash
# The CLI as an operator meets it: where checkpoint writes (devices, FIFOs,
# symlinks, files, refusals), restore from pipes, images cut short, show,
# messages, --version, the install's own lookup.  Prints TAP.
# Args: ptimers ticker preload-library conformance-engine build-root leeway_slack
#       mixed_timers
set -u
ptimers=$1 ticker=$2 preload=$3 conf=$4 build=$5 leeway_slack=$6 mixed=$7
src=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
n=0 fails=0
ok() { n=$((n+1)); echo "ok $n - $1"; }
notok() { n=$((n+1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "$l" | sed 's/^/# /'; done; fails=$((fails+1)); }
check() { # description, command...
  local d=$1; shift
  local out
  if out=$("$@" 2>&1); then ok "$d"; else notok "$d" "$out"; fi
}

echo "1..41"

# A program on the engine with three timers, to checkpoint.
"$ptimers" exec -- "$ticker" >"$dir/ticker.out" 2>&1 &
pids+=($!); pid=$!
for i in $(seq 1 200); do
  "$ptimers" ls "$pid" 2>/dev/null | grep -q "^process $pid: 3 timers" && break
  sleep 0.05
done
check "the program to checkpoint is up" bash -c "'$ptimers' ls $pid | grep -q '^process $pid: 3 timers'"
"$ptimers" checkpoint "$pid" -o "$dir/ref.img" 2>/dev/null

# 1. Where -o writes.
check "-o /dev/null: written through, /dev/null still a device" bash -c "
  '$ptimers' checkpoint $pid -o /dev/null 2>&1 | grep -q 'to the device /dev/null' && test -c /dev/null"
check "-o /dev/full: refused with the device's error, /dev/full still a device" bash -c "
  out=\$('$ptimers' checkpoint $pid -o /dev/full 2>&1); rc=\$?
  [ \$rc = 1 ] && echo \"\$out\" | grep -q 'No space left' && test -c /dev/full || { echo \"\$out\"; exit 1; }"
mkfifo "$dir/fifo"
check "-o FIFO: its reader gets the image, the FIFO stays" bash -c "
  cat '$dir/fifo' > '$dir/from-fifo.img' & r=\$!
  '$ptimers' checkpoint $pid -o '$dir/fifo' 2>/dev/null || exit 1
  wait \$r; test -p '$dir/fifo' && '$ptimers' show '$dir/from-fifo.img' | grep -q '3 timers'"
echo old > "$dir/target.img"
ln -s target.img "$dir/link.img"
check "-o symlink: its target is replaced, the link stays" bash -c "
  '$ptimers' checkpoint $pid -o '$dir/link.img' 2>/dev/null && test -L '$dir/link.img' &&
  '$ptimers' show '$dir/target.img' | grep -q '3 timers'"
mkdir "$dir/out"
echo old > "$dir/out/kept.img"; chmod 640 "$dir/out/kept.img"
check "-o FILE: replaced whole, its mode kept, nothing else left in its directory" bash -c "
  '$ptimers' checkpoint $pid -o '$dir/out/kept.img' 2>/dev/null &&
  [ \$(stat -c %a '$dir/out/kept.img') = 640 ] && [ \$(ls -A '$dir/out' | wc -l) = 1 ] &&
  '$ptimers' show '$dir/out/kept.img' >/dev/null"
check "-o DIRECTORY: refused in one line, exit 1" bash -c "
  out=\$('$ptimers' checkpoint $pid -o '$dir/out' 2>&1); [ \$? = 1 ] && [ \$(echo \"\$out\" | wc -l) = 1 ] &&
  echo \"\$out\" | grep -q 'is a directory' || { echo \"\$out\"; exit 1; }"
ln -s nowhere "$dir/dangling"
check "-o to a dangling symlink: refused, nothing made" bash -c "
  out=\$('$ptimers' checkpoint $pid -o '$dir/dangling' 2>&1); [ \$? = 1 ] && echo \"\$out\" | grep -q 'symlink to nothing' &&
  ! test -e '$dir/nowhere' || { echo \"\$out\"; exit 1; }"
check "-o /proc/version: says why (no file can be made in /proc)" bash -c "
  out=\$('$ptimers' checkpoint $pid -o /proc/version 2>&1); [ \$? = 1 ] &&
  echo \"\$out\" | grep -q 'no file can be made in /proc' || { echo \"\$out\"; exit 1; }"

# 2. restore from streams.
restored() { # how, image-argument, expected source name: restore and check what it says
  local out
  out=$(eval "$1" 2>&1) || { echo "$out"; return 1; }
  echo "$out" | grep -q "ptimers restore: 3 timers from $2 on the engine" || { echo "$out"; return 1; }
}
check "restore <(cat IMAGE): a pipe restores" restored "'$ptimers' restore <(cat '$dir/ref.img') -- '$ticker' --adopt --seconds=0" "/dev/fd/[0-9]*"
check "restore - : standard input from a pipe" restored "cat '$dir/ref.img' | '$ptimers' restore - -- '$ticker' --adopt --seconds=0" "standard input"
check "restore /dev/stdin from a pipe" restored "cat '$dir/ref.img' | '$ptimers' restore /dev/stdin -- '$ticker' --adopt --seconds=0" "/dev/stdin"
check "restore of a directory: one line, 127" bash -c "
  out=\$('$ptimers' restore '$dir' -- true 2>&1); [ \$? = 127 ] && echo \"\$out\" | grep -q 'is a directory, not an image' || { echo \"\$out\"; exit 1; }"

# 3. Images cut short.
head -c 8 "$dir/ref.img" > "$dir/header.img"
check "an image cut to its header: restore refuses (127)" bash -c "
  out=\$('$ptimers' restore '$dir/header.img' -- true 2>&1); [ \$? = 127 ] && echo \"\$out\" | grep -q 'the header alone' || { echo \"\$out\"; exit 1; }"
check "an image cut to its header: show refuses (1)" bash -c "
  out=\$('$ptimers' show '$dir/header.img' 2>&1); [ \$? = 1 ] && echo \"\$out\" | grep -q 'the header alone' || { echo \"\$out\"; exit 1; }"
check "an image cut anywhere is refused" bash -c "
  size=\$(stat -c %s '$dir/ref.img')
  for cut in 0 4 9 12 20 \$((size / 2)) \$((size - 1)); do
    head -c \$cut '$dir/ref.img' > '$dir/cut.img'
    '$ptimers' show '$dir/cut.img' >/dev/null 2>&1 && { echo \"cut at \$cut accepted\"; exit 1; }
  done; exit 0"
printf '\x19\x43\x56\x54\x57\x39\x60\x52\x00\x00\x00\x00' > "$dir/empty.img"
check "an image of no timers, as ptimers marks one, restores nothing" bash -c "
  '$ptimers' show '$dir/empty.img' | grep -q '0 timers' && '$ptimers' restore '$dir/empty.img' -- true"

# 4. show
check "show --json lists the entries and ptimers' fields" bash -c "
  '$ptimers' show --json '$dir/ref.img' | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d[\"ptimers_fields\"] and d[\"version\"] == 1 and d[\"crc\"].startswith(\"0x\"), d
assert d[\"count\"] == 3 and [t[\"id\"] for t in d[\"timers\"]] == [1000000, 2000000, 2000001], d
assert d[\"source\"] == \"engine\" and d[\"next_id\"] is not None and d[\"restore\"] == \"ok\", d
assert all(t[\"armed\"] for t in d[\"timers\"]), d'"
check "show: a table with a header line and one row a timer" bash -c "
  [ \$('$ptimers' show '$dir/ref.img' | wc -l) = 5 ]"
crit_img=$(dirname "$0")/fuzz/seeds/crit-5.img
check "show of crit's image: no ptimers fields, said so" bash -c "
  '$ptimers' show '$crit_img' | grep -q 'without ptimers. fields' &&
  '$ptimers' show --json '$crit_img' | python3 -c 'import json,sys; d=json.load(sys.stdin); assert not d[\"ptimers_fields\"] and d[\"count\"] == 5, d'"
check "show from standard input" bash -c "cat '$dir/ref.img' | '$ptimers' show - | grep -q 'image standard input: 3 timers'"

# 5. Messages: one line and where the help is, for usage errors.
oneline() { # command...: exit 2, one line, naming --help
  local out
  out=$("$@" 2>&1); local rc=$?
  [ $rc = 2 ] && [ "$(echo "$out" | wc -l)" = 1 ] && echo "$out" | grep -q -- "--help" || { echo "rc $rc: $out"; return 1; }
}
check "usage errors: one line each, naming --help" bash -c "
  $(declare -f oneline)
  oneline '$ptimers' exec --bogus && oneline '$ptimers' exec --ids && oneline '$ptimers' exec &&
  oneline '$ptimers' restore && oneline '$ptimers' restore --walk-limit=x f -- true &&
  oneline '$ptimers' bench --bogus && oneline '$ptimers' ls 123 456 && oneline '$ptimers' ls &&
  oneline '$ptimers' checkpoint 1 && oneline '$ptimers' show && oneline '$ptimers' show a b &&
  oneline '$ptimers' ps x && oneline '$ptimers'"
check "ls 123 456 says one process at a time" bash -c "'$ptimers' ls 123 456 2>&1 | grep -q 'one process ID at a time, not 2'"
check "--walk-limit without --walk is refused" bash -c "
  out=\$('$ptimers' restore --walk-limit=3 '$dir/ref.img' -- true 2>&1); [ \$? = 2 ] && echo \"\$out\" | grep -q 'needs --walk'"
check "checkpoint and ls of a process that does not exist say the same" bash -c "
  a=\$('$ptimers' checkpoint 999999 -o '$dir/x.img' 2>&1); b=\$('$ptimers' ls 999999 2>&1)
  echo \"\$a\" | grep -q 'no process 999999' && echo \"\$b\" | grep -q 'no process 999999'"
tid=$(ls /proc/$pid/task | grep -v "^$pid\$" | head -n 1)
if [ -n "$tid" ]; then
  check "ls of a thread ID says it shows the process" bash -c "'$ptimers' ls $tid 2>&1 | grep -q 'is a thread of process $pid'"
else
  notok "ls of a thread ID says it shows the process" "the program on the engine has no second thread"
fi
check "conformance with a case name that matches nothing fails" bash -c "! '$conf' no_such_case >/dev/null 2>&1"
check "bench --timers=1000 names its rows by that count" bash -c "
  '$ptimers' bench --json --only=memory --timers=1000 | python3 -c 'import json,sys; n=[r[\"name\"] for r in json.load(sys.stdin)[\"rows\"]]; assert n[0] == \"memory_1k_timers\", n'"
check "bench --only with an unknown group lists every group, slice included" bash -c "
  '$ptimers' bench --only=nope 2>&1 | grep -q 'slice, memory'"

# 8. --version on every command
check "--version on every command" bash -c "
  for c in '' exec ls checkpoint ps restore show bench; do
    '$ptimers' \$c --version | grep -q '^ptimers.* [0-9]*\.[0-9]*\.[0-9]*\$' || { echo \"\$c\"; exit 1; }
  done"

# 6. The installed CLI finds its drop-in relative to itself (a staged or
# moved install), as meson lays them out (bin/, LIBDIR).
libdir=$("$ptimers" exec --help | sed -n 's/.*beside this program.s (\.\.\/\(.*\)),$/\1/p')
mkdir -p "$dir/inst/bin" "$dir/inst/$libdir"
cp "$ptimers" "$dir/inst/bin/ptimers"
cp "$preload" "$dir/inst/$libdir/"
check "a moved install finds its own drop-in" bash -c "
  out=\$(env -u PTIMERS_PRELOAD '$dir/inst/bin/ptimers' exec -- /bin/sh -c 'echo \$LD_PRELOAD')
  [ \"\$out\" = '$dir/inst/bin/../$libdir/libptimers-preload.so' ] || { echo \"\$out\"; exit 1; }"

# 7. Man pages: installed, rendered without a warning, and the options of
# every command's --help in ptimers(1).
check "meson installs the man pages and the bash completion" bash -c "
  meson introspect --installed '$build' | python3 -c '
import json, os, sys
d = json.load(sys.stdin).values()
names = {os.path.basename(p) for p in d}
want = {\"ptimers.1\", \"ptimer_create.3\", \"ptimer_settime.3\", \"ptimer_checkpoint.3\", \"ptimer_list.3\",
        \"ptimer_restore_ids.3\", \"ptimer_slice_begin.3\", \"ptimer_setleeway.3\"}
assert want <= names, want - names
assert any(p.endswith(\"bash-completion/completions/ptimers\") for p in d), d'"
check "man -l renders every page without a warning" bash -c "
  # laid out as installed (an alias page names man3/...)
  mkdir -p '$dir/man/man1' '$dir/man/man3' && cp '$src'/doc/man/*.1 '$dir/man/man1/' &&
  cp '$src'/doc/man/*.3 '$dir/man/man3/' && cd '$dir/man' || exit 1
  for f in man1/*.1 man3/*.3; do
    out=\$(MANWIDTH=80 man --warnings -l \"\$f\" 2>&1 >/dev/null)
    [ -z \"\$out\" ] || { echo \"\$f: \$out\"; exit 1; }
    MANWIDTH=80 man -l \"\$f\" 2>/dev/null | grep -q . || { echo \"\$f: empty\"; exit 1; }
  done"
check "every option of every --help is in ptimers(1)" bash -c "
  page=\$(MANWIDTH=200 man -l '$src/doc/man/ptimers.1' 2>/dev/null)
  for c in exec ls ps checkpoint restore show bench; do
    for o in \$('$ptimers' \$c --help | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
      echo \"\$page\" | grep -q -- \"\$o\" || { echo \"\$c \$o is not in ptimers(1)\"; exit 1; }
    done
  done"
check "every command of ptimers --help has its section in ptimers(1)" bash -c "
  for c in \$('$ptimers' --help | sed -n 's/^  \\([a-z]*\\)  .*/\\1/p'); do
    grep -q \"^\\.SS \$c\\$\" '$src/doc/man/ptimers.1' || { echo \"no section for \$c\"; exit 1; }
  done"

# 8. bash completion
check "the bash completion loads and completes commands, options and groups" bash -c "
  source /usr/share/bash-completion/bash_completion || exit 1
  source '$src/doc/completion/ptimers' || exit 1
  comp() {
    COMP_LINE=\$1; COMP_POINT=\${#COMP_LINE}
    read -ra COMP_WORDS <<<\"\${COMP_LINE//=/ = }\"
    [[ \$COMP_LINE == *' ' ]] && COMP_WORDS+=('')
    COMP_CWORD=\$((\${#COMP_WORDS[@]} - 1)); COMPREPLY=()
    _ptimers 2>/dev/null; echo \"\${COMPREPLY[*]}\"
  }
  [ \"\$(comp 'ptimers ch')\" = checkpoint ] && [ \"\$(comp 'ptimers bench --only=calls,la')\" = calls,latency ] &&
  [ \"\$(comp 'ptimers exec --ids=d')\" = dense ] && [ \"\$(comp 'ptimers show --j')\" = --json ] &&
  comp 'ptimers ' | grep -q 'show' || { comp 'ptimers ch'; comp 'ptimers bench --only=calls,la'; exit 1; }"

# The drop-in's leeway setting: the creating thread's timer slack (200 us,
# kept to 3 significant bits: 196,608 ns), and none without it.
check "PTIMERS_LEEWAY=slack gives timers the thread's timer slack; without it none" bash -c "
  a=\$(PTIMERS_LEEWAY=slack '$ptimers' exec -- '$leeway_slack'); b=\$('$ptimers' exec -- '$leeway_slack')
  [ \"\$a\" -ge 175000 ] && [ \"\$a\" -le 200000 ] && [ \"\$b\" = 0 ] || { echo \"with \$a, without \$b\"; exit 1; }"
check "PTIMERS_LEEWAY with a bad value is said, not ignored" bash -c "
  PTIMERS_LEEWAY=lots '$ptimers' exec -- '$leeway_slack' 2>&1 >/dev/null | grep -q PTIMERS_LEEWAY"

# A program with an engine SIGEV_THREAD timer and a kernel timer of its own.
"$ptimers" exec -- "$mixed" >"$dir/mixed.out" 2>&1 &
pids+=($!); mpid=$!
for i in $(seq 1 200); do grep -q ready "$dir/mixed.out" && break; sleep 0.05; done
check "ls says what it shows of a process that also has kernel timers of its own" bash -c "
  out=\$('$ptimers' ls $mpid 2>&1); echo \"\$out\" | grep -q 'also has 1 kernel timer of its own, not shown' &&
  echo \"\$out\" | grep -q '^process $mpid: 2 timers (the ptimers engine)' || { echo \"\$out\"; exit 1; }"
check "checkpoint of a SIGEV_THREAD timer warns that restore will refuse it" bash -c "
  out=\$('$ptimers' checkpoint $mpid -o '$dir/mixed.img' 2>&1); [ \$? = 0 ] &&
  echo \"\$out\" | grep -q 'warning: 1 of them is SIGEV_THREAD' &&
  '$ptimers' show '$dir/mixed.img' 2>&1 | grep -q 'ptimers restore. refuses it' || { echo \"\$out\"; exit 1; }"
# PID 1: where this user may not read it, the reason is the kernel's check.
if out=$("$ptimers" ls 1 2>&1); then
  ok "ls 1: readable here, so no refusal to check # SKIP PID 1 is readable by this user"
else
  check "ls 1, refused: the kernel's ptrace access check is named, in one line" bash -c "
    out=\$('$ptimers' ls 1 2>&1); [ \$? = 1 ] && [ \$(echo \"\$out\" | wc -l) = 1 ] &&
    echo \"\$out\" | grep -q 'ptrace access check' || { echo \"\$out\"; exit 1; }"
fi

[ $n = 41 ] || echo "# ran $n checks, the plan says 41"
exit $((fails > 0))
