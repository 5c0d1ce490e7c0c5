-- The install rule: `cmake --install` puts mg.so under lib/lua/5.4/ of
-- the prefix, where it finds its libmg.so.0 (rpath), mgrun's programs
-- (mg.bindir) and the shipped Lua library (mg.strategies) of that prefix.
local lu = require("luaunit")
local h = require("helper54")

TestInstall = {}

function TestInstall:test_installed_module_finds_its_prefix()
  local cmake, build = os.getenv("MG_CMAKE"), os.getenv("MG_BUILD_DIR")
  lu.assertNotNil(cmake, "MG_CMAKE is not set (run through ctest)")
  local prefix = h.tmp("prefix")
  local status, out = h.sh(("%s --install %s --prefix %s"):format(
    h.q(cmake), h.q(build), h.q(prefix)))
  lu.assertEquals(status, 0, out)
  local _, found = h.sh(("cd %s && find lib* -path '*/lua/5.4/mg.so'"):format(
    h.q(prefix)))
  local rel = found:match("^([^\n]+)\n$")
  lu.assertNotNil(rel, "not one lib/.../lua/5.4/mg.so under " .. prefix ..
                       ":\n" .. found)
  local so = prefix .. "/" .. rel
  local cpath = so:gsub("mg%.so$", "?.so")
  status, out = h.sh(("LUA_CPATH=%s %s -e %s"):format(h.q(cpath), h.q(h.lua),
    h.q([[local mg = require "mg"
          print("so", package.searchpath("mg", package.cpath))
          print("bindir", mg.bindir)
          print("strategies", package.searchpath("mg.strategies", package.path))
          print("version", mg.version, type(require("mg.strategies").summarize))]])))
  lu.assertEquals(status, 0, out)
  local _, real = h.sh("realpath " .. h.q(prefix))
  real = real:match("[^\n]+")
  lu.assertStrContains(out, "so\t" .. so)
  lu.assertStrContains(out, "bindir\t" .. real .. "/bin\n")
  lu.assertStrContains(out, "strategies\t" .. real ..
                            "/share/mgrun/scripts/mg/strategies.lua")
  lu.assertStrContains(out, "version\t0.1.0\tfunction")
  local _, ldd = h.sh("ldd " .. h.q(so))
  lu.assertStrMatches(ldd, ".*libmg%.so%.0 => " .. real:gsub("%p", "%%%0") ..
                           "/lib[^\n]*/libmg%.so%.0.*")
  h.sh("rm -rf " .. h.q(prefix))
end

os.exit(lu.LuaUnit.run(table.unpack(arg)), true)
