-- Children through mg.so: a real /bin/true, mg-hog stopped by its limit
-- (RLIMIT_DATA, and a cgroup where one is writable), events delivered by
-- mg.run, the cgroup removed once the child is reaped.
local lu = require("luaunit")
local h = require("helper54")
local mg = require("mg")

TestSpawn = {}

-- mg-hog runs without the sanitizer runtime the ASan build preloads into
-- lua5.4 (ASan cannot map its shadow under RLIMIT_DATA); "" unsets it.
local hog_env = { LD_PRELOAD = "" }

function TestSpawn:setUp()
  mg.configure { log_level = "warn" }
end

function TestSpawn:tearDown()
  lu.assertEquals(#mg.processes(), 0)
  lu.assertFalse(mg.run("nowait"))
  mg.configure { log_level = "info" }
end

function TestSpawn:test_bin_true_runs_and_exits_zero()
  local got
  local p = assert(mg.spawn { name = "true", cmd = { "/bin/true" } })
  lu.assertEquals(math.type(p.pid), "integer")
  lu.assertEquals(p.name, "true")
  p:on("exit", function(q, e)
    got = { same = q == p, code = e.code, reason = e.reason }
  end)
  lu.assertFalse(mg.run())
  lu.assertEquals(got, { same = true, code = 0, reason = "exit" })
  lu.assertFalse(p.running)
end

function TestSpawn:test_mg_hog_is_stopped_by_its_data_limit()
  local support = mg.rlimit_support()
  if support ~= "data" then
    lu.skip("RLIMIT_DATA is not enforced here: " .. tostring(select(2, mg.rlimit_support())))
  end
  local got
  local errf = h.tmp("hog.err") -- the supervisor reads why it died there
  local p = assert(mg.spawn { name = "hog", cmd = { h.hog, "--max", "256M" },
                              limit = "64M", enforce = "data", env = hog_env,
                              stdout = "null", stderr = errf })
  lu.assertEquals(p.enforce, "data")
  lu.assertEquals(p.limit, 64 * 1024 * 1024)
  p:on("exit", function(_, e) got = e end)
  lu.assertFalse(mg.run())
  os.remove(errf)
  lu.assertEquals(got.reason, "limit", got.detail)
  lu.assertEquals(got.code, 3)
end

function TestSpawn:test_mg_hog_is_stopped_by_its_cgroup_and_the_group_goes()
  h.need_cgroup(mg)
  local got, dir, warned
  local p = assert(mg.spawn { name = "cghog", cmd = { h.hog, "--max", "256M" },
                              limit = "64M", enforce = "cgroup", warn_at = 0.5,
                              sample_ms = 20, env = hog_env, stdout = "null",
                              stderr = "null" })
  lu.assertEquals(p.enforce, "cgroup")
  dir = p.cgroup
  lu.assertEquals(type(dir), "string")
  lu.assertTrue(h.exists(dir .. "/cgroup.procs"), dir)
  p:on("warn", function() warned = true end)
  p:on("exit", function(_, e) got = e end)
  lu.assertFalse(mg.run())
  lu.assertTrue(got.reason == "oom" or got.reason == "limit", got.reason)
  lu.assertTrue(warned)
  lu.assertFalse(h.exists(dir), dir .. " is still there")
  lu.assertEquals(h.groups_of(h.dirname(dir), mg.pid), {})
end

function TestSpawn:test_memory_and_processes_while_running()
  local p = assert(mg.spawn { name = "sleeper", cmd = { "/bin/sleep", "30" },
                              limit = "128M" })
  local list = mg.processes()
  lu.assertEquals(#list, 1)
  lu.assertIs(list[1], p)
  local m = assert(p:memory())
  lu.assertEquals(m.pid, p.pid)
  lu.assertEquals(m.limit, 128 * 1024 * 1024)
  local reason
  p:on("exit", function(_, e) reason = e.reason end)
  mg.after(20, function() p:stop(1000) end)
  lu.assertFalse(mg.run())
  lu.assertEquals(reason, "signal")
  lu.assertFalse(h.alive(m.pid))
end

function TestSpawn:test_spawn_errors_name_the_field()
  local p, err, code = mg.spawn { name = "bad", cmd = { "/nonexistent/prog" } }
  lu.assertNil(p)
  lu.assertStrContains(err, "cmd")
  lu.assertEquals(type(code), "string")
  p, err = mg.spawn { name = "a/b", cmd = { "/bin/true" } }
  lu.assertNil(p)
  lu.assertStrContains(err, "name")
  p, err = mg.spawn { name = "x", cmd = { "/bin/true" }, nmae = 1 }
  lu.assertNil(p)
  lu.assertStrContains(err, "nmae")
end

os.exit(lu.LuaUnit.run(table.unpack(arg)), true)
