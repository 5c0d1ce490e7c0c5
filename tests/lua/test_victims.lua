-- mg.victims (scripts/mg/victims.lua) through mgrun: each strategy and its
-- ties, the settle time and its second line, children that are not
-- running, restarts, bad arguments — on plain tables with an injected
-- clock — and one run with real mg.spawn children.
local lu = require("luaunit")
local h = require("helper")
local V = require("mg.victims")

local MiB = 1024 * 1024

-- A child as a plain table: memory() reports `used` (nil when gone).
local pids = 1000
local function proc(name, used, fields)
  pids = pids + 1
  local p = { name = name, pid = pids, running = true, used = used }
  function p:memory()
    if self.used == nil then return nil, "gone", "ESRCH" end
    return { pid = self.pid, used = self.used, rss = self.used }
  end
  for k, v in pairs(fields or {}) do p[k] = v end
  return p
end

-- A clock the test moves: clock.t milliseconds.
local function clock()
  local c = { t = 0 }
  c.fn = function() return c.t end
  return c
end

local function chooser(opts)
  local c = clock()
  opts = opts or {}
  opts.clock = c.fn
  return V.new(opts), c
end

TestVictims = {}

-- ------------------------------------------------------------ largest

function TestVictims:test_largest_is_the_default()
  local v = chooser()
  lu.assertEquals(v.strategy, "largest")
  lu.assertEquals(v.settle_ms, 2000)
  local a, b, c = proc("a", 10 * MiB), proc("b", 30 * MiB), proc("c", 20 * MiB)
  local victim, why = v:pick({ a, b, c })
  lu.assertIs(victim, b)
  lu.assertStrContains(why, "largest: 'b' uses 30.00 MiB of 3 candidates")
end

function TestVictims:test_largest_ties_go_to_the_fastest_then_the_first()
  local v, clk = chooser()
  local a, b, c = proc("a", 50 * MiB), proc("b", 50 * MiB), proc("c", 50 * MiB)
  lu.assertIs(v:pick({ a, b, c }), a) -- no rate known: the first in the list
  lu.assertIs(v:pick({ c, b, a }), c)
  -- b grew fastest to the same size
  v:observe(a, 40 * MiB):observe(b, 10 * MiB):observe(c, 49 * MiB)
  clk.t = 1000
  v:observe(a, 50 * MiB):observe(b, 50 * MiB):observe(c, 50 * MiB)
  lu.assertIs(v:pick({ a, b, c }), b)
  lu.assertIs(v:pick({ c, a, b }), b)
end

function TestVictims:test_usage_comes_from_memory_then_samples()
  local v = chooser()
  -- memory() wins over the samples (it is the usage now)
  local a, b = proc("a", 5 * MiB), proc("b", 8 * MiB)
  v:observe(a, 100 * MiB)
  lu.assertIs(v:pick({ a, b }), b)
  -- without memory(): the last sample, else 0
  local x = { name = "x", pid = 1, running = true }
  local y = { name = "y", pid = 2, running = true }
  local z = { name = "z", pid = 3, running = true }
  v:observe(x, 3 * MiB):observe(y, 7 * MiB):observe(y, 6 * MiB)
  local victim, why = v:pick({ x, y, z })
  lu.assertIs(victim, y)
  lu.assertStrContains(why, "6.00 MiB")
  -- observe without a sample reads memory()
  v:observe(b)
  lu.assertEquals(v._hist[b].u[1], 8 * MiB)
end

function TestVictims:test_usage_option()
  local v = chooser{ usage = function(p) return p.heap end }
  local a = { name = "a", pid = 1, running = true, heap = 1 }
  local b = { name = "b", pid = 2, running = true, heap = 2 }
  local gone = { name = "g", pid = 3, running = true, heap = nil }
  lu.assertIs(v:pick({ a, b, gone }), b)
  lu.assertIs(v:pick({ gone, a }), a)
  lu.assertNil((v:pick({ gone })))
end

-- ------------------------------------------------------------ fastest

