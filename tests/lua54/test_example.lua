-- examples/lua/agent.lua, the Lua program of docs/embedding.md, runs
-- through lua5.4 with mg.so and does what it says.
local lu = require("luaunit")
local h = require("helper54")

TestExample = {}

local example = (h.source or "..") .. "/examples/lua/agent.lua"

function TestExample:test_agent_keeps_a_bounded_conversation()
  local status, out = h.sh(("%s %s 12"):format(h.q(h.lua), h.q(example)))
  lu.assertEquals(status, 0, out)
  local turns, summaries, warnings, kept = out:match(
    "(%d+) turns, (%d+) summaries, (%d+) warnings, (%d+) messages kept:")
  lu.assertEquals(turns, "12", out)
  lu.assertTrue(tonumber(summaries) >= 1, out)
  lu.assertTrue(tonumber(warnings) >= 1, out)
  lu.assertTrue(tonumber(kept) >= 3 and tonumber(kept) <= 8, out)
  local listing = out:match("messages kept:\n(.*)$")
  lu.assertStrMatches(listing, "  %[system%] You are a terse assistant%.\n" ..
                      "  %[system%] summary of %d+ messages: .*")
  lu.assertStrMatches(listing, ".*  %[assistant%] answer to question 12: 42\n$")
  lu.assertStrMatches(out, "^turn %d+: %d+ messages, [%d.]+ K?i?B in the store\n.*")
  lu.assertNotStrContains(out, "error")
end

os.exit(lu.LuaUnit.run(table.unpack(arg)), true)
