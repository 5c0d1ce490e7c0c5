-- mg.so in a stock lua5.4: loading, the module table, probes, limits,
-- logs, mg.configure and its checks, the memory accounting of the
-- wrapped allocator.
local lu = require("luaunit")
local h = require("helper54")
local mg = require("mg")

TestModule = {}

function TestModule:test_require_gives_the_module_and_sets_no_global()
  lu.assertEquals(type(mg), "table")
  lu.assertNil(rawget(_G, "mg"))
  lu.assertIs(package.loaded.mg, mg)
  lu.assertIs(require("mg"), mg)
  -- loaded again after package.loaded was cleared: the same module, not a
  -- second runtime on this state
  package.loaded.mg = nil
  lu.assertIs(require("mg"), mg)
  lu.assertEquals(mg.version, "0.1.0")
  lu.assertEquals(mg.pid, h.pid())
end

function TestModule:test_the_same_api_as_in_mgrun()
  for _, name in ipairs { "size", "format_size", "memory", "pressure",
      "process", "probe", "validate_limit", "validate_total",
      "rlimit_support", "set_limit", "get_limit", "every", "after",
      "on_signal", "now", "exit", "spawn", "processes", "store",
      "load_store", "run", "configure" } do
    lu.assertEquals(type(mg[name]), "function", name)
  end
  for _, name in ipairs { "debug", "info", "warn", "error" } do
    lu.assertEquals(type(mg.log[name]), "function", name)
  end
  lu.assertEquals(math.type(mg.store_msg_overhead), "integer")
end

