-- mg.log in text and JSON, levels, misuse.
local lu = require("luaunit")
local h = require("helper")

TestLog = {}

local POLICY = [[
  mg.log.info("hello_event", { b = 2, a = "two words", c = true, d = 1.5 })
  mg.log.debug("debug_event", { x = 1 })
  mg.log.warn("warn_event")
  mg.log.error("error_event", { why = 'say "hi"' })
]]

function TestLog:test_text_lines()
  local status, out = h.run(POLICY)
  lu.assertEquals(status, 0, out)
  lu.assertStrMatches(out, '.*%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ info  hello_event a="two words" b=2 c=true d=1.5\n.*')
  lu.assertNotStrContains(out, "debug_event") -- below the default level
  lu.assertStrContains(out, "warn  warn_event")
  lu.assertStrContains(out, 'error error_event why="say \\"hi\\""')
end

function TestLog:test_level_option()
  local _, out = h.run(POLICY, { "--log-level", "debug" })
  lu.assertStrContains(out, "debug_event x=1")
  _, out = h.run(POLICY, { "--log-level", "error" })
  lu.assertNotStrContains(out, "hello_event")
  lu.assertStrContains(out, "error_event")
end

function TestLog:test_json_lines()
  local status, out = h.run(POLICY, { "--log-format", "json" })
  lu.assertEquals(status, 0, out)
  local line = out:match("[^\n]*hello_event[^\n]*")
  lu.assertStrContains(line, '"level":"info"')
  lu.assertStrContains(line, '"event":"hello_event"')
  lu.assertStrContains(line, '"a":"two words"')
  lu.assertStrContains(line, '"b":2')
  lu.assertStrContains(line, '"c":true')
  lu.assertStrMatches(line, '{"time":"[^"]+Z".*}')
  -- every line parses as JSON (checked with jq)
  local path = h.policy(POLICY)
  local st = h.sh(("%s --log-format json %s 2>&1 >/dev/null | jq -e . >/dev/null")
                  :format(h.q(h.mgrun), h.q(path)))
  os.remove(path)
  lu.assertEquals(st, 0)
end

function TestLog:test_misuse()
  lu.assertErrorMsgContains("bad argument #1", mg.log.info)
  lu.assertErrorMsgContains("bad argument #1", mg.log.info, "")
  lu.assertErrorMsgContains("bad argument #2", mg.log.info, "e", "x")
  lu.assertErrorMsgContains("field names must be strings", mg.log.info, "e", { 1 })
end

os.exit(lu.LuaUnit.run(table.unpack(arg)))
