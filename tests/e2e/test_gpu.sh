# GPU memory through a fake NVML (tests/gpu/fake_nvml.c, loaded through
# MG_NVML_LIBRARY, answering from a fixture the test rewrites while mgrun
# runs): no library, no device, several devices, a child tree using two
# devices, crossing gpu_limit (stopped and classified, or left to a
# handler), an integrated GPU, NVML errors mid-run, the environment for
# the child, admission by GPU budget, --probe. No real GPU is used here.
source "$(dirname "$0")/lib.sh"
FAKE=$MG_TEST_BINDIR/libfake_nvml.so
[[ -f $FAKE ]] || { echo "FAIL: $FAKE not built"; exit 1; }
export MG_NVML_LIBRARY=$FAKE FAKE_NVML_FIXTURE=$T_TMP/nvml.txt
G8=8589934592
H200="device GPU-aaaa $G8 0 NVIDIA H200
device GPU-bbbb $G8 0 NVIDIA H200"
echo "$H200" >"$FAKE_NVML_FIXTURE"

# --probe and mg.gpus()
out=$("$MGRUN" --probe)
check "probe: lists the devices" grep -q "^gpu:        0 NVIDIA H200 (GPU-aaaa): total 8.00 GiB" <<<"$out"
check "probe --json: gpus" bash -c "'$MGRUN' --probe --json | jq -e '.gpus | length == 2 and .[1].uuid == \"GPU-bbbb\"' >/dev/null"
p=$(policy gpus <<'LUA'
for _, g in ipairs(assert(mg.gpus())) do
  print("gpu", g.index, g.uuid, g.name, g.total, g.used, g.free, g.integrated)
end
LUA
)
out=$("$MGRUN" --log-level error "$p" 2>&1)
check "mg.gpus: both devices" test "$(grep -c '^gpu' <<<"$out")" -eq 2
check "mg.gpus: fields" grep -q "^gpu	1	GPU-bbbb	NVIDIA H200	8589934592	0	8589934592	false" <<<"$out"

