-- No Lua code can crash the governor: every method and metamethod of every
-- mg type, called with every other type's userdata, nil, a number, a
-- string, a table and closed or stopped objects, raises a clear error (or
-- works) — never a crash. The suite also runs under ASan + UBSan.
local lu = require("luaunit")

TestReceivers = {}

-- One live object of each type and one closed (stopped, expired) one;
-- the process only when asked (it is a real child).
local function objects(with_process)
  local o = {}
  o.timer = mg.every(100000, function() end)
  o.timer_stopped = mg.after(100000, function() end)
  o.timer_stopped:stop()
  o.signal = mg.on_signal("USR2", function() end)
  o.signal_stopped = mg.on_signal("HUP", function() end)
  o.signal_stopped:stop()
  o.store = assert(mg.store { name = "recv" })
  o.store:add { role = "u", content = "x" }
  o.store_closed = assert(mg.store { name = "closed" })
  o.store_closed:close()
  local s = assert(mg.store { name = "viewer", max_messages = 1, on_full = "prune",
                              strategy = function(view) o.view_expired = view
                                return { view:at(1).id } end })
  s:add { role = "u", content = "a" }
  s:add { role = "u", content = "b" } -- the strategy ran: its view expired
  local small = assert(mg.store { name = "small", max_message_size = 1024 })
  local _, err = small:add { role = "u", content = ("y"):rep(2000) }
  o.store_error = err -- an mg.store.error table
  o.gauge = mg.metrics.gauge("recv_gauge", "A gauge.", { "a" })
  o.counter = mg.metrics.counter("recv_total", "A counter.")
  if with_process then
    o.process = assert(mg.spawn { name = "recv-" .. with_process,
                                  cmd = { "sleep", "30" }, stdout = "null" })
  end
  return o
end

local TYPES = { timer = "mg.timer", timer_stopped = "mg.timer", signal = "mg.signal",
                signal_stopped = "mg.signal", store = "mg.store",
                store_closed = "mg.store", view_expired = "mg.store.view",
                process = "mg.process", gauge = "mg.metric", counter = "mg.metric" }

-- Every callable of a type: its methods (by name) and its metamethods.
local function callables(obj)
  local mt = debug.getmetatable(obj)
  local fns = {}
  local idx = rawget(mt, "__index")
  if type(idx) == "table" then
    for k, v in pairs(idx) do fns[k] = v end
  elseif type(idx) == "function" then
    for i = 1, 4 do -- the store's methods are an upvalue of its __index
      local _, up = debug.getupvalue(idx, i)
      if type(up) == "table" then for k, v in pairs(up) do fns[k] = v end end
    end
  end
  if type(rawget(mt, "methods")) == "table" then -- mg.process
    for k, v in pairs(mt.methods) do fns[k] = v end
  end
  for _, mm in ipairs { "__gc", "__close", "__tostring", "__len", "__index",
                        "__newindex" } do
    if type(rawget(mt, mm)) == "function" then fns[mm] = rawget(mt, mm) end
  end
  return fns
end

local function name_of(v)
  local mt = debug.getmetatable(v)
  if mt and type(rawget(mt, "__name")) == "string" then
    return rawget(mt, "__name")
  end
  if v == nil then return "nil" end
  return type(v)
end

local function escape(s) return (s:gsub("[%-%.%+%[%]%(%)%$%^%%%?%*]", "%%%0")) end

function TestReceivers:test_every_method_checks_its_receiver()
  local o = objects("a")
  local others = table.pack(nil, 42, "text", {}, true, print, io.stdout,
                            coroutine.create(function() end))
  for _, v in pairs(o) do others[others.n + 1] = v others.n = others.n + 1 end
  local checked = 0
  for tname, mtname in pairs(TYPES) do
    for method, fn in pairs(callables(o[tname])) do
      for i = 1, others.n do
        local bad = others[i]
        if name_of(bad) ~= mtname then
          local ok, err = pcall(fn, bad)
          lu.assertFalse(ok, ("%s.%s accepted a %s"):format(mtname, method,
                                                          name_of(bad)))
          local want = ("bad argument #1 to '%s' (%s expected, got %s)")
            :format(method, mtname, name_of(bad))
          lu.assertStrMatches(tostring(err), ".*" .. escape(want) .. ".*", nil,
                              nil, ("%s.%s(%s)"):format(mtname, method, name_of(bad)))
          checked = checked + 1
        end
      end
    end
  end
  lu.assertTrue(checked > 500, "only " .. checked .. " calls checked")
  o.process:stop(0)
