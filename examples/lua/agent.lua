-- agent.lua — a Lua program (not an mgrun policy) that uses mg.so: it
-- keeps an agent's conversation in a bounded context store and runs its
-- turns on timers with mg.run.
--
--   LUA_CPATH='build/lua/?.so;;' lua5.4 examples/lua/agent.lua [TURNS]
--
-- The "model" is a stand-in that answers each question a few
-- milliseconds later. The store holds at most 8 messages: when it is full,
-- the oldest turns are summarized into one message (mg.strategies'
-- summarize-and-replace), and the system prompt stays pinned.
local mg = require "mg"
local S = require "mg.strategies"

local turns = math.tointeger(tonumber(arg and arg[1] or "")) or 12
-- mg.so's logger: only errors (the warnings are counted below instead);
-- every callback (timers, the summarizer) gets 200 ms at most.
mg.configure { log_level = "error", cb_timeout_ms = 200 }

local summaries, warnings = 0, 0
local ctx = assert(mg.store {
  name = "conversation",
  max_messages = 8,
  max_total_size = "64K",
  on_full = "prune",
  strategy = S.summarize(function(msgs)
    summaries = summaries + 1
    local firsts = {}
    for _, m in ipairs(msgs) do firsts[#firsts + 1] = m.content:sub(1, 12) end
    return ("summary of %d messages: %s"):format(#msgs,
                                                 table.concat(firsts, " | "))
  end),
  on_warn = function() warnings = warnings + 1 end,
})
assert(ctx:add { role = "system", content = "You are a terse assistant.",
                 pinned = true })

-- The stand-in model: an answer, some milliseconds after the question.
local function ask_model(question, reply)
  mg.after(3, function()
    reply("answer to " .. question .. ": 42")
  end)
end

local turn, answered = 0, 0
local report
mg.every(10, function(timer)
  turn = turn + 1
  local q = ("question %d"):format(turn)
  assert(ctx:add { role = "user", content = q })
  ask_model(q, function(answer)
    assert(ctx:add { role = "assistant", content = answer })
    answered = answered + 1
    if answered == turns then report:stop() end
  end)
  if turn == turns then timer:stop() end
end)

report = mg.every(25, function()
  local st = ctx:stats()
  print(("turn %d: %d messages, %s in the store"):format(
    turn, st.message_count, mg.format_size(st.total_size_bytes)))
end)

mg.run() -- until the last answer is in and no timer is left

print(("%d turns, %d summaries, %d warnings, %d messages kept:"):format(
  turns, summaries, warnings, ctx:len()))
for m in ctx:messages() do
  print(("  [%s] %s"):format(m.role, m.content))
end
