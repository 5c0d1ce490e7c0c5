-- mg.so is linked as a Lua C module should be: no liblua among its
-- NEEDED libraries (the interpreter provides Lua), one exported symbol,
-- and every symbol its libraries leave open is one lua5.4 exports.
local lu = require("luaunit")
local h = require("helper54")

TestSymbols = {}

local function lines(cmd)
  local status, out = h.sh(cmd)
  lu.assertEquals(status, 0, cmd .. "\n" .. out)
  local t = {}
  for l in out:gmatch("[^\n]+") do t[#t + 1] = l end
  return t, out
end

function TestSymbols:test_no_liblua_needed()
  local needed, out = lines("readelf -d " .. h.q(h.so))
  local libs = {}
  for _, l in ipairs(needed) do
    local lib = l:match("%(NEEDED%)%s+Shared library: %[(.-)%]")
    if lib then libs[#libs + 1] = lib end
  end
  lu.assertTrue(#libs > 0, out)
  for _, lib in ipairs(libs) do
    lu.assertNil(lib:find("lua", 1, true), "NEEDED " .. lib .. "\n" .. out)
  end
  lu.assertStrContains(table.concat(libs, " "), "libmg.so.0")
end

function TestSymbols:test_only_luaopen_mg_is_exported()
  local syms = lines("nm -D --defined-only " .. h.q(h.so))
  local names = {}
  for _, l in ipairs(syms) do
    local kind, name = l:match("^%x*%s+(%a)%s+(%S+)$")
    if kind and name then names[#names + 1] = name end
  end
  lu.assertEquals(names, { "luaopen_mg" })
end

function TestSymbols:test_what_is_left_open_lua54_provides()
  local exported = {}
  for _, l in ipairs(lines("nm -D --defined-only " .. h.q(h.lua))) do
    local name = l:match("%s(%S+)$")
    if name then exported[name:gsub("@.*$", "")] = true end
  end
  local _, out = h.sh("ldd -r " .. h.q(h.so))
  local open = 0
  for name in out:gmatch("undefined symbol: (%S+)") do
    open = open + 1
    lu.assertTrue(exported[name], name .. " is neither in mg.so's libraries " ..
                  "nor exported by " .. h.lua)
    lu.assertStrMatches(name, "lua%w*_.*") -- lua_, luaL_, luaopen_
  end
  lu.assertTrue(open > 50, "the Lua API should be left open:\n" .. out)
end

os.exit(lu.LuaUnit.run(table.unpack(arg)), true)
