# The real mgrun sets RLIMIT_DATA on a child pid (prlimit) and on itself,
# and an allocation past it fails; without the limit the same succeeds.
source "$(dirname "$0")/lib.sh"
ALLOC="$MG_TEST_BINDIR/mg_alloc"

limit_child_policy=$(policy child <<'LUA'
local pid = tonumber(arg[1])
local p = assert(mg.process(pid))
-- validate=false: under AddressSanitizer VmData counts terabytes of shadow
assert(mg.set_limit(p.data + 64 * 1024 * 1024, { pid = pid, resource = "data", validate = false }))
local soft = mg.get_limit("data", pid)
print("child limit", soft - p.data)
LUA
)

run_child() { # run_child MIB LIMIT(0|1) → exit status of mg_alloc
  local out="$T_TMP/alloc$RANDOM.out"
  "$ALLOC" "$1" --wait >"$out" &
  local pid=$! i
  for ((i = 0; i < 500; i++)); do
    grep -q ready "$out" && break
    sleep 0.01
  done
  if [[ $2 == 1 ]]; then
    "$MGRUN" "$limit_child_policy" "$pid" >"$T_TMP/limit.out" 2>&1 || echo "mgrun failed: $(cat "$T_TMP/limit.out")"
  fi
  kill -USR1 "$pid"
  wait "$pid"
}
run_child 256 0
check "control: 256 MiB without a limit succeeds" test $? -eq 0
run_child 256 1
check "256 MiB past a 64 MiB RLIMIT_DATA on the child pid fails" test $? -eq 3
check "mgrun reported the limit it set" grep -q "child limit	67108864" "$T_TMP/limit.out"
check "limit_set logged" grep -q "limit_set" "$T_TMP/limit.out"
run_child 16 1
check "16 MiB under the child's limit succeeds" test $? -eq 0

self=$(policy self <<'LUA'
local data = mg.process().data
assert(mg.set_limit(data + 32 * 1024 * 1024, { validate = false }))  -- auto: the enforced rlimit
local ok, err = pcall(string.rep, "x", 128 * 1024 * 1024)
print(ok and "allocated" or "refused: " .. tostring(err))
LUA
)
out=$("$MGRUN" --lua-mem 0 "$self" 2>&1)
check "allocation past mgrun's own RLIMIT_DATA fails" grep -q "refused: not enough memory" <<<"$out"
check "auto chose RLIMIT_DATA" grep -q "resource=RLIMIT_DATA" <<<"$out"
# A validated limit (checked against effective memory) on another process,
# and the seed's warning above 90 %.
sleep 30 &
spid=$!
val=$(policy validated <<'LUA'
local pid = tonumber(arg[1])
local ok, _, warn = mg.set_limit("1G", { pid = pid })
print("set", ok, warn)
print("get", mg.get_limit("data", pid))
print("high", mg.set_limit(math.floor(mg.memory().effective_total * 0.95), { pid = pid }))
print("toobig", mg.set_limit(mg.memory().effective_total * 2, { pid = pid, strict = false }))
LUA
)
out=$("$MGRUN" "$val" "$spid" 2>&1)
kill "$spid"
check "validated 1G on a pid" grep -q "^set	true	nil" <<<"$out"
check "get_limit reads it back" grep -q "^get	1073741824	" <<<"$out"
check "above 90 % warns" grep -q "limit_warning.*90%" <<<"$out"
check "above memory refused" grep -q "^toobig	false	Memory limit validation failed: Requested limit" <<<"$out"
finish
