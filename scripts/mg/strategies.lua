-- mg/strategies.lua — pruning strategies for mg.store (require("mg.strategies")).
--
-- A strategy is a function(view, need) that mg.store calls when a full
-- store (on_full = "prune") must make room, or on ctx:make_room{...}. It
-- reads the store through the read-only `view` and returns the ids to
-- evict, and optionally one replacement message (a summary). C validates
-- and applies the answer atomically: it evicts each chosen message's whole
-- group, refuses pinned messages and unknown ids, and checks that enough
-- was freed; otherwise the add fails and the store is unchanged.
--
--   need = { count = messages, bytes = accounted bytes, tokens = tokens,
--            limit_type = "message_count"|"total_size"|"tokens",
--            group = the group of the message being added, or nil }
--
-- Everything here thinks in *units*: a message without a group, or a whole
-- group (a tool call and all its results). Units that hold a pinned
-- message are never chosen, nor the group of the message being added (a
-- tool result arriving must not lose its call). So no strategy below can
-- split a group or touch a pin, and the sizes they add up are what C will
-- really free.
--
--   local S = require("mg.strategies")
--   mg.store{ on_full = "prune", strategy = S.keep_last(50) }
--
-- Plain strategies: S.oldest (C fast path when given as `strategy`; the
-- string "oldest" is the same), S.lowest_priority_first, S.user_turn_start.
-- Constructors: S.keep_last(n), S.older_than(seconds [, opts]),
-- S.token_budget(max_tokens), S.summarize(summarizer [, opts]).
-- Helpers for writing your own: S.units(view), S.evictable(u, k, need),
-- S.enough(acc, need).
local mg = require("mg") -- also where there is no global mg (mg.so)
local S = {}

-- Names of the functions below, for error messages (weak keys).
S.names = setmetatable({}, { __mode = "k" })

local function named(fn, name)
  S.names[fn] = name
  return fn
end

local ceil = math.ceil

local function check_count(v, what, fname)
  if math.type(v) ~= "integer" or v < 0 then
    error(("bad argument #1 to '%s' (%s must be a non-negative integer, got %s)")
      :format(fname, what, tostring(v)), 3)
  end
end

--- S.units(view) → u, of (view:units(), built in C)
-- u.n units in store order (by their oldest member), as parallel arrays:
--   u.id[k]     an id of the unit (evicting it evicts the whole unit)
--   u.first[k]  position (1 = oldest) of its oldest member
--   u.count[k], u.bytes[k], u.tokens[k]  what evicting it frees
--   u.pinned[k] true when a member is pinned (never evictable)
--   u.priority[k] highest member priority; u.time[k] newest member time
--   u.role[k]   role of its oldest member; u.group[k] group or nil
-- of[pos] is the unit of the message at position pos.
function S.units(view)
  return view:units()
end

-- An accumulator of chosen units.
local function acc_new()
  return { ids = {}, count = 0, bytes = 0, tokens = 0 }
end

