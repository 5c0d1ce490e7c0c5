# GPU memory on a real NVIDIA GPU, where one is at hand (skipped, saying
# so, everywhere else — the project's CI has none): a tiny CUDA client
# (tests/gpu/cuda_hog, driver API through dlopen) under mgrun — the GPU
# figure mgrun reports is within a few MiB of nvidia-smi's for that pid; a
# gpu_limit below its second allocation stops it, classified gpu_limit;
# the matrix policy's admission by GPU budget on this GPU.
source "$(dirname "$0")/lib.sh"
HOGC=$MG_TEST_BINDIR/cuda_hog
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "SKIP: no NVIDIA GPU here (nvidia-smi missing or finds no device)"
  exit 77
fi
[[ -x $HOGC ]] || { echo "FAIL: $HOGC not built"; exit 1; }
p=$(policy real <<LUA
local p = assert(mg.spawn { name = "cuda", cmd = { "$HOGC", "256", "512", "3" },
  gpu_limit = "600M", gpus = { 0 }, sample_ms = 100, grace_ms = 500 })
mg.after(1500, function()
  local m = assert(p:memory())
  local smi = io.popen("nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits")
  local used
  for line in smi:lines() do
    local pid, mib = line:match("(%d+),%s*(%d+)")
    if tonumber(pid) == p.pid then used = tonumber(mib) end
  end
  smi:close()
  print("figures", math.floor(m.gpu / 2^20), used)
end)
p:on("exit", function(_, e) print("exit", e.reason) mg.exit(0) end)
LUA
)
out=$("$MGRUN" "$p" 2>&1)
read -r mg smi < <(awk -F'\t' '/^figures/ {print $2, $3}' <<<"$out")
check "real: mgrun's GPU figure ($mg MiB) within 8 MiB of nvidia-smi's ($smi MiB)" \
  bash -c "(( ${mg:-0} > 0 && ${smi:-0} > 0 && ${mg:-0} - ${smi:-0} < 8 && ${smi:-0} - ${mg:-0} < 8 ))"
check "real: the second allocation crosses gpu_limit: exit gpu_limit" grep -q "^exit	gpu_limit" <<<"$out"
# admission by GPU budget on this GPU (the seed's matrix mode on one GPU)
p=$(policy admit <<'LUA'
local g = assert(mg.gpus())[1]
local half, most = math.floor(g.total * 0.3), math.floor(g.total * 0.6)
print("fit", mg.validate_total { { name = "subject", limit = "64M", gpu_limit = half, gpus = { 0 } },
                                 { name = "observer", limit = "64M", gpu_limit = half, gpus = { 0 } } })
print("over", mg.validate_total { { name = "subject", limit = "64M", gpu_limit = most, gpus = { 0 } },
                                  { name = "god", limit = "64M", gpu_limit = most, gpus = { 0 } } })
LUA
)
out=$("$MGRUN" --log-level error "$p" 2>&1)
check "real: two budgets of 30 % each fit" grep -q "^fit	true" <<<"$out"
check "real: two of 60 % each are refused" grep -q "^over	false	Total GPU allocation .* on GPU 0 " <<<"$out"
finish
