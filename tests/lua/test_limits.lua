-- Seed 1's validation and the rlimit API through the real mgrun.
local lu = require("luaunit")
local h = require("helper")

TestLimits = {}

local GiB = 1024 * 1024 * 1024
local function eff() return mg.memory().effective_total end

function TestLimits:test_validate_limit_ok()
  local ok, msg, warn = mg.validate_limit(64 * 1024 * 1024)
  lu.assertTrue(ok)
  lu.assertEquals(msg, "")
  lu.assertNil(warn)
  lu.assertTrue((mg.validate_limit("64M")))
end

function TestLimits:test_validate_limit_too_big_seed_message()
  local ok, msg = mg.validate_limit(eff() * 2)
  lu.assertFalse(ok)
  lu.assertStrMatches(msg, "Requested limit [%d.]+ [KMGT]iB exceeds total " ..
                           "system memory [%d.]+ [KMGT]iB.*")
end

function TestLimits:test_validate_limit_warns_above_90_percent()
  local ok, msg, warn = mg.validate_limit(math.floor(eff() * 0.95))
  lu.assertTrue(ok)
  lu.assertEquals(msg, "")
  lu.assertStrContains(warn, "90%")
end

function TestLimits:test_validate_limit_seed_bugs_fixed()
  for _, v in ipairs({ 0 / 0, math.huge, -math.huge }) do
    local ok, msg = mg.validate_limit(v)
    lu.assertFalse(ok, "accepted " .. tostring(v))
    lu.assertStrContains(msg:lower(), "finite")
  end
  local ok, msg = mg.validate_limit(-5)
  lu.assertFalse(ok)
  lu.assertStrContains(msg, "Memory limit must be positive, got -5")
  ok, msg = mg.validate_limit(0)
  lu.assertFalse(ok)
  lu.assertStrContains(msg, "must be positive")
  ok, msg = mg.validate_limit("12Gx")
  lu.assertFalse(ok)
  lu.assertStrContains(msg, '"12Gx"')
end

function TestLimits:test_validate_total_matrix()
  local e = eff()
  -- scaled to this machine: 2/17, 6/17, 9/17 of half the memory fits
  local unit = e / 2 / 17
  local ok, msg = mg.validate_total({ { name = "subject", limit = math.floor(2 * unit) },
                                      { name = "observer", limit = math.floor(6 * unit) },
                                      { name = "god", limit = math.floor(9 * unit) } })
  lu.assertTrue(ok, msg)
  -- twice the machine: refused, naming each instance
  unit = e * 2 / 17
  ok, msg = mg.validate_total({ { name = "subject", limit = math.floor(2 * unit) },
                                { name = "observer", limit = math.floor(6 * unit) },
                                { name = "god", limit = math.floor(9 * unit) } })
  lu.assertFalse(ok)
  lu.assertStrContains(msg, "subject")
  lu.assertStrContains(msg, "observer")
  lu.assertStrContains(msg, "god")
  lu.assertStrContains(msg, "exceeds total system memory")
end

function TestLimits:test_validate_total_seed_bugs_fixed()
  local ok, msg = mg.validate_total({})
  lu.assertFalse(ok)
  lu.assertStrContains(msg, "No allocations")
  ok, msg = mg.validate_total({ "1G", -5, "1G" }) -- the seed accepted -5
  lu.assertFalse(ok)
  lu.assertStrContains(msg, "must be positive")
  ok, msg = mg.validate_total({ "1G", 0 / 0 }) -- and NaN
  lu.assertFalse(ok)
  ok, msg = mg.validate_total({ { name = "god", limit = "lots" } })
  lu.assertFalse(ok)
  lu.assertStrContains(msg, "god")
  lu.assertStrContains(msg, '"lots"')
end

function TestLimits:test_validate_total_warns_above_95_percent()
  local e = eff()
  local ok, msg, warn = mg.validate_total({ math.floor(e * 0.5), math.floor(e * 0.47) })
  lu.assertTrue(ok, msg)
  lu.assertStrContains(warn, "95%")
end

