-- Errors a program can act on: expected failures return nil, message, code
-- (code: an errno name, a libmg error name, or a store's limit_type), and
-- the third value is there for every kind of failure.
local lu = require("luaunit")
local h = require("helper")

TestCodes = {}

local function fails(code_want, fn, ...)
  local a, msg, code = fn(...)
  lu.assertNil(a)
  lu.assertNotNil(msg)
  lu.assertEquals(code, code_want, tostring(msg))
  return msg
end

function TestCodes:test_probes()
  fails("ESRCH", mg.process, 2147483646)
end

function TestCodes:test_store_files()
  fails("ENOENT", mg.load_store, "/nonexistent/mgrun-snapshot.json")
  local dir = h.tmp("dir")
  os.execute("mkdir -p " .. h.q(dir))
  fails("EISDIR", mg.load_store, dir)
  local bad = h.tmp("bad.json")
  local f = assert(io.open(bad, "w")) f:write('{"mgrun_store": 1, "messa') f:close()
  fails("ECORRUPT", mg.load_store, bad)
  local ctx = assert(mg.store { name = "c" })
  fails("ENOENT", ctx.save, ctx, "/nonexistent/dir/snap.json")
  fails("EISDIR", ctx.save, ctx, dir)
  os.remove(bad)
  os.execute("rmdir " .. h.q(dir))
end

function TestCodes:test_store_limits_and_values()
  local ctx = assert(mg.store { name = "c", max_messages = 1,
                                max_message_size = 1024 })
  assert(ctx:add { role = "u", content = "a" })
  local err = fails("message_count", ctx.add, ctx, { role = "u", content = "b" })
  lu.assertEquals(err.limit_type, "message_count")
  lu.assertEquals(err.code, "ELIMIT") -- the table keeps libmg's name too
  lu.assertStrContains(tostring(err), "Message count 1 exceeds limit of 1")
  fails("message_size", ctx.add, ctx, { role = "u", content = ("x"):rep(2000) })
  fails("EINVAL", mg.store, { max_messages = 0 })
  fails("EINVAL", mg.store, { name = "a b" })
  fails("EPARSE", mg.store, { max_total_size = "12Gx" })
  fails("ENOENT", ctx.remove, ctx, 999)
  local est = assert(mg.store { name = "e", estimator = function() return -1 end })
  fails("ESTRATEGY", est.add, est, { role = "u", content = "x" })
end

function TestCodes:test_limits()
  local ok, msg, code = mg.set_limit("0", { strict = false })
  lu.assertFalse(ok)
  lu.assertStrContains(msg, "must be positive")
  lu.assertEquals(code, "ELIMIT")
  ok, msg, code = mg.set_limit("12Gx", { strict = false })
  lu.assertFalse(ok)
  lu.assertEquals(code, "EPARSE", msg)
  ok, msg, code = mg.get_limit("data", 2147483646)
  lu.assertFalse(ok)
  lu.assertEquals(code, "ESRCH", msg)
end

function TestCodes:test_spawn()
  fails("ENOENT", mg.spawn, { cmd = { "/nonexistent/mgrun-no-such-program" } })
  fails("ENOENT", mg.spawn, { cmd = { "mgrun-no-such-program-in-path" } })
  fails("EISDIR", mg.spawn, { cmd = { "/tmp" } })
  local p = assert(mg.spawn { name = "codes-twin", cmd = { "sleep", "5" } })
  fails("EEXIST", mg.spawn, { name = "codes-twin", cmd = { "sleep", "5" } })
  p:stop(0)
end

-- Unknown option keys are an error everywhere (a typo must not be taken
-- for a default: mg.set_limit("3G", {pdi = …}) once limited mgrun itself).
function TestCodes:test_unknown_options_raise()
  lu.assertErrorMsgContains("unknown option 'pdi'", mg.set_limit, "3G",
                            { pdi = 999999 })
  lu.assertErrorMsgContains("unknown option 'pss2'", mg.process, nil,
                            { pss2 = true })
  lu.assertErrorMsgContains("unknown option 'nmae'", mg.store, { nmae = "x" })
  local ok, p, err = pcall(mg.spawn, { cmd = { "true" }, lmit = "1G" })
  lu.assertFalse(ok and p ~= nil, "a misspelt field started a process")
  lu.assertStrContains(tostring(ok and err or p), "unknown field 'lmit'")
end

-- Text with a NUL byte is refused, never cut.
function TestCodes:test_nul_bytes_are_refused()
  fails("EINVAL", mg.store, { name = "a\0b" })
  lu.assertErrorMsgContains("NUL", mg.log.info, "ev\0ent")
  lu.assertErrorMsgContains("NUL", mg.log.info, "event", { ["k\0"] = 1 })
  lu.assertErrorMsgContains("NUL", mg.log.info, "event", { k = "v\0w" })
  lu.assertErrorMsgContains("NUL", mg.load_store, "/tmp/a\0b")
  local ctx = assert(mg.store { name = "n" })
  lu.assertErrorMsgContains("NUL", ctx.save, ctx, "/tmp/a\0b")
  lu.assertErrorMsgContains("NUL", mg.store, { archive = "/tmp/a\0b" })
end

os.exit(lu.LuaUnit.run(table.unpack(arg)))
