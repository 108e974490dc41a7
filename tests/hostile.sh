#!/usr/bin/env bash
# The drop-in against programs that do what daemons and sandboxes do,
# each run natively (the kernel's timers) and under `ptimers exec` (the
# engine's): both must pass.  And programs the drop-in cannot enter,
# which must be told apart before they run.  Prints TAP.
# Args: ptimers fdsafe oneshot oneshot-static
set -u
ptimers=$(readlink -f "$1") fdsafe=$(readlink -f "$2") oneshot=$(readlink -f "$3") static=$(readlink -f "$4")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 fails=0
check() { # description, command...
  local d=$1; shift
  n=$((n+1))
  if out=$("$@" 2>&1); then echo "ok $n - $d"; else echo "not ok $n - $d"; echo "$out" | sed 's/^/# /'; fails=$((fails+1)); fi
}
skip() { n=$((n+1)); echo "ok $n - $1 # SKIP $2"; }
modes=(close_range closefrom close_loop dup2 raw_close_range fork_child exec replay)
echo "1..$(( ${#modes[@]} * 2 + 8 ))"
for m in "${modes[@]}"; do
  check "kernel: timers survive $m" "$fdsafe" "$m"
  check "engine: timers survive $m" "$ptimers" exec -- "$fdsafe" "$m"
done

# Programs the drop-in cannot enter: exec warns and runs them on the
# kernel's timers, or refuses under --require-engine; restore refuses.
img=$tmp/none.img
printf '\x19\x43\x56\x54\x57\x39\x60\x52' >"$img" # an image of no timer (CRIU's header alone)
cannot_enter() { # label program reason-pattern
  local label=$1 prog=$2 pat=$3
  check "exec of a $label program warns and runs it on the kernel's timers" bash -c "
    out=\$('$ptimers' exec -- '$prog' 2>&1); rc=\$?
    [ \$rc -eq 0 ] && echo \"\$out\" | grep -q 'main ran, the timer fired' &&
    echo \"\$out\" | grep -q \"warning: $prog runs on the kernel's timers.*$pat\" || { echo \"rc \$rc: \$out\"; exit 1; }"
  check "exec --require-engine refuses a $label program (127), which does not run" bash -c "
    out=\$('$ptimers' exec --require-engine -- '$prog' 2>&1); rc=\$?
    [ \$rc -eq 127 ] && ! echo \"\$out\" | grep -q 'main ran' && echo \"\$out\" | grep -q '$pat' || { echo \"rc \$rc: \$out\"; exit 1; }"
  check "restore into a $label program refuses (127), and its main never runs" bash -c "
    out=\$('$ptimers' restore '$img' -- '$prog' 2>&1); rc=\$?
    [ \$rc -eq 127 ] && ! echo \"\$out\" | grep -q 'main ran' && echo \"\$out\" | grep -q 'cannot be restored into: .*$pat' || { echo \"rc \$rc: \$out\"; exit 1; }"
}
cannot_enter static "$static" "statically linked"
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
  cp "$oneshot" "$tmp/setuid" && chown nobody "$tmp/setuid" && chmod u+s "$tmp/setuid"
  cannot_enter setuid "$tmp/setuid" "set-user-ID nobody"
else
  for i in 1 2 3; do skip "setuid program" "needs root to make a set-user-ID program of another user"; done
fi
check "a script whose interpreter is static is told apart too" bash -c "
  printf '#!%s\n' '$static' >'$tmp/script' && chmod +x '$tmp/script' &&
  '$ptimers' exec --require-engine -- '$tmp/script' 2>&1 | grep -q 'its interpreter $static: it is statically linked'"
check "a dynamic program runs on the engine without a word" bash -c "
  out=\$('$ptimers' exec --stats -- '$oneshot' 2>&1) && echo \"\$out\" | grep -q 'main ran, the timer fired' &&
  echo \"\$out\" | grep -q 'timers on the engine (signal 1' && ! echo \"\$out\" | grep -q warning"
[ $fails -eq 0 ]
