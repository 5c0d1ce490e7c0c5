-- The bounded context store through mgrun: the seed's eight cases, the
-- seed's bugs fixed, the object's API, snapshots, misuse.
-- (Strategies, callbacks and failing strategies: test_store_strategies.lua.)
local lu = require("luaunit")
local h = require("helper")

local OVERHEAD = mg.store_msg_overhead
local function tmp(name) return h.tmp(name, "store") end
local dump = h.store_dump

local function fill(ctx, n, extra)
  local ids = {}
  for i = 1, n do
    local m = { role = "user", content = "message " .. i }
    for k, v in pairs(extra or {}) do m[k] = v end
    ids[i] = assert(ctx:add(m))
  end
  return ids
end

TestStoreSeed = {}

-- 1. counts: message_count, total_size_bytes = sum of sizes, largest
function TestStoreSeed:test_counts()
  local ctx = assert(mg.store{ max_messages = 10 })
  fill(ctx, 4)
  assert(ctx:add{ role = "assistant", content = string.rep("x", 100) })
  local st, sum, largest = ctx:stats(), 0, 0
  for m in ctx:messages() do
    sum = sum + m.size
    largest = math.max(largest, m.size)
    lu.assertEquals(m.size, #m.content + #m.role + OVERHEAD)
  end
  lu.assertEquals(st.message_count, 5)
  lu.assertEquals(ctx:len(), 5)
  lu.assertEquals(#ctx, 5)
  lu.assertEquals(st.total_size_bytes, sum)
  lu.assertEquals(st.largest_message_bytes, largest)
  lu.assertEquals(st.largest_message_bytes, 100 + 9 + OVERHEAD)
  lu.assertEquals(st.payload_bytes + st.overhead_bytes, st.total_size_bytes)
  lu.assertEquals(st.overhead_bytes, 5 * OVERHEAD)
end

-- 2. utilisation 0.5
function TestStoreSeed:test_utilization_half()
  local ctx = assert(mg.store{ max_messages = 10 })
  fill(ctx, 5)
  local st = ctx:stats()
  lu.assertEquals(st.message_count_utilization, 0.5)
  lu.assertFalse(st.near_message_limit)
  lu.assertFalse(st.near_size_limit)
end

-- 3. near at 8/10 (not at 7)
function TestStoreSeed:test_near_at_8_of_10()
  local ctx = assert(mg.store{ max_messages = 10 })
  fill(ctx, 7)
  lu.assertFalse(ctx:stats().near_message_limit)
  fill(ctx, 1)
  local st = ctx:stats()
  lu.assertTrue(st.near_message_limit)
  lu.assertEquals(st.message_count_utilization, 0.8)
end

-- 4. message_count error: current 3, limit 3, the seed's sentence
function TestStoreSeed:test_message_count_error()
  local ctx = assert(mg.store{ name = "seed", max_messages = 3 })
  fill(ctx, 3)
  local id, err = ctx:add{ role = "user", content = "one too many" }
  lu.assertNil(id)
  lu.assertEquals(type(err), "table")
  lu.assertEquals(err.limit_type, "message_count")
  lu.assertEquals(err.current, 3)
  lu.assertEquals(err.limit, 3)
  lu.assertEquals(err.message, "Message count 3 exceeds limit of 3")
  lu.assertEquals(tostring(err), "Message count 3 exceeds limit of 3")
  lu.assertStrContains(err.details, "store 'seed'")
  lu.assertEquals(err.code, "ELIMIT")
  lu.assertEquals(ctx:len(), 3)
end

-- 5. message_size error: a 50,000-byte message against 1024
function TestStoreSeed:test_message_size_error()
  local ctx = assert(mg.store{ max_message_size = 1024 })
  local id, err = ctx:add{ content = string.rep("z", 50000) }
  lu.assertNil(id)
  lu.assertEquals(err.limit_type, "message_size")
  lu.assertEquals(err.current, 50000 + OVERHEAD)
  lu.assertEquals(err.limit, 1024)
  lu.assertEquals(tostring(err),
    ("Message size %d exceeds limit of 1024"):format(50000 + OVERHEAD))
  lu.assertEquals(ctx:len(), 0)
end

-- 6. prune(3) of 8 keeps the newest three and returns 5
function TestStoreSeed:test_prune_3_of_8()
  local ctx = assert(mg.store{})
  local ids = fill(ctx, 8)
  lu.assertEquals(ctx:prune(3), 5)
  local kept = {}
  for m in ctx:messages() do kept[#kept + 1] = m.id end
  lu.assertEquals(kept, { ids[6], ids[7], ids[8] })
  lu.assertEquals(ctx:get(ids[6]).content, "message 6")
end

-- 7. prune() of 9 with max 10 keeps max // 2 = 5
function TestStoreSeed:test_prune_default_of_9()
  local ctx = assert(mg.store{ max_messages = 10 })
  fill(ctx, 9)
  lu.assertEquals(ctx:prune(), 4)
  lu.assertEquals(ctx:len(), 5)
end

-- 8. custom limits are kept
function TestStoreSeed:test_custom_limits_kept()
  local ctx = assert(mg.store{ max_messages = 500, max_message_size = "2M",
                               max_total_size = "50 MB", max_tokens = 4000,
                               warn_at = 0.9 })
  local st = ctx:stats()
  lu.assertEquals(st.max_messages, 500)
  lu.assertEquals(st.max_message_size_bytes, 2 * 1024 * 1024)
  lu.assertEquals(st.max_total_size_bytes, 50 * 1024 * 1024)
  lu.assertEquals(st.max_tokens, 4000)
  lu.assertEquals(st.warn_at, 0.9)
  -- and the seed's defaults
  st = assert(mg.store()):stats()
  lu.assertEquals(st.max_messages, 1000)
  lu.assertEquals(st.max_message_size_bytes, 1048576)
  lu.assertEquals(st.max_total_size_bytes, 104857600)
  lu.assertNil(st.max_tokens)
  lu.assertEquals(st.warn_at, 0.8)
end

TestStoreSeedBugs = {}

-- The seed appended, then removed: a rejected add must leave everything
-- as it was (messages, stats, next id: the snapshot is byte-identical).
function TestStoreSeedBugs:test_rejected_add_is_atomic()
  local ctx = assert(mg.store{ max_messages = 4, max_total_size = 2048,
                               max_tokens = 100 })
  assert(ctx:add{ role = "system", content = "sys", pinned = true,
                  meta = { k = "v" } })
  assert(ctx:add{ role = "tool", content = "\0\1\2", group = "g1", tokens = 5 })
  local before = dump(ctx)
  local cases = {
    { content = string.rep("a", 3000) },               -- message_size
    { content = string.rep("a", 1600), tokens = 1 },   -- total_size
    { content = "t", tokens = 200 },                   -- tokens
  }
  for _, m in ipairs(cases) do
    local id, err = ctx:add(m)
    lu.assertNil(id)
    lu.assertEquals(type(err), "table")
    lu.assertEquals(dump(ctx), before, err.message)
  end
  fill(ctx, 2)
  before = dump(ctx)
  local id, err = ctx:add{ content = "fifth" }           -- message_count
  lu.assertNil(id)
  lu.assertEquals(err.limit_type, "message_count")
  lu.assertEquals(dump(ctx), before)
  lu.assertEquals(ctx:stats().rejected_count, 4)
  -- a non-limit failure is a string, and atomic too
  id, err = ctx:add{ role = "bad\xff" }
  lu.assertNil(id)
  lu.assertEquals(type(err), "string")
  lu.assertStrContains(err, "UTF-8")
  lu.assertEquals(dump(ctx), before)
end

-- The seed reported every message as removed for keep_count = 0.
function TestStoreSeedBugs:test_prune_0_returns_true_count()
  local ctx = assert(mg.store{})
  assert(ctx:add{ role = "system", content = "sys", pinned = true })
  fill(ctx, 4)
  lu.assertEquals(ctx:prune(0), 4)
  lu.assertEquals(ctx:len(), 1)
  lu.assertEquals(ctx:prune(0), 0)
  lu.assertEquals(ctx:len(), 1)
end

-- The seed raised computing utilisation above 100 % after a limit was
-- lowered.
function TestStoreSeedBugs:test_stats_above_100_percent()
  local ctx = assert(mg.store{ max_messages = 10, max_total_size = 8192 })
  fill(ctx, 8)
  assert(ctx:set_limits{ max_messages = 4, max_total_size = 1024 })
  local st = ctx:stats()
  lu.assertEquals(st.message_count, 8)
  lu.assertEquals(st.message_count_utilization, 2.0)
  lu.assertTrue(st.total_size_utilization > 1)
  lu.assertTrue(st.near_message_limit)
  lu.assertTrue(ctx:check()) -- lowered limits are not corruption
  local id, err = ctx:add{ content = "x" }
  lu.assertNil(id)
  lu.assertEquals(err.limit_type, "message_count")
  lu.assertEquals(err.current, 8)
  lu.assertEquals(err.limit, 4)
  lu.assertEquals(ctx:prune(2), 6)
  lu.assertTrue(ctx:check())
end

-- The seed re-measured every message on each add. Here the totals are
-- incremental and tokens are estimated once at insert: the estimator is
-- never called again (not by stats, evictions, prune or a strategy), and
-- an add costs the same in a store of 40,000 messages as in an empty one.
function TestStoreSeedBugs:test_no_recount()
  local calls = 0
  local ctx = assert(mg.store{ max_messages = 100000, on_full = "prune",
    estimator = function(content) calls = calls + 1; return #content end })
  fill(ctx, 10)
  lu.assertEquals(calls, 10)
  ctx:stats(); ctx:check()
  assert(ctx:set_limits{ max_messages = 5 })
  fill(ctx, 3)                     -- evicts through the strategy
  lu.assertEquals(calls, 13)
  ctx:prune(1)
  ctx:stats()
  lu.assertEquals(calls, 13)
  assert(ctx:add{ content = "given", tokens = 7 })
  lu.assertEquals(calls, 13)

  local function per_add(store)
    local s = string.rep("y", 64)
    local t0 = os.clock()
    for _ = 1, 4000 do assert(store:add{ content = s, tokens = 1 }) end
    return (os.clock() - t0) / 4000
  end
  local small = assert(mg.store{ max_messages = 100000 })
  local big = assert(mg.store{ max_messages = 100000 })
  for _ = 1, 40000 do assert(big:add{ content = "z", tokens = 1 }) end
  local a, b = per_add(small), per_add(big)
  lu.assertTrue(b < a * 4 + 2e-6, ("%.2g s per add at 40k vs %.2g s at 0")
    :format(b, a))
  local st, sum = big:stats(), 0
  for m in big:messages() do sum = sum + m.size end
  lu.assertEquals(st.total_size_bytes, sum)
end

TestStoreApi = {}

function TestStoreApi:test_message_fields_round_trip()
  local ctx = assert(mg.store{ name = "fields" })
  local bin = {}
  for i = 0, 255 do bin[#bin + 1] = string.char(i) end
  bin = table.concat(bin)
  local t0 = mg.time()
  local id = assert(ctx:add{ role = "tool", content = bin, source = "grep",
    group = "call-1", pinned = true, priority = -3, tokens = 42,
    meta = { tool = "grep", call = "c1" } })
  local m = ctx:get(id)
  lu.assertEquals(m.id, id)
  lu.assertEquals(m.role, "tool")
  lu.assertEquals(m.content, bin)
  lu.assertEquals(m.source, "grep")
  lu.assertEquals(m.group, "call-1")
  lu.assertTrue(m.pinned)
  lu.assertEquals(m.priority, -3)
  lu.assertEquals(m.tokens, 42)
  lu.assertEquals(m.meta, { tool = "grep", call = "c1" })
  lu.assertTrue(math.abs(m.time - t0) < 5)
  lu.assertEquals(m.size, 256 + 4 + 4 + 6 + (4 + 1 + 4 + 1) + (4 + 1 + 2 + 1)
                          + OVERHEAD)
  -- defaults: no source/group/meta, tokens = ceil(len / 4)
  m = ctx:get(assert(ctx:add{ content = "abcde" }))
  lu.assertEquals(m.role, "")
  lu.assertNil(m.source)
  lu.assertNil(m.group)
  lu.assertNil(m.meta)
  lu.assertFalse(m.pinned)
  lu.assertEquals(m.priority, 0)
  lu.assertEquals(m.tokens, 2)
  lu.assertNil(ctx:get(999))
  lu.assertEquals(ctx.name, "fields")
  lu.assertEquals(ctx.strategy, "oldest")
  lu.assertStrContains(tostring(ctx), "mg.store 'fields' (2 messages)")
end

function TestStoreApi:test_ids_increase_and_are_not_reused()
  local ctx = assert(mg.store{})
  local a = assert(ctx:add{ content = "a" })
  local b = assert(ctx:add{ content = "b" })
  lu.assertTrue(b > a)
  assert(ctx:remove(b))
  lu.assertEquals(ctx:clear(), 1)
  local c = assert(ctx:add{ content = "c" })
  lu.assertTrue(c > b)
end

function TestStoreApi:test_remove_takes_only_that_id()
  local ctx = assert(mg.store{})
  local a = assert(ctx:add{ content = "call", group = "g" })
  local b = assert(ctx:add{ content = "result", group = "g" })
  lu.assertTrue(ctx:remove(a))
  lu.assertNotNil(ctx:get(b))
  local ok, err = ctx:remove(a)
  lu.assertNil(ok)
  lu.assertStrContains(err, "has no message " .. a)
  lu.assertEquals(ctx:stats().removed_count, 1)
end

function TestStoreApi:test_clear_removes_pinned_too()
  local ctx = assert(mg.store{})
  assert(ctx:add{ content = "sys", pinned = true })
  fill(ctx, 3)
  lu.assertEquals(ctx:clear(), 4)
  lu.assertEquals(ctx:len(), 0)
  lu.assertEquals(ctx:stats().total_size_bytes, 0)
end

function TestStoreApi:test_prune_keeps_pins_and_whole_groups()
  local ctx = assert(mg.store{})
  local sys = assert(ctx:add{ role = "system", content = "sys", pinned = true })
  fill(ctx, 3)
  local call = assert(ctx:add{ role = "assistant", content = "call", group = "t1" })
  local r1 = assert(ctx:add{ role = "tool", content = "r1", group = "t1" })
  local r2 = assert(ctx:add{ role = "tool", content = "r2", group = "t1" })
  local last = assert(ctx:add{ role = "user", content = "last" })
  -- keep 2: last and r2; r2's group straddles the boundary: kept whole
  lu.assertEquals(ctx:prune(2), 3)
  local kept = {}
  for m in ctx:messages() do kept[#kept + 1] = m.id end
  lu.assertEquals(kept, { sys, call, r1, r2, last })
  lu.assertTrue(ctx:check())
end

function TestStoreApi:test_messages_iteration_is_safe_while_changing()
  local ctx = assert(mg.store{})
  local ids = fill(ctx, 6)
  local seen = {}
  for m in ctx:messages() do
    seen[#seen + 1] = m.id
    if m.id == ids[2] then
      assert(ctx:remove(ids[3]))       -- not yet visited: skipped
      assert(ctx:add{ content = "new" }) -- added meanwhile: not visited
      ctx:prune(4)                     -- evicts ids[1], ids[2] (visited)
    end
  end
  lu.assertEquals(seen, { ids[1], ids[2], ids[4], ids[5], ids[6] })
  -- oldest first, and the iterator is a plain function
  local it = ctx:messages()
  lu.assertEquals(type(it), "function")
  lu.assertEquals(it().id, ids[4])
end

function TestStoreApi:test_set_limits_and_check()
  local ctx = assert(mg.store{ max_messages = 5 })
  lu.assertTrue(ctx:set_limits{ max_messages = 7, max_total_size = "1M",
                                max_tokens = 50, warn_at = 0.5 })
  local st = ctx:stats()
  lu.assertEquals(st.max_messages, 7)
  lu.assertEquals(st.max_total_size_bytes, 1048576)
  lu.assertEquals(st.max_tokens, 50)
  lu.assertEquals(st.warn_at, 0.5)
  lu.assertTrue(ctx:set_limits{ max_tokens = false })
  lu.assertNil(ctx:stats().max_tokens)
  local ok, err = ctx:set_limits{ max_message_size = 100 }
  lu.assertNil(ok)
  lu.assertStrContains(err, "max_message_size 100 is below the minimum 1024")
  ok, err = ctx:set_limits{ warn_at = 1.5 }
  lu.assertNil(ok)
  lu.assertStrContains(err, "warn_at")
  lu.assertEquals(ctx:stats().max_messages, 7) -- unchanged by the failures
  lu.assertEquals(ctx:check(), true)
end

function TestStoreApi:test_tokens_limit_and_estimator()
  local ctx = assert(mg.store{ max_tokens = 10,
    estimator = function(content) return #content / 2 end })
  local id = assert(ctx:add{ content = "abc" })      -- 1.5 → 2
  lu.assertEquals(ctx:get(id).tokens, 2)
  assert(ctx:add{ content = "x", tokens = 8 })
  local nid, err = ctx:add{ content = "y", tokens = 1 }
  lu.assertNil(nid)
  lu.assertEquals(err.limit_type, "tokens")
  lu.assertEquals(err.current, 11)
  lu.assertEquals(err.limit, 10)
  lu.assertEquals(err.message, "Token count 11 exceeds limit of 10")
  local st = ctx:stats()
  lu.assertEquals(st.total_tokens, 10)
  lu.assertEquals(st.token_utilization, 1.0)
  lu.assertTrue(st.near_token_limit)
end

function TestStoreApi:test_failing_estimator_fails_the_add_only()
  local ctx = assert(mg.store{ estimator = function(c)
    if c == "boom" then error("estimator exploded") end
    if c == "nan" then return "lots" end
    return 1
  end })
  fill(ctx, 2)
  local before = dump(ctx)
  local id, err = ctx:add{ content = "boom" }
  lu.assertNil(id)
  lu.assertStrContains(err, "estimator failed")
  lu.assertStrContains(err, "estimator exploded")
  id, err = ctx:add{ content = "nan" }
  lu.assertNil(id)
  lu.assertStrContains(err, "non-negative number of tokens")
  lu.assertEquals(dump(ctx), before)
  assert(ctx:add{ content = "fine" })
end

function TestStoreApi:test_estimator_results_are_quoted_or_rounded_up()
  local give
  local ctx = assert(mg.store{ estimator = function() return give end })
  local before = dump(ctx)
  for value, quoted in pairs { [-1] = "got -1", [2 ^ 70] = "got 1.1805916207174113e+21",
                                [-0.5] = "got -0.5" } do
    give = value
    local id, err, code = ctx:add{ content = "x" }
    lu.assertNil(id)
    lu.assertStrContains(err, quoted)
    lu.assertEquals(code, "ESTRATEGY")
  end
  give = 0 / 0
  local id, err = ctx:add{ content = "x" }
  lu.assertNil(id)
  lu.assertStrMatches(err, ".*got %-?nan$")
  lu.assertEquals(dump(ctx), before)
  give = 2.25 -- a fraction rounds up
  id = assert(ctx:add{ content = "x" })
  lu.assertEquals(ctx:get(id).tokens, 3)
  give = 7 -- tokens given by the caller win over the estimator
  id = assert(ctx:add{ content = "x", tokens = 1 })
  lu.assertEquals(ctx:get(id).tokens, 1)
end

function TestStoreApi:test_close_gc_and_to_be_closed()
  local ref
  do
    local ctx <close> = assert(mg.store{ name = "tbc" })
    fill(ctx, 2)
    ref = ctx
  end
  lu.assertStrContains(tostring(ref), "(closed)")
  lu.assertErrorMsgContains("store 'tbc' is closed", ref.add, ref, { content = "x" })
  lu.assertErrorMsgContains("is closed", ref.len, ref)
  ref:close() -- idempotent
  lu.assertEquals(ref.name, "tbc")
  -- collected without being closed: __gc frees it
  for _ = 1, 50 do fill(assert(mg.store{}), 3) end
  collectgarbage()
  collectgarbage()
end

TestStoreFiles = {}

function TestStoreFiles:test_save_load_round_trip()
  local ctx = assert(mg.store{ name = "snap", max_messages = 50,
                               max_tokens = 1000, warn_at = 0.7 })
  local bin = {}
  for i = 255, 0, -1 do bin[#bin + 1] = string.char(i) end
  assert(ctx:add{ role = "system", content = "be brief", pinned = true })
  assert(ctx:add{ role = "tool", content = table.concat(bin), group = "c1",
                  source = "sensor", priority = -2, meta = { tool = "grep" } })
  assert(ctx:add{ role = "user", content = "héllo ✓", tokens = 9 })
  local gone = assert(ctx:add{ content = "removed" })
  assert(ctx:remove(gone))
  local path = tmp("snap.json")
  lu.assertTrue(ctx:save(path))
  local back = assert(mg.load_store(path))
  lu.assertEquals(back.name, "snap")
  local a, b = {}, {}
  for m in ctx:messages() do a[#a + 1] = m end
  for m in back:messages() do b[#b + 1] = m end
  lu.assertEquals(b, a)
  local sa, sb = ctx:stats(), back:stats()
  for _, k in ipairs({ "message_count", "total_size_bytes", "max_messages",
                       "max_tokens", "warn_at", "next_id", "total_tokens",
                       "pinned_count", "group_count", "payload_bytes" }) do
    lu.assertEquals(sb[k], sa[k], k)
  end
  -- ids continue where they stopped
  lu.assertEquals(assert(back:add{ content = "next" }), gone + 1)
  -- options apply to the loaded store; limits given replace the file's
  local pruned = assert(mg.load_store(path, { name = "again",
    max_messages = 3, on_full = "prune" }))
  lu.assertEquals(pruned.name, "again")
  lu.assertEquals(pruned:stats().max_messages, 3)
  assert(pruned:add{ content = "fourth" })
  lu.assertEquals(pruned:len(), 3)
  os.remove(path)
end

function TestStoreFiles:test_save_failure_is_nil_err()
  local ctx = assert(mg.store{})
  fill(ctx, 1)
  local ok, err = ctx:save("/nonexistent-dir/x/snap.json")
  lu.assertNil(ok)
  lu.assertStrContains(err, "/nonexistent-dir/x/snap.json")
end

function TestStoreFiles:test_bad_files_are_clear_errors()
  local dir = h.fixtures .. "/store/"
  local cases = {
    { "truncated.json", "truncated or corrupt" },
    { "corrupt.json", "truncated or corrupt" },
    { "version2.json", "version 2; this mgrun reads version 1" },
    { "wrong_format.json", "not an mgrun store snapshot" },
    { "no_format.json", "not an mgrun store snapshot" },
    { "dup_id.json", "appears twice" },
  }
  for _, c in ipairs(cases) do
    local s, err = mg.load_store(dir .. c[1])
    lu.assertNil(s, c[1])
    lu.assertStrContains(err, c[2])
    lu.assertStrContains(err, c[1])
  end
  local s, err = mg.load_store(tmp("missing.json"))
  lu.assertNil(s)
  lu.assertStrContains(err, "No such file")
  -- a snapshot of ours, cut in half
  local ctx = assert(mg.store{})
  fill(ctx, 20)
  local path = tmp("half.json")
  assert(ctx:save(path))
  local data = h.read(path)
  local f = assert(io.open(path, "wb"))
  f:write(data:sub(1, #data // 2))
  f:close()
  s, err = mg.load_store(path)
  lu.assertNil(s)
  lu.assertStrContains(err, "truncated or corrupt")
  os.remove(path)
  -- the fixture that is fine loads
  local ok = assert(mg.load_store(dir .. "v1_small.json"))
  lu.assertEquals(ok:len(), 3)
  lu.assertEquals(ok:get(4).content, "\0\255\1")
end

TestStoreMisuse = {}

function TestStoreMisuse:test_options()
  lu.assertErrorMsgContains("unknown option 'max_msgs'", mg.store,
                            { max_msgs = 3 })
  lu.assertErrorMsgContains("field 'max_messages' must be an integer",
                            mg.store, { max_messages = "many" })
  lu.assertErrorMsgContains("field 'on_full' must be \"error\" or \"prune\"",
                            mg.store, { on_full = "drop" })
  lu.assertErrorMsgContains("field 'strategy'", mg.store, { strategy = 42 })
  lu.assertErrorMsgContains("unknown strategy 'newest'", mg.store,
                            { strategy = "newest" })
  lu.assertErrorMsgContains("field 'on_warn' must be a function", mg.store,
                            { on_warn = "print" })
  lu.assertErrorMsgContains("bad argument #1 to 'mg.store' (table expected",
                            mg.store, "ctx")
  lu.assertErrorMsgContains("bad argument 'max_total_size'", mg.store,
                            { max_total_size = {} })
  lu.assertErrorMsgContains("bad argument #1 to 'mg.load_store'", mg.load_store)
end

function TestStoreMisuse:test_limits_below_minimum_are_nil_err()
  local cases = {
    { { max_messages = 0 }, "max_messages 0 is below the minimum 1" },
    { { max_messages = -5 }, "max_messages -5 is below the minimum 1" },
    { { max_message_size = 512 }, "max_message_size 512 is below the minimum 1024" },
    { { max_total_size = "1000" }, "max_total_size 1000 is below the minimum 1024" },
    { { max_total_size = "-1K" }, "max_total_size" },
    { { warn_at = 0 }, "warn_at 0 is out of range" },
    { { name = "" }, "store name" },
    { { name = string.rep("n", 65) }, "store name" },
  }
  for _, c in ipairs(cases) do
    local s, err = mg.store(c[1])
    lu.assertNil(s, c[2])
    lu.assertStrContains(err, c[2])
  end
end

function TestStoreMisuse:test_methods()
  local ctx = assert(mg.store{})
  local function raises(msg, f)
    lu.assertErrorMsgContains(msg, f)
  end
  raises("bad argument #1 to 'add' (unknown message field 'text' (accepted: "
         .. "role, content, source, group, pinned, priority, tokens, meta))",
         function() ctx:add{ text = "hi" } end)
  raises("bad argument #1 to 'add' (message table expected, got string)",
         function() ctx:add("hi") end)
  raises("bad argument #1 to 'add' (field 'content' must be a string",
         function() ctx:add{ content = 5 } end)
  raises("field 'pinned' must be a boolean", function() ctx:add{ pinned = 1 } end)
  raises("field 'priority' must be an integer",
         function() ctx:add{ priority = 1.5 } end)
  raises("field 'tokens' must be a non-negative integer",
         function() ctx:add{ tokens = -1 } end)
  raises("field 'meta' must map strings to strings",
         function() ctx:add{ meta = { n = 1 } } end)
  raises("mg.store expected", function() ctx.add({}, {}) end)
  raises("bad argument #1 to 'prune' (keep_count must be a non-negative "
         .. "integer, got -1)", function() ctx:prune(-1) end)
  raises("keep_count must be a non-negative integer, got 1.5",
         function() ctx:prune(1.5) end)
  raises("keep_count must be a non-negative integer, got string",
         function() ctx:prune("3") end)
  raises("bad argument #1 to 'get' (integer message id expected",
         function() ctx:get("1") end)
  raises("integer message id", function() ctx:remove(1.5) end)
  raises("unknown limit 'max'", function() ctx:set_limits{ max = 1 } end)
  raises("unknown field 'size'", function() ctx:make_room{ size = 1 } end)
  -- data the store refuses is nil, err (not a raise)
  local id, err = ctx:add{ role = "a\0b" }
  lu.assertNil(id)
  lu.assertStrContains(err, "NUL")
  local meta = {}
  for i = 1, 33 do meta["k" .. i] = "v" end
  id, err = ctx:add{ meta = meta }
  lu.assertNil(id)
  lu.assertStrContains(err, "at most 32")
end

os.exit(lu.LuaUnit.run(table.unpack(arg)))
