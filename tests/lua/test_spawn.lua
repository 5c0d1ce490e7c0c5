-- mg.spawn, the process object and mg.processes, with real processes.
-- Validation runs in this mgrun (nothing is started there); everything
-- that starts a child runs in a fresh mgrun through helper.run.
local lu = require("luaunit")
local h = require("helper")

TestSpawn = {}

local tmpdir = os.getenv("TMPDIR") or "/tmp"
local seq = 0
local function tmpfile(tag)
  seq = seq + 1
  local p = ("%s/mgrun-spawn-%d-%d-%s"):format(tmpdir, mg.pid, seq, tag)
  os.remove(p)
  return p
end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

-- ------------------------------------------------------------ validation

-- Each bad value → nil, err naming the field; nothing is started.
function TestSpawn:test_bad_fields_name_the_field()
  local marker = tmpfile("started")
  local touch = { "/bin/sh", "-c", "touch " .. marker }
  local cases = {
    { "nmae", { nmae = "x", cmd = touch } },
    { "cmd", { name = "a" } },
    { "cmd", { name = "a", cmd = {} } },
    { "cmd", { name = "a", cmd = { "" } } },
    { "cmd", { name = "a", cmd = { "/nonexistent/mgrun-no-such-program" } } },
    { "cmd", { name = "a", cmd = { "mgrun-no-such-program-in-path" } } },
    { "limit", { name = "a", cmd = touch, limit = "12Gx" } },
    { "limit", { name = "a", cmd = touch, limit = -1 } },
    { "limit", { name = "a", cmd = touch, limit = 0 } },
    { "limit", { name = "a", cmd = touch, limit = 0 / 0 } },
    { "enforce", { name = "a", cmd = touch, limit = "64M", enforce = "bogus" } },
    { "enforce", { name = "a", cmd = touch, enforce = "data" } },
    { "restart", { name = "a", cmd = touch, restart = "sometimes" } },
    { "max_restarts", { name = "a", cmd = touch, max_restarts = -5 } },
    { "max_restarts", { name = "a", cmd = touch, max_restarts = 1.5 } },
    { "warn_at", { name = "a", cmd = touch, limit = "64M", warn_at = 1.5 } },
    { "warn_at", { name = "a", cmd = touch, limit = "64M", warn_at = -0.1 } },
    { "sample_ms", { name = "a", cmd = touch, sample_ms = 5 } },
    { "sample_ms", { name = "a", cmd = touch, sample_ms = -1 } },
    { "grace_ms", { name = "a", cmd = touch, grace_ms = -1 } },
    { "name", { name = "a/b", cmd = touch } },
    { "name", { name = "..", cmd = touch } },
    { "name", { name = "", cmd = touch } },
    { "name", { name = string.rep("n", 65), cmd = touch } },
    { "cwd", { name = "a", cmd = touch, cwd = "/nonexistent/mgrun-dir" } },
    { "stdout", { name = "a", cmd = touch, stdout = "/nonexistent/dir/out" } },
    { "stderr", { name = "a", cmd = touch, stderr = "/nonexistent/dir/err" } },
    { "env", { name = "a", cmd = touch, env = { ["A=B"] = "x" } } },
  }
  for i, c in ipairs(cases) do
    local p, err = mg.spawn(c[2])
    lu.assertNil(p, ("case %d (%s) was accepted"):format(i, c[1]))
    lu.assertIsString(err)
    lu.assertStrContains(err, c[1], false,
                         ("case %d: err does not name %s: %s"):format(i, c[1],
                                                                      err))
  end
  lu.assertEquals(#mg.processes(), 0)
  -- Had anything started, the marker would be there by now.
  h.sh("sleep 0.2")
  lu.assertFalse(exists(marker), "a rejected spawn started its command")
end

function TestSpawn:test_unknown_field_is_named_with_the_accepted_list()
  local p, err = mg.spawn { name = "a", cmd = { "true" }, limt = "1G" }
  lu.assertNil(p)
  lu.assertStrContains(err, "unknown field 'limt'")
  lu.assertStrContains(err, "limit")
end

function TestSpawn:test_misuse_raises_naming_the_field()
  lu.assertErrorMsgContains("bad argument #1", mg.spawn, "sleep 1")
  lu.assertErrorMsgContains("'cmd'", mg.spawn, { name = "a", cmd = "true" })
  lu.assertErrorMsgContains("'cmd'", mg.spawn, { name = "a", cmd = { true } })
  lu.assertErrorMsgContains("'name'", mg.spawn, { name = 5, cmd = { "true" } })
  lu.assertErrorMsgContains("'limit'", mg.spawn,
                            { name = "a", cmd = { "true" }, limit = {} })
  lu.assertErrorMsgContains("'warn_at'", mg.spawn,
                            { name = "a", cmd = { "true" }, warn_at = "x" })
  lu.assertErrorMsgContains("'sample_ms'", mg.spawn,
                            { name = "a", cmd = { "true" }, sample_ms = "1" })
  lu.assertErrorMsgContains("'env'", mg.spawn,
                            { name = "a", cmd = { "true" }, env = "A=1" })
  lu.assertErrorMsgContains("'env'", mg.spawn,
                            { name = "a", cmd = { "true" }, env = { A = {} } })
  lu.assertErrorMsgContains("'env'", mg.spawn,
                            { name = "a", cmd = { "true" }, env = { "x" } })
  lu.assertErrorMsgContains("'stdout'", mg.spawn,
                            { name = "a", cmd = { "true" }, stdout = 1 })
  lu.assertErrorMsgContains("'grace_ms'", mg.spawn,
                            { name = "a", cmd = { "true" }, grace_ms = "5s" })
  lu.assertEquals(#mg.processes(), 0)
end

-- ------------------------------------------------------------ --check

function TestSpawn:test_check_validates_and_starts_nothing()
  local marker = tmpfile("check")
  local status, out = h.run(([[
    local p = assert(mg.spawn { name = "w", cmd = { "/bin/sh", "-c", "touch %s" },
                                limit = "64M", enforce = "data" })
    print("pid", p.pid, "started", p.started, "enforce", p.enforce,
          "limit", p.limit, "name", p.name)
    print("memory", p:memory())
    print("stop", p:stop())
    print("signal", p:signal("TERM"))
    print("set_limit", p:set_limit("32M"))
    print("procs", #mg.processes())
    p:on("exit", function() end) -- registering is fine
    print("bad", mg.spawn { name = "w2", cmd = { "true" }, enforce = "bogus" })
  ]]):format(marker), { "--check" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "pid\tnil\tstarted\tfalse\tenforce\tdata\t" ..
                            "limit\t67108864\tname\tw")
  lu.assertStrContains(out, "memory\tnil\tnot started (--check)")
  lu.assertStrContains(out, "stop\tnil\tnot started (--check)")
  lu.assertStrContains(out, "signal\tnil\tnot started (--check)")
  lu.assertStrContains(out, "set_limit\tnil\tnot started (--check)")
  lu.assertStrContains(out, "procs\t0")
  lu.assertStrMatches(out, ".*bad\tnil\tenforce: .*")
  h.sh("sleep 0.2")
  lu.assertFalse(exists(marker), "--check started a process")
end

-- ------------------------------------------------------------ fields, events

function TestSpawn:test_fields_and_exit_info_of_a_normal_exit()
  local status, out = h.run([[
    local p = assert(mg.spawn { name = "three", cmd = { "/bin/sh", "-c",
                                "sleep 0.2; exit 3" }, limit = "256M" })
    assert(math.type(p.pid) == "integer" and p.pid > 0, "pid")
    print("fields", p.name, p.restarts, p.limit, p.started, p.running)
    print("enforce", p.enforce)
    print("tostring", tostring(p))
    print("ro", pcall(function() p.pid = 1 end))
    local m = assert(p:memory())
    print("memory", m.pid == p.pid, m.rss > 0, m.used > 0, m.limit)
    p:on("exit", function(q, e)
      print("exit", q == p, e.code, e.signal, e.status, e.reason,
            e.restarts, e.will_restart, type(e.peak), type(e.detail),
            e.runtime_ms >= 150 and e.runtime_ms < 5000)
      print("after", p.pid, p.running, p:memory())
    end)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "fields\tthree\t0\t268435456\ttrue\ttrue")
  lu.assertStrMatches(out, ".*enforce\t(%a+).*")
  local enforce = out:match("enforce\t(%a+)")
  lu.assertTrue(enforce == "cgroup" or enforce == "data" or enforce == "as",
                out)
  lu.assertStrMatches(out, ".*tostring\tmg%.process three %(pid %d+%).*")
  lu.assertStrContains(out, "ro\tfalse")
  lu.assertStrContains(out, "read-only")
  lu.assertStrContains(out, "memory\ttrue\ttrue\ttrue\t268435456")
  lu.assertStrContains(out, "exit\ttrue\t3\tnil\t3\texit\t0\tfalse\tnumber\t" ..
                            "string\ttrue")
  lu.assertStrMatches(out, ".*after\tnil\tfalse\tnil\t[^\n]*not running.*")
end

function TestSpawn:test_exit_info_of_a_signal_death()
  local status, out = h.run([[
    local p = assert(mg.spawn { name = "sig", cmd = { "/bin/sh", "-c",
                                "kill -USR1 $$; sleep 5" } })
    p:on("exit", function(_, e)
      print("exit", e.code, e.signal, e.signame, e.status, e.reason)
    end)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "exit\tnil\t10\tUSR1\t138\tsignal")
end

function TestSpawn:test_no_limit_means_enforce_none_and_no_limit_field()
  local status, out = h.run([[
    local p = assert(mg.spawn { name = "free", cmd = { "true" } })
    print("free", p.limit, p.enforce)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "free\tnil\tnone")
end

function TestSpawn:test_samples_fire_with_the_sample_shape()
  local status, out = h.run([[
    local n = 0
    local p = assert(mg.spawn { name = "s", cmd = { "sleep", "10" },
                                limit = "256M", sample_ms = 20 })
    p:on("sample", function(q, s)
      n = n + 1
      if n == 3 then
        print("sample", q == p, s.pid == p.pid, s.rss > 0, s.hwm > 0,
              s.vsize > 0, type(s.data), s.used > 0, s.limit,
              s.fraction > 0 and s.fraction < 1)
        if p.enforce == "cgroup" then
          print("cgroup", s.cgroup_current > 0, s.cgroup_peak >= s.cgroup_current)
        else
          print("cgroup", true, true)
        end
        p:stop(0)
      end
    end)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "sample\ttrue\ttrue\ttrue\ttrue\ttrue\tnumber\t" ..
                            "true\t268435456\ttrue")
  lu.assertStrContains(out, "cgroup\ttrue\ttrue")
end

function TestSpawn:test_several_handlers_run_in_order_and_a_failing_one_is_logged()
  local status, out = h.run([[
    local p = assert(mg.spawn { name = "h", cmd = { "true" } })
    assert(p:on("exit", function() print("first") end) == p)
    p:on("exit", function() error("handler boom") end)
    p:on("exit", function() print("third") end)
  ]])
  lu.assertEquals(status, 0, out)
  local a, b = out:find("first", 1, true), out:find("third", 1, true)
  lu.assertTrue(a and b and a < b, out)
  lu.assertStrContains(out, "callback_failed")
  lu.assertStrContains(out, "handler boom")
  lu.assertStrContains(out, "process h exit")
end

function TestSpawn:test_a_dropped_process_object_still_gets_its_events()
  local status, out = h.run([[
    local function start()
      local p = assert(mg.spawn { name = "lost", cmd = { "/bin/sh", "-c",
                                  "sleep 0.2; exit 4" } })
      p:on("exit", function(q, e) print("late exit", q.name, e.code) end)
    end
    start()
    collectgarbage(); collectgarbage()
    mg.after(50, function() collectgarbage() end)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "late exit\tlost\t4")
end

function TestSpawn:test_children_keep_a_policy_without_timers_running()
  local status, out = h.run([[
    local t0 = mg.now()
    local p = assert(mg.spawn { name = "k", cmd = { "sleep", "0.4" } })
    p:on("exit", function(_, e)
      print(("exit after %d ms"):format(math.floor(mg.now() - t0)))
    end)
  ]])
  lu.assertEquals(status, 0, out)
  local ms = tonumber(out:match("exit after (%d+) ms"))
  lu.assertNotNil(ms, out)
  lu.assertTrue(ms >= 350, out)
end

function TestSpawn:test_env_cwd_and_stdio()
  local outf, errf = tmpfile("stdout"), tmpfile("stderr")
  local status, out = h.run(([[
    local p = assert(mg.spawn { name = "io",
      cmd = { "/bin/sh", "-c", 'echo "$FOO $BAR $MG_RESTARTS $(pwd)"; echo oops >&2' },
      env = { FOO = "foo value", BAR = 42 }, cwd = "/tmp",
      stdout = %q, stderr = %q })
    local q = assert(mg.spawn { name = "quiet", cmd = { "/bin/sh", "-c",
                                "echo should-not-show; echo nor-this >&2" },
                                stdout = "null", stderr = "null" })
  ]]):format(outf, errf))
  lu.assertEquals(status, 0, out)
  lu.assertEquals(h.read(outf), "foo value 42 0 /tmp\n")
  lu.assertEquals(h.read(errf), "oops\n")
  lu.assertNotStrContains(out, "should-not-show")
  lu.assertNotStrContains(out, "nor-this")
  os.remove(outf)
  os.remove(errf)
end

function TestSpawn:test_names_are_unique_among_live_processes()
  local status, out = h.run([[
    local a = assert(mg.spawn { name = "same", cmd = { "sleep", "5" } })
    print("second", mg.spawn { name = "same", cmd = { "sleep", "5" } })
    a:on("exit", function()
      -- the name is free again once the first is closed (after its
      -- last exit event)
      mg.after(0, function()
        local b = assert(mg.spawn { name = "same", cmd = { "true" } })
        print("again", b.name)
      end)
    end)
    a:stop(0)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrMatches(out, ".*second\tnil\tname: [^\n]*already running.*")
  lu.assertStrContains(out, "again\tsame")
end

-- ------------------------------------------------------------ restarts

function TestSpawn:test_restart_counts_and_max_restarts()
  local log = tmpfile("restarts")
  local status, out = h.run(([[
    local p = assert(mg.spawn { name = "r", restart = "on-failure",
      max_restarts = 2, backoff_ms = 20,
      cmd = { "/bin/sh", "-c", 'echo "run $MG_RESTARTS" >> %s; exit 1' } })
    local t0 = mg.now()
    p:on("restart", function(q, n) print("restart", n, q.restarts) end)
    p:on("exit", function(_, e)
      print("exit", e.restarts, e.will_restart, e.restart_in_ms,
            ("%%d"):format(math.floor(mg.now() - t0)))
    end)
  ]]):format(log))
  lu.assertEquals(status, 0, out)
  lu.assertEquals(h.read(log), "run 0\nrun 1\nrun 2\n")
  lu.assertEquals(h.count(out, "restart\t"), 2)
  lu.assertStrContains(out, "restart\t1\t1")
  lu.assertStrContains(out, "restart\t2\t2")
  lu.assertStrMatches(out, ".*exit\t0\ttrue\t%d+\t%d+.*")
  lu.assertStrMatches(out, ".*exit\t2\tfalse\tnil\t%d+.*")
  -- exponential backoff: 20 ms, then 40 ms
  local d1 = tonumber(out:match("exit\t0\ttrue\t(%d+)"))
  local d2 = tonumber(out:match("exit\t1\ttrue\t(%d+)"))
  lu.assertTrue(d1 and d2 and d2 > d1, out)
  os.remove(log)
end

function TestSpawn:test_on_failure_does_not_restart_a_clean_exit()
  local status, out = h.run([[
    local p = assert(mg.spawn { name = "ok", restart = "on-failure",
                                backoff_ms = 10, cmd = { "true" } })
    p:on("exit", function(_, e) print("exit", e.code, e.will_restart) end)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertEquals(h.count(out, "exit\t"), 1)
  lu.assertStrContains(out, "exit\t0\tfalse")
end

function TestSpawn:test_always_restarts_a_clean_exit_until_stopped()
  local status, out = h.run([[
    local n = 0
    local p = assert(mg.spawn { name = "al", restart = "always",
                                backoff_ms = 10, cmd = { "true" } })
    p:on("exit", function(q, e)
      n = n + 1
      print("exit", n, e.will_restart)
      if n == 3 then q:stop() end
    end)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "exit\t3\t")
  lu.assertNotStrContains(out, "exit\t4\t")
end

-- ------------------------------------------------------------ stop, kill, signal

function TestSpawn:test_stop_kill_and_signal()
  local status, out = h.run([[
    local a = assert(mg.spawn { name = "term", cmd = { "sleep", "30" } })
    local b = assert(mg.spawn { name = "stubborn", grace_ms = 200,
      cmd = { "/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.05; done" } })
    local c = assert(mg.spawn { name = "killed", cmd = { "sleep", "30" } })
    local d = assert(mg.spawn { name = "usr", cmd = { "/bin/sh", "-c",
      "trap 'echo got-usr1; exit 7' USR1; while :; do sleep 0.05; done" } })
    print("procs", #mg.processes())
    local t0 = mg.now()
    for _, p in ipairs({ a, b, c, d }) do
      p:on("exit", function(q, e)
        print("exit", q.name, e.code, e.signame, e.reason,
              ("%d"):format(math.floor(mg.now() - t0)))
      end)
    end
    mg.after(100, function()
      assert(a:stop())
      assert(b:stop())
      assert(c:kill())
      assert(d:signal("USR1"))
      print("bad signal", pcall(d.signal, d, "NOPE"))
    end)
    mg.after(1500, function()
      print("procs", #mg.processes())
      print("stop again", a:stop(), "signal dead", a:signal("TERM"))
    end)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "procs\t4")
  lu.assertStrContains(out, "exit\tterm\tnil\tTERM\tsignal")
  lu.assertStrContains(out, "exit\tkilled\tnil\tKILL\tsignal")
  lu.assertStrContains(out, "got-usr1")
  lu.assertStrContains(out, "exit\tusr\t7\tnil\texit")
  lu.assertStrContains(out, "unknown signal 'NOPE'")
  -- the stubborn one dies of SIGKILL after its 200 ms grace
  local ms = tonumber(out:match("exit\tstubborn\tnil\tKILL\tsignal\t(%d+)"))
  lu.assertNotNil(ms, out)
  lu.assertTrue(ms >= 250 and ms < 1400, out)
  lu.assertStrContains(out, "procs\t0")
  lu.assertStrMatches(out, ".*stop again\ttrue\tsignal dead\tnil\t[^\n]*not running.*")
end

function TestSpawn:test_processes_lists_live_ones_in_spawn_order()
  local status, out = h.run([[
    local a = assert(mg.spawn { name = "one", cmd = { "sleep", "30" } })
    local b = assert(mg.spawn { name = "two", cmd = { "sleep", "30" } })
    local c = assert(mg.spawn { name = "three", cmd = { "true" } })
    local names = {}
    for _, p in ipairs(mg.processes()) do names[#names + 1] = p.name end
    print("live", table.concat(names, ","))
    mg.after(200, function()
      local n = {}
      for _, p in ipairs(mg.processes()) do n[#n + 1] = p.name end
      print("later", table.concat(n, ","))
      for _, p in ipairs(mg.processes()) do p:stop(0) end
    end)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "live\tone,two,three")
  lu.assertStrContains(out, "later\tone,two\n")
end

function TestSpawn:test_set_limit_changes_the_limit()
  local status, out = h.run([[
    local p = assert(mg.spawn { name = "sl", cmd = { "sleep", "30" },
                                limit = "256M" })
    print("set", p:set_limit("128M"))
    print("limit", p.limit)
    -- and the kernel has it
    if p.cgroup then
      local f = io.open(p.cgroup .. "/memory.limit_in_bytes") or
                io.open(p.cgroup .. "/memory.max")
      print("applied", f:read("l"))
      f:close()
    else
      print("applied", mg.get_limit(p.enforce, p.pid))
    end
    print("bad", p:set_limit("12Gx"))
    print("raise", pcall(p.set_limit, p, {}))
    p:stop(0)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "set\ttrue")
  lu.assertStrContains(out, "limit\t134217728")
  lu.assertStrContains(out, "applied\t134217728")
  lu.assertStrMatches(out, ".*bad\tnil\t[^\n]*12Gx.*")
  lu.assertStrContains(out, "raise\tfalse")
end

function TestSpawn:test_on_misuse_raises()
  local status, out = h.run([[
    local p = assert(mg.spawn { name = "m", cmd = { "true" } })
    print("ev", pcall(p.on, p, "bogus", function() end))
    print("fn", pcall(p.on, p, "exit", 5))
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrMatches(out, ".*ev\tfalse\t[^\n]*unknown event 'bogus' %(accepted: warn, sample, exit, restart, threshold, oom, pressure, gpu_limit%).*")
  lu.assertStrMatches(out, ".*fn\tfalse\t[^\n]*function expected.*")
end

function TestSpawn:test_mg_exit_stops_children_and_keeps_the_code()
  local status, out = h.run([[
    local p = assert(mg.spawn { name = "long", cmd = { "sleep", "30" } })
    p:on("exit", function(_, e) print("exit", e.signame) end)
    mg.after(50, function() mg.exit(5) end)
  ]])
  lu.assertEquals(status, 5, out)
  lu.assertStrContains(out, "exit\tTERM")
end

function TestSpawn:test_spawn_during_shutdown_is_refused()
  local status, out = h.run([[
    local p = assert(mg.spawn { name = "long", cmd = { "sleep", "30" } })
    p:on("exit", function()
      print("late", mg.spawn { name = "late", cmd = { "true" } })
    end)
    mg.after(20, function() mg.exit(0) end)
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "late\tnil\tmgrun is shutting down")
end

function TestSpawn:test_bindir_is_the_directory_of_mgrun()
  local dir = h.mgrun:match("^(.*)/[^/]+$")
  local status, out = h.run("print('bindir', mg.bindir)")
  lu.assertEquals(status, 0, out)
  -- compare real paths (the build dir may be reached through a link)
  local _, real = h.sh("readlink -f " .. h.q(dir))
  lu.assertStrContains(out, "bindir\t" .. real:gsub("%s+$", ""))
end

os.exit(lu.LuaUnit.run(table.unpack(arg)))