function TestLimits:test_validate_misuse_raises()
  lu.assertErrorMsgContains("bad argument", mg.validate_total, "1G")
  lu.assertErrorMsgContains("size expected", mg.validate_limit, {})
  lu.assertErrorMsgContains("limit", mg.validate_total, { { name = "x" } })
end

function TestLimits:test_rlimit_support()
  local which, desc = mg.rlimit_support()
  lu.assertIsString(desc)
  lu.assertStrContains(desc, "RLIMIT_DATA")
  lu.assertStrContains(desc, "RLIMIT_AS")
  -- Linux >= 4.7 enforces RLIMIT_DATA; it is the default
  lu.assertEquals(which, "data")
end

function TestLimits:test_get_limit()
  local soft, hard = mg.get_limit("data")
  lu.assertTrue(soft == nil or math.type(soft) == "integer")
  lu.assertTrue(hard == nil or math.type(hard) == "integer")
  local ok, err = mg.get_limit("data", 4194303 + 12345)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "no process")
  lu.assertErrorMsgContains("bad argument #1", mg.get_limit, "rss")
end

function TestLimits:test_set_limit_invalid_strict_raises_nonstrict_returns()
  lu.assertErrorMsgContains("must be positive", mg.set_limit, -5)
  local ok, reason = mg.set_limit(-5, { strict = false })
  lu.assertFalse(ok)
  lu.assertStrContains(reason, "must be positive")
  ok, reason = mg.set_limit(eff() * 4, { strict = false })
  lu.assertFalse(ok)
  lu.assertStrContains(reason, "exceeds total system memory")
  ok, reason = mg.set_limit("1G", { strict = false, pid = 4194303 + 12345 })
  lu.assertFalse(ok)
  lu.assertStrContains(reason, "no process")
  lu.assertErrorMsgContains("resource", mg.set_limit, "1G", { resource = "rss" })
  lu.assertErrorMsgContains("pid", mg.set_limit, "1G", { pid = "x" })
end

function TestLimits:test_set_limit_on_self_then_allocation_fails()
  -- In a fresh mgrun without a Lua memory cap: RLIMIT_DATA a little above
  -- what the process already uses; a 96 MiB string must then fail with a
  -- memory error, a small one still works, and raising it again works.
  local status, out = h.run([[
    local big = string.rep("x", 96 * 1024 * 1024) -- control: no limit yet
    big = nil
    collectgarbage()
    local data = mg.process().data
    -- validate=false: under AddressSanitizer VmData counts terabytes of shadow
    assert(mg.set_limit(data + 32 * 1024 * 1024, { resource = "data", validate = false }))
    assert(mg.get_limit("data") == data + 32 * 1024 * 1024)
    local ok, err = pcall(string.rep, "x", 96 * 1024 * 1024)
    print("big", ok, err)
    print("small", (pcall(string.rep, "x", 1024 * 1024)))
    assert(mg.set_limit(mg.process().data + 1024 * 1024 * 1024,
                        { resource = "data", validate = false }))
    print("again", (pcall(string.rep, "x", 96 * 1024 * 1024)))
  ]], { "--lua-mem", "0" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "big\tfalse\tnot enough memory")
  lu.assertStrContains(out, "small\ttrue")
  lu.assertStrContains(out, "again\ttrue")
  lu.assertStrContains(out, "limit_set")
end

function TestLimits:test_set_limit_pid_out_of_range_raises()
  lu.assertErrorMsgContains("2147483647", mg.set_limit, "1G",
                            { pid = (1 << 32) + mg.pid, validate = false })
  lu.assertErrorMsgContains("2147483647", mg.set_limit, "1G", { pid = -1 })
end

function TestLimits:test_validate_total_ignores_metamethods()
  local proxy = setmetatable({}, { __len = function() return 3 end,
    __index = function() collectgarbage() return { name = "x", limit = "1G" } end })
  local ok, msg = mg.validate_total(proxy)
  lu.assertFalse(ok) -- raw: an empty list
  lu.assertStrContains(msg, "No allocations")
end

os.exit(lu.LuaUnit.run(table.unpack(arg)))
