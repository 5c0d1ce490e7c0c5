-- report.lua — what this machine offers, and whether the seed's "matrix
-- mode" (subject 2G, observer 6G, god 9G) fits on it.
--
--   mgrun policies/report.lua                 the seed's matrix
--   mgrun policies/report.lua name=SIZE ...   your own instances
--
-- Prints memory (and the effective memory a container really has), the
-- cgroup version and whether mgrun may create limited groups here, which
-- rlimit the kernel really enforces (probed, not assumed), memory
-- pressure, then validates every instance and their total with the
-- seed's messages and warnings. Exit status 0 when the allocation fits,
-- 2 when it does not (as admission control would refuse it).

local fmt = mg.format_size

local function line(label, text) print(("%-12s %s"):format(label, text)) end

local p = assert(mg.probe())
local m = p.memory

print(("mgrun %s on %s (Linux %s)"):format(p.version, p.arch, p.kernel))
print()
line("memory", ("total %s, available %s, free %s, cached %s"):format(
  fmt(m.total), fmt(m.available), fmt(m.free), fmt(m.cached)))
line("swap", m.swap_total > 0 and
  ("%s, %s free"):format(fmt(m.swap_total), fmt(m.swap_free)) or "none")
if m.cgroup_limit then
  line("effective", ("%s (the cgroup limit %s is below MemTotal: %s)"):format(
    fmt(m.effective_total), fmt(m.cgroup_limit), m.effective_source))
else
  line("effective", ("%s (from %s: no cgroup limit below MemTotal)"):format(
    fmt(m.effective_total), m.effective_source))
end
line("", ("available to us: %s"):format(fmt(m.effective_available)))

local cg = p.cgroup
if cg.version == "none" then
  line("cgroup", "no memory controller mounted")
else
  line("cgroup", ("%s memory controller at %s%s"):format(cg.version, cg.mount,
    (cg.version == "v1" and cg.v2_mounted) and " (hybrid: cgroup2 mounted too)" or ""))
  line("", "this process: " .. cg.path)
  line("", cg.writable_reason or
    (cg.writable and "writable" or "writability not probed"))
end

local rl = p.rlimit
line("rlimit", "default: " .. (rl.preferred and ("RLIMIT_" .. rl.preferred:upper())
  or "none enforced"))
line("", "RLIMIT_DATA " .. rl.data.reason)
line("", "RLIMIT_AS   " .. rl.as.reason)

if p.pressure then
  for _, kind in ipairs({ "some", "full" }) do
    local x = p.pressure[kind]
    if x then
      line(kind == "some" and "pressure" or "",
        ("%s avg10=%.2f%% avg60=%.2f%% avg300=%.2f%%"):format(kind, x.avg10, x.avg60, x.avg300))
    end
  end
else
  line("pressure", "unavailable: " .. tostring(p.pressure_reason))
end

-- The allocation to validate: the seed's matrix, or name=SIZE arguments.
local instances = {}
for _, a in ipairs(arg) do
  local name, size = a:match("^([%w_.-]+)=(.+)$")
  if not name then
    io.stderr:write(("report.lua: bad argument %q (expected name=SIZE, e.g. god=9G)\n"):format(a))
    mg.exit(2)
  end
  instances[#instances + 1] = { name = name, limit = size }
end
if #instances == 0 then
  instances = { { name = "subject", limit = "2G" },
                { name = "observer", limit = "6G" },
                { name = "god", limit = "9G" } }
end

print()
print(("matrix mode against %s of effective memory:"):format(fmt(m.effective_total)))
for _, it in ipairs(instances) do
  local ok, msg, warn = mg.validate_limit(it.limit)
  local shown = (pcall(mg.size, it.limit)) and fmt(mg.size(it.limit)) or tostring(it.limit)
  print(("  %-10s %10s  %s"):format(it.name, shown,
    ok and ("ok" .. (warn and ("; warning: " .. warn) or "")) or ("INVALID: " .. msg)))
end
local ok, msg, warn = mg.validate_total(instances)
if ok then
  print("  total: fits" .. (warn and ("; warning: " .. warn) or ""))
  if warn then mg.log.warn("allocation_warning", { warning = warn }) end
else
  print("  total: REFUSED: " .. msg)
  mg.log.error("allocation_refused", { reason = msg })
  mg.exit(2)
end