function TestVictims:test_fastest_uses_bytes_per_second_over_the_window()
  local v, clk = chooser{ strategy = "fastest", window_ms = 4000 }
  local big, quick = proc("big", 200 * MiB), proc("quick", 20 * MiB)
  for s = 0, 4 do
    clk.t = s * 1000
    v:observe(big, 200 * MiB + s * MiB)      -- 1 MiB/s
    v:observe(quick, { used = s * 4 * MiB }) -- 4 MiB/s (a sample event)
  end
  lu.assertAlmostEquals(v:rate(big), MiB, 1)
  lu.assertAlmostEquals(v:rate(quick), 4 * MiB, 1)
  local victim, why = v:pick({ big, quick })
  lu.assertIs(victim, quick)
  lu.assertStrContains(why, "fastest: 'quick' grows 4.00 MiB/s")
end

function TestVictims:test_fastest_forgets_samples_older_than_the_window()
  local v, clk = chooser{ strategy = "fastest", window_ms = 2000 }
  local a, b = proc("a", 0), proc("b", 0)
  v:observe(a, 0)                 -- t = 0: a's early burst is out of the window later
  clk.t = 1000 v:observe(a, 100 * MiB) v:observe(b, 0)
  clk.t = 4000 v:observe(a, 101 * MiB) v:observe(b, 10 * MiB)
  clk.t = 5000 v:observe(a, 102 * MiB) v:observe(b, 20 * MiB)
  -- window [3000, 5000]: a 1 MiB/s (its burst at 1000 is out), b 10 MiB/s
  lu.assertAlmostEquals(v:rate(a), MiB, 1)
  lu.assertAlmostEquals(v:rate(b), 10 * MiB, 1)
  lu.assertIs(v:pick({ a, b }), b)
  -- long after the last samples: no rate at all
  clk.t = 60000
  lu.assertNil(v:rate(a))
  lu.assertNil(v:rate(b))
  v:observe(a, 0)
  lu.assertEquals(#v._hist[a].t, 1, "old samples are dropped")
  lu.assertNil(v:rate(a))
end

function TestVictims:test_fastest_without_rates_and_ties()
  local v, clk = chooser{ strategy = "fastest" }
  local a, b, c = proc("a", 10 * MiB), proc("b", 30 * MiB), proc("c", 5 * MiB)
  -- nobody measured: the largest, and why says so
  local victim, why = v:pick({ a, b, c })
  lu.assertIs(victim, b)
  lu.assertStrContains(why, "no growth measured yet")
  -- c has a rate (even a small one): it ranks before those without
  v:observe(c, 4 * MiB)
  clk.t = 1000
  v:observe(c, 5 * MiB)
  lu.assertIs(v:pick({ a, b, c }), c)
  -- a and c grow alike: the larger of them
  clk.t = 0 v:observe(a, 9 * MiB)
  clk.t = 1000 v:observe(a, 10 * MiB)
  lu.assertIs(v:pick({ c, a, b }), a)
  -- a shrinking child ranks below a steady one
  local s = proc("s", 50 * MiB)
  clk.t = 0 v:observe(s, 60 * MiB)
  clk.t = 1000 v:observe(s, 50 * MiB)
  local st = proc("t", 1 * MiB)
  clk.t = 0 v:observe(st, MiB)
  clk.t = 1000 v:observe(st, MiB)
  local victim2, why2 = v:pick({ s, st })
  lu.assertIs(victim2, st)
  lu.assertStrContains(why2, "grows 0 B/s")
end

function TestVictims:test_a_restart_starts_a_new_history()
  local v, clk = chooser{ strategy = "fastest" }
  local a = proc("a", 0)
  v:observe(a, 0)
  clk.t = 1000
  v:observe(a, 100 * MiB)
  lu.assertAlmostEquals(v:rate(a), 100 * MiB, 1)
  a.pid = a.pid + 50 -- restarted
  lu.assertNil(v:rate(a))
  clk.t = 2000
  v:observe(a, 0)
  lu.assertNil(v:rate(a))
  clk.t = 3000
  v:observe(a, MiB)
  lu.assertAlmostEquals(v:rate(a), MiB, 1)
end

-- ------------------------------------------------------------ priority

function TestVictims:test_priority_lowest_first_ties_by_size()
  local prio = { llm = 10, embed = 5, cache = 1, tmp = 1 }
  local v = chooser{ strategy = "priority",
                     priority = function(p) return prio[p.name] end }
  local llm, embed = proc("llm", 900 * MiB), proc("embed", 100 * MiB)
  local cache, tmp = proc("cache", 20 * MiB), proc("tmp", 40 * MiB)
  local victim, why = v:pick({ llm, embed, cache, tmp })
  lu.assertIs(victim, tmp) -- cache and tmp tie at 1: the larger
  lu.assertStrContains(why, "priority: 'tmp' has the lowest priority 1 (40.00 MiB)")
  lu.assertIs(v:pick({ llm, embed }), embed)
  -- equal priority and size: the first in the list
  local t2 = proc("tmp2", 40 * MiB)
  prio.tmp2 = 1
  lu.assertIs(v:pick({ t2, tmp }), t2)
  lu.assertIs(v:pick({ tmp, t2 }), tmp)
end

function TestVictims:test_priority_by_name_and_missing_names()
  local v = chooser{ strategy = "priority", priority = { llm = 10, embed = -1 } }
  local llm, embed, other = proc("llm", 1), proc("embed", 1), proc("other", 99)
  lu.assertIs(v:pick({ llm, embed, other }), embed)
  lu.assertIs(v:pick({ llm, other }), other) -- missing = 0
  local w = chooser{ strategy = "priority", priority = function() return nil end }
  lu.assertIs(w:pick({ llm, other }), other) -- all 0: the largest
end

-- ------------------------------------------------------------ settle time

function TestVictims:test_no_second_victim_within_settle_ms()
  local v, clk = chooser{ settle_ms = 2000 }
  local a, b, c = proc("a", 100 * MiB), proc("b", 80 * MiB), proc("c", 60 * MiB)
  local procs = { a, b, c }
  lu.assertIs(v:pick(procs), a)
  v:acted(a)
  lu.assertEquals(v:settling(), 2000)
  -- a is still there (its TERM grace), memory steady: nothing more
  for _, t in ipairs({ 0, 1, 500, 1999 }) do
    clk.t = t
    local victim, why = v:pick(procs)
    lu.assertNil(victim, "a second victim at " .. t .. " ms")
    lu.assertStrContains(why, "settling: ")
    lu.assertStrContains(why, " ms left")
  end
  lu.assertEquals(v:settling(), 1)
  -- after settle_ms: one again — a itself, still running (it ignored its
  -- stop) and still the largest
  clk.t = 2000
  lu.assertNil(v:settling())
  local victim, why = v:pick(procs)
  lu.assertIs(victim, a)
  lu.assertStrContains(why, "largest")
  -- once a is gone, the next largest
  a.running = false
  lu.assertIs(v:pick(procs), b)
end

function TestVictims:test_memory_rising_past_the_second_line_breaks_the_settle()
  local v, clk = chooser{ settle_ms = 5000, rise = 0.1 }
  local a, b, c = proc("a", 100 * MiB), proc("b", 50 * MiB), proc("c", 50 * MiB)
  local procs = { a, b, c }
  v:acted((v:pick(procs)))            -- a; level of the others: 100 MiB
  clk.t = 1000
  b.used = 55 * MiB                   -- 105 MiB: below the line (110 MiB)
  lu.assertNil((v:pick(procs)))
  b.used = 60 * MiB                   -- 110 MiB: on the line, not past it
  lu.assertNil((v:pick(procs)))
  b.used = 61 * MiB                   -- 111 MiB: past it
  local victim, why = v:pick(procs)
  lu.assertIs(victim, b)              -- not a: it is being acted on
  lu.assertStrContains(why, "kept rising")
  lu.assertStrContains(why, "second line 110.00 MiB")
  -- acting on b starts a new settle with a new line over c alone
  v:acted(b)
  clk.t = 1500
  lu.assertNil((v:pick(procs)))
  c.used = 56 * MiB
  lu.assertIs(v:pick(procs), c)
end

function TestVictims:test_rise_false_always_settles()
  local v, clk = chooser{ settle_ms = 1000, rise = false }
  local a, b = proc("a", 100 * MiB), proc("b", 50 * MiB)
  v:acted((v:pick({ a, b })))
  b.used = 10000 * MiB
  clk.t = 999
  local victim, why = v:pick({ a, b })
  lu.assertNil(victim)
  lu.assertStrContains(why, "second line none")
  clk.t = 1000
  lu.assertIs(v:pick({ a, b }), b)
end

function TestVictims:test_settle_ms_zero_and_level_option()
  local v = chooser{ settle_ms = 0 }
  local a, b = proc("a", 2), proc("b", 1)
  v:acted((v:pick({ a, b })))
  lu.assertNil(v:settling())
  lu.assertIs(v:pick({ a, b }), a)
  -- level: a system-wide figure instead of the children's sum
  local sys = 1000
  local w, clk = chooser{ settle_ms = 1000, level = function(cands)
    lu.assertIsTable(cands)
    return sys
  end }
  w:acted(w:pick({ a, b }), { a, b })
  clk.t = 10
  sys = 1100
  lu.assertNil((w:pick({ a, b })))
  sys = 1101
  lu.assertIs(w:pick({ a, b }), b)
end

-- ------------------------------------------------------------ not running

function TestVictims:test_dead_and_stopped_children_are_skipped()
  local v = chooser()
  local dead = proc("dead", 900 * MiB, { running = false })
  local nopid = { name = "nopid", memory = function() return { used = 800 * MiB } end }
  local gone = proc("gone", nil)       -- running, but memory() fails: gone
  local live = proc("live", 1 * MiB)
  local victim, why = v:pick({ dead, nopid, gone, live })
  lu.assertIs(victim, live)
  lu.assertStrContains(why, "of 1 candidate")
  local none, why2 = v:pick({ dead, nopid, gone })
  lu.assertNil(none)
  lu.assertStrContains(why2, "no running candidate (3 processes given)")
  lu.assertNil((v:pick({})))
  -- a table with a pid and no running field counts as running
  local bare = { name = "bare", pid = 7 }
  lu.assertIs(v:pick({ bare }), bare)
  -- observe of a gone child records nothing
  v:observe(gone)
  lu.assertNil(v._hist[gone])
end

-- ------------------------------------------------------------ bad arguments

function TestVictims:test_bad_options_raise_saying_what_is_accepted()
  local cases = {
    { "x", "table of options expected" },
    { { strategy = "random" }, '"largest", "fastest" or "priority", got "random"' },
    { { strategy = 1 }, '"largest", "fastest" or "priority", got 1' },
    { { strategy = "priority" }, "needs priority" },
    { { settle = 10 }, "unknown option 'settle' (accepted: strategy, priority, settle_ms" },
    { { settle_ms = -1 }, "settle_ms must be a number of milliseconds >= 0, got -1" },
    { { settle_ms = "2s" }, "settle_ms must be a number of milliseconds" },
    { { settle_ms = 0 / 0 }, "settle_ms must be a number" },
    { { window_ms = 0 }, "window_ms must be a number of milliseconds >= 1" },
    { { rise = -0.5 }, "rise must be a fraction >= 0" },
    { { rise = "10%" }, "or false" },
    { { priority = 3 }, "priority must be a function(p) returning a number or a table" },
    { { priority = { a = "high" } }, "priority['a'] must be a number, got high" },
    { { clock = 5 }, "clock must be a function, got number" },
    { { usage = true }, "usage must be a function" },
    { { level = {} }, "level must be a function" },
  }
  for i, c in ipairs(cases) do
    local ok, err = pcall(V.new, c[1])
    lu.assertFalse(ok, "case " .. i .. " was accepted")
    lu.assertStrContains(err, "bad argument #1 to 'mg.victims.new'")
    lu.assertStrContains(err, c[2])
  end
  -- the error points at the caller
  local ok, err = pcall(function() V.new{ settle_ms = -1 } end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "test_victims.lua:")
  lu.assertNotNil(V.new()) -- no options: all defaults
end

function TestVictims:test_bad_method_arguments_raise()
  local v = chooser()
  local a = proc("a", 1)
  lu.assertErrorMsgContains("bad argument #2 to 'pick' (a list of processes expected, got string)",
                            v.pick, v, "a")
  lu.assertErrorMsgContains("item 2 is a number", v.pick, v, { a, 5 })
  lu.assertErrorMsgContains("bad argument #1 to 'pick' (mg.victims chooser expected, got table)",
                            v.pick, {}, { a })
  lu.assertErrorMsgContains("mg.victims chooser expected, got nil", v.acted)
  lu.assertErrorMsgContains("bad argument #2 to 'acted' (the process acted on expected, got nil)",
                            v.acted, v)
  lu.assertErrorMsgContains("bad argument #2 to 'observe'", v.observe, v, 5)
  lu.assertErrorMsgContains("bad argument #3 to 'observe' (sample must be a number of bytes, a table",
                            v.observe, v, a, "1M")
  lu.assertErrorMsgContains("'used' (a sample event) or 'usage' (a threshold event)",
                            v.observe, v, a, { rss = 1 })
  lu.assertErrorMsgContains("usage must be a number of bytes >= 0, got -1",
                            v.observe, v, a, -1)
  lu.assertErrorMsgContains("bad argument #2 to 'rate'", v.rate, v, nil)
  lu.assertErrorMsgContains("mg.victims chooser expected", v.settling, 1)
  -- a threshold event's table is a sample too
  v:observe(a, { level = 80, usage = 81, fraction = 0.8, rising = true })
  lu.assertEquals(v._hist[a].u[1], 81)
end

function TestVictims:test_bad_callback_results_raise_at_pick()
  local v = chooser{ strategy = "priority", priority = function() return "low" end }
  lu.assertErrorMsgContains("priority of 'a' must be a number (or nil for 0), got low",
                            v.pick, v, { proc("a", 1) })
  local w = V.new{ clock = function() return "now" end }
  lu.assertErrorMsgContains("clock must return milliseconds", w.pick, w, { proc("a", 1) })
  local u = chooser{ usage = function() return "big" end }
  lu.assertErrorMsgContains("usage of 'a' must be a number of bytes or nil",
                            u.pick, u, { proc("a", 1) })
  local l = chooser{ level = function() return nil end }
  local a = proc("a", 1)
  lu.assertErrorMsgContains("level must return a number", l.acted, l, a, { a })
end

function TestVictims:test_tostring_and_default_clock()
  local v = V.new{ strategy = "fastest", settle_ms = 1500 }
  lu.assertEquals(tostring(v), "mg.victims(fastest, settle 1500 ms)")
  local a = proc("a", 1)
  v:acted(a, {})
  local left = v:settling()
  lu.assertTrue(left > 0 and left <= 1500, tostring(left)) -- mg.now()
end

-- ------------------------------------------------------------ real children

function TestVictims:test_real_children_of_mg_spawn()
  local status, out = h.run([[
    local V = require("mg.victims")
    local hog = mg.bindir .. "/mg-hog"
    local small = assert(mg.spawn{ name = "small", limit = "64M", stdout = "null",
      sample_ms = 100, cmd = { hog, "--quiet", "--rate", "64M", "--max", "4M" } })
    local big = assert(mg.spawn{ name = "big", limit = "64M", stdout = "null",
      sample_ms = 100, cmd = { hog, "--quiet", "--rate", "64M", "--max", "16M" } })
    local sleeper = assert(mg.spawn{ name = "sleeper", sample_ms = 100,
                                     cmd = { "sleep", "30" } })
    local largest = V.new{ settle_ms = 300 }
    local fastest = V.new{ strategy = "fastest" }
    local lowest = V.new{ strategy = "priority", priority = { big = 5, small = 5 } }
    for _, p in ipairs(mg.processes()) do
      p:on("sample", function(q, s) fastest:observe(q, s) end)
    end
    mg.after(800, function()
      local v, why = largest:pick()
      print("largest", v.name, why)
      print("fastest", (fastest:pick()).name)
      print("priority", (lowest:pick()).name) -- sleeper has 0
      largest:acted(v)
      print("settling", largest:pick())
      v:stop(0)
    end)
    mg.after(1500, function()
      local v, why = largest:pick()
      print("after", v.name, big.running)
      print("list", #mg.processes())
      mg.exit(0)
    end)
  ]], { "--log-level", "error" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "largest\tbig\tlargest: 'big' uses ")
  lu.assertStrContains(out, "of 3 candidates")
  lu.assertStrContains(out, "priority\tsleeper")
  lu.assertStrContains(out, "settling\tnil\tsettling: ")
  lu.assertStrContains(out, "after\tsmall\tfalse")
  lu.assertStrContains(out, "list\t2")
  local f = out:match("fastest\t(%a+)")
  lu.assertTrue(f == "big" or f == "small", out) -- both grew; sleep did not
end

os.exit(lu.LuaUnit.run(table.unpack(arg)))
