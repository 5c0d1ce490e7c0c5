-- policies/ladder.lua — the graded ladder: act on a child well before the
-- kernel has to, one rung at a time.
--
--   at 80 % of a child's limit   warn, and prune the agent's context store
--   at 90 %                      throttle it (memory.high, cgroup v2)
--   at 95 %                      stop it gracefully: TERM, KILL after 2 s
--   at the limit                 the kernel kills it (its own cgroup)
--
-- Each rung is one log line (ladder_warn, ladder_throttle, ladder_stop,
-- ladder_kernel_kill). The lines are kernel notifications — threshold
-- events of the child's cgroup, armed by mg.spawn's `thresholds` — not
-- samples, so a rung is taken when the line is crossed, not up to a
-- sampling period later. A child is restarted after it dies and climbs the
-- ladder again (its thresholds re-arm below each line).
--
--   mgrun policies/ladder.lua                   the demo: 10 s, two mg-hogs
--   mgrun policies/ladder.lua --seconds 0       until Ctrl-C
--   mgrun policies/ladder.lua --budget 160M     also a shared budget (below)
--
-- The demo runs two mg-hogs (the project's workload: it grows memory at a
-- rate) that grow past their limits: "agent" stops at its TERM, so the
-- third rung ends it; "stubborn" ignores TERM, so it goes on to its limit
-- and the kernel kills it — the fourth rung. Where throttling is not
-- possible (cgroup v1 has no memory.high) p:throttle says so (ENOTSUP);
-- the ladder logs that on the throttle rung's line and goes on.
--
-- Several children: each child's rungs act on that child — only stopping
-- it keeps it off its own kernel limit, so there is no victim to choose.
-- A choice exists once the children share something: with a BUDGET (the
-- children together, e.g. what the host can spare; their limits may add
-- up to more), the children's samples are summed, and past 80 % of the
-- budget the store is pruned, past 95 % one victim is stopped — chosen by
-- mg.victims (lowest priority first, ties by size), with a settle time so
-- that the memory of a child still in its TERM grace does not make a second
-- victim. Every stop, also a child's own third rung, starts that settle
-- time. A budget has no kernel line of its own here (each child has its own
-- group), so it is checked on samples (SAMPLE_MS).
--
-- This policy uses the threshold API of issue 10 (mg.spawn's `thresholds`,
-- the "threshold" and "oom" events, p:throttle / p:unthrottle, p:kill{}):
-- on an mgrun without it, mg.spawn refuses the field and the policy exits 2
-- with that message (also under --check).

-- ------------------------------------------------------------ configuration

local function executable(path)
  local f = io and io.open(path, "r")
  if f then f:close() return true end
  return io == nil -- (--sandbox has no io: trust the path)
end
local HOG = mg.bindir and executable(mg.bindir .. "/mg-hog") and
            mg.bindir .. "/mg-hog" or "mg-hog"

-- The children: a name, a command, a limit, a priority (for the budget's
-- victim: lowest first).
local CHILDREN = {
  { name = "agent", limit = "128M", priority = 10,
    cmd = { HOG, "--quiet", "--rate", "32M" } },                   -- ~4 s to 95 %
  { name = "stubborn", limit = "96M", priority = 1,
    cmd = { HOG, "--quiet", "--rate", "24M", "--ignore-term" } },  -- TERM ignored
}

-- The rungs, as fractions of each child's limit (the kernel's is 1.0).
local STEPS = { warn = 0.80, throttle = 0.90, stop = 0.95 }
local THROTTLE_HIGH = 0.97  -- memory.high at the throttle rung: growth past the
                            -- stop line is slowed, so the TERM grace can run out
                            -- before the child reaches its kernel limit
local GRACE_MS = 2000       -- the stop rung: TERM, then KILL after this
local RESTART = "on-failure"
local BACKOFF_MS = 1000

-- The agent's context store that the warn rung prunes (the policy owns it;
-- an embedding host shares it with its agent through mg_runtime_store).
local STORE = { name = "agent", max_messages = 400, max_total_size = "1M",
                keep = 20 }  -- messages kept by the prune, besides pinned ones

local BUDGET = nil          -- the children together (a size); nil = none
local SAMPLE_MS = 250       -- how often the budget is checked (only with one)
local VICTIM = { strategy = "priority", settle_ms = GRACE_MS }

local SECONDS = 10          -- then a clean mg.exit(0); 0 = until Ctrl-C

-- ------------------------------------------------------------ arguments