local function take(u, k, acc)
  local ids = acc.ids
  ids[#ids + 1] = u.id[k]
  acc.count = acc.count + u.count[k]
  acc.bytes = acc.bytes + u.bytes[k]
  acc.tokens = acc.tokens + u.tokens[k]
end

--- S.evictable(u, k, need) → whether unit k may be chosen: no pinned
-- member, and not the group of the message being added.
function S.evictable(u, k, need)
  return not u.pinned[k] and (need.group == nil or u.group[k] ~= need.group)
end
local evictable = S.evictable

--- S.enough(acc, need) → whether acc frees at least need in every dimension.
function S.enough(acc, need)
  return acc.count >= need.count and acc.bytes >= need.bytes
    and acc.tokens >= need.tokens
end
local enough = S.enough

--- S.oldest(view, need): oldest units first until need is met. Given as
-- `strategy = S.oldest` (or "oldest") the store uses its C fast path,
-- which chooses exactly the same messages; the Lua function is here for
-- strategies that fall back on it.
S.oldest = named(function(view, need)
  local u = S.units(view)
  local acc = acc_new()
  for k = 1, u.n do
    if enough(acc, need) then break end
    if evictable(u, k, need) then take(u, k, acc) end
  end
  return acc.ids
end, "oldest")

--- S.keep_last(n): keep only the newest n messages besides pinned ones
-- (evicting, oldest first, down to n at once so that the store does not
-- run its strategy at every add), and more if need asks for more.
function S.keep_last(n)
  check_count(n, "n", "keep_last")
  return named(function(view, need)
    local u = S.units(view)
    local unpinned = 0
    for k = 1, u.n do
      if evictable(u, k, need) then unpinned = unpinned + u.count[k] end
    end
    local acc = acc_new()
    for k = 1, u.n do
      if unpinned - acc.count <= n and enough(acc, need) then break end
      if evictable(u, k, need) then take(u, k, acc) end
    end
    return acc.ids
  end, ("keep_last(%d)"):format(n))
end

--- S.lowest_priority_first: the units of lowest priority first (a group
-- counts with its highest member priority), oldest first among equals.
S.lowest_priority_first = named(function(view, need)
  local u = S.units(view)
  local buckets, prios = {}, {}
  for k = 1, u.n do
    if evictable(u, k, need) then
      local p = u.priority[k]
      local b = buckets[p]
      if not b then
        b = {}
        buckets[p] = b
        prios[#prios + 1] = p
      end
      b[#b + 1] = k
    end
  end
  table.sort(prios)
  local acc = acc_new()
  for _, p in ipairs(prios) do
    local b = buckets[p]
    for j = 1, #b do
      if enough(acc, need) then return acc.ids end
      take(u, b[j], acc)
    end
  end
  return acc.ids
end, "lowest_priority_first")

--- S.older_than(seconds [, opts]): evict every unit whose newest message
-- is older than `seconds`; when that frees too little, go on oldest first
-- — unless opts.strict, then the add fails instead. opts.now: a function
-- returning the current unix time (default view:now(), the clock of
-- message times).
function S.older_than(seconds, opts)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error(("bad argument #1 to 'older_than' (seconds must be a non-negative "
      .. "number, got %s)"):format(tostring(seconds)), 2)
  end
  opts = opts or {}
  local now, strict = opts.now, opts.strict
  return named(function(view, need)
    local u = S.units(view)
    local cut = (now and now() or view:now()) - seconds
    local acc, taken = acc_new(), {}
    for k = 1, u.n do
      if evictable(u, k, need) and u.time[k] < cut then
        take(u, k, acc)
        taken[k] = true
      end
    end
    if not strict then
      for k = 1, u.n do
        if enough(acc, need) then break end
        if evictable(u, k, need) and not taken[k] then take(u, k, acc) end
      end
    end
    return acc.ids
  end, ("older_than(%g)"):format(seconds))
end

--- S.token_budget(max_tokens): keep the store's messages within
-- max_tokens tokens (before the new message), oldest first, and free at
-- least need.
function S.token_budget(max_tokens)
  check_count(max_tokens, "max_tokens", "token_budget")
  return named(function(view, need)
    local u = S.units(view)
    local total = view:stats().total_tokens
    local acc = acc_new()
    for k = 1, u.n do
      if total - acc.tokens <= max_tokens and enough(acc, need) then break end
      if evictable(u, k, need) then take(u, k, acc) end
    end
    return acc.ids
  end, ("token_budget(%d)"):format(max_tokens))
end

--- S.user_turn_start: oldest first until need is met, then on until the
-- kept history (after the pinned messages) starts on a user turn: chat
-- APIs reject a history that starts with an assistant or tool message.
S.user_turn_start = named(function(view, need)
  local u = S.units(view)
  local acc = acc_new()
  local k = 1
  while k <= u.n and not enough(acc, need) do
    if evictable(u, k, need) then take(u, k, acc) end
    k = k + 1
  end
  while k <= u.n do
    if evictable(u, k, need) then
      if u.role[k] == "user" then break end
      take(u, k, acc)
    end
    k = k + 1
  end
  return acc.ids
end, "user_turn_start")

-- Accounted size of a message table (as the store counts it).
local function msg_size(m)
  local n = #(m.content or "") + #(m.role or "") + #(m.source or "")
    + #(m.group or "")
  for key, v in pairs(m.meta or {}) do n = n + #key + #v + 2 end
  return n + mg.store_msg_overhead
end

--- S.summarize(summarizer [, opts]): summarize-and-replace. Chooses the
-- oldest units (at least opts.fraction of the evictable ones, default
-- 0.5, and at least what need asks for plus room for the summary), calls
-- summarizer(messages, need) with copies of the chosen messages (oldest
-- first), and replaces them with one message: the summary takes the place
-- of the oldest of them. The summarizer returns a string (the content;
-- role opts.role or "system", source opts.source or "summary") or a
-- message table. When the summary is too big for what was chosen, more
-- is chosen and the summarizer runs again. A summarizer that errors makes
-- the strategy fail: the add fails and the store is unchanged.
function S.summarize(summarizer, opts)
  if type(summarizer) ~= "function" then
    error(("bad argument #1 to 'summarize' (function expected, got %s)")
      :format(type(summarizer)), 2)
  end
  opts = opts or {}
  local fraction = opts.fraction or 0.5
  if type(fraction) ~= "number" or not (fraction > 0 and fraction <= 1) then
    error("bad argument #2 to 'summarize' (fraction must be > 0 and <= 1)", 2)
  end
  local role, source = opts.role or "system", opts.source or "summary"
  return named(function(view, need)
    local u, of = S.units(view)
    local cands = {}
    for k = 1, u.n do
      if evictable(u, k, need) then cands[#cands + 1] = k end
    end
    local acc, chosen, i = acc_new(), {}, 0
    local want = { count = need.count + 1, bytes = need.bytes,
                   tokens = need.tokens }
    local target = ceil(#cands * fraction)
    local function grow()
      while i < #cands and (i < target or not enough(acc, want)) do
        i = i + 1
        take(u, cands[i], acc)
        chosen[cands[i]] = true
      end
    end
    grow()
    while true do
      local msgs = {}
      for pos = 1, view:len() do
        if chosen[of[pos]] then msgs[#msgs + 1] = view:at(pos) end
      end
      local out = summarizer(msgs, need)
      local repl = out
      if type(out) == "string" then
        repl = { role = role, content = out, source = source }
      elseif type(out) ~= "table" then
        error(("summarizer must return a string or a message table, got %s")
          :format(type(out)))
      end
      local rtokens = repl.tokens or ceil(#(repl.content or "") / 4)
      want = { count = need.count + 1, bytes = need.bytes + msg_size(repl),
               tokens = need.tokens + rtokens }
      if enough(acc, want) or i >= #cands then return acc.ids, repl end
      target = i + 1
      grow()
    end
  end, "summarize")
end

-- Strategies that a store accepts by name (strategy = "user_turn_start").
S.builtin = {
  oldest = S.oldest,
  lowest_priority_first = S.lowest_priority_first,
  user_turn_start = S.user_turn_start,
}

return S
