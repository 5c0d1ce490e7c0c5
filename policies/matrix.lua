-- policies/matrix.lua — the seed's "matrix mode": three model instances
-- (subject 2G, observer 6G, god 9G) run side by side, each under its own
-- memory limit, admitted only if their total fits this machine.
--
--   mgrun policies/matrix.lua                    limits scaled to 256 MiB in
--                                                total, an 8 s run
--   mgrun policies/matrix.lua --scale 1          the seed's real 2G + 6G + 9G
--                                                (really allocates: up to
--                                                ~13 GiB at once)
--   mgrun policies/matrix.lua --total 1G --seconds 20 --enforce data
--
-- Options:
--   --total SIZE     scale the three limits so they add up to SIZE (sizes as
--                    everywhere: 512M, 1.5G, 10%; default 256M)
--   --scale F        multiply the seed's limits by F instead (1 = 2G/6G/9G)
--   --seconds N      how long to run before a clean mg.exit(0) (default 8;
--                    0 = until Ctrl-C)
--   --enforce MODE   auto (default) | cgroup | data | as
--   --hog PATH       the workload program (default: mg-hog next to mgrun,
--                    else mg-hog on PATH)
--   --gpu-total SIZE GPU budgets too, on GPU 0, in the seed's proportions
--                    (2:6:9) adding up to SIZE ("8G", "90%" of GPU 0):
--                    admitted per device by mg.validate_total beside the
--                    host limits, and each instance spawned with its
--                    gpu_limit (mg-hog uses no GPU: the budgets are
--                    admission and watching only)
--
-- Admission control: mg.validate_total checks the three limits against
-- the effective memory (MemTotal or the cgroup limit, whichever is lower)
-- before anything starts; if they do not fit, it prints the seed's
-- "Cannot start matrix mode: ..." and exits 2 with nothing started.
--
-- Each instance is an mg-hog that grows: the subject fast and without
-- bound (it crosses its limit in about 1.5 s, is killed by the OOM killer
-- in its cgroup — or has an allocation refused under RLIMIT_DATA/AS — and
-- comes back with MG_RESTARTS one higher, the seed's death counter), the
-- observer slowly up to 60 % of its limit, the god up to 85 % (past the
-- 80 % warning line). One status line per instance per second, an event
-- line for every warning, death and restart: this policy owns its output,
-- so `bash build.sh demo` runs it with --log-level error (the supervisor's
-- own warn lines would tell each warning and death a second time).

local usage = [=[
usage: mgrun policies/matrix.lua [--total SIZE | --scale F] [--seconds N]
                                 [--enforce auto|cgroup|data|as] [--hog PATH]
                                 [--gpu-total SIZE]]=]

local function die(msg)
  io.stderr:write("matrix: ", msg, "\n", usage, "\n")
  mg.exit(2)
end

-- ------------------------------------------------------------ arguments

local opt = { total = "256M", seconds = 8, enforce = "auto" }
do
  local i = 1
  while i <= #arg do
    local a, v = arg[i], arg[i + 1]
    if a == "--help" or a == "-h" then
      io.stdout:write(usage, "\n")
      mg.exit(0)
    elseif a == "--total" or a == "--scale" or a == "--seconds" or
        a == "--enforce" or a == "--hog" or a == "--gpu-total" then
      if v == nil then die(a .. " needs a value") end
      if a == "--total" then
        opt.total, opt.scale = v, nil
      elseif a == "--scale" then
        local f = tonumber(v)
        if not f or f <= 0 or f ~= f or f == math.huge then
          die("--scale needs a positive number, got '" .. v .. "'")
        end
        opt.scale, opt.total = f, nil
      elseif a == "--seconds" then
        local s = tonumber(v)
        if not s or s < 0 then die("--seconds needs a number >= 0") end
        opt.seconds = s
      elseif a == "--enforce" then
        opt.enforce = v
      elseif a == "--gpu-total" then
        opt.gpu_total = v
      else
        opt.hog = v
      end
      i = i + 2
    else
      die("unknown argument '" .. a .. "'")
    end
  end
end

-- ------------------------------------------------------------ admission

local GiB = 1024 * 1024 * 1024
local seed = {
  { name = "subject", limit = 2 * GiB },
  { name = "observer", limit = 6 * GiB },
  { name = "god", limit = 9 * GiB },
}
local seed_total = 17 * GiB

local scale, total = opt.scale, nil
if not scale then
  local ok, t = pcall(mg.size, opt.total)
  if not ok then die("--total: " .. tostring(t)) end
  total = t
  scale = total / seed_total
end
local instances = {}
local given = 0
for i, s in ipairs(seed) do
  -- whole pages; with --total the last one takes the rest, so the three
  -- add up to exactly the total asked for
  local bytes = math.floor(s.limit * scale / 4096) * 4096
  if total and i == #seed then bytes = total - given end
  if bytes < 4096 then
    die(("%s would get %d bytes: --total / --scale too small"):format(
      s.name, bytes))
  end
  given = given + bytes
  instances[i] = { name = s.name, limit = bytes }
end

if opt.gpu_total then -- GPU budgets on GPU 0, 2:6:9
  local gpus, why = mg.gpus()
  if not gpus then die("--gpu-total: " .. tostring(why)) end
  local gt
  if opt.gpu_total:match("%%%s*$") then
    local pct = tonumber(opt.gpu_total:match("^([%d.]+)%s*%%"))
    if not pct then die("--gpu-total: invalid percentage '" .. opt.gpu_total .. "'") end
    gt = math.floor(gpus[1].total * pct / 100)
  else
    local okg, v = pcall(mg.size, opt.gpu_total)
    if not okg then die("--gpu-total: " .. tostring(v)) end
    gt = v
  end
  local gg = 0
  for i, s in ipairs(seed) do
    local b = i == #seed and gt - gg or math.floor(gt * (s.limit / seed_total))
    gg = gg + b
    instances[i].gpu_limit, instances[i].gpus = b, { 0 }
  end
end

local ok, msg, warning = mg.validate_total(instances)
if not ok then
  io.stderr:write("Cannot start matrix mode: ", msg, "\n")
  mg.exit(2)
end
if warning then mg.log.warn("matrix_admission_warning", { message = warning }) end

local fmt = mg.format_size
local sum = 0
for _, it in ipairs(instances) do sum = sum + it.limit end
local eff = mg.memory().effective_total
print(("matrix: admitted %s = %s of %s effective memory (%.1f %%)"):format(
  table.concat((function()
    local parts = {}
    for _, it in ipairs(instances) do
      parts[#parts + 1] = it.name .. " " .. fmt(it.limit)
    end
    return parts
  end)(), " + "), fmt(sum), fmt(eff), sum / eff * 100))
if opt.gpu_total then
  local parts, gsum = {}, 0
  for _, it in ipairs(instances) do
    parts[#parts + 1] = it.name .. " " .. fmt(it.gpu_limit)
    gsum = gsum + it.gpu_limit
  end
  local g0 = mg.gpus()[1]
  print(("matrix: GPU 0 (%s): admitted %s = %s of %s (%.1f %%)"):format(
    g0.name, table.concat(parts, " + "), fmt(gsum), fmt(g0.total),
    gsum / g0.total * 100))
end

-- ------------------------------------------------------------ workload

local function executable(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end
local hog = opt.hog or
  (mg.bindir and executable(mg.bindir .. "/mg-hog") and mg.bindir .. "/mg-hog") or
  "mg-hog"

-- How each instance grows (bytes per second, where it stops).
local plans = {
  subject = function(l) return { rate = l // 1.5 } end,             -- crosses
  observer = function(l) return { rate = l // 8, max = l * 6 // 10 } end,
  god = function(l) return { rate = l // 3, max = l * 85 // 100 } end, -- warns
}

local state = {}
local finishing = false -- the bounded run is over: exits are our stops
local t0 = mg.now()
local function stamp() return ("%5.1fs"):format((mg.now() - t0) / 1000) end

for _, it in ipairs(instances) do
  local plan = plans[it.name](it.limit)
  local cmd = { hog, "--quiet", "--rate", tostring(math.floor(plan.rate)) }
  if plan.max then
    cmd[#cmd + 1] = "--max"
    cmd[#cmd + 1] = tostring(math.floor(plan.max))
  end
  local p, err = mg.spawn {
    name = it.name, cmd = cmd, limit = it.limit, enforce = opt.enforce,
    warn_at = 0.8, sample_ms = 250,
    restart = "on-failure", backoff_ms = 500, backoff_max_ms = 2000,
    stdout = "null", grace_ms = 1000,
    gpu_limit = it.gpu_limit, gpus = it.gpus,
  }
  if not p then
    io.stderr:write("matrix: cannot start ", it.name, ": ", err, "\n")
    mg.exit(2)
  end
  local st = { p = p, deaths = 0, last = nil, used = 0, warned = 0 }
  state[#state + 1] = st
  p:on("sample", function(_, s) st.used = s.used end)
  p:on("warn", function(_, s)
    st.warned = st.warned + 1
    print(("%s %-8s warn: %s of %s (%.0f %%)"):format(stamp(), it.name,
      fmt(s.used), fmt(s.limit), s.fraction * 100))
  end)
  p:on("exit", function(_, e)
    if finishing then
      print(("%s %-8s stopped (%s)"):format(stamp(), it.name,
        e.signame and ("SIG" .. e.signame) or ("exit " .. tostring(e.code))))
      return
    end
    st.deaths = st.deaths + 1
    st.last = e.reason
    st.used = 0
    local how = ({
      oom = "killed by the OOM killer in its cgroup",
      limit = "died of an allocation refused at its limit",
      signal = "killed by signal " .. tostring(e.signame or e.signal),
      exit = "exited with status " .. tostring(e.code),
    })[e.reason]
    print(("%s %-8s %s (%s; peak %s of %s)%s"):format(stamp(), it.name, how,
      e.reason, fmt(e.peak or 0), fmt(it.limit),
      e.will_restart and (" — restart in %d ms"):format(e.restart_in_ms) or ""))
  end)
  p:on("restart", function(_, n)
    print(("%s %-8s restarted with MG_RESTARTS=%d"):format(stamp(), it.name, n))
  end)
end
print(("matrix: %d instances of %s, enforce %s%s"):format(#state, hog,
  state[1].p.enforce,
  opt.seconds > 0 and (", for %g s"):format(opt.seconds) or ", until Ctrl-C"))

-- ------------------------------------------------------------ status

mg.every(1000, function()
  for _, st in ipairs(state) do
    local p = st.p
    print(("%s %-8s pid %-7s %10s / %-10s %3.0f %%  restarts %d  [%s]%s"):format(
      stamp(), p.name, p.pid and tostring(p.pid) or "-", fmt(st.used),
      fmt(p.limit), st.used / p.limit * 100, p.restarts, p.enforce,
      st.last and ("  last death: " .. st.last) or ""))
  end
end)

if opt.seconds > 0 then
  mg.after(math.floor(opt.seconds * 1000), function()
    local parts = {}
    for _, st in ipairs(state) do
      parts[#parts + 1] = ("%s %d death%s"):format(st.p.name, st.deaths,
                                                  st.deaths == 1 and "" or "s")
    end
    print(("matrix: done after %g s (%s); stopping"):format(opt.seconds,
      table.concat(parts, ", ")))
    finishing = true
    mg.exit(0)
  end)
end