local usage = "usage: mgrun policies/ladder.lua [--seconds N] [--budget SIZE]"
local function die(msg, show_usage)
  if io then
    io.stderr:write("ladder: ", msg, "\n", show_usage and usage .. "\n" or "")
  else
    mg.log.error("ladder", { message = msg }) -- (--sandbox has no io)
  end
  mg.exit(2)
end

do
  local i = 1
  while i <= #arg do
    local a, v = arg[i], arg[i + 1]
    if a == "--help" or a == "-h" then
      io.stdout:write(usage, "\n")
      mg.exit(0)
    elseif a == "--seconds" then
      SECONDS = tonumber(v or "")
      if not SECONDS or SECONDS < 0 then die("--seconds needs a number >= 0", true) end
    elseif a == "--budget" then
      if v == nil then die("--budget needs a size", true) end
      BUDGET = v
    else
      die("unknown argument '" .. a .. "'", true)
    end
    i = i + 2
  end
end

-- ------------------------------------------------------------ admission

local fmt = mg.format_size
local V = require("mg.victims")

local ok, msg, warning = mg.validate_total(CHILDREN)
if not ok then die("the children do not fit: " .. msg) end
if warning then mg.log.warn("ladder_admission_warning", { message = warning }) end
local budget
if BUDGET then
  local good, b = pcall(mg.size, BUDGET)
  if not good then die("--budget: " .. tostring(b)) end
  budget = b
end

local function percent(used, limit)
  return math.floor(used / limit * 1000 + 0.5) / 10
end

-- ------------------------------------------------------------ the agent's store

local ctx = assert(mg.store {
  name = STORE.name, max_messages = STORE.max_messages,
  max_total_size = STORE.max_total_size, on_full = "prune",
  strategy = "user_turn_start",
})
ctx:add { role = "system", pinned = true,
          content = "You are a careful agent. Keep answers short." }
-- A stand-in for the agent's conversation: one turn every 100 ms.
local turn = 0
local conversation = mg.every(100, function()
  turn = turn + 1
  ctx:add { role = "user", content = ("question %d: %s"):format(turn,
              string.rep("look into this ", 8)) }
  ctx:add { role = "assistant", content = ("answer %d: %s"):format(turn,
              string.rep("because ", 24)) }
end)

-- Prune the store; the fields for the rung's log line.
local function prune(fields)
  local before = ctx:stats().total_size_bytes
  local removed, err = ctx:prune(STORE.keep)
  if removed then
    fields.pruned = removed
    fields.freed = fmt(before - ctx:stats().total_size_bytes)
  else
    fields.prune_error = tostring(err)
  end
  return fields
end

-- ------------------------------------------------------------ the rungs

local prio = {}      -- p → its configured priority
local chooser = V.new { strategy = VICTIM.strategy, settle_ms = VICTIM.settle_ms,
                        priority = function(p) return prio[p] end }
local children = {}  -- { p, limit, levels, used, stopping, throttled, timer }
local by_proc = {}   -- p → its entry
local finishing = false

-- The rung of a threshold event: the configured level nearest to t.level.
local function rung_of(st, t)
  local at = t.level or t.fraction * st.limit
  local best, dist
  for name, level in pairs(st.levels) do
    local d = math.abs(level - at)
    if not dist or d < dist then best, dist = name, d end
  end
  return best
end

local function stop(st, event, fields)
  st.stopping = true
  local done, err, code = st.p:kill { signal = "TERM", grace_ms = GRACE_MS }
  chooser:acted(st.p, st.procs)
  fields.grace_ms = GRACE_MS
  if not done then fields.error, fields.code = err, code end
  mg.log.warn(event, fields)
end

local rungs = {}

function rungs.warn(st, t)
  mg.log.warn("ladder_warn", prune {
    name = st.p.name, step = "warn", usage = fmt(t.usage), limit = fmt(st.limit),
    percent = percent(t.usage, st.limit),
  })
end

function rungs.throttle(st, t)
  local high = math.floor(st.limit * THROTTLE_HIGH)
  local done, err, code = st.p:throttle(high)
  local fields = { name = st.p.name, step = "throttle", usage = fmt(t.usage),
                   percent = percent(t.usage, st.limit) }
  if done then
    st.throttled = true
    fields.high = fmt(high)
    -- re-arm: lift the throttle once the child is back below the warn line
    st.timer = mg.every(1000, function(timer)
      local m = st.p:memory()
      if m and m.used >= st.levels.warn then return end
      timer:stop()
      st.timer = nil
      if st.throttled and st.p.running then
        st.throttled = false
        st.p:unthrottle()
        mg.log.info("ladder_unthrottle", { name = st.p.name,
          usage = m and fmt(m.used) or nil })
      end
    end)
  else
    fields.error, fields.code = err, code -- e.g. ENOTSUP on cgroup v1: go on
  end
  mg.log.warn("ladder_throttle", fields)
