-- Every C → Lua call has a budget of its own: each kind of callback ×
-- (top level, timer, nested two deep) × (error, endless loop, memory bomb)
-- is stopped within its budget, the operation that made it fails cleanly
-- (the store is unchanged), and the caller goes on under its own budget.
-- Each case runs in a fresh mgrun. Loops are stopped by the instruction
-- budget (deterministic); one case per context checks the wall clock.
local lu = require("luaunit")
local h = require("helper")

TestBudget = {}

local INSNS = 3000000
local OPTS = { "--cb-instructions", tostring(INSNS), "--cb-timeout", "0",
               "--lua-mem", "24M", "--log-level", "error" }

local BAD = {
  error = [[error("boom-" .. KIND)]],
  loop = [[local i = 0 while true do i = i + 1 end]],
  bomb = [[local t = {} while true do t[#t + 1] = ("x"):rep(4096) .. #t end]],
}

-- What the failure says, per failure.
local SAYS = {
  error = function(kind) return "boom-" .. kind end,
  loop = function() return "exceeded its instruction budget of " .. INSNS end,
  bomb = function() return "memory cap of 24.00 MiB" end,
}

-- The store a kind needs and the operation that reaches the callback.
-- Each returns Lua code defining `subject` (a store) and `trigger()` →
-- the operation's results.
local STORE = {
  strategy = [[
    local subject = assert(mg.store { name = "subject", max_messages = 2,
      on_full = "prune", strategy = function() BAD end })
    subject:add { role = "u", content = "one" }
    subject:add { role = "u", content = "two" }
    local function trigger() return subject:add { role = "u", content = "three" } end
  ]],
  on_evict = [[
    local subject = assert(mg.store { name = "subject", max_messages = 2,
      on_full = "prune", on_evict = function() BAD end })
    subject:add { role = "u", content = "one" }
    subject:add { role = "u", content = "two" }
    local function trigger() return subject:add { role = "u", content = "three" } end
  ]],
  estimator = [[
    local subject = assert(mg.store { name = "subject",
      estimator = function() BAD end })
    subject:add { role = "u", content = "zero", tokens = 1 }
    local function trigger() return subject:add { role = "u", content = "one" } end
  ]],
  on_warn = [[
    local subject = assert(mg.store { name = "subject", max_messages = 5,
      on_warn = function() BAD end })
    for i = 1, 3 do subject:add { role = "u", content = "m" .. i } end
    local function trigger() return subject:add { role = "u", content = "m4" } end
  ]],
}

local PRELUDE = [[
local KIND = %q
local function dump(s)
  local t = {}
  for m in s:messages() do t[#t + 1] = m.id .. ":" .. m.content end
  local st = s:stats()
  return table.concat(t, ",") .. "|" .. st.total_size_bytes .. "|" ..
         st.message_count .. "|" .. st.total_tokens .. "|" .. st.next_id
end
local function report(where, before, id, err, code)
  print(where, "id=" .. tostring(id), "code=" .. tostring(code),
        "unchanged=" .. tostring(dump(subject) == before))
  print(where .. " err", tostring(err))
end
]]

-- The context the operation is made from.
local CONTEXT = {
  top = [[
    local before = dump(subject)
    report("RESULT", before, trigger())
    print("CONTINUED top")
  ]],
  timer = [[
    mg.after(0, function()
      local before = dump(subject)
      report("RESULT", before, trigger())
      print("CONTINUED timer")
    end)
  ]],
  -- a timer adds to `outer`, whose strategy makes the operation: the
  -- failing callback is two calls below the timer
  nested = [[
    local outer = assert(mg.store { name = "outer", max_messages = 1,
      on_full = "prune", strategy = function(view)
        local before = dump(subject)
        report("RESULT", before, trigger())
        print("CONTINUED outer strategy")
        return { view:at(1).id }
      end })
    outer:add { role = "u", content = "first" }
    mg.after(0, function()
      local id, err = outer:add { role = "u", content = "second" }
      print("OUTER", tostring(id), tostring(err))
      print("CONTINUED timer")
    end)
  ]],
}

local function policy(kind, bad, context)
  local store = STORE[kind]:gsub("BAD", function() return BAD[bad] end)
  -- the prelude's helpers see `subject`: declare it first
  return ("local subject, trigger\n" .. PRELUDE .. "do\n" .. store ..
          "\n_G.subject, _G.trigger = subject, trigger end\n" ..
          "subject, trigger = _G.subject, _G.trigger\n" .. CONTEXT[context])
           :format(kind)
end

local function check_case(kind, bad, context)
  local status, out = h.run(policy(kind, bad, context), OPTS)
  local tag = kind .. "/" .. bad .. "/" .. context .. ":\n" .. out
  lu.assertEquals(status, 0, tag)
  if kind == "on_warn" then
    -- on_warn runs after the add is complete: the add succeeds, the
    -- failure is logged
    lu.assertStrMatches(out, ".*RESULT\tid=4\tcode=nil.*", nil, nil, tag)
  else
    lu.assertStrContains(out, "RESULT\tid=nil", false, tag)
    lu.assertStrContains(out, "unchanged=true", false, tag)
    local code = out:match("RESULT\tid=nil\tcode=(%S+)")
    lu.assertNotEquals(code, "nil", tag) -- a code a program can act on
  end
  lu.assertStrContains(out, "callback_failed", false, tag)
  lu.assertStrContains(out, "store 'subject' " .. kind, false, tag)
  lu.assertStrContains(out, SAYS[bad](kind), false, tag)
  if context == "nested" then
    lu.assertStrContains(out, "CONTINUED outer strategy", false, tag)
    lu.assertStrMatches(out, ".*OUTER\t2\tnil.*", nil, nil, tag) -- it worked
  end
  lu.assertStrContains(out, "CONTINUED " .. (context == "top" and "top" or "timer"),
                       false, tag)
end

for _, kind in ipairs { "strategy", "on_evict", "estimator", "on_warn" } do
  for _, bad in ipairs { "error", "loop", "bomb" } do
    for _, context in ipairs { "top", "timer", "nested" } do
      TestBudget[("test_%s_%s_%s"):format(kind, bad, context)] = function()
        check_case(kind, bad, context)
      end
    end
  end
end

-- Wall clock: a nested strategy that loops is stopped at its own 300 ms,
-- and the time it took is not charged to the strategy that called it nor
-- to the timer above (both have 300 ms too, and finish).
function TestBudget:test_nested_time_is_not_charged_to_the_caller()
  local status, out = h.run(policy("strategy", "loop", "nested"),
                            { "--cb-timeout", "300", "--cb-instructions", "0",
                              "--log-level", "error" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "store 'subject' strategy exceeded its time budget of 300 ms (--cb-timeout)")
  lu.assertStrContains(out, "CONTINUED outer strategy")
  lu.assertStrContains(out, "OUTER\t2\tnil")
  lu.assertStrContains(out, "CONTINUED timer")
  lu.assertNotStrContains(out, "store 'outer' strategy exceeded")
  lu.assertNotStrContains(out, "timer (mg.after) exceeded")
end

-- The issue's case: a looping strategy reached from the top level, with
-- no --setup-timeout: its own budget stops it; the top level goes on.
function TestBudget:test_top_level_store_callback_has_a_budget()
  local status, out = h.run([[
    local ctx = mg.store { max_messages = 2, on_full = "prune",
                           strategy = function() while true do end end }
    ctx:add { role = "u", content = "a" }
    ctx:add { role = "u", content = "b" }
    local id, err = ctx:add { role = "u", content = "c" }
    print("third", id, tostring(err))
    print("top level goes on")
  ]], { "--cb-timeout", "200", "--log-level", "error" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "third\tnil\tMessage count 2 exceeds limit of 2")
  lu.assertStrContains(out, "time budget of 200 ms (--cb-timeout)")
  lu.assertStrContains(out, "top level goes on")
end

-- ...and under --setup-timeout the add fails, not the whole top level.
function TestBudget:test_setup_timeout_is_the_top_levels_alone()
  local status, out = h.run([[
    local ctx = mg.store { max_messages = 1, on_full = "prune",
                           strategy = function() while true do end end }
    ctx:add { role = "u", content = "a" }
    print("add", ctx:add { role = "u", content = "b" })
    print("top level goes on")
  ]], { "--cb-timeout", "100", "--setup-timeout", "5000", "--log-level", "error" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "add\tnil")
  lu.assertStrContains(out, "top level goes on")
  lu.assertNotStrContains(out, "--setup-timeout)")
end

-- The callbacks of the loop itself: a timer, a signal handler and a
-- process's event handler that fail, each stopped, the loop goes on. A
-- later callback proves it: it waits for the failure by polling a flag
-- the failing callback sets first (ordered by events, not by a clock).
local LOOP = {
  timer = [[mg.after(0, function() FAILED = true BAD end)]],
  signal = [[
    mg.on_signal("USR1", function(_, hd) FAILED = true hd:stop() BAD end)
    mg.after(0, function() io.popen("kill -USR1 " .. mg.pid):close() end)
  ]],
  process = [[
    local p = assert(mg.spawn { name = "short", cmd = { "true" } })
    p:on("exit", function() FAILED = true BAD end)
  ]],
}
local LOOP_SAYS = { timer = "timer (mg.after)", signal = "signal USR1",
                    process = "process short exit" }

for kind, code in pairs(LOOP) do
  for _, bad in ipairs { "error", "loop", "bomb" } do
    TestBudget[("test_%s_callback_%s"):format(kind, bad)] = function()
      local body = ("local KIND = %q\nFAILED = false\n"):format(kind) ..
                   code:gsub("BAD", function() return BAD[bad] end) .. [[
        local n = 0
        mg.every(10, function(t)
          n = n + 1
          if FAILED then print("LATER") t:stop()
          elseif n > 3000 then print("GAVE UP") t:stop() end
        end)
      ]]
      local status, out = h.run(body, OPTS)
      local tag = kind .. "/" .. bad .. ":\n" .. out
      lu.assertEquals(status, 0, tag)
      lu.assertStrContains(out, "callback_failed", false, tag)
      lu.assertStrContains(out, LOOP_SAYS[kind], false, tag)
      lu.assertStrContains(out, SAYS[bad](kind), false, tag)
      lu.assertStrContains(out, "LATER", false, tag)
    end
  end
end

os.exit(lu.LuaUnit.run(table.unpack(arg)))
