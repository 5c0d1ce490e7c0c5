# policies/matrix.lua: the seed's three instances with admission control,
# scaled to this machine; one crosses its limit, is classified and
# restarted with MG_RESTARTS; a status line per instance per second.
source "$(dirname "$0")/lib.sh"
M="$MG_SOURCE_DIR/policies/matrix.lua"

# Refused: twice the effective memory cannot fit; nothing is started.
eff=$("$MGRUN" --probe --json | jq .memory.effective_total)
out=$("$MGRUN" "$M" --total $((eff * 2)) --seconds 2 2>&1)
check "refused: exit 2" test $? -eq 2
check "refused: the seed's message, naming each instance" grep -q "^Cannot start matrix mode: Total allocation .* exceeds total system memory .*: subject .*, observer .*, god " <<<"$out"
check "refused: nothing started" bash -c '! grep -q -e "admitted" -e "pid" <<<"$1"' _ "$out"
if ((eff < 17 * 1024 * 1024 * 1024)); then
  out=$("$MGRUN" "$M" --scale 1 2>&1)
  check "refused: the seed's real 2G + 6G + 9G on this $((eff >> 20)) MiB machine" test $? -eq 2
  check "refused: 17.00 GiB named" grep -q "Total allocation 17.00 GiB exceeds" <<<"$out"
fi
"$MGRUN" "$M" --scale nope >/dev/null 2>&1
check "bad --scale: exit 2" test $? -eq 2
"$MGRUN" "$M" --bogus >/dev/null 2>&1
check "unknown argument: exit 2" test $? -eq 2
out=$("$MGRUN" --check "$M" 2>&1)
check "--check: validates, starts nothing" test $? -eq 0
check "--check: OK" grep -q "matrix.lua: OK" <<<"$out"

run_matrix() { # run_matrix LABEL ENFORCE REASON
  local label=$1 out rc
  out=$("$MGRUN" "$M" --total 192M --seconds 3.5 --enforce "$2" 2>&1)
  rc=$?
  check "$label: exit 0 after the bounded run" test $rc -eq 0
  check "$label: admitted" grep -q "^matrix: admitted subject .* + observer .* + god .* = 192.00 MiB of" <<<"$out"
  check "$label: enforce $2" grep -q "enforce $2" <<<"$out"
  local who
  for who in subject observer god; do
    check "$label: a status line per second for $who" test "$(grep -cE "^ +[0-9.]+s $who +pid" <<<"$out")" -ge 3
  done
  check "$label: the subject crossed its limit, classified $3" grep -qE "^ +[0-9.]+s subject .*\($3; peak" <<<"$out"
  check "$label: ... and came back with MG_RESTARTS=1" grep -q "subject  restarted with MG_RESTARTS=1" <<<"$out"
  check "$label: the status line counts it" grep -qE "subject +pid .* restarts [1-9]" <<<"$out"
  check "$label: the god crossed 80 %: warn" grep -qE "god +warn: " <<<"$out"
  check "$label: the observer never died" bash -c '! grep -qE "observer +(killed|died|exited)" <<<"$1"' _ "$out"
  check "$label: done, clean exit" grep -q "^matrix: done after 3.5 s" <<<"$out"
  [[ $T_FAIL -gt 0 ]] && echo "$out"
}
run_matrix data data limit

writable=$("$MGRUN" --probe --json | jq -r .cgroup.writable)
if [[ $writable != true ]]; then
  echo "$T_PASS passed, $T_FAIL failed (before the cgroup part)"
  ((T_FAIL == 0)) || exit 1
  skip_cgroup "no writable cgroup memory hierarchy"
fi
run_matrix cgroup cgroup oom
finish
