-- mg.metrics: a policy's own gauges and counters (names, labels, counters
-- that only go up, misuse), then through a real mgrun with --metrics-file:
-- the policy's metrics beside the built-ins, a child's series and its
-- counters after it died and restarted, and the file written at stop.
local lu = require("luaunit")
local h = require("helper")

TestMetrics = {}

-- The series of `name` (with its labels as written) in a text, as a number.
local function value(text, series)
  local esc = series:gsub("[%-%.%+%[%]%(%)%$%^%%%?%*]", "%%%0")
  local v = text:match("\n" .. esc .. " (%S+)\n") or
            text:match("^" .. esc .. " (%S+)\n")
  return v and tonumber(v)
end

function TestMetrics:test_gauge()
  local g = mg.metrics.gauge("test_queue_depth", "Jobs waiting.", { "queue" })
  lu.assertEquals(g.name, "test_queue_depth")
  lu.assertEquals(g.type, "gauge")
  lu.assertEquals(g.labels, { "queue" })
  lu.assertEquals(tostring(g), "mg.metric gauge 'test_queue_depth' (labels: queue)")
  lu.assertNil(g:get { queue = "inbox" })
  lu.assertIs(g:set(12, { queue = "inbox" }), g)
  g:inc(-2, { queue = "inbox" }) -- a gauge goes down too
  g:inc({ queue = "other" })
  lu.assertEquals(g:get { queue = "inbox" }, 10)
  lu.assertEquals(g:get { queue = "other" }, 1)
  g:set(0.25, { queue = "frac" })
  local t = mg.metrics.text()
  lu.assertStrContains(t, "# HELP test_queue_depth Jobs waiting.\n" ..
                          "# TYPE test_queue_depth gauge\n" ..
                          'test_queue_depth{queue="inbox"} 10\n' ..
                          'test_queue_depth{queue="other"} 1\n' ..
                          'test_queue_depth{queue="frac"} 0.25\n')
  lu.assertTrue(g:remove { queue = "other" })
  lu.assertFalse(g:remove { queue = "other" })
  lu.assertNotStrContains(mg.metrics.text(), 'queue="other"')
  -- the same definition again is the same family
  local again = mg.metrics.gauge("test_queue_depth", "Other help.", { "queue" })
  lu.assertEquals(again:get { queue = "inbox" }, 10)
end

function TestMetrics:test_counter()
  local c = mg.metrics.counter("test_turns_total", "Turns taken.")
  lu.assertEquals(c.type, "counter")
  lu.assertEquals(c.labels, {})
  lu.assertEquals(c:get(), 0) -- no labels: there from the start
  c:inc()
  c:inc(2)
  c:set(5) -- up: fine
  lu.assertEquals(c:get(), 5)
  lu.assertErrorMsgContains("counters only go up", c.inc, c, -1)
  lu.assertErrorMsgContains("cannot go down from 5 to 4", c.set, c, 4)
  lu.assertEquals(c:get(), 5)
  lu.assertStrContains(mg.metrics.text(),
    "# TYPE test_turns_total counter\ntest_turns_total 5\n")
  lu.assertErrorMsgContains("has no labels", c.remove, c, {})
  -- labels of any simple type
  local l = mg.metrics.counter("test_events_total", "Events.", { "kind", "n", "ok" })
  l:inc(1, { kind = 'say "hi"\n', n = 3, ok = true })
  lu.assertStrContains(mg.metrics.text(),
    'test_events_total{kind="say \\"hi\\"\\n",n="3",ok="true"} 1\n')
end

function TestMetrics:test_names_and_labels_checked()
  lu.assertErrorMsgContains("names starting with 'mgrun_' are mgrun's own",
                            mg.metrics.gauge, "mgrun_child_up", "x")
  lu.assertErrorMsgContains("bad argument #1 to 'gauge' (metric name '9x': its first character '9'",
                            mg.metrics.gauge, "9x", "x")
  lu.assertErrorMsgContains("the character '-' is not allowed",
                            mg.metrics.counter, "a-b", "x")
  lu.assertErrorMsgContains("bad argument #1", mg.metrics.gauge)
  lu.assertErrorMsgContains("bad argument #2", mg.metrics.gauge, "ok_name")
  lu.assertErrorMsgContains("bad argument #2 to 'gauge' (metric 'ok_name': its help is not valid UTF-8",
                            mg.metrics.gauge, "ok_name", "\xff")
  lu.assertErrorMsgContains("bad argument #3 to 'gauge' (metric 'ok_name': label name '__x': names starting with '__' are reserved",
                            mg.metrics.gauge, "ok_name", "h", { "__x" })
  lu.assertErrorMsgContains("label name 'a' is given twice",
                            mg.metrics.gauge, "ok_name", "h", { "a", "a" })
  lu.assertErrorMsgContains("a list of label names expected",
                            mg.metrics.gauge, "ok_name", "h", { a = "b" })
  lu.assertErrorMsgContains("label name #1: string expected",
                            mg.metrics.gauge, "ok_name", "h", { 1 })
  lu.assertErrorMsgContains("exists already as a gauge",
                            mg.metrics.counter, "test_queue_depth", "h", { "queue" })
  local g = mg.metrics.gauge("test_labelled", "h", { "a", "b" })
  lu.assertErrorMsgContains("needs its labels: a table with a, b", g.set, g, 1)
  lu.assertErrorMsgContains("no value for label 'b'", g.set, g, 1, { a = "x" })
  lu.assertErrorMsgContains("has no label 'c'; its labels: a, b", g.set, g, 1,
                            { a = "x", b = "y", c = "z" })
  lu.assertErrorMsgContains("must be a string, a number or a boolean",
                            g.set, g, 1, { a = {}, b = "y" })
  lu.assertErrorMsgContains("holds a NUL byte", g.set, g, 1, { a = "x\0y", b = "y" })
  lu.assertErrorMsgContains("is not valid UTF-8", g.set, g, 1, { a = "\xc0\xaf", b = "y" })
  lu.assertErrorMsgContains("bad argument #2 to 'set' (number expected, got string)",
                            g.set, g, "1", { a = "x", b = "y" })
  lu.assertErrorMsgContains("nothing expected after the labels", g.inc, g,
                            { a = "x", b = "y" }, 3)
  local plain = mg.metrics.gauge("test_plain", "h")
  lu.assertErrorMsgContains("has no label 'x'; its labels: none", plain.set, plain, 1, { x = 1 })
  lu.assertNotStrContains(mg.metrics.text(), "ok_name")