end

-- A right receiver with every kind of argument: an error or a result,
-- never a crash. Objects are made anew (a call may close them); the
-- process is one child for all its calls (kill and stop are fine on it).
local function listing()
  local p = assert(io.popen("ls -A"))
  local s = p:read("a")
  p:close()
  return s
end

function TestReceivers:test_every_method_survives_bad_arguments()
  local files_before = listing() -- a number is not a path: nothing is written
  local o = objects("b")
  local args = table.pack(nil, 0, -1, 2 ^ 70, 0 / 0, "", "x\0y", {}, { 1, 2 },
                          true, function() end)
  for _, v in pairs(o) do args[args.n + 1] = v args.n = args.n + 1 end
  local calls = 0
  for tname in pairs(TYPES) do
    for method in pairs(callables(o[tname])) do
      for i = 1, args.n do
        local fresh = objects()
        fresh.process = o.process
        local obj = fresh[tname]
        local fn = callables(obj)[method]
        pcall(fn, obj, args[i], args[i])
        -- and the object is still safe to use or to close afterwards
        pcall(tostring, obj)
        for k, v in pairs(fresh) do
          local mt = debug.getmetatable(v)
          if k ~= "process" and type(v) == "userdata" and mt and mt.__close then
            pcall(mt.__close, v)
          end
        end
        calls = calls + 1
      end
    end
  end
  lu.assertTrue(calls > 200, "only " .. calls .. " calls made")
  pcall(o.process.stop, o.process, 0)
  lu.assertEquals(listing(), files_before)
end

-- Inside a strategy, the live view's methods with every bad receiver and
-- every bad argument.
function TestReceivers:test_live_view_methods()
  local report = {}
  local store = assert(mg.store { name = "live", max_messages = 2, on_full = "prune",
    strategy = function(view, need)
      local fns = callables(view)
      for method, fn in pairs(fns) do
        for _, bad in ipairs { 1, "s", {}, need } do
          local ok, err = pcall(fn, bad)
          if ok or not tostring(err):find("mg.store.view expected", 1, true) then
            report[#report + 1] = method .. ": " .. tostring(err)
          end
          pcall(fn, view, bad) -- must not crash
          pcall(fn, view, bad, bad)
        end
      end
      return { view:at(1).id }
    end })
  store:add { role = "u", content = "a" }
  store:add { role = "u", content = "b" }
  assert(store:add { role = "u", content = "c" })
  lu.assertEquals(report, {})
end

-- The mg.store.error table's __tostring with something else.
function TestReceivers:test_error_table_tostring()
  local s = assert(mg.store { name = "e", max_messages = 1 })
  s:add { role = "u", content = "a" }
  local _, err, code = s:add { role = "u", content = "b" }
  lu.assertEquals(code, "message_count")
  lu.assertStrContains(tostring(err), "Message count 1 exceeds limit of 1")
  local ts = debug.getmetatable(err).__tostring
  for _, bad in ipairs { 1, "s", true, s } do
    local ok, e = pcall(ts, bad)
    lu.assertFalse(ok)
    lu.assertStrContains(e, "bad argument #1")
  end
end

-- getmetatable gives the type's name, not its table (debug aside).
function TestReceivers:test_metatables_are_protected()
  local o = objects("c")
  for tname, mtname in pairs(TYPES) do
    lu.assertEquals(getmetatable(o[tname]), mtname, tname)
  end
  o.process:stop(0)
end

os.exit(lu.LuaUnit.run(table.unpack(arg)))
