-- Timers, signals, mg.exit and the callback budgets, each in a fresh mgrun.
local lu = require("luaunit")
local h = require("helper")

TestLoop = {}

function TestLoop:test_every_and_after_fire_and_stop()
  -- ordered by events, not by a race between two clocks: the third tick
  -- stops its timer and starts the one-shot, which then sees that no
  -- tick came after the stop
  local status, out = h.run([[
    local n = 0
    mg.every(5, function(t)
      n = n + 1
      print("tick", n)
      if n == 3 then
        t:stop()
        mg.after(30, function() print("after", n) end)
      end
    end)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertEquals(h.count(out, "tick"), 3)
  lu.assertStrContains(out, "after\t3")
end

function TestLoop:test_stop_twice_and_from_outside()
  local status, out = h.run([[
    local t = mg.every(1000, function() print("never") end)
    assert(t:active())
    t:stop(); t:stop()
    assert(not t:active())
    print(tostring(t))
    local a = mg.after(10, function() print("never either") end)
    mg.after(0, function() a:stop() print("stopped") end)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "mg.timer (stopped)")
  lu.assertStrContains(out, "stopped")
  lu.assertNotStrContains(out, "never")
end

function TestLoop:test_error_in_timer_is_logged_and_loop_goes_on()
  local status, out = h.run([[
    mg.after(1, function() error("boom in timer") end)
    mg.after(20, function() print("later timer fired") end)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "callback_failed")
  lu.assertStrContains(out, "boom in timer")
  lu.assertStrContains(out, "stack traceback") -- traceback is logged
  lu.assertStrContains(out, "later timer fired")
end

function TestLoop:test_infinite_loop_is_stopped_by_time_budget()
  local status, out = h.run([[
    mg.after(1, function() while true do end end)
    mg.after(5, function() print("later timer fired") end)
  ]], { "--cb-timeout", "100", "--cb-instructions", "0" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "time budget of 100 ms")
  lu.assertStrContains(out, "later timer fired")
end

function TestLoop:test_infinite_loop_is_stopped_by_instruction_budget()
  local status, out = h.run([[
    mg.after(1, function() local i = 0 while true do i = i + 1 end end)
    mg.after(5, function() print("later timer fired") end)
  ]], { "--cb-timeout", "0", "--cb-instructions", "1000000" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "instruction budget of 1000000")
  lu.assertStrContains(out, "later timer fired")
end

function TestLoop:test_pcall_cannot_swallow_the_budget()
  local status, out = h.run([[
    mg.after(1, function()
      while true do pcall(function() while true do end end) end
    end)
    mg.after(5, function() print("later timer fired") end)
  ]], { "--cb-timeout", "100" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "time budget")
  lu.assertStrContains(out, "later timer fired")
end

function TestLoop:test_unbounded_allocation_hits_the_memory_cap()
  local status, out = h.run([[
    mg.after(1, function()
      local t = {}
      while true do t[#t + 1] = string.rep("x", 65536) .. #t end
    end)
    mg.after(5, function()
      local s = string.rep("y", 1024 * 1024) -- still usable after
      print("later timer fired", #s)
    end)
  ]], { "--lua-mem", "16M", "--cb-timeout", "5000" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "memory cap of 16.00 MiB")
  lu.assertStrContains(out, "later timer fired\t1048576")
end

function TestLoop:test_mg_exit_code_and_no_return()
  local status, out = h.run([[
    mg.every(1, function() end)
    mg.after(5, function() mg.exit(7) print("not reached") end)
  ]])
  lu.assertEquals(status, 7, out)
  lu.assertNotStrContains(out, "not reached")
  status = h.run("mg.exit(true)")
  lu.assertEquals(status, 0)
  status = h.run("mg.exit(false)")
  lu.assertEquals(status, 1)
  status = h.run("os.exit(3)") -- os.exit means a graceful mg.exit
  lu.assertEquals(status, 3)
  status, out = h.run("mg.exit(300)")
  lu.assertEquals(status, 2)
  lu.assertStrContains(out, "0..255")
end

function TestLoop:test_exit_inside_pcall_still_exits()
  local status = h.run([[
    mg.every(1, function() end)
    mg.after(1, function() pcall(mg.exit, 4) end)
  ]])
  lu.assertEquals(status, 4)
end

function TestLoop:test_policy_signal_handler()
  local status, out = h.run([[
    local got = 0
    local s = mg.on_signal("USR1", function(name, handle)
      got = got + 1
      print("signal", name, got)
      if got == 2 then handle:stop() end
    end)
    mg.after(1, function() io.popen("kill -USR1 " .. mg.pid):close() end)
    mg.after(60, function() io.popen("kill -USR1 " .. mg.pid):close() end)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "signal\tUSR1\t2")
end

function TestLoop:test_sigterm_default_is_graceful_128_plus_n()
  local status, out = h.run([[
    mg.every(10, function() end)
    mg.after(20, function() io.popen("kill -TERM " .. mg.pid):close() end)
  ]])
  lu.assertEquals(status, 143, out)
  lu.assertStrContains(out, "shutdown_signal")
end

function TestLoop:test_policy_can_take_over_sigint()
  local status, out = h.run([[
    mg.every(10, function() end)
    mg.on_signal("INT", function() print("policy saw INT") mg.exit(9) end)
    mg.after(20, function() io.popen("kill -INT " .. mg.pid):close() end)
  ]])
  lu.assertEquals(status, 9, out)
  lu.assertStrContains(out, "policy saw INT")
end

function TestLoop:test_sigint_interrupts_an_endless_top_level()
  local path = h.policy("while true do end")
  local status, out = h.sh(("%s %s & pid=$!; sleep 0.3; kill -INT $pid; wait $pid")
                           :format(h.q(h.mgrun), h.q(path)))
  os.remove(path)
  lu.assertEquals(status, 130, out)
end

function TestLoop:test_now_is_monotonic_ms()
  local a = mg.now()
  local status, out = h.run([[
    local t0 = mg.now()
    mg.after(50, function() print(("elapsed %.0f"):format(mg.now() - t0)) end)
  ]])
  lu.assertEquals(status, 0)
  local elapsed = tonumber(out:match("elapsed (%d+)"))
  lu.assertTrue(elapsed >= 49 and elapsed < 30000, out) -- never early
  lu.assertTrue(mg.now() >= a)
end

function TestLoop:test_misuse_raises_naming_the_argument()
  lu.assertErrorMsgContains("bad argument #2", mg.every, 10, "notafunction")
  lu.assertErrorMsgContains("bad argument #1", mg.every, 0, function() end)
  lu.assertErrorMsgContains("bad argument #1", mg.after, -1, function() end)
  lu.assertErrorMsgContains("unknown signal 'KILL'", mg.on_signal, "KILL",
                            function() end)
  lu.assertErrorMsgContains("bad argument #1", mg.exit, "x")
end

function TestLoop:test_budget_is_whole_again_after_an_overrun()
  -- an overrun left the hook firing on every instruction, each counted as
  -- 1000: later callbacks got a thousandth of their instruction budget
  -- (instructions only: no wall clock, so a loaded machine cannot make
  -- the later callback miss its budget)
  local status, out = h.run([[
    mg.after(1, function() while true do end end)
    mg.after(5, function()
      local x = 0
      for i = 1, 1000000 do x = x + i end
      print("later callback finished", x)
    end)
  ]], { "--cb-timeout", "0", "--cb-instructions", "20000000" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "instruction budget of 20000000")
  lu.assertStrContains(out, "later callback finished")
end

function TestLoop:test_error_tostring_runs_under_the_memory_cap()
  local status, out = h.run([[
    mg.after(1, function()
      error(setmetatable({}, { __tostring = function()
        local s = ("x"):rep(256 * 1024 * 1024) return "len " .. #s end }))
    end)
    mg.after(5, function() print("hwm MiB", mg.process().hwm // 1048576) end)
  ]], { "--lua-mem", "16M" })
  lu.assertEquals(status, 0, out)
  lu.assertNotStrContains(out, "len 268435456")
  lu.assertTrue(tonumber(out:match("hwm MiB\t(%d+)")) < 200, out)
end

function TestLoop:test_sigint_interrupts_a_top_level_that_pcalls()
  local path = h.policy("while true do pcall(function() while true do end end) end")
  local status, out = h.sh(("%s %s & pid=$!; sleep 0.3; kill -INT $pid; wait $pid")
                           :format(h.q(h.mgrun), h.q(path)))
  os.remove(path)
  lu.assertEquals(status, 130, out)
end

os.exit(lu.LuaUnit.run(table.unpack(arg)))
