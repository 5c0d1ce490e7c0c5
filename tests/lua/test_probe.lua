-- mg.memory, mg.pressure, mg.process, mg.probe through the real mgrun.
local lu = require("luaunit")
local h = require("helper")

TestProbe = {}

local MEM_KEYS = { "total", "available", "free", "buffers", "cached",
                   "swap_total", "swap_free", "effective_total",
                   "effective_available" }

function TestProbe:test_memory_shape_and_values()
  local m = assert(mg.memory())
  for _, k in ipairs(MEM_KEYS) do
    lu.assertIsNumber(m[k], k)
    lu.assertTrue(math.type(m[k]) == "integer", k .. " is an integer")
    lu.assertTrue(m[k] >= 0, k)
  end
  lu.assertEquals(m.total, h.memtotal())
  lu.assertTrue(m.effective_total <= m.total)
  lu.assertTrue(m.effective_available <= m.effective_total)
  lu.assertIsString(m.effective_source)
  if m.cgroup_limit then
    lu.assertEquals(m.effective_total, math.min(m.total, m.cgroup_limit))
  else
    lu.assertEquals(m.effective_total, m.total)
  end
end

function TestProbe:test_pressure()
  local p, err = mg.pressure()
  local f = io.open("/proc/pressure/memory")
  if not f then
    lu.assertNil(p)
    lu.assertStrContains(err, "PSI")
    return
  end
  f:close()
  lu.assertIsTable(p)
  for _, kind in ipairs({ "some", "full" }) do
    lu.assertIsNumber(p[kind].avg10)
    lu.assertIsNumber(p[kind].avg60)
    lu.assertIsNumber(p[kind].avg300)
    lu.assertTrue(math.type(p[kind].total) == "integer")
  end
end

function TestProbe:test_process_self()
  local p = assert(mg.process(mg.pid))
  lu.assertEquals(p.pid, mg.pid)
  lu.assertEquals(p.name, "mgrun")
  for _, k in ipairs({ "rss", "hwm", "vsize", "data", "anon", "file",
                       "shmem", "swap" }) do
    lu.assertTrue(math.type(p[k]) == "integer", k)
  end
  lu.assertTrue(p.rss > 0 and p.hwm >= p.rss and p.vsize >= p.rss)
  -- without a pid: this process
  lu.assertEquals(mg.process().pid, mg.pid)
  local q = assert(mg.process(mg.pid, { pss = true }))
  lu.assertTrue(q.pss > 0)
end

function TestProbe:test_process_grows_with_allocation()
  local before = mg.process().rss
  local big = string.rep("x", 8 * 1024 * 1024) -- 8 MiB string
  local after = mg.process().rss
  lu.assertTrue(after - before >= 6 * 1024 * 1024,
                ("rss grew by %d"):format(after - before))
  big = nil
end

function TestProbe:test_process_missing_pid_is_nil_err()
  local p, err = mg.process(4194303 + 12345)
  lu.assertNil(p)
  lu.assertStrContains(err, "no process")
end

function TestProbe:test_process_misuse_raises()
  lu.assertErrorMsgContains("bad argument #1", mg.process, "abc")
  lu.assertErrorMsgContains("bad argument #1", mg.process, -3)
  lu.assertErrorMsgContains("bad argument #2", mg.process, mg.pid, 5)
end

function TestProbe:test_probe_matches_memory()
  local p = assert(mg.probe())
  lu.assertEquals(p.version, mg.version)
  lu.assertEquals(p.memory.total, h.memtotal())
  lu.assertEquals(p.memory.effective_total, mg.memory().effective_total)
  lu.assertTrue(p.cgroup.version == "v1" or p.cgroup.version == "v2" or
                p.cgroup.version == "none")
  lu.assertIsTable(p.rlimit.data)
  lu.assertIsBoolean(p.rlimit.data.enforced)
  lu.assertIsString(p.rlimit.data.reason)
  lu.assertIsString(p.kernel)
end

function TestProbe:test_version()
  lu.assertEquals(mg.version, "0.1.0")
  lu.assertIs(require("mg"), mg)
end

os.exit(lu.LuaUnit.run(table.unpack(arg)))