function TestModule:test_a_fresh_interpreter_loads_it()
  local status, out = h.run([[
    local mg = require "mg"
    print("loaded", mg.version, type(mg.run), _G.mg)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "loaded\t0.1.0\tfunction\tnil")
end

-- Every thread of the state finds the module: a coroutine made before
-- require "mg" (whose extra space was copied before mg.so existed), and a
-- require made inside a coroutine; budgets hold there too.
function TestModule:test_coroutines_made_before_and_loading_inside()
  local status, out = h.run([[
    local early = coroutine.create(function(mg)
      local ctx = assert(mg.store { name = "co", max_messages = 1,
        on_full = "prune", strategy = function() while true do end end })
      assert(ctx:add { role = "user", content = "a" })
      local id, err = ctx:add { role = "user", content = "b" }
      print("early", id, tostring(err):match("instruction budget") ~= nil)
    end)
    local mg
    assert(coroutine.resume(coroutine.create(function()
      mg = require "mg"
    end)))
    mg.configure { cb_instructions = 100000 }
    assert(coroutine.resume(early, mg))
    local fired = 0
    mg.every(1, function(t) fired = fired + 1 if fired == 3 then t:stop() end end)
    print("run", mg.run(), fired)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "early\tnil\ttrue")
  lu.assertStrContains(out, "run\tfalse\t3")
end

-- A finalizer that lua_close runs after mg.so left the state (one of an
-- object made before the module) gets a clear error, not a crash.
function TestModule:test_after_the_module_left_the_state()
  local status, out = h.run([[
    local early = setmetatable({}, { __gc = function()
      local mg = require "mg"
      print("late", pcall(mg.every, 1, function() end))
      print("late", pcall(mg.run))
    end })
    local mg = require "mg"
    print("end")
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "late\tfalse\tthe mg module has left this Lua " ..
                            "state (it is being closed)")
  lu.assertStrContains(out, "mg.run cannot run")
end

-- mgrun's own state has the bindings already: mg.so refuses to attach a
-- second time rather than fight over the allocator and the hook.
function TestModule:test_refused_in_mgruns_own_state()
  local mgrun = os.getenv("MGRUN")
  lu.assertNotNil(mgrun, "MGRUN is not set (run through ctest)")
  local path = h.tmp("policy.lua")
  local f = assert(io.open(path, "w"))
  f:write(([[
    package.loaded.mg = nil
    package.cpath = %q
    local ok, err = pcall(require, "mg")
    print("load", ok, err)
    print("own", mg.version)
  ]]):format((h.so:gsub("mg%.so$", "?.so"))))
  f:close()
  local status, out = h.sh(h.q(mgrun) .. " " .. h.q(path))
  os.remove(path)
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "load\tfalse\tcannot load the mg module: this " ..
                            "Lua state has the mg module already")
  lu.assertStrContains(out, "own\t0.1.0")
end

function TestModule:test_sizes()
  lu.assertEquals(mg.size("1.5G"), 1610612736)
  lu.assertEquals(mg.size("2 GB"), 2147483648)
  lu.assertEquals(mg.format_size(1610612736), "1.50 GiB")
  local ok, err = pcall(mg.size, "12Gx")
  lu.assertFalse(ok)
  lu.assertStrContains(err, "12Gx")
end

function TestModule:test_probes()
  local m = assert(mg.memory())
  lu.assertTrue(m.total > 0 and m.available > 0 and m.effective_total > 0)
  lu.assertEquals(math.type(m.total), "integer")
  local p = assert(mg.process(mg.pid))
  lu.assertEquals(p.pid, mg.pid)
  lu.assertTrue(p.rss > 0)
  local none, err, code = mg.process(2 ^ 22 + 12345)
  lu.assertNil(none)
  lu.assertEquals(type(err), "string")
  lu.assertEquals(type(code), "string")
  local ps, why = mg.pressure()
  lu.assertTrue(type(ps) == "table" or type(why) == "string")
  local pr = mg.probe()
  lu.assertEquals(pr.version, "0.1.0")
  lu.assertTrue(pr.cgroup.version == "v1" or pr.cgroup.version == "v2" or
                pr.cgroup.version == "none")
  lu.assertEquals(type(mg.now()), "number")
end

function TestModule:test_limits()
  local ok, msg = mg.validate_limit(-5)
  lu.assertFalse(ok)
  lu.assertStrContains(msg, "must be positive")
  ok = mg.validate_limit("64M")
  lu.assertTrue(ok)
  local soft = mg.get_limit("data")
  lu.assertTrue(soft == nil or math.type(soft) == "integer")
  local r = mg.rlimit_support()
  lu.assertTrue(r == nil or r == "data" or r == "as")
end

function TestModule:test_configure_defaults_are_mgruns()
  local c = mg.configure()
  lu.assertEquals(c.cb_timeout_ms, 1000)
  lu.assertEquals(c.cb_instructions, 1000000000)
  lu.assertEquals(c.lua_mem, 64 * 1024 * 1024)
  lu.assertEquals(c.log_level, "info")
  lu.assertEquals(c.log_format, "text")
end

function TestModule:test_configure_sets_and_returns()
  local before = mg.configure()
  local c = mg.configure { cb_timeout_ms = 250, cb_instructions = 5000000,
                           lua_mem = "128M", log_level = "warn",
                           log_format = "json" }
  lu.assertEquals(c.cb_timeout_ms, 250)
  lu.assertEquals(c.cb_instructions, 5000000)
  lu.assertEquals(c.lua_mem, 128 * 1024 * 1024)
  lu.assertEquals(c.log_level, "warn")
  lu.assertEquals(c.log_format, "json")
  c = mg.configure { lua_mem = 0, cb_timeout_ms = 0 }
  lu.assertEquals(c.lua_mem, 0)
  lu.assertEquals(c.cb_timeout_ms, 0)
  mg.configure { cb_timeout_ms = before.cb_timeout_ms,
                 cb_instructions = before.cb_instructions,
                 lua_mem = before.lua_mem, log_level = before.log_level,
                 log_format = before.log_format }
  lu.assertEquals(mg.configure().cb_timeout_ms, before.cb_timeout_ms)
end

-- Misuse raises, names what was wrong and what is accepted, and changes
-- nothing (every field is checked before any is applied).
function TestModule:test_configure_refuses_bad_fields()
  local hold = ("h"):rep(3 * 1024 * 1024) -- more than a 2M cap
  local before = mg.configure()
  local cases = {
    { { bogus = 1 }, "unknown option 'bogus'; accepted: cb_timeout_ms" },
    { { cb_timeout_ms = -1 }, "field 'cb_timeout_ms' must be an integer" },
    { { cb_timeout_ms = 1.5 }, "field 'cb_timeout_ms' must be an integer" },
    { { cb_timeout_ms = "1s" }, "field 'cb_timeout_ms' must be an integer" },
    { { cb_timeout_ms = 1e15 }, "604800000" },
    { { cb_instructions = -3 }, "field 'cb_instructions'" },
    { { lua_mem = "10K" }, "below the smallest cap, 1 MiB" },
    { { lua_mem = "12Gx" }, "12Gx" },
    { { lua_mem = "2M" }, "below what the Lua state holds now" },
    { { lua_mem = {} }, "size expected" },
    { { log_level = "loud" }, "unknown log_level 'loud'; accepted: debug" },
    { { log_format = "xml" }, "unknown log_format 'xml'; accepted: text, json" },
    { { log_level = 3 }, "bad field 'log_level' (string expected" },
    { { cb_timeout_ms = 10, log_level = "loud" }, "log_level" },
  }
  for _, c in ipairs(cases) do
    local ok, err = pcall(mg.configure, c[1])
    lu.assertFalse(ok, c[2])
    lu.assertStrContains(err, c[2])
  end
  local ok, err = pcall(mg.configure, "fast")
  lu.assertFalse(ok)
  lu.assertStrContains(err, "table expected")
  local after = mg.configure()
  lu.assertEquals(#hold, 3 * 1024 * 1024)
  for _, k in ipairs { "cb_timeout_ms", "cb_instructions", "lua_mem",
                       "log_level", "log_format" } do
    lu.assertEquals(after[k], before[k], k)
  end
end

-- The wrapped allocator counts from what the state held when mg.so was
-- loaded: its count is exactly Lua's own.
function TestModule:test_the_memory_count_is_luas()
  collectgarbage("stop")
  local lua_bytes = collectgarbage("count") * 1024
  local used = mg.configure().lua_mem_used
  collectgarbage("restart")
  lu.assertEquals(used, lua_bytes)
  local big = ("x"):rep(4 * 1024 * 1024)
  local c = mg.configure()
  lu.assertTrue(c.lua_mem_used >= #big, c.lua_mem_used)
  lu.assertTrue(c.lua_mem_peak >= c.lua_mem_used)
  big = nil
  collectgarbage()
  lu.assertTrue(mg.configure().lua_mem_used < c.lua_mem_used)
end

function TestModule:test_log_lines_follow_configure()
  local status, out = h.run([[
    local mg = require "mg"
    mg.log.info("plain_line", { n = 1 })
    mg.configure { log_format = "json" }
    mg.log.warn("json_line", { n = 2, s = "x" })
    mg.configure { log_level = "error" }
    mg.log.warn("dropped_line", {})
    mg.log.error("kept_line", {})
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrMatches(out, ".*Z info  plain_line n=1\n.*")
  lu.assertStrContains(out, '"level":"warn","event":"json_line","n":2,"s":"x"}')
  lu.assertNotStrContains(out, "dropped_line")
  lu.assertStrContains(out, '"event":"kept_line"')
end

function TestModule:test_receivers_are_checked()
  local t = mg.after(100000, function() end)
  local ctx = assert(mg.store { name = "recv" })
  local ok, err = pcall(t.stop, ctx)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "mg.timer expected, got mg.store")
  ok, err = pcall(ctx.add, t, { role = "user", content = "x" })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "mg.store expected, got mg.timer")
  t:stop()
end

function TestModule:test_bad_arguments_raise_with_the_argument_named()
  local ok, err = pcall(mg.every, 10)
  lu.assertFalse(ok)
  lu.assertStrMatches(err, "bad argument #2 to '[%w.]*every' %(function expected.*")
  ok, err = pcall(mg.on_signal, "BOGUS", function() end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "unknown signal 'BOGUS'")
  ok, err = pcall(mg.spawn, "true")
  lu.assertFalse(ok)
  lu.assertStrContains(err, "table expected")
  ok, err = pcall(mg.exit, 300)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "exit code must be 0..255")
end

os.exit(lu.LuaUnit.run(table.unpack(arg)), true)
