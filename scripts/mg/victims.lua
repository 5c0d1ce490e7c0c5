-- mg/victims.lua — choose which child to act on (require("mg.victims")).
--
-- When memory runs short and a policy must stop, throttle or shed one of
-- several children, this library says which one: the largest, the fastest
-- growing, or the one of lowest priority. It keeps a settle time after
-- each action, so that one event does not take two victims: the memory of
-- a child that was just told to stop is still counted until it is gone
-- (a TERM grace, a kernel freeing a large heap), and a policy that looks
-- again at once would act on a second child for the same shortage.
-- earlyoom, oomd (post_action_delay) and nohang all had to learn this.
--
--   local V = require("mg.victims")
--   local chooser = V.new{ strategy = "priority", settle_ms = 2000,
--                          priority = { llm = 10, embedder = 5 } }
--   p:on("sample", function(p, s) chooser:observe(p, s) end)
--   local victim, why = chooser:pick(mg.processes())
--   if victim then victim:kill{ signal = "TERM", grace_ms = 2000 }
--                  chooser:acted(victim) end
--
-- V.new(opts) → chooser; opts (every field optional):
--   strategy   "largest" (default): the most memory used; ties: the
--              fastest growing, then the first in the list.
--              "fastest": the highest growth in bytes/s over the last
--              window_ms of samples fed to observe; a child with fewer
--              than two samples in the window ranks after every child
--              with a rate; ties: the largest, then the first in the list.
--              "priority": the lowest priority number first; ties: the
--              largest, then the first in the list.
--   priority   a function(p) → number, or a table { [name] = number };
--              nil (a missing name, a function returning nil) counts as 0.
--              Used by "priority"; required for it.
--   settle_ms  after chooser:acted(victim), pick chooses no victim for
--              this long (default 2000; 0 = no settle) — unless memory
--              keeps rising past a second line: the level (below) is
--              more than `rise` above where it stood when the action was
--              taken. A child acted on is not chosen again while its own
--              settle time runs (one that ignored its TERM can be chosen
--              again after it).
--   rise       the second line, as a fraction of the level at the action
--              (default 0.1: 10 % higher); false: no second line, the
--              settle time always holds.
--   level      function(candidates) → bytes: what "memory" is for the
--              second line. Default: the summed usage of the running
--              children given to pick, less those being acted on. E.g.
--              system-wide: function() local m = mg.memory()
--              return m.effective_total - m.effective_available end
--   window_ms  the growth window of "fastest" (default 5000).
--   usage      function(p) → bytes | nil: a child's usage. Default:
--              p:memory().used (or .rss) where p has a memory method (a
--              child whose memory() fails is gone: skipped), else the
--              last sample fed to observe, else 0.
--   clock      function() → milliseconds, monotonic (default mg.now; a
--              test injects its own).
--
-- chooser:observe(p [, sample])  records one sample of p: a number of
--   bytes, or a table with `used` (mg.spawn's sample) or `usage` (a
--   threshold event's table); without one, the usage now. A child whose
--   pid changed (a restart) starts a new history. Returns the chooser.
-- chooser:pick([procs]) → victim, why | nil, why
--   procs: a list of children (default mg.processes()). A child is a
--   candidate when it is running: p.running is true (a table without that
--   field: p.pid is set). `why` is a sentence for a log line: what was
--   chosen and by what measure, or why nothing was (no running candidate,
--   still settling).
-- chooser:acted(victim [, procs])  an action was taken on victim: starts
--   the settle time and measures the level at the action (over procs, or
--   the list of the last pick). Returns the chooser.
-- chooser:settling() → milliseconds left | nil
-- chooser:rate(p) → bytes/s over the window | nil (fewer than two samples)
--
-- Children are process objects of mg.spawn or plain tables with the same
-- fields (name, pid, running, memory); the chooser remembers them in weak
-- tables, so dropping a child forgets it. Bad arguments raise an error
-- that says what is accepted.
local mg = require("mg") -- also where there is no global mg (mg.so)
local V = {}

V.strategies = { "largest", "fastest", "priority" }
local known_strategy = { largest = true, fastest = true, priority = true }

local accepted_opts = { "strategy", "priority", "settle_ms", "rise", "level",
                        "window_ms", "usage", "clock" }
local known_opt = {}
for _, k in ipairs(accepted_opts) do known_opt[k] = true end

local MAX_SAMPLES = 512 -- per child; the oldest go first

local Chooser = {}
Chooser.__index = Chooser
Chooser.__name = "mg.victims" -- (tostring, error messages)

local function typename(v)
  local mt = getmetatable(v)
  if type(mt) == "table" and type(mt.__name) == "string" then return mt.__name end
  return type(v)
end

-- Raise "bad argument #n to 'fname' (msg)" at the caller of the API
-- function (level: how far up that is from here; 3 = the caller of the
-- function that calls bad).
local function bad(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 3)
end

local function check_self(self, fname)
  if getmetatable(self) ~= Chooser then
    bad(1, fname, ("mg.victims chooser expected, got %s"):format(typename(self)), 4)
  end
end

local function is_proc(v)
  local t = type(v)
  return t == "table" or t == "userdata"
end

local function fmt(bytes)
  return mg.format_size(math.max(0, math.floor(bytes)))
end

local function label(p)
  local name = p.name
  if name == nil then return "pid " .. tostring(p.pid) end
  return ("'%s'"):format(tostring(name))
end

local function check_ms(v, what, min, default)
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v < min or v == math.huge then
    bad(1, "mg.victims.new", ("%s must be a number of milliseconds >= %d, got %s")
      :format(what, min, tostring(v)), 4)
  end
  return v
end

local function check_fn(v, what)
  if v ~= nil and type(v) ~= "function" then
    bad(1, "mg.victims.new", ("%s must be a function, got %s"):format(what, type(v)), 4)
  end
  return v
end

--- V.new(opts) → a chooser (see the header for opts).
function V.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    bad(1, "mg.victims.new", ("table of options expected, got %s"):format(type(opts)))
  end
  for k in pairs(opts) do
    if not known_opt[k] then
      bad(1, "mg.victims.new", ("unknown option '%s' (accepted: %s)")
        :format(tostring(k), table.concat(accepted_opts, ", ")))
    end
  end
  local strategy = opts.strategy or "largest"
  if not known_strategy[strategy] then
    bad(1, "mg.victims.new", ("strategy must be \"largest\", \"fastest\" or "
      .. "\"priority\", got %s"):format(type(strategy) == "string"
        and ('"' .. strategy .. '"') or tostring(strategy)))
  end
  local prio = opts.priority
  if prio ~= nil and type(prio) ~= "function" and type(prio) ~= "table" then
    bad(1, "mg.victims.new", ("priority must be a function(p) returning a number "
      .. "or a table of numbers by name, got %s"):format(type(prio)))
  end
  if type(prio) == "table" then
    for k, v in pairs(prio) do
      if type(v) ~= "number" or v ~= v then
        bad(1, "mg.victims.new", ("priority['%s'] must be a number, got %s")
          :format(tostring(k), tostring(v)))
      end
    end
  end
  if strategy == "priority" and prio == nil then
    bad(1, "mg.victims.new", "strategy \"priority\" needs priority = a function(p) "
      .. "returning a number, or a table of numbers by name")
  end
  local rise = opts.rise
  if rise == nil then rise = 0.1 end
  if rise ~= false and (type(rise) ~= "number" or rise ~= rise or rise < 0
                        or rise == math.huge) then
    bad(1, "mg.victims.new", ("rise must be a fraction >= 0 of the level at the "
      .. "action (0.1 = 10 %% higher) or false, got %s"):format(tostring(rise)))
  end
  local self = setmetatable({
    strategy = strategy,
    settle_ms = check_ms(opts.settle_ms, "settle_ms", 0, 2000),
    window_ms = check_ms(opts.window_ms, "window_ms", 1, 5000),
    rise = rise,
    _priority = prio,
    _level = check_fn(opts.level, "level"),
    _usage = check_fn(opts.usage, "usage"),
    _clock = check_fn(opts.clock, "clock") or mg.now,
    _hist = setmetatable({}, { __mode = "k" }),  -- p → { pid, t = {}, u = {} }
    _acted = setmetatable({}, { __mode = "k" }), -- p → time of the action
    _last = nil,       -- time of the last action
    _line = nil,       -- the second line (bytes) of the last action
    _base = nil,       -- the level at the last action
    _procs = nil,      -- the list of the last pick
  }, Chooser)
  return self
end

function Chooser:__tostring()
  return ("mg.victims(%s, settle %g ms)"):format(self.strategy, self.settle_ms)
end

local function now(self)
  local t = self._clock()
  if type(t) ~= "number" then
    error(("mg.victims: clock must return milliseconds (a number), got %s")
      :format(type(t)), 0)
  end
  return t
end

-- The history of p, new (or reset) when its pid changed.
local function history(self, p)
  local h = self._hist[p]
  local pid = p.pid
  if not h or (pid ~= nil and h.pid ~= nil and h.pid ~= pid) then
    h = { pid = pid, t = {}, u = {} }
    self._hist[p] = h
  elseif h.pid == nil then
    h.pid = pid
  end
  return h
end

-- Drop the samples older than the window (keeping the newest one) and
-- any past MAX_SAMPLES, oldest first.
local function trim(self, h, t)
  local cut, len = t - self.window_ms, #h.t
  local n = 0
  while len - n > 1 and (h.t[n + 1] < cut or len - n > MAX_SAMPLES) do
    n = n + 1
  end
  if n == 0 then return end
  for i = 1, len do
    local j = i + n
    h.t[i], h.u[i] = h.t[j], h.u[j] -- nil past the end
  end
end

local function usage_now(self, p)
  if self._usage then
    local u = self._usage(p)
    if u ~= nil and (type(u) ~= "number" or u ~= u) then
      error(("mg.victims: usage of %s must be a number of bytes or nil, got %s")
        :format(label(p), tostring(u)), 0)
    end
    return u, u ~= nil
  end
  if type(p.memory) == "function" then
    local m = p:memory()
    if type(m) ~= "table" then return nil, false end -- gone
    local u = m.used or m.rss
    if type(u) == "number" then return u, true end
  end
  local h = self._hist[p]
  if h and #h.u > 0 then return h.u[#h.u], true end
  return 0, true
end

--- chooser:observe(p [, sample]) → chooser
function Chooser:observe(p, sample)
  check_self(self, "observe")
  if not is_proc(p) then
    bad(2, "observe", ("a process (mg.spawn's or a table) expected, got %s")
      :format(type(p)))
  end
  local u
  if sample == nil then
    u = usage_now(self, p)
    if u == nil then return self end -- gone: nothing to record
  elseif type(sample) == "number" then
    u = sample
  elseif type(sample) == "table" then
    u = sample.used or sample.usage
    if type(u) ~= "number" then
      bad(3, "observe", ("sample must have a number 'used' (a sample event) or "
        .. "'usage' (a threshold event), got %s"):format(type(u)))
    end
  else
    bad(3, "observe", ("sample must be a number of bytes, a table with 'used' "
      .. "or 'usage', or nil, got %s"):format(type(sample)))
  end
  if u ~= u or u < 0 then
    bad(3, "observe", ("usage must be a number of bytes >= 0, got %s"):format(tostring(u)))
  end
  local t = now(self)
  local h = history(self, p)
  local n = #h.t
  if n > 0 and t < h.t[n] then t = h.t[n] end -- a clock is monotonic
  h.t[n + 1], h.u[n + 1] = t, u
  trim(self, h, t)
  return self
end

-- Growth in bytes/s over the window, and the span it covers, or nil.
local function rate_of(self, p, t)
  local h = self._hist[p]
  if not h or (p.pid ~= nil and h.pid ~= nil and h.pid ~= p.pid) then return nil end
  local cut = t - self.window_ms
  local first
  for i = 1, #h.t do
    if h.t[i] >= cut then first = i break end
  end
  local last = #h.t
  if not first or last - first < 1 then return nil end
  local dt = h.t[last] - h.t[first]
  if dt <= 0 then return nil end
  return (h.u[last] - h.u[first]) * 1000 / dt, dt
end

--- chooser:rate(p) → bytes/s | nil
function Chooser:rate(p)
  check_self(self, "rate")
  if not is_proc(p) then
    bad(2, "rate", ("a process expected, got %s"):format(type(p)))
  end
  return (rate_of(self, p, now(self)))
end

--- chooser:settling() → milliseconds left | nil
function Chooser:settling()
  check_self(self, "settling")
  if not self._last then return nil end
  local left = self._last + self.settle_ms - now(self)
  if left > 0 then return left end
  return nil
end

local function running(p)
  local r = p.running
  if r == nil then return p.pid ~= nil end
  return r == true
end

local function priority_of(self, p)
  local pr = self._priority
  local v
  if type(pr) == "function" then
    v = pr(p)
  elseif pr ~= nil and p.name ~= nil then
    v = pr[p.name]
  end
  if v == nil then return 0 end
  if type(v) ~= "number" or v ~= v then
    error(("mg.victims: priority of %s must be a number (or nil for 0), got %s")
      :format(label(p), tostring(v)), 0)
  end
  return v
end

local function check_procs(procs, fname, n)
  if procs == nil then
    if type(mg.processes) ~= "function" then
      bad(n, fname, "a list of processes expected (there is no mg.processes here)", 4)
    end
    return mg.processes()
  end
  if type(procs) ~= "table" then
    bad(n, fname, ("a list of processes expected, got %s"):format(type(procs)), 4)
  end
  for i = 1, #procs do
    if not is_proc(procs[i]) then
      bad(n, fname, ("a list of processes expected, item %d is a %s")
        :format(i, type(procs[i])), 4)
    end
  end
  return procs
end

-- Candidates: running, not being acted on; each { p, i, used }.
local function candidates(self, procs, t)
  local out = {}
  for i = 1, #procs do
    local p = procs[i]
    local at = self._acted[p]
    if running(p) and not (at and t - at < self.settle_ms) then
      local u, alive = usage_now(self, p)
      if alive then out[#out + 1] = { p = p, i = i, used = u } end
    end
  end
  return out
end

local function level_of(self, cands)
  if self._level then
    local list = {}
    for k, c in ipairs(cands) do list[k] = c.p end
    local l = self._level(list)
    if type(l) ~= "number" or l ~= l then
      error(("mg.victims: level must return a number of bytes, got %s")
        :format(tostring(l)), 0)
    end
    return l
  end
  local sum = 0
  for _, c in ipairs(cands) do sum = sum + c.used end
  return sum
end

local order = {
  largest = function(a, b)
    if a.used ~= b.used then return a.used > b.used end
    local ra, rb = a.rate or -math.huge, b.rate or -math.huge
    if ra ~= rb then return ra > rb end
    return a.i < b.i
  end,
  fastest = function(a, b)
    local ra, rb = a.rate, b.rate
    if (ra ~= nil) ~= (rb ~= nil) then return ra ~= nil end
    if ra ~= nil and ra ~= rb then return ra > rb end
    if a.used ~= b.used then return a.used > b.used end
    return a.i < b.i
  end,
  priority = function(a, b)
    if a.prio ~= b.prio then return a.prio < b.prio end
    if a.used ~= b.used then return a.used > b.used end
    return a.i < b.i
  end,
}

local function plural(n, word)
  if n == 1 then return ("%d %s"):format(n, word) end
  return ("%d %s%s"):format(n, word, word:sub(-1) == "s" and "es" or "s")
end

--- chooser:pick([procs]) → victim, why | nil, why
function Chooser:pick(procs)
  check_self(self, "pick")
  procs = check_procs(procs, "pick", 2)
  self._procs = procs
  local t = now(self)
  local cands = candidates(self, procs, t)
  local broke
  if self._last and t - self._last < self.settle_ms then
    local left = self._last + self.settle_ms - t
    local level = level_of(self, cands)
    if not self._line or level <= self._line then
      return nil, ("settling: %.0f ms left after the last action (level %s, "
        .. "second line %s)"):format(left, fmt(level),
          self._line and fmt(self._line) or "none")
    end
    broke = ("; memory kept rising during the settle time (level %s past the "
      .. "second line %s)"):format(fmt(level), fmt(self._line))
  end
  if #cands == 0 then
    return nil, ("no running candidate (%s given)"):format(plural(#procs, "process"))
  end
  for _, c in ipairs(cands) do
    c.rate = rate_of(self, c.p, t)
    if self.strategy == "priority" then c.prio = priority_of(self, c.p) end
  end
  table.sort(cands, order[self.strategy])
  local v = cands[1]
  local why
  if self.strategy == "largest" then
    why = ("largest: %s uses %s"):format(label(v.p), fmt(v.used))
  elseif self.strategy == "fastest" then
    if v.rate then
      why = ("fastest: %s grows %s/s (%s now)"):format(label(v.p),
        (v.rate < 0 and "-" or "") .. fmt(math.abs(v.rate)), fmt(v.used))
    else
      why = ("fastest: %s uses %s (no growth measured yet: largest)")
        :format(label(v.p), fmt(v.used))
    end
  else
    why = ("priority: %s has the lowest priority %g (%s)"):format(label(v.p),
      v.prio, fmt(v.used))
  end
  why = why .. (" of %s"):format(plural(#cands, "candidate")) .. (broke or "")
  return v.p, why
end

--- chooser:acted(victim [, procs]) → chooser
function Chooser:acted(victim, procs)
  check_self(self, "acted")
  if not is_proc(victim) then
    bad(2, "acted", ("the process acted on expected, got %s"):format(type(victim)))
  end
  if procs ~= nil then procs = check_procs(procs, "acted", 3) end
  procs = procs or self._procs or {}
  local t = now(self)
  self._acted[victim] = t
  self._last = t
  local level = level_of(self, candidates(self, procs, t))
  self._base = level
  self._line = self.rise ~= false and level * (1 + self.rise) or nil
  return self
end

return V
