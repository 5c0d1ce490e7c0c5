-- Loading policies: errors, arguments, --check, require, the sandbox.
local lu = require("luaunit")
local h = require("helper")

TestLoad = {}

function TestLoad:test_syntax_error_exits_2_with_file_line()
  local status, out = h.run("local x = = 1\n", {})
  lu.assertEquals(status, 2)
  lu.assertStrMatches(out, "mgrun: /.-%.lua:1: .*")
end

function TestLoad:test_error_at_top_level_exits_2_with_file_line()
  local status, out = h.run("local a = 1\nerror('top level boom')\n")
  lu.assertEquals(status, 2)
  lu.assertStrMatches(out, "mgrun: /.-%.lua:2: top level boom.*")
end

function TestLoad:test_missing_policy_exits_2()
  local status, out = h.sh(h.q(h.mgrun) .. " /nonexistent/policy.lua")
  lu.assertEquals(status, 2)
  lu.assertStrContains(out, "cannot open /nonexistent/policy.lua")
end

function TestLoad:test_arg_and_varargs()
  local status, out = h.run([[
    print("n", #arg, arg[1], arg[2])
    print("dots", select("#", ...), ...)
    assert(arg[0]:match("%.lua$"))
  ]], {}, { "one", "two words" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "n\t2\tone\ttwo words")
  lu.assertStrContains(out, "dots\t2\tone\ttwo words")
end

function TestLoad:test_check_runs_top_level_but_no_loop()
  local status, out = h.run([[
    mg.after(0, function() print("loop ran") end)
    print("top level ran")
  ]], { "--check" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "top level ran")
  lu.assertStrContains(out, ": OK")
  lu.assertNotStrContains(out, "loop ran")
  status, out = h.run("x = = 1", { "--check" })
  lu.assertEquals(status, 2)
end

function TestLoad:test_require_mg_and_scripts()
  local status, out = h.run([[
    assert(require("mg") == mg)
    print("ok")
  ]])
  lu.assertEquals(status, 0, out)
end

function TestLoad:test_sandbox_denies_io_os_debug_bytecode()
  local status, out = h.run([[
    print("io", io == nil, "debug", debug == nil, "execute", os.execute == nil)
    print("time", type(os.time()))
    local bc = string.dump(function() return 1 end)
    local f, err = load(bc)
    print("bytecode", f == nil, err)
    print("text", load("return 41 + 1")())
    print("dofile", dofile == nil, "loadlib", package.loadlib == nil)
    local ok = pcall(require, "socket.core")
    print("cmodule", ok)
  ]], { "--sandbox" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "io\ttrue\tdebug\ttrue\texecute\ttrue")
  lu.assertStrContains(out, "time\tnumber")
  lu.assertStrContains(out, "bytecode\ttrue")
  lu.assertStrContains(out, "text\t42")
  lu.assertStrContains(out, "dofile\ttrue\tloadlib\ttrue")
  lu.assertStrContains(out, "cmodule\tfalse")
end

function TestLoad:test_c_modules_load_unsandboxed_only()
  local cpath = h.bindir .. "/?.so"
  local code = string.format([[
    package.cpath = %q
    local ok, m = pcall(require, "mgtest_cmod")
    print("cmod", ok, ok and m.twice(21) or m)
  ]], cpath)
  local status, out = h.run(code)
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "cmod\ttrue\t42")
  -- The sandbox has no C searcher: the same require, same cpath, fails.
  status, out = h.run(string.format([[
    pcall(function() package.cpath = %q end)
    local ok, err = pcall(require, "mgtest_cmod")
    print("cmod", ok, err)
  ]], cpath), { "--sandbox" })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "cmod\tfalse")
end

function TestLoad:test_usage_errors_exit_2()
  for _, args in ipairs({ "", "--bogus x.lua", "--lua-mem lots x.lua",
                          "--cb-timeout -1 x.lua", "--log-format xml x.lua",
                          "--log-level loud x.lua", "--json" }) do
    local status, out = h.sh(h.q(h.mgrun) .. " " .. args)
    lu.assertEquals(status, 2, args .. ": " .. out)
    lu.assertStrContains(out, "mgrun:")
  end
  local status, out = h.sh(h.q(h.mgrun) .. " --lua-mem lots x.lua")
  lu.assertStrContains(out, '"lots"')
end

function TestLoad:test_setup_timeout()
  local status, out = h.run("while true do end", { "--setup-timeout", "100" })
  lu.assertEquals(status, 2)
  lu.assertStrContains(out, "time budget of 100 ms")
end

function TestLoad:test_sandbox_cannot_reach_full_os_or_other_paths()
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. h.q(dir))
  local f = assert(io.open(dir .. "/outside.lua", "w"))
  f:write("return 'loaded outside'")
  f:close()
  local status, out = h.run(([[
    print("os.execute", require("os").execute == nil, os.execute == nil)
    package.path = %q .. "/?.lua"
    print("outside", pcall(require, "outside"))
    print("searchpath", package.searchpath == nil or true)
    os.exit(5)
  ]]):format(dir), { "--sandbox" })
  os.remove(dir .. "/outside.lua")
  os.remove(dir)
  lu.assertEquals(status, 5, out) -- os.exit is the graceful one
  lu.assertStrContains(out, "os.execute\ttrue\ttrue")
  lu.assertStrContains(out, "outside\tfalse")
end

function TestLoad:test_os_exit_does_not_need_the_global_mg()
  local status = h.run("mg = nil os.exit(4)")
  lu.assertEquals(status, 4)
end

function TestLoad:test_cli_option_values()
  local status, out = h.sh(h.q(h.mgrun) .. " --lua-mem")
  lu.assertEquals(status, 2)
  lu.assertStrContains(out, "needs a value")
  status, out = h.sh(h.q(h.mgrun) .. " --cb-timeout 18446744073710 x.lua")
  lu.assertEquals(status, 2)
  lu.assertStrContains(out, "expected an integer from 0 to")
  status, out = h.sh(h.q(h.mgrun) .. " -xh")
  lu.assertEquals(status, 2)
  lu.assertStrContains(out, "unknown option '-x'")
end

os.exit(lu.LuaUnit.run(table.unpack(arg)))
