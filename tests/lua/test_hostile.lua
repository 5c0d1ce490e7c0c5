-- What a hostile policy tried, found in review: strings borrowed from a Lua
-- table freed by Lua code that ran before C copied them, handles made by
-- finalizers after the state closed, a loop of failing nested calls that
-- never let its caller's budget be checked, the memory cap lifted for
-- to-be-closed variables, new timers during the shutdown. Each case runs
-- in a fresh mgrun (the suite also runs under ASan, which sees a
-- use-after-free that a plain build might survive).
local lu = require("luaunit")
local h = require("helper")

TestHostile = {}

-- ctx:add with an estimator that drops the message's strings and collects.
function TestHostile:test_estimator_cannot_free_the_message_being_added()
  local status, out = h.run([[
    local msg = { role = "user", source = "src", group = "g",
                  content = ("x"):rep(100), meta = { k = ("v"):rep(50) } }
    local s = mg.store { name = "e", estimator = function()
      msg.content, msg.role, msg.source, msg.group = nil, nil, nil, nil
      msg.meta.k = nil
      collectgarbage() collectgarbage()
      for i = 1, 200 do _G["j" .. i] = ("y"):rep(100) end
      return 1
    end }
    local id = assert(s:add(msg))
    local m = s:get(id)
    print("content", m.content == ("x"):rep(100), m.role, m.source, m.group,
          m.meta.k == ("v"):rep(50))
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "content\ttrue\tuser\tsrc\tg\ttrue")
end

-- A strategy's replacement whose strings the estimator drops.
function TestHostile:test_estimator_cannot_free_a_replacement()
  local status, out = h.run([[
    local keep
    local s = mg.store { name = "r", max_messages = 2, on_full = "prune",
      strategy = function(view)
        keep = { role = "summary", content = ("s"):rep(80) }
        return { view:at(1).id, view:at(2).id }, keep
      end,
      estimator = function(c)
        if keep then keep.content, keep.role = nil, nil collectgarbage() end
        for i = 1, 100 do _G["k" .. i] = ("z"):rep(80) end
        return 1
      end }
    s:add { role = "u", content = "a" }
    s:add { role = "u", content = "b" }
    assert(s:add { role = "u", content = "c" })
    local first
    for m in s:messages() do first = first or m end
    print("replacement", first.role, first.content == ("s"):rep(80))
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "replacement\tsummary\ttrue")
end

-- A built-in strategy name runs `require`, which the policy may replace:
-- it must not free the archive path already checked by the sandbox.
function TestHostile:test_require_cannot_swap_a_checked_archive_path()
  local dir = h.tmp("allowed", "hst")
  local outside = h.tmp("outside", "hst")
  os.execute(("mkdir -p %s %s"):format(h.q(dir), h.q(outside)))
  local status, out = h.run(([[
    local pad = ("a"):rep(40)
    local function path(d) return d .. "/" .. pad .. ".jsonl" end
    local opts = { archive = path(%q), strategy = "keep_last",
                   max_messages = 1, on_full = "prune" }
    package.loaded["mg.strategies"] = nil
    local keep = {}
    require = function()
      opts.archive = nil collectgarbage() collectgarbage()
      for i = 1, 200 do keep[i] = path(%q) end
      return { builtin = { keep_last = function(v) return { (v:info(1)) } end } }
    end
    local s = assert(mg.store(opts))
    for i = 1, 3 do s:add { content = "secret " .. i } end
    print("done")
  ]]):format(dir, outside), { "--sandbox", "--allow-dir", dir })
  local _, listing = h.sh("ls -A " .. h.q(outside))
  os.execute(("rm -rf %s %s"):format(h.q(dir), h.q(outside)))
  lu.assertEquals(status, 0, out)
  lu.assertEquals(listing, "") -- nothing written outside
end

-- mg.spawn's options are read without metamethods: an __index cannot run
-- (and drop what was read so far).
function TestHostile:test_spawn_options_ignore_index_metamethods()
  local status, out = h.run([[
    local called = false
    local opts = setmetatable({ name = "x", cmd = { "true" } },
      { __index = function(t, k) called = true rawset(t, "name", nil)
                    collectgarbage() return nil end })
    local p = assert(mg.spawn(opts))
    print("index called", called, p.name)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "index called\tfalse\tx")
end

-- A finalizer that makes a timer or a signal handler while the state
-- closes: refused, and mgrun exits.
function TestHostile:test_no_handles_from_finalizers_at_close()
  for _, make in ipairs { "mg.every(10, function() end)",
                          "mg.on_signal('USR1', function() end)" } do
    local status, out = h.run(([[
      _G.keep = setmetatable({}, { __gc = function()
        _G.got = { %s }
      end })
    ]]):format(make))
    lu.assertEquals(status, 0, out)
  end
end

-- New timers while the shutdown runs (a process's exit handler): refused
-- with ECANCELED, and the exit status is the one asked for.
function TestHostile:test_no_new_timer_during_shutdown()
  local status, out = h.run([[
    local p = assert(mg.spawn { name = "s", cmd = { "sleep", "30" }, grace_ms = 500 })
    p:on("exit", function()
      print("timer during shutdown", mg.every(1000, function() print("tick") end))
    end)
    mg.after(50, function() mg.exit(5) end)
  ]])
  lu.assertEquals(status, 5, out)
  lu.assertStrContains(out, "timer during shutdown\tnil\tmgrun is shutting down: no new timer\tECANCELED")
end

-- A callback that loops over nested calls that fail: each nested call is
-- stopped at its own budget, and the chain at 10 times the callback's, so
-- other callbacks run again (no hang).
function TestHostile:test_a_loop_of_failing_nested_calls_is_bounded()
  local status, out = h.run([[
    local s = mg.store { name = "e", estimator = function() while true do end end }
    mg.after(0, function() while true do s:add { content = "x" } end end)
    local n = 0
    mg.every(20, function(t)
      n = n + 1
      if n == 3 then print("other timers ran") t:stop() end
    end)
  ]], { "--cb-timeout", "0", "--cb-instructions", "100000", "--log-level", "error" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "timer (mg.after) and the calls nested in it exceeded 10 times its budget in all (--cb-instructions)")
  lu.assertStrContains(out, "other timers ran")
end

function TestHostile:test_sigint_stops_a_top_level_looping_over_failing_nested_calls()
  local path = h.policy([[
    local s = mg.store { name = "e", estimator = function() while true do end end }
    while true do s:add { content = "x" } end
  ]])
  local status, out = h.sh(("%s --cb-instructions 100000 --log-level error %s & pid=$!; sleep 0.5; kill -INT $pid; wait $pid")
                           :format(h.q(h.mgrun), h.q(path)))
  os.remove(path)
  lu.assertEquals(status, 130, out)
end

-- To-be-closed variables closed while an error unwinds run under the cap.
function TestHostile:test_close_handlers_run_under_the_memory_cap()
  local status, out = h.run([[
    mg.after(0, function()
      local x <close> = setmetatable({}, { __close = function()
        _G.keep = ("x"):rep(512 * 1024 * 1024) end })
      error("boom")
    end)
    mg.after(10, function()
      print("kept", _G.keep and #_G.keep, "hwm MiB < 200", mg.process().hwm < 200 * 2^20)
    end)
  ]], { "--lua-mem", "16M" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "kept\tnil\thwm MiB < 200\ttrue")
end

-- mg.exit caught by a pcall at the top level, then an error: it exits
-- with its code, as in a callback, not as a load error.
function TestHostile:test_exit_then_error_at_top_level()
  local status, out = h.run([[pcall(mg.exit, 4) error("after")]])
  lu.assertEquals(status, 4, out)
end

-- The sandbox refuses finalizers (they run outside every budget).
function TestHostile:test_sandbox_refuses_gc_metamethods()
  local status, out = h.run([[
    print(pcall(setmetatable, {}, { __gc = function() while true do end end }))
    print("index ok", getmetatable(setmetatable({}, { __index = {} })) ~= nil)
  ]], { "--sandbox" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "false\tbad argument #2 to 'setmetatable' (__gc is not allowed in the sandbox")
  lu.assertStrContains(out, "index ok\ttrue")
end

os.exit(lu.LuaUnit.run(table.unpack(arg)))