end

function TestMetrics:test_receivers_checked()
  local g = mg.metrics.gauge("test_recv", "h")
  for _, m in ipairs { "set", "inc", "get", "remove" } do
    lu.assertErrorMsgContains(("bad argument #1 to '%s' (mg.metric expected, got table)"):format(m),
                              g[m], {}, 1)
    lu.assertErrorMsgContains("mg.metric expected, got mg.store",
                              g[m], assert(mg.store { name = "recv" }))
  end
  lu.assertEquals(getmetatable(g), "mg.metric")
end

-- Through mgrun: the policy's series, a child's, and the file at stop.
function TestMetrics:test_metrics_file_through_mgrun()
  local file = h.tmp("m.prom", "metrics")
  local status, out = h.run(([[
    local turns = mg.metrics.counter("agent_turns_total", "Turns.", { "agent" })
    local ctx = assert(mg.store { name = "ctx", max_messages = 2, on_full = "prune" })
    for i = 1, 5 do ctx:add { role = "u", content = "m" .. i } turns:inc({ agent = "a" }) end
    local n = 0
    local p = assert(mg.spawn { name = "hog", limit = "64M", restart = "on-failure",
      max_restarts = 1, backoff_ms = 10, stdout = "null",
      cmd = { mg.bindir .. "/mg-hog", "--max", "8M", "--hold", "0.3", "--exit-code", "0" } })
    local seen
    mg.after(150, function()
      local f = assert(io.open(%q)) seen = f:read("a") f:close()
    end)
    mg.after(150, function() p:kill { signal = "KILL" } end)
    mg.after(1500, function()
      local f = io.open(%q .. ".seen", "w") f:write(seen or "") f:close()
    end)
  ]]):format(file, file, file), { "--metrics-file", file, "--metrics-interval", "100" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "metrics_file path=" .. file .. " interval_ms=100")
  local during = h.read(file .. ".seen")
  local final = h.read(file)
  os.remove(file .. ".seen")
  os.remove(file)
  -- during the run: the child's memory as its limit counts it
  lu.assertEquals(value(during, 'mgrun_child_up{name="hog",enforce="cgroup"}') or
                  value(during, 'mgrun_child_up{name="hog",enforce="data"}'), 1, during)
  local enforce = during:match('mgrun_child_up{name="hog",enforce="(%a+)"}')
  local lbl = ('{name="hog",enforce="%s"}'):format(enforce)
  lu.assertTrue(value(during, "mgrun_child_memory_bytes" .. lbl) > 0, during)
  lu.assertEquals(value(during, "mgrun_child_memory_limit_bytes" .. lbl), 64 * 2 ^ 20)
  -- at stop: killed once (signal), restarted once, exited normally once
  lu.assertEquals(value(final, "mgrun_child_up" .. lbl), 0, final)
  lu.assertEquals(value(final, "mgrun_child_restarts_total" .. lbl), 1, final)
  lu.assertEquals(value(final, ('mgrun_child_exits_total{name="hog",enforce="%s",reason="signal"}')
                        :format(enforce)), 1, final)
  lu.assertEquals(value(final, ('mgrun_child_exits_total{name="hog",enforce="%s",reason="exit"}')
                        :format(enforce)), 1, final)
  lu.assertNil(value(final, "mgrun_child_memory_bytes" .. lbl)) -- not running
  -- the store and the policy's own metrics
  lu.assertEquals(value(final, 'mgrun_store_messages{store="ctx"}'), 2)
  lu.assertEquals(value(final, 'mgrun_store_evictions_total{store="ctx"}'), 3)
  lu.assertEquals(value(final, 'agent_turns_total{agent="a"}'), 5)
  lu.assertStrContains(final, "# TYPE agent_turns_total counter\n")
  lu.assertTrue(value(final, "mgrun_callbacks_total") >= 3)
end

function TestMetrics:test_bad_options_exit_2()
  for _, case in ipairs {
    { { "--metrics", "192.0.2.1:9100" }, "is not a loopback address" },
    { { "--metrics", "nope" }, "no port" },
    { { "--metrics-file", "/nonexistent-dir-of-mgrun/x.prom" }, "No such file or directory" },
    { { "--metrics-interval", "5" }, "--metrics-interval" },
  } do
    local status, out = h.run("", case[1])
    lu.assertEquals(status, 2, out)
    lu.assertStrContains(out, case[2])
  end
end

os.exit(lu.LuaUnit.run(table.unpack(arg)))
