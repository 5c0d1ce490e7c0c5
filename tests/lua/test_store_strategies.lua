-- Strategies, views, on_evict / on_warn, the archive and failing
-- strategies of the context store, through mgrun. A failing strategy
-- must leave the store exactly as it was, and usable.
local lu = require("luaunit")
local h = require("helper")
local S = require("mg.strategies")

local function tmp(name) return h.tmp(name, "strat") end
local dump = h.store_dump

local function ids_of(ctx)
  local ids = {}
  for m in ctx:messages() do ids[#ids + 1] = m.id end
  return ids
end

-- A simulated agent conversation against a store with `strategy`: a pinned
-- system prompt, user turns, assistant tool calls whose parallel results
-- share the call's group. After every add: the store checks out, the pin
-- is there, nothing pinned was evicted, and no group evicted by that add
-- has a member left (never split). Returns the store and what was evicted.
local function converse(strategy, opts)
  opts = opts or {}
  local batches = {}
  local ctx = assert(mg.store{ name = "conv", max_messages = opts.max or 12,
    max_total_size = opts.total or "1M", max_tokens = opts.max_tokens,
    on_full = "prune", strategy = strategy,
    on_evict = function(store, msgs, reason)
      lu.assertEquals(reason, "strategy")
      for _, m in ipairs(msgs) do
        lu.assertNotNil(store:get(m.id)) -- told before it is freed
      end
      batches[#batches + 1] = msgs
    end })
  local sys = assert(ctx:add{ role = "system", content = "You are terse.",
                              pinned = true, tokens = 4 })
  local evicted, turn = {}, 0
  local function add(m)
    local nb = #batches
    local id, err = ctx:add(m)
    assert(id, tostring(err))
    lu.assertEquals(ctx:check(), true)
    lu.assertNotNil(ctx:get(sys), "the pinned system prompt is gone")
    lu.assertTrue(ctx:len() <= (opts.max or 12))
    for b = nb + 1, #batches do
      for _, e in ipairs(batches[b]) do
        lu.assertFalse(e.pinned, "a pinned message was evicted")
        evicted[#evicted + 1] = e
        if e.group then
          for r in ctx:messages() do
            lu.assertNotEquals(r.group, e.group, "group " .. e.group .. " split")
          end
        end
      end
    end
    return id
  end
  for round = 1, opts.rounds or 12 do
    turn = turn + 1
    add{ role = "user", content = ("question %d"):format(round),
         priority = round % 3, tokens = 5 }
    if round % 2 == 0 then
      local g = "call-" .. round
      add{ role = "assistant", content = "calling tools", group = g, tokens = 3 }
      for r = 1, 3 do -- parallel results
        add{ role = "tool", content = ("result %d.%d"):format(round, r),
             group = g, priority = 1, tokens = 2 }
      end
    end
    add{ role = "assistant", content = ("answer %d"):format(round),
         priority = round % 2, tokens = 4 }
  end
  return ctx, evicted, sys
end

TestStrategies = {}

function TestStrategies:test_every_shipped_strategy_keeps_pins_and_groups()
  local cases = {
    { "oldest (string)", "oldest" },
    { "S.oldest (C fast path)", S.oldest },
    { "S.oldest in Lua", function(v, n) return S.oldest(v, n) end },
    { "keep_last(5)", S.keep_last(5) },
    { "lowest_priority_first", S.lowest_priority_first },
    { "older_than(3600)", S.older_than(3600) },
    { "token_budget(40)", S.token_budget(40) },
    { "summarize", S.summarize(function(msgs)
        return ("summary of %d messages"):format(#msgs) end) },
    { "user_turn_start", S.user_turn_start },
    { "user_turn_start by name", "user_turn_start" },
    { "lowest_priority_first by name", "lowest_priority_first" },
  }
  for _, c in ipairs(cases) do
    local ok, err = pcall(function()
      local ctx, evicted = converse(c[2])
      lu.assertTrue(#evicted > 0)
      ctx:close()
    end)
    lu.assertTrue(ok, c[1] .. ": " .. tostring(err))
  end
end

function TestStrategies:test_names()
  lu.assertEquals(assert(mg.store{ strategy = S.oldest }).strategy, "oldest")
  lu.assertEquals(assert(mg.store{ strategy = S.keep_last(7) }).strategy,
                  "keep_last(7)")
  lu.assertEquals(assert(mg.store{ strategy = "user_turn_start" }).strategy,
                  "user_turn_start")
  lu.assertStrContains(assert(mg.store{ strategy = function() end }).strategy,
                       "function at ")
end

function TestStrategies:test_oldest_in_lua_matches_the_c_fast_path()
  local a = converse("oldest")
  local b = converse(function(v, n) return S.oldest(v, n) end)
  lu.assertEquals(ids_of(b), ids_of(a))
end

function TestStrategies:test_keep_last_keeps_exactly_n()
  local ctx = assert(mg.store{ max_messages = 6, on_full = "prune",
                               strategy = S.keep_last(3) })
  assert(ctx:add{ content = "sys", pinned = true })
  local ids = {}
  for i = 1, 5 do ids[i] = assert(ctx:add{ content = "m" .. i }) end
  -- full at 6 (1 pinned + 5): the next add trims down to 3 unpinned + new
  local new = assert(ctx:add{ content = "m6" })
  local kept = ids_of(ctx)
  lu.assertEquals(#kept, 5)
  lu.assertEquals(kept, { kept[1], ids[3], ids[4], ids[5], new })
  lu.assertErrorMsgContains("n must be a non-negative integer", S.keep_last, -1)
end

function TestStrategies:test_lowest_priority_first()
  local ctx = assert(mg.store{ max_messages = 5, on_full = "prune",
                               strategy = S.lowest_priority_first })
  local hi1 = assert(ctx:add{ content = "important old", priority = 9 })
  local lo1 = assert(ctx:add{ content = "chatter", priority = 0 })
  local mid = assert(ctx:add{ content = "note", priority = 5 })
  local lo2 = assert(ctx:add{ content = "chatter 2", priority = 0 })
  local hi2 = assert(ctx:add{ content = "important", priority = 9 })
  assert(ctx:add{ content = "x", priority = 1 })
  lu.assertNil(ctx:get(lo1))            -- lowest and oldest goes first
  lu.assertNotNil(ctx:get(lo2))
  assert(ctx:add{ content = "y", priority = 1 })
  lu.assertNil(ctx:get(lo2))
  assert(ctx:add{ content = "z", priority = 7 })
  lu.assertNotNil(ctx:get(hi1))         -- old but important: still there
  lu.assertNotNil(ctx:get(hi2))
  lu.assertNotNil(ctx:get(mid))
end

function TestStrategies:test_older_than()
  -- a snapshot with three old messages (an hour ago) and three new ones
  local now = mg.time()
  local msgs = {}
  for i = 1, 6 do
    msgs[i] = ('{"id":%d,"role":"user","content":"m%d","time":%.3f}')
      :format(i, i, i <= 3 and now - 3600 or now)
  end
  local path = tmp("aged.json")
  local f = assert(io.open(path, "w"))
  f:write('{"format":"mgrun-store","version":1,"name":"aged","limits":'
    .. '{"max_messages":6,"max_message_size_bytes":1048576,'
    .. '"max_total_size_bytes":104857600,"max_tokens":0,"warn_at":0.8},'
    .. '"next_id":7,"messages":[' .. table.concat(msgs, ",") .. ']}')
  f:close()
  -- everything older than a minute goes at once (more than needed)
  local ctx = assert(mg.load_store(path, { on_full = "prune",
                                           strategy = S.older_than(60) }))
  assert(ctx:add{ content = "new" })
  lu.assertEquals(ids_of(ctx), { 4, 5, 6, 7 })
  -- strict: when nothing is old enough, the add fails
  ctx = assert(mg.load_store(path, { on_full = "prune",
    strategy = S.older_than(7200, { strict = true }) }))
  local before = dump(ctx)
  local id, err = ctx:add{ content = "new" }
  lu.assertNil(id)
  lu.assertStrContains(err.message, "freed too little")
  lu.assertEquals(dump(ctx), before)
  -- not strict: falls back on the oldest
  ctx = assert(mg.load_store(path, { on_full = "prune",
                                     strategy = S.older_than(7200) }))
  assert(ctx:add{ content = "new" })
  lu.assertEquals(ids_of(ctx), { 2, 3, 4, 5, 6, 7 })
  -- an injected clock: two hours from now, everything is old
  ctx = assert(mg.load_store(path, { on_full = "prune",
    strategy = S.older_than(60, { now = function() return now + 7200 end }) }))
  assert(ctx:add{ content = "new" })
  lu.assertEquals(ids_of(ctx), { 7 })
  os.remove(path)
end

function TestStrategies:test_token_budget()
  local ctx = assert(mg.store{ max_tokens = 100, on_full = "prune",
                               strategy = S.token_budget(50) })
  assert(ctx:add{ content = "sys", tokens = 10, pinned = true })
  for i = 1, 9 do assert(ctx:add{ content = "m" .. i, tokens = 10 }) end
  lu.assertEquals(ctx:stats().total_tokens, 100)
  assert(ctx:add{ content = "big", tokens = 10 })
  -- trimmed to <= 50 before the new one: sys + 4 newest + new = 60
  local st = ctx:stats()
  lu.assertEquals(st.total_tokens, 60)
  lu.assertEquals(ctx:len(), 6)
end

function TestStrategies:test_summarize_replaces_in_place()
  local seen
  local ctx = assert(mg.store{ max_messages = 6, on_full = "prune",
    strategy = S.summarize(function(msgs, need)
      seen = #msgs
      local parts = {}
      for _, m in ipairs(msgs) do parts[#parts + 1] = m.content:sub(1, 2) end
      return "summary: " .. table.concat(parts, "; ")
    end) })
  local sys = assert(ctx:add{ role = "system", content = "sys", pinned = true })
  local long = string.rep("words ", 20)
  for i = 1, 5 do assert(ctx:add{ role = "user", content = "m" .. i .. long }) end
  assert(ctx:add{ role = "user", content = "m6" })
  local all = {}
  for m in ctx:messages() do all[#all + 1] = m end
  lu.assertEquals(all[1].id, sys)
  lu.assertEquals(all[2].role, "system")
  lu.assertEquals(all[2].source, "summary")
  lu.assertStrContains(all[2].content, "summary: m1; m2")
  lu.assertEquals(all[#all].content, "m6")
  lu.assertTrue(seen >= 3) -- half of the 5 evictable, rounded up
  lu.assertEquals(ctx:stats().replaced_count, 1)
  lu.assertTrue(ctx:check())
end

function TestStrategies:test_failing_summarizer_changes_nothing()
  local ctx = assert(mg.store{ max_messages = 4, on_full = "prune",
    strategy = S.summarize(function() error("LLM unavailable") end) })
  for i = 1, 4 do assert(ctx:add{ content = "m" .. i }) end
  local before = dump(ctx)
  local id, err = ctx:add{ content = "m5" }
  lu.assertNil(id)
  lu.assertStrContains(err.message, "Message count 4 exceeds limit of 4")
  lu.assertStrContains(err.message, "LLM unavailable")
  lu.assertEquals(err.code, "ESTRATEGY")
  lu.assertEquals(dump(ctx), before)
  -- a summary that does not fit the store's max_message_size
  ctx = assert(mg.store{ max_messages = 4, max_message_size = 1024,
    on_full = "prune",
    strategy = S.summarize(function() return string.rep("s", 2000) end) })
  for i = 1, 4 do assert(ctx:add{ content = "m" .. i }) end
  before = dump(ctx)
  id, err = ctx:add{ content = "m5" }
  lu.assertNil(id)
  lu.assertStrContains(err.message, "replacement")
  lu.assertEquals(dump(ctx), before)
end

function TestStrategies:test_user_turn_start()
  local ctx = assert(mg.store{ max_messages = 7, on_full = "prune",
                               strategy = S.user_turn_start })
  assert(ctx:add{ role = "system", content = "sys", pinned = true })
  local roles = { "user", "assistant", "tool", "assistant", "user", "assistant" }
  for i, r in ipairs(roles) do assert(ctx:add{ role = r, content = "m" .. i }) end
  assert(ctx:add{ role = "tool", content = "late" })
  local first
  for m in ctx:messages() do
    if not m.pinned then first = first or m end
  end
  lu.assertEquals(first.role, "user")
  lu.assertEquals(first.content, "m5")
end

function TestStrategies:test_make_room_runs_the_strategy()
  local ctx = assert(mg.store{ strategy = S.keep_last(2) })
  for i = 1, 5 do assert(ctx:add{ content = "m" .. i }) end
  lu.assertEquals(ctx:make_room{ count = 1 }, 3)
  lu.assertEquals(ctx:len(), 2)
  lu.assertEquals(ctx:make_room{ count = 0 }, 0)
end

TestFailingStrategies = {}

-- Each strategy fails its own way: the add fails with a clear error, the
-- store is byte-for-byte what it was, and the next add (with a sound
-- strategy) works.
function TestFailingStrategies:test_store_unchanged_and_usable()
  local cases = {
    { "errors", function() error("strategy bug") end, "strategy bug" },
    { "pinned id", function(v) return { (v:info(1)) } end, "which is pinned" },
    { "pinned group member", function(v)
        return { (v:info(2)) } end, "holds pinned message" },
    { "unknown id", function() return { 12345 } end, "not in the store" },
    { "too little", function() return {} end, "freed too little" },
    { "non-integer id", function() return { "4" } end, "positive integers" },
    { "not a list", function() return 7 end, "list of message ids" },
    { "bad replacement", function(v)
        return { (v:info(5)) }, { content = 1 } end, "replacement" },
    { "replacement too big", function(v)
        return { (v:info(5)) }, { content = string.rep("x", 700) } end,
      "freed too little" },
    { "calls mutating methods", function(v)
        local ctx = _G.the_ctx
        local ok, err = ctx:add{ content = "inner" }
        assert(ok == nil and err:find("busy"), "inner add was not refused")
        assert(ctx:remove(5) == nil)
        assert(ctx:prune(0) == nil)
        assert(ctx:clear() == nil)
        assert(ctx:set_limits{ max_messages = 100 } == nil)
        error("mutations refused")
      end, "mutations refused" },
  }
  for _, c in ipairs(cases) do
    local ctx = assert(mg.store{ max_messages = 6, max_message_size = 1024,
                                 on_full = "prune", strategy = c[2] })
    _G.the_ctx = ctx
    assert(ctx:add{ role = "system", content = "sys", pinned = true })
    assert(ctx:add{ role = "assistant", content = "call", group = "g" })
    assert(ctx:add{ role = "tool", content = "pinned result", group = "g",
                    pinned = true })
    for i = 1, 3 do assert(ctx:add{ content = "m" .. i }) end
    local before = dump(ctx)
    local id, err = ctx:add{ content = "one more" }
    lu.assertNil(id, c[1])
    lu.assertEquals(type(err), "table", c[1])
    lu.assertStrContains(err.message, "Message count 6 exceeds limit of 6", c[1])
    lu.assertStrContains(err.message, c[3], c[1])
    lu.assertEquals(dump(ctx), before, c[1])
    lu.assertEquals(ctx:check(), true, c[1])
    ctx:set_strategy("oldest")
    lu.assertNotNil(ctx:add{ content = "now it fits" }, c[1])
    lu.assertEquals(ctx:len(), 6)
  end
  _G.the_ctx = nil
end

-- A strategy that never returns, or allocates without bound, is stopped
-- by the callback budget / the Lua memory cap (in a fresh mgrun).
local RUNAWAY = [[
  local ctx = assert(mg.store{ max_messages = 3, on_full = "prune",
                               strategy = STRATEGY })
  for i = 1, 3 do assert(ctx:add{ content = "m" .. i }) end
  local function snapshot()
    local t = {}
    for m in ctx:messages() do t[#t + 1] = m.id .. ":" .. m.content end
    local s = ctx:stats()
    return table.concat(t, ",") .. "|" .. s.total_size_bytes .. "|" .. s.next_id
  end
  local before = snapshot()
  mg.after(1, function()
    print("add", ctx:add{ content = "runaway" })
  end)
  mg.after(50, function()
    print("unchanged", snapshot() == before)
    print("check", ctx:check())
    local big = string.rep("y", 1024 * 1024) -- the state still has memory
    ctx:set_strategy("oldest")
    print("usable", ctx:add{ content = "after" } ~= nil, #big)
  end)
]]

function TestFailingStrategies:test_infinite_loop_is_stopped_by_the_budget()
  local code = RUNAWAY:gsub("STRATEGY", "function() while true do end end")
  local status, out = h.run(code, { "--cb-timeout", "100" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "time budget of 100 ms")
  lu.assertStrContains(out, "store_eviction_failed")
  lu.assertStrContains(out, "unchanged\ttrue")
  lu.assertStrContains(out, "check\ttrue")
  lu.assertStrContains(out, "usable\ttrue\t1048576")
end

function TestFailingStrategies:test_instruction_budget_too()
  local code = RUNAWAY:gsub("STRATEGY",
    "function() local i = 0 while true do i = i + 1 end end")
  local status, out = h.run(code, { "--cb-timeout", "0",
                                    "--cb-instructions", "100000" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "instruction budget of 100000")
  lu.assertStrContains(out, "unchanged\ttrue")
  lu.assertStrContains(out, "usable\ttrue")
end

function TestFailingStrategies:test_memory_bomb_hits_the_cap()
  local code = RUNAWAY:gsub("STRATEGY", [[function()
      local t = {}
      while true do t[#t + 1] = string.rep("x", 65536) .. #t end
    end]])
  local status, out = h.run(code, { "--lua-mem", "16M", "--cb-timeout", "5000" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "add\tnil\tMessage count 3 exceeds limit of 3: "
    .. "strategy 'function at")
  lu.assertStrContains(out, "memory cap of 16.00 MiB")
  lu.assertStrContains(out, "unchanged\ttrue")
  lu.assertStrContains(out, "usable\ttrue\t1048576")
end

function TestFailingStrategies:test_mg_exit_inside_a_strategy_exits()
  local status, out = h.run([[
    local ctx = assert(mg.store{ max_messages = 1, on_full = "prune",
                                 strategy = function() mg.exit(3) end })
    assert(ctx:add{ content = "a" })
    mg.after(1, function()
      ctx:add{ content = "b" }
      print("not reached")
    end)
  ]])
  lu.assertEquals(status, 3, out)
  lu.assertNotStrContains(out, "not reached")
end

TestViews = {}

function TestViews:test_view_reads_and_is_read_only()
  local got = {}
  local leaked
  local ctx
  ctx = assert(mg.store{ name = "v", max_messages = 4, on_full = "prune",
    strategy = function(view, need)
      leaked = view
      got.len = view:len()
      got.hash = #view
      got.name = view.name
      got.first = view:at(1)
      got.past = view:at(99)
      got.get = view:get(got.first.id)
      got.info = { view:info(2) }
      got.stats = view:stats()
      got.need = need
      got.now = view:now()
      got.iter = {}
      for m in view:messages() do got.iter[#got.iter + 1] = m.id end
      got.units = view:units()
      got.ctx_get = ctx:get(got.first.id) -- reading the store itself works
      got.add = { pcall(function() return view:add{ content = "x" } end) }
      got.set = { pcall(function() view.foo = 1 end) }
      got.tostr = tostring(view)
      return { got.first.id }
    end })
  local a = assert(ctx:add{ role = "user", content = "a", tokens = 1 })
  assert(ctx:add{ role = "tool", content = "b", group = "g", priority = 4,
                  tokens = 2 })
  assert(ctx:add{ role = "tool", content = "c", group = "g", tokens = 3 })
  assert(ctx:add{ role = "user", content = "d", tokens = 1 })
  assert(ctx:add{ role = "user", content = "e", tokens = 1 })
  lu.assertEquals(got.len, 4)
  lu.assertEquals(got.hash, 4)
  lu.assertEquals(got.name, "v")
  lu.assertEquals(got.first.id, a)
  lu.assertEquals(got.first.content, "a")
  lu.assertNil(got.past)
  lu.assertEquals(got.get, got.first)
  lu.assertEquals(got.ctx_get, got.first)
  lu.assertEquals(got.info[1], a + 1)
  lu.assertEquals(got.info[3], 2)      -- tokens
  lu.assertEquals(got.info[4], 4)      -- priority
  lu.assertEquals(got.info[5], false)  -- pinned
  lu.assertEquals(got.info[7], "g")    -- group
  lu.assertEquals(got.info[8], "tool") -- role
  lu.assertEquals(got.stats.message_count, 4)
  lu.assertEquals(got.need.count, 1)
  lu.assertEquals(got.need.limit_type, "message_count")
  lu.assertTrue(math.abs(got.now - mg.time()) < 5)
  lu.assertEquals(got.iter, { a, a + 1, a + 2, a + 3 })
  lu.assertEquals(got.units.n, 3)                 -- a, group g, d
  lu.assertEquals(got.units.count, { 1, 2, 1 })
  lu.assertEquals(got.units.tokens, { 1, 5, 1 })
  lu.assertEquals(got.units.priority, { 0, 4, 0 })
  lu.assertEquals(got.units.group[2], "g")
  lu.assertFalse(got.add[1])
  lu.assertStrContains(got.add[2], "store view is read-only: it has no 'add'")
  lu.assertFalse(got.set[1])
  lu.assertStrContains(got.set[2], "read-only")
  lu.assertStrContains(got.tostr, "mg.store.view 'v' (4 messages)")
  -- after the strategy returned, the view is dead
  lu.assertErrorMsgContains("store view used after its strategy returned",
                            function() return leaked:len() end)
  lu.assertErrorMsgContains("store view used after its strategy returned",
                            function() return leaked.name end)
  lu.assertEquals(tostring(leaked), "mg.store.view (expired)")
end

TestCallbacks = {}

function TestCallbacks:test_on_warn_once_per_crossing_and_rearmed()
  local warns = {}
  local ctx = assert(mg.store{ max_messages = 10, max_total_size = 20000,
    on_warn = function(store, kind, stats)
      warns[#warns + 1] = { kind, stats.message_count, store:len() }
    end })
  local ids = {}
  for i = 1, 7 do ids[i] = assert(ctx:add{ content = "m" .. i }) end
  lu.assertEquals(#warns, 0)
  ids[8] = assert(ctx:add{ content = "m8" })
  lu.assertEquals(warns, { { "message_count", 8, 8 } })
  assert(ctx:add{ content = "m9" })
  assert(ctx:add{ content = "m10" })
  lu.assertEquals(#warns, 1) -- still above: no repeat
  for i = 1, 3 do assert(ctx:remove(ids[i])) end
  lu.assertEquals(#warns, 1) -- 7: below, re-armed
  assert(ctx:add{ content = "again" })
  lu.assertEquals(#warns, 2)
  lu.assertEquals(warns[2][1], "message_count")
  -- size: one big message crosses 80 % of 20000
  assert(ctx:add{ content = string.rep("s", 15000) })
  lu.assertEquals(warns[3][1], "total_size")
  lu.assertEquals(#warns, 3)
end

function TestCallbacks:test_on_warn_log_lines_and_errors()
  local status, out = h.run([[
    local ctx = assert(mg.store{ name = "w", max_messages = 5,
      max_tokens = 10, on_warn = function(store, kind, stats)
        print("on_warn", kind, store.name)
        if kind == "tokens" then error("warn handler bug") end
      end })
    for i = 1, 4 do assert(ctx:add{ content = "m", tokens = 2 }) end
    print("still running", ctx:len())
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "approaching_message_limit store=w")
  lu.assertStrContains(out, "approaching_token_limit store=w")
  lu.assertStrContains(out, "on_warn\tmessage_count\tw")
  lu.assertStrContains(out, "on_warn\ttokens\tw")
  lu.assertStrContains(out, "warn handler bug") -- logged, not raised
  lu.assertStrContains(out, "still running\t4")
  status, out = h.run([[
    local ctx = assert(mg.store{ name = "w", max_total_size = 2048 })
    assert(ctx:add{ content = string.rep("x", 1700) })
  ]])
  lu.assertStrContains(out, "approaching_size_limit store=w")
end

function TestCallbacks:test_on_evict_sees_messages_before_they_are_freed()
  local calls = {}
  local ctx
  ctx = assert(mg.store{ max_messages = 4, on_full = "prune",
    on_evict = function(store, msgs, reason)
      calls[#calls + 1] = { reason = reason, n = #msgs, len = store:len(),
                            first = msgs[1], still = store:get(msgs[1].id) }
    end })
  local first = assert(ctx:add{ role = "user", content = "first",
                                meta = { k = "v" } })
  for i = 2, 4 do assert(ctx:add{ content = "m" .. i }) end
  assert(ctx:add{ content = "m5" })
  lu.assertEquals(#calls, 1)
  lu.assertEquals(calls[1].reason, "strategy")
  lu.assertEquals(calls[1].n, 1)
  lu.assertEquals(calls[1].len, 4) -- not yet removed
  lu.assertEquals(calls[1].first.id, first)
  lu.assertEquals(calls[1].first.content, "first")
  lu.assertEquals(calls[1].first.meta, { k = "v" })
  lu.assertEquals(calls[1].still, calls[1].first)
  lu.assertEquals(ctx:prune(1), 3)
  lu.assertEquals(calls[2].reason, "prune")
  lu.assertEquals(calls[2].n, 3)
end

function TestCallbacks:test_on_evict_refusal_fails_the_add()
  local mode = "error"
  local ctx = assert(mg.store{ max_messages = 3, on_full = "prune",
    on_evict = function()
      if mode == "error" then error("cannot persist") end
      if mode == "false" then return false, "disk full" end
    end })
  for i = 1, 3 do assert(ctx:add{ content = "m" .. i }) end
  local before = dump(ctx)
  local id, err = ctx:add{ content = "m4" }
  lu.assertNil(id)
  lu.assertStrContains(err.message, "on_evict refused the eviction")
  lu.assertStrContains(err.message, "cannot persist")
  lu.assertEquals(dump(ctx), before)
  mode = "false"
  id, err = ctx:add{ content = "m4" }
  lu.assertNil(id)
  lu.assertStrContains(err.message, "disk full")
  local removed, perr = ctx:prune(0)
  lu.assertNil(removed)
  lu.assertStrContains(perr, "disk full")
  lu.assertEquals(dump(ctx), before)
  mode = "ok"
  lu.assertNotNil(ctx:add{ content = "m4" })
end

function TestCallbacks:test_close_inside_a_callback_is_deferred()
  local ctx
  ctx = assert(mg.store{ max_messages = 2, on_full = "prune",
    on_evict = function(store) store:close() end })
  assert(ctx:add{ content = "a" })
  assert(ctx:add{ content = "b" })
  local id = ctx:add{ content = "c" } -- completes, then the store closes
  lu.assertNotNil(id)
  lu.assertStrContains(tostring(ctx), "(closed)")
  lu.assertErrorMsgContains("is closed", function() return ctx:len() end)
end

TestArchive = {}

local function lines(path)
  local t = {}
  local f = io.open(path, "r")
  if not f then return t end
  for l in f:lines() do t[#t + 1] = l end
  f:close()
  return t
end

function TestArchive:test_evictions_are_archived()
  local path = tmp("archive.jsonl")
  local ctx = assert(mg.store{ name = "arch", max_messages = 3,
                               on_full = "prune", archive = path })
  local ids = {}
  for i = 1, 5 do ids[i] = assert(ctx:add{ content = "m" .. i, group = i == 1
                                           and "g1" or nil }) end
  lu.assertEquals(ctx:prune(1), 2)
  local l = lines(path)
  lu.assertEquals(#l, 4)
  lu.assertStrContains(l[1], '"id":' .. ids[1])
  lu.assertStrContains(l[1], '"group":"g1"')
  lu.assertStrContains(l[1], '"reason":"strategy"')
  lu.assertStrContains(l[1], '"store":"arch"')
  lu.assertStrContains(l[2], '"id":' .. ids[2])
  lu.assertStrContains(l[3], '"id":' .. ids[3])
  lu.assertStrContains(l[4], '"id":' .. ids[4])
  lu.assertStrContains(l[4], '"reason":"prune"')
  lu.assertEquals(ctx:stats().archived_count, 4)
  os.remove(path)
end

function TestArchive:test_archive_failure_fails_the_add()
  for _, path in ipairs({ "/nonexistent-dir/sub/archive.jsonl", "/dev/full" }) do
    local ctx = assert(mg.store{ max_messages = 3, on_full = "prune",
                                 archive = path })
    for i = 1, 3 do assert(ctx:add{ content = "m" .. i }) end
    local before = dump(ctx)
    local id, err = ctx:add{ content = "m4" }
    lu.assertNil(id, path)
    lu.assertStrContains(err.message, "Message count 3 exceeds limit of 3", path)
    lu.assertStrContains(err.message, path)
    lu.assertEquals(dump(ctx), before, path)
    local removed, perr = ctx:prune(0)
    lu.assertNil(removed)
    lu.assertStrContains(perr, path)
    lu.assertEquals(dump(ctx), before, path)
  end
end

os.exit(lu.LuaUnit.run(table.unpack(arg)))
