-- agent_context.lua — a simulated agent conversation against a small
-- bounded context store: a pinned system prompt, user turns, tool calls
-- whose parallel results share the call's group, a growing history. The
-- store prunes itself with a strategy; the policy prints stats, warnings
-- and evictions as it goes, archives evicted messages to a JSONL file,
-- and checks at the end that nothing pinned was lost and no group split.
--
--   mgrun policies/agent_context.lua [STRATEGY [TURNS [ARCHIVE]]]
--
-- STRATEGY: user_turn_start (default), oldest, keep_last, lowest_priority,
-- token_budget, older_than, summarize. TURNS: default 30. ARCHIVE: the
-- JSONL file (default: a temporary file, removed at the end — except under
-- --sandbox, which has no os.remove).
local S = require("mg.strategies")
local fmt = mg.format_size

local strategy_name = arg[1] or "user_turn_start"
local turns = math.tointeger(tonumber(arg[2] or "30"))
if not turns or turns < 1 then
  io.stderr:write(("agent_context.lua: TURNS must be a positive integer, got %q\n")
                  :format(tostring(arg[2])))
  mg.exit(2)
end
local archive = arg[3]
local keep_archive = archive ~= nil
archive = archive or ("%s/mgrun-agent-context-%d.jsonl")
  :format(os.getenv("TMPDIR") or "/tmp", mg.pid)
local remove = os.remove or function() end -- (--sandbox has no os.remove)
remove(archive)

-- A summarizer standing in for an LLM call: the first words of each turn.
local function summarizer(msgs)
  local parts = {}
  for _, m in ipairs(msgs) do
    parts[#parts + 1] = ("%s: %s"):format(m.role, m.content:match("^%S+ ?%S*"))
  end
  return "Earlier: " .. table.concat(parts, "; ")
end

local strategies = {
  user_turn_start = S.user_turn_start,
  oldest = "oldest",
  keep_last = S.keep_last(10),
  lowest_priority = S.lowest_priority_first,
  token_budget = S.token_budget(600),
  older_than = S.older_than(3600),
  summarize = S.summarize(summarizer, { fraction = 0.5 }),
}
local strategy = strategies[strategy_name]
if strategy == nil then
  local names = {}
  for k in pairs(strategies) do names[#names + 1] = k end
  table.sort(names)
  error(("unknown strategy '%s' (accepted: %s)")
    :format(strategy_name, table.concat(names, ", ")), 0)
end

local evicted, evicted_groups, warnings = 0, {}, 0
-- "1 message", "2 messages"
local function n(count, word)
  return ("%d %s%s"):format(count, word, count == 1 and "" or "s")
end

local ctx = assert(mg.store{
  name = "agent",
  max_messages = 24,
  max_total_size = "10K",
  max_tokens = 1200,
  warn_at = 0.75,
  on_full = "prune",
  strategy = strategy,
  archive = archive,
  on_warn = function(store, kind, st)
    warnings = warnings + 1
    local used = kind == "message_count" and st.message_count_utilization
      or kind == "total_size" and st.total_size_utilization
      or st.token_utilization
    print(("  warn: %s at %.0f%% of its limit (%s, %s, %s)")
      :format(kind, used * 100, n(st.message_count, "message"),
              fmt(st.total_size_bytes), n(st.total_tokens, "token")))
  end,
  on_evict = function(store, msgs, reason)
    local what = {}
    for _, m in ipairs(msgs) do
      what[#what + 1] = ("#%d %s%s"):format(m.id, m.role,
        m.group and ("[" .. m.group .. "]") or "")
      if m.group then evicted_groups[m.group] = true end
      assert(not m.pinned, "a pinned message reached on_evict")
    end
    evicted = evicted + #msgs
    print(("  evicted %d (%s): %s"):format(#msgs, reason, table.concat(what, " ")))
  end,
})

local function stats_line(label)
  local st = ctx:stats()
  print(("%s: %s, %s (payload %s + overhead %s), %s; "
         .. "%.0f%% of messages, %.0f%% of size, %.0f%% of tokens")
    :format(label, n(st.message_count, "message"), fmt(st.total_size_bytes),
            fmt(st.payload_bytes), fmt(st.overhead_bytes),
            n(st.total_tokens, "token"),
            st.message_count_utilization * 100,
            st.total_size_utilization * 100, st.token_utilization * 100))
end

print(("agent_context: store '%s', at most 24 messages / %s / 1200 tokens, "
       .. "strategy %s, archive %s"):format(ctx.name, fmt(10 * 1024),
                                            ctx.strategy, archive))

local system = assert(ctx:add{ role = "system", pinned = true, tokens = 40,
  content = "You are a careful assistant. Use tools when they help." })

-- Deterministic "agent": a fixed pseudo-random sequence.
math.randomseed(42)
local added = 1
local function add(m)
  local id, err = ctx:add(m)
  if not id then
    error(("add failed: %s"):format(tostring(err)), 2)
  end
  added = added + 1
  -- no group evicted by this add may have a member left
  for g in pairs(evicted_groups) do
    for r in ctx:messages() do
      if r.group == g and r.id < id then
        error(("group %s was split"):format(g))
      end
    end
  end
  evicted_groups = {}
  return id
end

local turn = 0
mg.every(2, function(timer)
  turn = turn + 1
  print(("turn %d"):format(turn))
  add{ role = "user", content = ("question %d: %s"):format(turn,
         string.rep("please look into this ", math.random(1, 8))),
       priority = 2 }
  if math.random() < 0.6 then -- the model calls 1..3 tools in parallel
    local call = "call-" .. turn
    local n = math.random(1, 3)
    add{ role = "assistant", group = call, priority = 1,
         content = ("calling %d tool(s)"):format(n) }
    for r = 1, n do
      add{ role = "tool", group = call, priority = 0, source = "tool" .. r,
           content = ("result %d of %s: %s"):format(r, call,
             string.rep("data ", math.random(10, 120))),
           meta = { tool = ("tool%d"):format(r) } }
    end
  end
  add{ role = "assistant", priority = 1, content = ("answer %d: %s")
         :format(turn, string.rep("because ", math.random(2, 20))) }
  if turn % 5 == 0 then stats_line(("stats after turn %d"):format(turn)) end
  if turn < turns then return end

  timer:stop()
  stats_line("final")
  assert(ctx:get(system), "the pinned system prompt was lost")
  assert(ctx:check())
  local first
  for m in ctx:messages() do
    if not m.pinned then first = first or m end
  end
  local lines = "?" -- (--sandbox has no io)
  local f = io and io.open(archive, "r")
  if io then lines = 0 end
  if f then
    for _ in f:lines() do lines = lines + 1 end
    f:close()
  end
  local st = ctx:stats()
  print(("done: %s, %s added, %d evicted (archived %d, %s in the archive), "
         .. "%d kept, %s; %s")
    :format(n(turn, "turn"), n(added, "message"), evicted, st.archived_count,
            type(lines) == "number" and n(lines, "line") or lines .. " lines",
            st.message_count,
            st.replaced_count == 1 and "1 summary"
              or ("%d summaries"):format(st.replaced_count),
            n(warnings, "warning")))
  print(("history starts with: %s"):format(first and first.role or "nothing"))
  print("system prompt kept; groups whole; check ok")
  if not keep_archive then remove(archive) end
end)
