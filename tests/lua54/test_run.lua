-- mg.run([mode]) and the callbacks it runs: timers in the three modes,
-- what it returns, re-entry refused, failing callbacks logged while the
-- loop goes on, signal handlers, budgets of timer callbacks.
local lu = require("luaunit")
local h = require("helper54")
local mg = require("mg")

TestRun = {}

local defaults = mg.configure()

function TestRun:tearDown()
  mg.configure { cb_timeout_ms = defaults.cb_timeout_ms,
                 cb_instructions = defaults.cb_instructions,
                 lua_mem = defaults.lua_mem, log_level = defaults.log_level }
  -- nothing of a test is left for the next one
  lu.assertFalse(mg.run("nowait"))
end

function TestRun:test_nothing_to_do_returns_false_at_once()
  local t0 = mg.now()
  lu.assertFalse(mg.run())
  lu.assertFalse(mg.run("default"))
  lu.assertFalse(mg.run("once"))
  lu.assertFalse(mg.run("nowait"))
  lu.assertTrue(mg.now() - t0 < 100)
end

function TestRun:test_default_runs_until_nothing_is_left()
  local ticks, once = 0, 0
  mg.every(5, function(t)
    ticks = ticks + 1
    if ticks == 4 then t:stop() end
  end)
  mg.after(12, function() once = once + 1 end)
  lu.assertFalse(mg.run())
  lu.assertEquals(ticks, 4)
  lu.assertEquals(once, 1)
end

function TestRun:test_nowait_does_not_wait()
  local fired = false
  local t = mg.after(200, function() fired = true end)
  local t0 = mg.now()
  lu.assertTrue(mg.run("nowait")) -- the timer is still active
  lu.assertTrue(mg.now() - t0 < 100)
  lu.assertFalse(fired)
  t:stop()
  lu.assertFalse(mg.run("nowait"))
  lu.assertFalse(fired)
end

function TestRun:test_once_waits_for_one_event()
  local n = 0
  mg.every(20, function(t)
    n = n + 1
    if n == 2 then t:stop() end
  end)
  local t0 = mg.now()
  lu.assertTrue(mg.run("once")) -- one tick; the timer goes on
  lu.assertEquals(n, 1)
  lu.assertTrue(mg.now() - t0 >= 15)
  mg.run("once") -- the second tick stops it; as with uv_run, the
  lu.assertEquals(n, 2) -- close of the stopped timer may still be pending
  lu.assertFalse(mg.run("nowait")) -- now it is done
end

function TestRun:test_a_program_can_drive_the_loop_itself()
  local n = 0
  mg.every(2, function(t)
    n = n + 1
    if n == 5 then t:stop() end
  end)
  local rounds = 0
  while mg.run("once") do rounds = rounds + 1 end
  lu.assertEquals(n, 5)
  lu.assertTrue(rounds == 4 or rounds == 5, rounds) -- 5: the pending close
end

function TestRun:test_bad_modes_are_refused()
  local ok, err = pcall(mg.run, "forever")
  lu.assertFalse(ok)
  lu.assertStrContains(err,
    "unknown mode 'forever'; accepted: \"default\", \"once\", \"nowait\"")
  ok, err = pcall(mg.run, 1)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "mode must be \"default\", \"once\" or \"nowait\", got number")
  ok, err = pcall(mg.run, "ONCE")
  lu.assertFalse(ok)
  lu.assertStrContains(err, "unknown mode 'ONCE'")
end

function TestRun:test_mg_run_inside_a_callback_is_refused()
  local got = {}
  mg.after(1, function()
    for _, mode in ipairs { "default", "once", "nowait" } do
      local ok, err = pcall(mg.run, mode)
      got[#got + 1] = tostring(ok) .. ":" .. tostring(err)
    end
  end)
  lu.assertFalse(mg.run())
  lu.assertEquals(#got, 3)
  for _, g in ipairs(got) do
    lu.assertStrContains(g, "false:")
    lu.assertStrContains(g, "mg.run cannot be called from inside a callback")
  end
  -- also from a store's strategy, outside the loop
  local ctx = assert(mg.store { name = "reenter", max_messages = 1,
    on_full = "prune", strategy = function() mg.run("nowait") end })
  assert(ctx:add { role = "user", content = "a" })
  local id, err = ctx:add { role = "user", content = "b" }
  lu.assertNil(id)
  lu.assertStrContains(tostring(err), "mg.run cannot be called from inside a callback")
end

function TestRun:test_a_failing_or_endless_callback_is_stopped_and_the_loop_goes_on()
  mg.configure { cb_instructions = 1000000, log_level = "error" }
  local later = false
  mg.after(1, function() error("boom in a timer") end)
  mg.after(2, function() while true do end end)
  mg.after(30, function() later = true end)
  lu.assertFalse(mg.run())
  lu.assertTrue(later)
end

function TestRun:test_callback_failures_are_logged_with_the_budget_named()
  local status, out = h.run([[
    local mg = require "mg"
    mg.configure { cb_instructions = 100000, cb_timeout_ms = 0 }
    mg.after(1, function() while true do end end)
    mg.after(2, function() error("second one fails") end)
    mg.after(3, function() print("third one runs") end)
    print("run", mg.run())
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, 'callback_failed callback="timer (mg.after)" ' ..
    'error="timer (mg.after) exceeded its instruction budget of 100000 ' ..
    '(mg.configure cb_instructions)')
  lu.assertStrContains(out, "second one fails")
  lu.assertStrContains(out, "third one runs")
  lu.assertStrContains(out, "run\tfalse")
end

function TestRun:test_signal_handlers_run_in_the_loop()
  local got
  local hd = mg.on_signal("USR1", function(name, handle)
    got = name
    handle:stop()
  end)
  mg.after(1, function() os.execute("kill -USR1 " .. mg.pid) end)
  lu.assertFalse(mg.run())
  lu.assertEquals(got, "USR1")
  lu.assertFalse(hd:active())
end

function TestRun:test_timers_survive_between_runs()
  local n = 0
  local t = mg.every(1, function() n = n + 1 end)
  lu.assertTrue(mg.run("once"))
  local between = n
  lu.assertTrue(between >= 1)
  lu.assertTrue(mg.run("once"))
  lu.assertTrue(n > between)
  t:stop()
end

os.exit(lu.LuaUnit.run(table.unpack(arg)), true)