end

function rungs.stop(st, t)
  stop(st, "ladder_stop", { name = st.p.name, step = "stop", usage = fmt(t.usage),
                            percent = percent(t.usage, st.limit) })
end

-- The budget: the children's samples summed; past the warn line the
-- store is pruned (once per crossing), past the stop line a victim is
-- stopped (the chooser's settle time keeps it to one per event).
local budget_warned = false
local function check_budget()
  if not budget or finishing then return end
  local total = 0
  for _, st in ipairs(children) do
    if st.p.running then total = total + (st.used or 0) end
  end
  if total < budget * STEPS.warn then
    budget_warned = false
  elseif not budget_warned then
    budget_warned = true
    mg.log.warn("ladder_budget_warn", prune { total = fmt(total),
      budget = fmt(budget), percent = percent(total, budget) })
  end
  if total < budget * STEPS.stop then return end
  local candidates = {}
  for _, st in ipairs(children) do
    if not st.stopping then candidates[#candidates + 1] = st.p end
  end
  local victim, why = chooser:pick(candidates)
  if not victim then return end
  local st = by_proc[victim]
  stop(st, "ladder_budget_stop", { name = victim.name, why = why,
    total = fmt(total), budget = fmt(budget), percent = percent(total, budget) })
end

-- ------------------------------------------------------------ the children

local procs = {}
for _, c in ipairs(CHILDREN) do
  local limit = mg.size(c.limit)
  local levels = {}
  for name, f in pairs(STEPS) do levels[name] = math.floor(limit * f) end
  local p, err = mg.spawn {
    name = c.name, cmd = c.cmd, limit = limit,
    thresholds = { levels.warn, levels.throttle, levels.stop },
    warn_at = false,         -- the warn rung replaces the built-in warn event
    sample_ms = budget and SAMPLE_MS or 0,
    restart = RESTART, backoff_ms = BACKOFF_MS, backoff_max_ms = 4 * BACKOFF_MS,
    grace_ms = GRACE_MS, stdout = "null",
  }
  if not p then die(("cannot start %s: %s"):format(c.name, err)) end
  local st = { p = p, limit = limit, levels = levels, used = 0, procs = procs }
  children[#children + 1] = st
  by_proc[p] = st
  prio[p] = c.priority or 0
  procs[#procs + 1] = p

  p:on("threshold", function(_, t)
    st.used = t.usage
    chooser:observe(p, t)
    if st.stopping or finishing then return end
    rungs[rung_of(st, t)](st, t)
  end)
  p:on("oom", function(_, info)
    mg.log.warn("ladder_kernel_kill", { name = p.name, step = "limit",
      limit = fmt(limit), count = info.count, total = info.total })
  end)
  p:on("sample", function(_, s)
    st.used = s.used
    chooser:observe(p, s)
    check_budget()
  end)
  p:on("exit", function(_, e)
    st.used = 0
    if st.timer then st.timer:stop() st.timer = nil end
    if finishing then return end
    mg.log.info("ladder_exit", { name = p.name, reason = e.reason, detail = e.detail,
      peak = e.peak and fmt(e.peak) or nil,
      restart_in_ms = e.will_restart and e.restart_in_ms or nil })
  end)
  p:on("restart", function(_, n)
    st.stopping = false
    local unthrottled = st.throttled or nil
    if st.throttled then
      st.throttled = false
      p:unthrottle() -- the group may keep memory.high across runs
    end
    mg.log.info("ladder_restart", { name = p.name, restarts = n,
                                    unthrottled = unthrottled })
  end)
end
local names = {}
for _, st in ipairs(children) do
  names[#names + 1] = ("%s %s"):format(st.p.name, fmt(st.limit))
end
mg.log.info("ladder_start", {
  children = table.concat(names, ", "),
  steps = ("warn %g%%, throttle %g%%, stop %g%%, kernel 100%%"):format(
    STEPS.warn * 100, STEPS.throttle * 100, STEPS.stop * 100),
  budget = budget and fmt(budget) or nil, enforce = children[1].p.enforce,
})

if SECONDS > 0 then
  mg.after(math.floor(SECONDS * 1000), function()
    finishing = true
    conversation:stop()
    local st = ctx:stats()
    mg.log.info("ladder_done", { seconds = SECONDS, turns = turn,
      context_messages = st.message_count, evicted = st.evicted_count })
    mg.exit(0)
  end)
end
