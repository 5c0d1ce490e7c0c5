-- The sandbox is a boundary: a sandboxed policy writes and reads only in
-- the directories the host allows (--allow-dir), spawns only the programs
-- it allows (--allow-spawn), and limits or signals only its own children.
local lu = require("luaunit")
local h = require("helper")

TestSandbox = {}

local function sh(cmd)
  local status, out = h.sh(cmd)
  assert(status == 0, cmd .. ": " .. out)
end

local dir, outside
function TestSandbox:setUp()
  dir = h.tmp("allowed", "sbx")
  outside = h.tmp("outside", "sbx")
  sh(("mkdir -p %s %s && ln -s %s %s/escape"):format(h.q(dir), h.q(outside),
                                                    h.q(outside), h.q(dir)))
end

function TestSandbox:tearDown()
  sh(("rm -rf %s %s"):format(h.q(dir), h.q(outside)))
end

local function run(code, opts)
  local o = { "--sandbox" }
  for _, v in ipairs(opts or {}) do o[#o + 1] = v end
  return h.run(("local D, OUT = %q, %q\n"):format(dir, outside) .. code, o)
end

function TestSandbox:test_no_directory_allowed_by_default()
  local status, out = run([[
    local ctx = assert(mg.store { name = "s" })
    print("save", ctx:save(D .. "/snap.json"))
    print("load", mg.load_store(D .. "/snap.json"))
    print("archive", mg.store { name = "a", archive = D .. "/a.jsonl" })
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "save\tnil\tsave: the sandbox does not allow writing")
  lu.assertStrContains(out, "the host allows no directory (--allow-dir DIR)\tEACCES")
  lu.assertStrContains(out, "load\tnil\tload_store: the sandbox does not allow reading")
  lu.assertStrContains(out, "archive\tnil\tarchive: the sandbox does not allow writing")
end

function TestSandbox:test_allowed_directory_and_its_escapes()
  local status, out = run([[
    local ctx = assert(mg.store { name = "s" })
    assert(ctx:add { role = "u", content = "hello" })
    print("inside", ctx:save(D .. "/snap.json"))
    local back = assert(mg.load_store(D .. "/snap.json"))
    print("loaded", back:len())
    print("dotdot", select(3, ctx:save(D .. "/../" .. OUT:match("[^/]+$") .. "/x.json")))
    print("symlink", select(3, ctx:save(D .. "/escape/x.json")))
    print("outside", select(3, ctx:save(OUT .. "/x.json")))
    local a = assert(mg.store { name = "a", max_messages = 1, on_full = "prune",
                                archive = D .. "/evicted.jsonl" })
    a:add { role = "u", content = "1" }
    print("archived", a:add { role = "u", content = "2" } ~= nil)
  ]], { "--allow-dir", dir })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "inside\ttrue")
  lu.assertStrContains(out, "loaded\t1")
  lu.assertStrContains(out, "dotdot\tEACCES")
  lu.assertStrContains(out, "symlink\tEACCES")
  lu.assertStrContains(out, "outside\tEACCES")
  lu.assertStrContains(out, "archived\ttrue")
  lu.assertEquals(h.sh("ls " .. h.q(outside)), 0)
  lu.assertEquals(select(2, h.sh("ls " .. h.q(outside))), "") -- nothing escaped
end

function TestSandbox:test_spawn_only_allowed_programs()
  local status, out = run([[
    print("none", select(3, mg.spawn { cmd = { "/bin/true" } }))
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "none\tEACCES")
  status, out = run([[
    local function try(tag, t)
      local p, err, code = mg.spawn(t)
      print(tag, p and "started" or code, err)
      if p then p:stop(0) end
    end
    try("allowed", { name = "a", cmd = { "/bin/true" } })
    try("bare", { name = "b", cmd = { "true" } })
    try("other", { name = "c", cmd = { "/bin/sh", "-c", "true" } })
    try("out-outside", { name = "d", cmd = { "/bin/true" }, stdout = OUT .. "/o" })
    try("out-inside", { name = "e", cmd = { "/bin/true" }, stdout = D .. "/o" })
    try("cwd-outside", { name = "f", cmd = { "/bin/true" }, cwd = OUT })
    try("err-escape", { name = "g", cmd = { "/bin/true" }, stderr = D .. "/escape/e" })
    -- relative to a cwd option: the sandbox would check another file than
    -- the one the supervisor runs
    try("relative", { name = "h", cmd = { "bin/true" }, cwd = "/usr" })
    -- variables that make a program load or run other code
    try("ld", { name = "i", cmd = { "/bin/true" }, env = { LD_PRELOAD = D .. "/x.so" } })
    try("bashenv", { name = "j", cmd = { "/bin/true" }, env = { BASH_ENV = D .. "/s" } })
    try("python", { name = "k", cmd = { "/bin/true" }, env = { PYTHONPATH = D } })
    try("plain-env", { name = "l", cmd = { "/bin/true" }, env = { MODEL = "7b" } })
  ]], { "--allow-spawn", "/bin/true", "--allow-dir", dir })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "allowed\tstarted")
  lu.assertStrContains(out, "bare\tEACCES\tcmd: the sandbox runs programs by their absolute path")
  lu.assertStrContains(out, "other\tEACCES\tcmd: the sandbox does not allow running '/bin/sh'")
  lu.assertStrContains(out, "out-outside\tEACCES\tstdout: the sandbox does not allow writing")
  lu.assertStrContains(out, "out-inside\tstarted")
  lu.assertStrContains(out, "cwd-outside\tEACCES\tcwd: the sandbox does not allow reading")
  lu.assertStrContains(out, "err-escape\tEACCES")
  lu.assertStrContains(out, "relative\tEACCES\tcmd: the sandbox runs programs by their absolute path")
  lu.assertStrContains(out, "ld\tEACCES\tenv: the sandbox does not pass 'LD_PRELOAD'")
  lu.assertStrContains(out, "bashenv\tEACCES\tenv: the sandbox does not pass 'BASH_ENV'")
  lu.assertStrContains(out, "python\tEACCES\tenv: the sandbox does not pass 'PYTHONPATH'")
  lu.assertStrContains(out, "plain-env\tstarted")
  lu.assertEquals(select(2, h.sh("ls " .. h.q(outside))), "") -- nothing escaped
end

-- Writing "the allowed directory itself" would put the snapshot's
-- temporary file beside it, outside: a file must lie strictly inside.
function TestSandbox:test_the_allowed_directory_itself_is_not_a_file()
  local status, out = run([[
    local ctx = assert(mg.store { name = "s" })
    print("dir itself", select(3, ctx:save(D)))
    print("dir slash", select(3, ctx:save(D .. "/")))
  ]], { "--allow-dir", dir })
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "dir itself\tEACCES")
  lu.assertStrContains(out, "dir slash\tEACCES")
  local parent = dir:match("^(.*)/[^/]+$")
  lu.assertEquals(select(2, h.sh("ls -A " .. h.q(parent) .. " | grep -c '" ..
                                  dir:match("[^/]+$") .. "%.tmp' || true")), "0\n")
end

function TestSandbox:test_allow_lists_hold_what_they_say()
  local f = h.tmp("file", "sbx")
  assert(io.open(f, "w")):close()
  local status, out = h.run("print('ran')", { "--sandbox", "--allow-dir", f })
  lu.assertEquals(status, 2, out)
  lu.assertStrContains(out, "allow_dirs: '" .. f .. "' is not a directory")
  status, out = h.run("print('ran')", { "--sandbox", "--allow-spawn", "/tmp" })
  lu.assertEquals(status, 2, out)
  lu.assertStrContains(out, "allow_spawn: '/tmp' is not an executable file")
  status, out = h.run("print('ran')", { "--sandbox", "--allow-spawn", f })
  lu.assertEquals(status, 2, out)
  os.remove(f)
end

function TestSandbox:test_limits_only_for_own_processes()
  local status, out = run([[
    print("pid1", mg.set_limit("1G", { pid = 1, strict = false }))
  ]])
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "pid1\tfalse\tpid: the sandbox allows only this process and its own children, not pid 1\tEPERM")
end

function TestSandbox:test_allow_options_need_the_sandbox()
  local status, out = h.run("print('ran')", { "--allow-dir", "/tmp" })
  lu.assertEquals(status, 2, out)
  lu.assertStrContains(out, "--allow-dir goes with --sandbox")
  lu.assertNotStrContains(out, "ran")
  status, out = h.run("print('ran')", { "--allow-spawn", "/bin/true" })
  lu.assertEquals(status, 2, out)
  lu.assertStrContains(out, "--allow-spawn goes with --sandbox")
end

function TestSandbox:test_allowed_paths_must_exist()
  local status, out = h.run("print('ran')", { "--sandbox", "--allow-dir",
                                              "/nonexistent/mgrun-dir" })
  lu.assertEquals(status, 2, out)
  lu.assertStrContains(out, "allow_dirs: cannot use '/nonexistent/mgrun-dir'")
  lu.assertNotStrContains(out, "ran")
end

os.exit(lu.LuaUnit.run(table.unpack(arg)))
