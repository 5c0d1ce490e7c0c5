-- The context store through mg.so: add, prune, strategies as callbacks
-- under the same budgets as in mgrun (instructions, wall clock, memory
-- cap), the shipped strategies, on_evict.
local lu = require("luaunit")
local h = require("helper54")
local mg = require("mg")

TestStore = {}

local defaults = mg.configure()

function TestStore:tearDown()
  mg.configure { cb_timeout_ms = defaults.cb_timeout_ms,
                 cb_instructions = defaults.cb_instructions,
                 lua_mem = defaults.lua_mem }
end

local function fill(ctx, n)
  for i = 1, n do
    assert(ctx:add { role = "user", content = "message " .. i })
  end
end

function TestStore:test_add_get_prune_stats()
  local ctx = assert(mg.store { name = "basic", max_messages = 10 })
  local id = assert(ctx:add { role = "system", content = "be brief", pinned = true })
  fill(ctx, 6)
  lu.assertEquals(ctx:len(), 7)
  lu.assertEquals(ctx:get(id).content, "be brief")
  lu.assertEquals(ctx:prune(2), 4) -- the pinned one stays
  lu.assertEquals(ctx:len(), 3)
  local st = ctx:stats()
  lu.assertEquals(st.message_count, 3)
  lu.assertEquals(st.max_messages, 10)
  local ok, err = pcall(ctx.prune, ctx, -1)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "keep_count")
end

function TestStore:test_a_full_store_refuses_with_the_limit()
  local ctx = assert(mg.store { name = "full", max_messages = 2 })
  fill(ctx, 2)
  local id, err, code = ctx:add { role = "user", content = "third" }
  lu.assertNil(id)
  lu.assertEquals(code, "message_count")
  lu.assertEquals(err.limit_type, "message_count")
  lu.assertStrContains(tostring(err), "Message count 2 exceeds limit of 2")
end

function TestStore:test_a_strategy_callback_makes_room()
  local calls = 0
  local ctx = assert(mg.store { name = "cb", max_messages = 3, on_full = "prune",
    strategy = function(view, need)
      calls = calls + 1
      return { view:at(1).id }
    end })
  fill(ctx, 3)
  assert(ctx:add { role = "user", content = "fourth" })
  lu.assertEquals(calls, 1)
  lu.assertEquals(ctx:len(), 3)
end

function TestStore:test_an_endless_strategy_is_stopped_and_the_caller_goes_on()
  mg.configure { cb_instructions = 2000000, cb_timeout_ms = 0 }
  local ctx = assert(mg.store { name = "loop", max_messages = 2, on_full = "prune",
    strategy = function() while true do end end })
  fill(ctx, 2)
  local before = ctx:len()
  local t0 = mg.now()
  local id, err, code = ctx:add { role = "user", content = "x" }
  lu.assertNil(id)
  lu.assertEquals(code, "message_count")
  lu.assertStrContains(tostring(err),
    "exceeded its instruction budget of 2000000 (mg.configure cb_instructions)")
  lu.assertTrue(mg.now() - t0 < 5000)
  lu.assertEquals(ctx:len(), before) -- unchanged
  -- the caller goes on: the store still works
  lu.assertEquals(ctx:prune(1), 1)
  assert(ctx:add { role = "user", content = "after" })
end

function TestStore:test_the_wall_clock_budget_stops_a_strategy()
  mg.configure { cb_instructions = 0, cb_timeout_ms = 50 }
  local ctx = assert(mg.store { name = "slow", max_messages = 1, on_full = "prune",
    strategy = function() local x = 0 while true do x = x + 1 end end })
  fill(ctx, 1)
  local t0 = mg.now()
  local id, err = ctx:add { role = "user", content = "x" }
  local took = mg.now() - t0
  lu.assertNil(id)
  lu.assertStrContains(tostring(err),
    "exceeded its time budget of 50 ms (mg.configure cb_timeout_ms)")
  lu.assertTrue(took >= 45 and took < 2000, took)
end

function TestStore:test_a_pcall_inside_the_strategy_cannot_swallow_the_budget()
  mg.configure { cb_instructions = 1000000, cb_timeout_ms = 0 }
  local ctx = assert(mg.store { name = "swallow", max_messages = 1,
    on_full = "prune", strategy = function()
      while true do pcall(function() while true do end end) end
    end })
  fill(ctx, 1)
  local id, err = ctx:add { role = "user", content = "x" }
  lu.assertNil(id)
  lu.assertStrContains(tostring(err), "instruction budget")
end

function TestStore:test_the_memory_cap_stops_a_strategy()
  -- only the cap can stop it: no time or instruction budget to race it
  mg.configure { lua_mem = "16M", cb_timeout_ms = 0, cb_instructions = 0 }
  local ctx = assert(mg.store { name = "hungry", max_messages = 1,
    on_full = "prune", strategy = function()
      local t = {}
      for i = 1, 1e8 do t[i] = ("y"):rep(64) .. i end
    end })
  fill(ctx, 1)
  local id, err = ctx:add { role = "user", content = "x" }
  lu.assertNil(id)
  lu.assertStrContains(tostring(err),
    "memory cap of 16.00 MiB (mg.configure lua_mem)")
  collectgarbage()
  -- the program itself (not a callback) is not capped
  mg.configure { lua_mem = "16M" }
  local big = ("z"):rep(24 * 1024 * 1024)
  lu.assertEquals(#big, 24 * 1024 * 1024)
end

function TestStore:test_the_shipped_strategies_by_name()
  local ctx = assert(mg.store { name = "named", max_messages = 4,
                                on_full = "prune",
                                strategy = "lowest_priority_first" })
  fill(ctx, 4)
  assert(ctx:add { role = "user", content = "fifth" })
  lu.assertTrue(ctx:len() <= 4)
  local S = require("mg.strategies")
  lu.assertEquals(type(S.keep_last), "function")
  local ok, err = pcall(mg.store, { name = "bad", strategy = "no_such" })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "unknown strategy 'no_such'")
end

-- The shipped library's summarize-and-replace: it reads the module's
-- constants itself (require "mg", not a global, in mg.so).
function TestStore:test_summarize_from_the_shipped_library()
  local S = require("mg.strategies")
  local ctx = assert(mg.store { name = "summ", max_messages = 4,
    on_full = "prune", strategy = S.summarize(function(msgs)
      return "summary of " .. #msgs
    end) })
  for i = 1, 4 do
    assert(ctx:add { role = "user", content = "m" .. i .. ("words "):rep(20) })
  end
  assert(ctx:add { role = "user", content = "m5" })
  local first = ctx:messages()()
  lu.assertEquals(first.source, "summary")
  lu.assertStrContains(first.content, "summary of ")
  lu.assertTrue(ctx:check())
end

function TestStore:test_on_evict_sees_what_goes()
  local gone = {}
  local ctx = assert(mg.store { name = "evict", max_messages = 2,
    on_full = "prune", on_evict = function(store, msgs)
      for _, m in ipairs(msgs) do gone[#gone + 1] = m.content end
    end })
  fill(ctx, 3)
  lu.assertEquals(gone, { "message 1" })
end

function TestStore:test_snapshot_round_trip()
  local ctx = assert(mg.store { name = "snap" })
  fill(ctx, 3)
  local path = h.tmp("snap.json")
  assert(ctx:save(path))
  local back = assert(mg.load_store(path))
  os.remove(path)
  lu.assertEquals(back:len(), 3)
  local _, err = mg.load_store(path)
  lu.assertEquals(type(err), "string")
end

os.exit(lu.LuaUnit.run(table.unpack(arg)), true)
