-- helper54.lua — shared helpers of the luaunit suites that run through
-- Debian's stock lua5.4 with mg.so (tests/lua54; ctest sets LUA_CPATH to
-- the built module and the variables below).
local lu = require("luaunit")
local M = {}

M.lua = os.getenv("MG_LUA54") or "/usr/bin/lua5.4"
M.so = os.getenv("MG_SO") or error("MG_SO is not set (run through ctest)")
M.hog = os.getenv("MG_HOG") or error("MG_HOG is not set (run through ctest)")
M.source = os.getenv("MG_SOURCE_DIR")

local tmpdir = os.getenv("TMPDIR") or "/tmp"
local counter = 0

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.q = q

-- A fresh temporary path (nothing is created).
function M.tmp(name)
  counter = counter + 1
  return ("%s/mg-lua54-%d-%d-%s"):format(tmpdir, M.pid(), counter, name)
end

-- This process's pid, without mg (the helper is loaded before it).
function M.pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = tonumber(f:read("a"):match("^(%d+)"))
  f:close()
  return pid
end

-- Run a shell command; returns how it ended ("exit" code, or 128+signal)
-- and its combined stdout and stderr.
function M.sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local _, how, code = p:close()
  if how == "signal" then code = 128 + code end
  return code, out
end

-- Run `code` as a program of its own through lua5.4 with mg.so (the
-- environment is inherited: LUA_CPATH, LD_PRELOAD under ASan). Returns
-- its exit status and output. `prefix` goes before the command (e.g.
-- "exec" or a variable assignment).
function M.run(code, args, prefix)
  local path = M.tmp("prog.lua")
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local cmd = { prefix or "", q(M.lua), q(path) }
  for _, a in ipairs(args or {}) do cmd[#cmd + 1] = q(a) end
  local status, out = M.sh(table.concat(cmd, " "))
  os.remove(path)
  return status, out
end

function M.exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

-- Is process `pid` alive (and not a zombie)?
function M.alive(pid)
  local f = io.open(("/proc/%d/stat"):format(pid))
  if not f then return false end
  local st = f:read("a")
  f:close()
  local state = st:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

-- The cgroup groups of the supervisor of process `pid` under `parent`
-- (<parent>/mgrun-<pid>-<name>); `parent` is the directory a child's
-- p.cgroup lies in.
function M.groups_of(parent, pid)
  local p = assert(io.popen(("ls -d %s/mgrun-%d-* 2>/dev/null"):format(
    q(parent), pid)))
  local out = p:read("a")
  p:close()
  local list = {}
  for line in out:gmatch("[^\n]+") do list[#list + 1] = line end
  return list
end

function M.dirname(path)
  return (path:gsub("/[^/]+/?$", ""))
end

-- Skip for want of a writable cgroup: a failure under MG_REQUIRE_CGROUP=1
-- (as .ci/run sets), a printed skip otherwise.
function M.need_cgroup(mg)
  local p = mg.probe()
  if p.cgroup and p.cgroup.writable then return end
  local why = "no writable cgroup memory hierarchy: " ..
              tostring(p.cgroup and p.cgroup.writable_reason)
  if os.getenv("MG_REQUIRE_CGROUP") == "1" then
    lu.fail("MG_REQUIRE_CGROUP=1 but " .. why)
  end
  print("SKIP: " .. why)
  lu.skip(why)
end

return M
