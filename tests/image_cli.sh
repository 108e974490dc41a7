#!/usr/bin/env bash
# `ptimers ls`, `checkpoint` and `restore` end to end, with CRIU's crit
# reading and writing the images.  Prints TAP.  Args: ptimers ticker
set -u
ptimers=$1 ticker=$2
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
n=0 fails=0
ok() { n=$((n+1)); echo "ok $n - $1"; }
notok() { n=$((n+1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "$l" | sed 's/^/# /'; done; fails=$((fails+1)); }
skip() { n=$((n+1)); echo "ok $n - $1 # SKIP $2"; }
check() { # description, command...
  local d=$1; shift
  local out
  if out=$("$@" 2>&1); then ok "$d"; else notok "$d" "$out"; fi
}

# Start a program in the background, its output in $dir/$name.out.
start() { # name, command...
  local name=$1; shift
  "$@" >"$dir/$name.out" 2>&1 &
  pids+=($!)
  last=$!
}

# Wait until `ptimers ls PID` shows COUNT timers (the program is up).
wait_timers() { # pid count
  local i
  for i in $(seq 1 200); do
    if "$ptimers" ls "$1" 2>/dev/null | grep -q "^process $1: $2 timers"; then return 0; fi
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

ids_of() { # pid [--kernel]: the IDs ls shows, one line
  "$ptimers" ls --json "$@" | python3 -c 'import json,sys; print(" ".join(str(t["id"]) for t in json.load(sys.stdin)["timers"]))'
}

have_crit=0
if command -v crit >/dev/null && crit --help >/dev/null 2>&1; then have_crit=1; fi

echo "1..23"

# A program on the engine, and what ls shows of it.
start engine "$ptimers" exec -- "$ticker"
engine=$last
if wait_timers "$engine" 3; then ok "ls shows the three timers of a program on the engine"
else notok "ls shows the three timers of a program on the engine" "$(cat "$dir/engine.out")"; fi
check "ls --json: IDs, clocks, notification, live remaining times" bash -c "
  '$ptimers' ls --json $engine | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d[\"source\"] == \"engine\" and d[\"missing\"] == [], d
t = {x[\"id\"]: x for x in d[\"timers\"]}
assert sorted(t) == [1000000, 2000000, 2000001], sorted(t)
assert t[1000000][\"clock\"] == \"MONOTONIC\" and t[2000000][\"clock\"] == \"REALTIME\"
assert t[2000001][\"target\"] == {\"tid\": $engine}, t[2000001]
assert t[1000000][\"signal_name\"] == \"SIGRTMIN\" and t[1000000][\"value\"] == \"0x1\"
assert 0 < t[1000000][\"remaining\"] <= 1 and t[1000000][\"interval\"] == 1
assert t[2000001][\"interval\"] == 2.5 and t[1000000][\"state\"].startswith(\"armed\")
'"

# Checkpoint it, without stopping it.
check "checkpoint writes the image" "$ptimers" checkpoint "$engine" -o "$dir/ticker.img"
check "the program runs on after the checkpoint" bash -c "kill -0 $engine && [ \"\$('$ptimers' ls $engine | head -1)\" = 'process $engine: 3 timers (the ptimers engine)' ]"

if [ $have_crit = 1 ]; then
  check "crit decode lists every timer of the image" bash -c "
    crit decode -i '$dir/ticker.img' | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d[\"magic\"] == \"POSIX_TIMERS\", d[\"magic\"]
e = {x[\"it_id\"]: x for x in d[\"entries\"]}
assert sorted(e) == [1000000, 2000000, 2000001], sorted(e)
assert e[1000000][\"isec\"] == 1 and e[1000000][\"si_signo\"] == 34
assert e[2000001][\"it_sigev_notify\"] == 4 and e[2000001][\"notify_thread_id\"] == $engine
'"
else
  skip "crit decode lists every timer of the image" "crit (Debian package criu) is not installed"
fi

# Restore into new programs: on the engine, as kernel timers through the
# prctl, and by the walk (the seed's scenario: IDs 1,000,000 and 2,000,000).
start restored "$ptimers" restore --hold-signals "$dir/ticker.img" -- "$ticker" --adopt
restored=$last
if wait_timers "$restored" 3 && [ "$(ids_of "$restored")" = "1000000 2000000 2000001" ]; then
  ok "restore on the engine: the same IDs, before main"
else notok "restore on the engine: the same IDs, before main" "$(cat "$dir/restored.out")"; fi
check "the restored engine timers fire into the new program" bash -c "
  for i in \$(seq 1 100); do grep -q 'timer 1000000 fired (value 1' '$dir/restored.out' && exit 0; sleep 0.05; done; cat '$dir/restored.out'; exit 1"
check "restore says which thread became which" grep -q "thread $engine of the image is thread $restored (the main thread) here" "$dir/restored.out"

start kernel "$ptimers" restore --kernel --hold-signals "$dir/ticker.img" -- "$ticker" --adopt
kernel=$last
if wait_timers "$kernel" 3 && [ "$(ids_of "$kernel")" = "1000000 2000000 2000001" ]; then
  ok "restore --kernel: kernel timers with the same IDs (prctl)"
else notok "restore --kernel: kernel timers with the same IDs (prctl)" "$(cat "$dir/kernel.out")"; fi
check "ls of kernel timers says which columns /proc lacks" bash -c "
  '$ptimers' ls $kernel | grep -q 'has no remaining time, interval, overruns or state' &&
  '$ptimers' ls --json $kernel | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"source\"]==\"kernel\" and d[\"missing\"]==[\"remaining\",\"interval\",\"overrun\",\"state\"], d'"
check "the restored kernel timers fire into the new program" bash -c "
  for i in \$(seq 1 100); do grep -q 'timer 1000000 fired (value 1' '$dir/kernel.out' && exit 0; sleep 0.05; done; cat '$dir/kernel.out'; exit 1"

start walk "$ptimers" restore --walk --hold-signals "$dir/ticker.img" -- "$ticker" --adopt
walk=$last
if wait_timers "$walk" 3 && [ "$(ids_of "$walk")" = "1000000 2000000 2000001" ]; then
  ok "restore --walk: the same IDs by the create/delete walk, with its estimate first"
  grep -q 'the walk needs [0-9]* timer_create calls, about' "$dir/walk.out" || notok "the walk said its length first" "$(cat "$dir/walk.out")"
else notok "restore --walk: the same IDs by the create/delete walk, with its estimate first" "$(cat "$dir/walk.out")"; fi
check "a walk longer than --walk-limit is not started, and the program never runs" bash -c "
  out=\$('$ptimers' restore --walk --walk-limit=0.000001 '$dir/ticker.img' -- '$ticker' --adopt 2>&1); rc=\$?
  [ \$rc = 127 ] && echo \"\$out\" | grep -q 'not started' && ! echo \"\$out\" | grep -q adopting"

# An image crit made restores.
if [ $have_crit = 1 ]; then
  check "an image crit encode made from JSON restores" bash -c "
    crit decode -i '$dir/ticker.img' | python3 -c '
import json, sys
d = json.load(sys.stdin)
d[\"entries\"] = d[\"entries\"][:1]
d[\"entries\"][0][\"it_id\"] = 4242
d[\"entries\"][0][\"vsec\"] = 30
print(json.dumps(d))' > '$dir/crit.json' &&
    crit encode -i '$dir/crit.json' -o '$dir/crit.img' &&
    ( '$ptimers' restore --hold-signals '$dir/crit.img' -- '$ticker' --adopt --seconds=30 >'$dir/crit.out' 2>&1 & echo \$! >'$dir/crit.pid'; wait ) &
    for i in \$(seq 1 100); do p=\$(cat '$dir/crit.pid' 2>/dev/null) && '$ptimers' ls --json \$p 2>/dev/null | grep -q '\"id\": 4242' && { kill \$p; exit 0; }; sleep 0.05; done
    cat '$dir/crit.out'; exit 1"
  check "a SIGEV_THREAD timer (from crit) is refused: its function is not data" bash -c "
    python3 -c '
import json
d = json.load(open(\"$dir/crit.json\"))
d[\"entries\"][0][\"it_sigev_notify\"] = 2
print(json.dumps(d))' > '$dir/thread.json' && crit encode -i '$dir/thread.json' -o '$dir/thread.img' &&
    out=\$('$ptimers' restore '$dir/thread.img' -- '$ticker' --adopt 2>&1); rc=\$?
    [ \$rc = 127 ] && echo \"\$out\" | grep -q 'SIGEV_THREAD' && ! echo \"\$out\" | grep -q adopting"
  # Timers that never notify start no dispatcher: the process is still
  # found, listed and checkpointed from outside.
  check "a restore of SIGEV_NONE timers only can be listed and checkpointed" bash -c "
    python3 -c '
import json
d = json.load(open(\"$dir/crit.json\"))
d[\"entries\"][0][\"it_sigev_notify\"] = 1
d[\"entries\"][0][\"it_id\"] = 4343
print(json.dumps(d))' > '$dir/none.json' && crit encode -i '$dir/none.json' -o '$dir/none.img' &&
    ( '$ptimers' restore '$dir/none.img' -- '$ticker' --adopt --seconds=30 >'$dir/none.out' 2>&1 & echo \$! >'$dir/none.pid'; wait ) &
    for i in \$(seq 1 100); do p=\$(cat '$dir/none.pid' 2>/dev/null) && '$ptimers' ls --json \$p 2>/dev/null | grep -q '\"id\": 4343' && break; sleep 0.05; done
    p=\$(cat '$dir/none.pid') && '$ptimers' checkpoint \$p -o '$dir/none-again.img' && kill \$p &&
    crit decode -i '$dir/none-again.img' | grep -q 4343"
else
  skip "an image crit encode made from JSON restores" "crit (Debian package criu) is not installed"
  skip "a SIGEV_THREAD timer (from crit) is refused" "crit (Debian package criu) is not installed"
  skip "a restore of SIGEV_NONE timers only can be listed and checkpointed" "crit (Debian package criu) is not installed"
fi

# Refusals.
head -c 100 /dev/urandom >"$dir/junk.img"
check "a file that is not an image: 127, a clear message, the program never runs" bash -c "
  out=\$('$ptimers' restore '$dir/junk.img' -- '$ticker' --adopt 2>&1); rc=\$?
  [ \$rc = 127 ] && echo \"\$out\" | grep -q 'not a POSIX timers image' && ! echo \"\$out\" | grep -q adopting"
head -c 60 "$dir/ticker.img" >"$dir/short.img"
check "a truncated image is refused" bash -c "
  out=\$('$ptimers' restore --kernel '$dir/short.img' -- '$ticker' --adopt 2>&1); [ \$? = 127 ] && echo \"\$out\" | grep -q 'truncated'"
if command -v setpriv >/dev/null; then
  check "another user's ls and checkpoint are refused; the process is undisturbed" bash -c "
    out=\$(setpriv --reuid=65534 --regid=65534 --clear-groups '$ptimers' ls $engine 2>&1); rc1=\$?
    out2=\$(setpriv --reuid=65534 --regid=65534 --clear-groups '$ptimers' checkpoint $engine -o /tmp/ptimers-foreign.\$\$ 2>&1); rc2=\$?
    [ \$rc1 = 1 ] && echo \"\$out\" | grep -q 'only its own user, or root' &&
    [ \$rc2 = 1 ] && echo \"\$out2\" | grep -q 'only its own user, or root' && [ ! -e /tmp/ptimers-foreign.\$\$ ] &&
    '$ptimers' ls $engine | grep -q '^process $engine: 3 timers'"
  check "another user cannot read a kernel-timer process either" bash -c "
    out=\$(setpriv --reuid=65534 --regid=65534 --clear-groups '$ptimers' ls $kernel 2>&1); [ \$? = 1 ] && echo \"\$out\" | grep -q 'ptrace access check'"
else
  skip "another user's ls and checkpoint are refused" "setpriv (util-linux) is missing"
  skip "another user cannot read a kernel-timer process either" "setpriv (util-linux) is missing"
fi
check "checkpoint of a process on the kernel's timers says why it cannot" bash -c "
  out=\$('$ptimers' checkpoint $kernel -o '$dir/k.img' 2>&1); [ \$? = 1 ] && echo \"\$out\" | grep -q 'not on the ptimers engine' && [ ! -e '$dir/k.img' ]"
check "bad arguments and a missing process" bash -c "
  '$ptimers' ls 2>/dev/null; [ \$? = 2 ] || exit 1
  '$ptimers' ls notapid 2>/dev/null; [ \$? = 2 ] || exit 1
  '$ptimers' checkpoint $engine 2>/dev/null; [ \$? = 2 ] || exit 1
  '$ptimers' restore 2>/dev/null; [ \$? = 2 ] || exit 1
  out=\$('$ptimers' ls 999999999 2>&1); [ \$? = 1 ] && echo \"\$out\" | grep -q 'no process'"
check "--help of ls, checkpoint and restore" bash -c "
  '$ptimers' ls --help | grep -q -- --json && '$ptimers' checkpoint --help | grep -q crit &&
  '$ptimers' restore --help | grep -q -- --walk && '$ptimers' --help | grep -q checkpoint"

[ $fails -eq 0 ]
