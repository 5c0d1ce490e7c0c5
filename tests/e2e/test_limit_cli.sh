# mgrun --limit SIZE [--enforce MODE] -- CMD: one command under the built-in
# policy (scripts/mg/default.lua): its status passes through, the reason of
# its death is printed, bad options exit 2.
source "$(dirname "$0")/lib.sh"
HOG="$(dirname "$MGRUN")/mg-hog"

# usage errors
"$MGRUN" --limit 12Gx -- true >"$T_TMP/o" 2>&1
check "bad --limit: exit 2" test $? -eq 2
check "bad --limit: quoted, says what is accepted" grep -q '"12Gx".*expected .*bytes' "$T_TMP/o"
"$MGRUN" --limit 0 -- true >"$T_TMP/o" 2>&1
check "--limit 0: exit 2" test $? -eq 2
check "--limit 0: must be positive" grep -q "must be positive" "$T_TMP/o"
"$MGRUN" --limit 64M --enforce bogus -- true >"$T_TMP/o" 2>&1
check "bad --enforce: exit 2" test $? -eq 2
check "bad --enforce: lists the modes" grep -q "bogus.*auto.*cgroup.*data.*as.*none" "$T_TMP/o"
"$MGRUN" --enforce data -- true >"$T_TMP/o" 2>&1
check "--enforce without --limit: exit 2" test $? -eq 2
"$MGRUN" --limit 64M >"$T_TMP/o" 2>&1
check "--limit without a command: exit 2" test $? -eq 2
check "--limit without a command: says how" grep -q "needs a command" "$T_TMP/o"
"$MGRUN" --limit 100T -- true >"$T_TMP/o" 2>&1
check "limit above memory: exit 2" test $? -eq 2
check "limit above memory: the seed's message" grep -q "Memory limit validation failed: Requested limit 100.00 TiB exceeds total system memory" "$T_TMP/o"
"$MGRUN" --limit 64M -- /nonexistent/mgrun-no-such-program >"$T_TMP/o" 2>&1
check "missing program: exit 127" test $? -eq 127
check "missing program: named" grep -q "mgrun-no-such-program" "$T_TMP/o"
out=$("$MGRUN" --help)
check "--help shows --limit and --enforce" bash -c 'grep -q -- "--limit SIZE" <<<"$1" && grep -q -- "--enforce MODE" <<<"$1"' _ "$out"

# statuses pass through
out=$("$MGRUN" --limit 64M -- echo hello 2>"$T_TMP/e")
check "exit 0, stdout passes through" test "$?:$out" = "0:hello"
check "exit 0: no reason printed" bash -c "! grep -q '^mgrun:' $T_TMP/e"
"$MGRUN" --limit 64M -- sh -c 'exit 7' 2>"$T_TMP/e"
check "exit 7 passes through" test $? -eq 7
check "exit 7: says so" grep -q "^mgrun: sh exited with status 7 (limit 64.00 MiB, peak" "$T_TMP/e"
"$MGRUN" --limit 64M -- sh -c 'kill -USR1 $$' 2>"$T_TMP/e"
check "killed by SIGUSR1: 128+10" test $? -eq 138
check "killed by SIGUSR1: says so" grep -q "^mgrun: sh was killed by signal 10 (SIGUSR1)" "$T_TMP/e"

# RLIMIT_DATA: the hog's allocation fails, it exits 3, mgrun says why
# (its inherited stderr is relayed, and its tail names the failure)
"$MGRUN" --limit 64M --enforce data -- "$HOG" --quiet --rate 64M --max 256M 2>"$T_TMP/e"
check "data: the hog's status 3 passes through" test $? -eq 3
check "data: says the allocation was refused at RLIMIT_DATA" grep -q "^mgrun: .*mg-hog died after an allocation was refused at its RLIMIT_DATA (exit status 3, limit 64.00 MiB" "$T_TMP/e"

# warn at 80 %: 56 MiB of 64 MiB, held for 1 s: one line per warning
"$MGRUN" --limit 64M --enforce data -- "$HOG" --quiet --rate 512M --max 56M --hold 1 2>"$T_TMP/e"
check "warn: exit 0" test $? -eq 0
check "warn: child_warn logged once" test "$(grep -c child_warn "$T_TMP/e")" -eq 1
check "warn: no second line for the same warning" bash -c "! grep -q memory_warning $T_TMP/e"
# with its own group the kernel notifies: nothing is sampled, even at
# --log-level debug (samples are the fallback where no group can be made)
"$MGRUN" --log-level debug --limit 64M -- sleep 0.6 2>"$T_TMP/e"
check "--limit: no sampling where the kernel notifies" bash -c "! grep -q ' sample ' $T_TMP/e"
check "--limit: the group is made at debug level" grep -q "cgroup_created" "$T_TMP/e"
"$MGRUN" --log-level debug --limit 64M --enforce data -- sleep 0.6 2>"$T_TMP/e"
check "--limit --enforce data: a group to watch, without a limit" grep -q 'cgroup_created.*limit="none (a group to watch)"' "$T_TMP/e"

# SIGTERM to mgrun: the command is stopped, mgrun exits with its status
"$MGRUN" --limit 64M -- sleep 30 2>"$T_TMP/e" &
mpid=$!
sleep 0.3
kill -TERM $mpid
wait $mpid
check "SIGTERM: the command is stopped, 143" test $? -eq 143

# cgroup (the default where one is writable): OOM-killed, 128+9
writable=$("$MGRUN" --probe --json | jq -r .cgroup.writable)
# Quiet by default: the built-in policy says why the command died; the
# supervisor's info lines appear only when asked for.
"$MGRUN" --limit 64M -- sh -c 'exit 3' >/dev/null 2>"$T_TMP/q"
check "--limit: exit status of the command (3)" test $? -eq 3
check "--limit: no info lines by default" bash -c '! grep -q " info " "$1"' _ "$T_TMP/q"
check "--limit: says why it ended" grep -q "^mgrun: sh exited with status 3" "$T_TMP/q"
"$MGRUN" --log-level info --limit 64M -- true 2>"$T_TMP/q"
check "--limit --log-level info shows the supervisor" grep -q " info  child_started" "$T_TMP/q"
if [[ $writable != true ]]; then
  echo "$T_PASS passed, $T_FAIL failed (before the cgroup part)"
  ((T_FAIL == 0)) || exit 1
  skip_cgroup "no writable cgroup memory hierarchy"
fi
"$MGRUN" --log-level info --limit 64M -- "$HOG" --max 256M >/dev/null 2>"$T_TMP/e"
rc=$?
check "cgroup: mgrun --limit 64M -- mg-hog --max 256M exits 128+9 ($rc)" test $rc -eq 137
check "cgroup: says it was OOM-killed" grep -q "^mgrun: .*mg-hog was killed by the OOM killer in its cgroup (limit 64.00 MiB, peak 6[34].* MiB)" "$T_TMP/e"
check "cgroup: auto chose the cgroup" grep -q "enforce=cgroup" "$T_TMP/e"
[[ $T_FAIL -gt 0 ]] && cat "$T_TMP/e"
finish