# a tree on two devices, the environment, crossing gpu_limit
p=$(policy limit <<'LUA'
local fx = os.getenv("FAKE_NVML_FIXTURE")
local base = io.open(fx):read("a")
local function put(extra) local f = assert(io.open(fx, "w")) f:write(base, extra) f:close() end
local p = assert(mg.spawn { name = "cuda", gpu_limit = "50%", gpus = { 0, 1 }, gpu_mps = true,
  thresholds = { "30%" },
  sample_ms = 50, grace_ms = 200, stdout = os.getenv("T_TMP") .. "/env",
  cmd = { "sh", "-c", "echo vis=$CUDA_VISIBLE_DEVICES mps=$CUDA_MPS_PINNED_DEVICE_MEM_LIMIT; sleep 30 & wait" } })
mg.after(300, function()
  local kids = {}
  for _, pid in ipairs(mg.process_tree and mg.process_tree(p.pid) or {}) do kids[#kids + 1] = pid end
  -- the main process on GPU 0, its child (found in /proc) on GPU 1
  local child
  local f = io.open("/proc/" .. p.pid .. "/task/" .. p.pid .. "/children")
  if f then child = tonumber(f:read("a"):match("%d+")) f:close() end
  put(("proc 0 %d 1073741824\nproc 1 %d 2147483648\n"):format(p.pid, child or 0))
  mg.after(200, function()
    local m = assert(p:memory())
    print("tree", m.gpu, m.gpu_limit)
    put(("proc 0 %d 4294967296\nproc 1 %d 4294967296\n"):format(p.pid, child or 0))
  end)
end)
p:on("threshold", function(_, t)
  if t.kind == "gpu" then print(t.id == 0 and "warn" or "gputh", t.level, t.usage) end
end)
p:on("exit", function(_, e) print("exit", e.reason, e.detail) mg.exit(0) end)
LUA
)
export T_TMP
out=$("$MGRUN" "$p" 2>&1)
check "env: CUDA_VISIBLE_DEVICES and MPS's per-device limit" grep -q "^vis=0,1 mps=0=8192M,1=8192M" "$T_TMP/env"
check "tree: the child tree's use summed over two devices" grep -q "^tree	3221225472	8589934592" <<<"$out"
check "warn: a gpu threshold at warn_at × gpu_limit" grep -q "^warn	6871947673	8589934592" <<<"$out"
check "thresholds: a share applies to gpu_limit too (kind gpu)" grep -q "^gputh	2576980377	3221225472" <<<"$out"
check "limit: crossing it stops the child, exit gpu_limit" grep -q "^exit	gpu_limit	killed by SIGTERM (15): stopped by the supervisor, its GPU memory 8.00 GiB crossed its gpu_limit 8.00 GiB" <<<"$out"
check "limit: logged" grep -q "child_gpu_limit name=cuda" <<<"$out"

# a handler takes the decision instead; NVML errors mid-run are survived
p=$(policy handler <<'LUA'
local fx = os.getenv("FAKE_NVML_FIXTURE")
local base = io.open(fx):read("a")
local function put(extra) local f = assert(io.open(fx, "w")) f:write(base, extra) f:close() end
local p = assert(mg.spawn { name = "h", gpu_limit = "1G", sample_ms = 50, cmd = { "sleep", "30" } })
local seen = 0
p:on("gpu_limit", function(_, s) seen = seen + 1 end)
mg.after(100, function() put(("proc 0 %d 2147483648\n"):format(p.pid)) end)
mg.after(400, function()
  print("handled", seen > 0, p.running)
  put("fail procs 15\n")
  mg.after(300, function()
    local m = assert(p:memory())
    print("error", m.gpu == nil, p.running)
    p:kill()
  end)
end)
p:on("exit", function(_, e) print("exit", e.reason) mg.exit(0) end)
LUA
)
out=$("$MGRUN" "$p" 2>&1)
check "handler: the policy decides, the child runs on" grep -q "^handled	true	true" <<<"$out"
check "nvml error mid-run: no gpu figure, the child lives" grep -q "^error	true	true" <<<"$out"
check "nvml error mid-run: logged once" test "$(grep -c gpu_sample_failed <<<"$out")" -eq 1
check "a kill of ours is a signal" grep -q "^exit	signal" <<<"$out"

# admission by GPU budget (the seed's matrix mode on one GPU)
admit=$(policy admit <<'LUA'
print("fit", mg.validate_total { { name = "subject", limit = "64M", gpu_limit = "2G", gpus = { 0 } },
                                 { name = "god", limit = "64M", gpu_limit = "5G", gpus = { 0 } } })
print("over", mg.validate_total { { name = "subject", limit = "64M", gpu_limit = "4G", gpus = { 0 } },
                                  { name = "god", limit = "64M", gpu_limit = "5G", gpus = { 0 } } })
print("split", mg.validate_total { { name = "big", limit = "64M", gpu_limit = "12G" } })
print("nodev", mg.validate_total { { name = "x", limit = "64M", gpu_limit = "1G", gpus = { 7 } } })
print("bad", mg.validate_total { { name = "x", limit = "64M", gpu_limit = -1 } })
LUA
)
out=$("$MGRUN" --log-level error "$admit" 2>&1)
check "admit: 7 GiB on an 8 GiB GPU fits" grep -q "^fit	true" <<<"$out"
check "admit: 9 GiB on GPU 0 refused, in the seed's shape" grep -q "^over	false	Total GPU allocation 9.00 GiB on GPU 0 (NVIDIA H200) exceeds its memory 8.00 GiB: subject 4.00 GiB, god 5.00 GiB" <<<"$out"
check "admit: a budget over every device is split" grep -q "^split	true" <<<"$out"
check "admit: a device that does not exist" grep -q "^nodev	false	x: GPU 7 does not exist (this machine has 2)" <<<"$out"
check "admit: a bad size" grep -q "^bad	false	" <<<"$out"

# metrics: the child's GPU figures and each GPU's, once a session is open
echo "$H200" >"$FAKE_NVML_FIXTURE"
p=$(policy metrics <<'LUA'
local fx = os.getenv("FAKE_NVML_FIXTURE")
local base = io.open(fx):read("a")
local p = assert(mg.spawn { name = "m", gpu_limit = "4G", sample_ms = 100, cmd = { "sleep", "30" } })
local f = assert(io.open(fx, "w")) f:write(base, ("proc 0 %d 1073741824\n"):format(p.pid)) f:close()
mg.after(3000, function() mg.exit(0) end)
LUA
)
"$MGRUN" --log-level error --metrics "unix:$T_TMP/m.sock" --control="$T_TMP/c.sock" "$p" &
mpid=$!
for i in $(seq 50); do [[ -S $T_TMP/m.sock ]] && break; sleep 0.1; done
sleep 0.6
scrape=$(python3 "$MG_SOURCE_DIR/tests/e2e/metrics_client.py" unix "$T_TMP/m.sock")
status=$("$MGRUN" ctl --socket "$T_TMP/c.sock" --json status)
human=$("$MGRUN" ctl --socket "$T_TMP/c.sock" status)
kill "$mpid" 2>/dev/null; wait "$mpid" 2>/dev/null
check "metrics: the child's GPU memory" grep -q '^mgrun_child_gpu_memory_bytes{name="m",enforce="none"} 1073741824' <<<"$scrape"
check "metrics: its gpu_limit" grep -q '^mgrun_child_gpu_memory_limit_bytes{name="m",enforce="none"} 4294967296' <<<"$scrape"
check "metrics: each GPU's memory" grep -q '^mgrun_gpu_memory_total_bytes{gpu="1",uuid="GPU-bbbb",name="NVIDIA H200"} 8589934592' <<<"$scrape"
check "control: ctl status shows GPU memory" grep -q "^m  *gpu 1.00 GiB of 4.00 GiB" <<<"$human"
check "control: status has the child's GPU figures" jq -e '.children[0].gpu == 1073741824 and .children[0].gpu_limit == 4294967296' <<<"$status"
check "metrics: exits by reason include gpu_limit" grep -q 'mgrun_child_exits_total{name="m",enforce="none",reason="gpu_limit"} 0' <<<"$scrape"

# the seed's matrix mode on one GPU: GPU budgets admitted or refused
out=$("$MGRUN" --log-level error "$MG_SOURCE_DIR/policies/matrix.lua" --seconds 1 --gpu-total 90% 2>&1)
check "matrix: 90 % of GPU 0 admitted" grep -q "^matrix: GPU 0 (NVIDIA H200): admitted subject .* of 8.00 GiB (90.0 %)" <<<"$out"
"$MGRUN" --log-level error "$MG_SOURCE_DIR/policies/matrix.lua" --seconds 1 --gpu-total 12G >"$T_TMP/o" 2>&1
check "matrix: 12 GiB on an 8 GiB GPU refused, exit 2" test $? -eq 2
check "matrix: …with the seed's message" grep -q "^Cannot start matrix mode: Total GPU allocation 12.00 GiB on GPU 0 (NVIDIA H200) exceeds its memory 8.00 GiB" "$T_TMP/o"

# an integrated GPU: its use is host memory, not checked twice
echo "device GPU-orin 8589934592 0 Orin (nvgpu)" >"$FAKE_NVML_FIXTURE"
out=$("$MGRUN" --log-level error "$admit" 2>&1)
check "integrated: reported" bash -c "'$MGRUN' --probe | grep -q 'integrated (shares system memory)'"
check "integrated: GPU budgets are not admitted against it twice" grep -q "^over	true" <<<"$out"

# no device, no library
echo "" >"$FAKE_NVML_FIXTURE"
p=$(policy none <<'LUA'
print("gpus", mg.gpus())
print("spawn", mg.spawn { cmd = { "true" }, gpu_limit = "1G" })
LUA
)
out=$("$MGRUN" --log-level error "$p" 2>&1)
check "no device: mg.gpus says so" grep -q "^gpus	nil	NVML (.*) found no GPU	ENODEV" <<<"$out"
check "no device: a gpu_limit is refused" grep -q "^spawn	nil	gpu_limit: no GPU to govern here: NVML (.*) found no GPU	ENOTSUP" <<<"$out"
out=$(MG_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1 "$MGRUN" --log-level error "$p" 2>&1)
check "no library: nil, reason, ENOTSUP" grep -q "^gpus	nil	no NVML: cannot load /nonexistent/libnvidia-ml.so.1.*	ENOTSUP" <<<"$out"
out=$(MG_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1 "$MGRUN" --probe)
check "no library: --probe says why, never an error" grep -q "^gpu:        none (no NVML: cannot load" <<<"$out"
finish
