-- helper.lua — shared helpers for the luaunit suites (run by mgrun).
local M = {}

M.mgrun = os.getenv("MGRUN") or error("MGRUN is not set (run through ctest)")
M.fixtures = os.getenv("MG_FIXTURES")
M.bindir = os.getenv("MG_TEST_BINDIR")

local tmpdir = os.getenv("TMPDIR") or "/tmp"
local counter = 0

-- Write `code` to a fresh temporary policy file; returns its path.
function M.policy(code, name)
  counter = counter + 1
  local path = string.format("%s/mgrun-test-%d-%d-%s.lua", tmpdir, mg.pid,
                             counter, name or "policy")
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  return path
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.q = shell_quote

-- Run mgrun with `opts` (a list of options) on a policy given as code.
-- Returns exit status, combined stdout+stderr.
function M.run(code, opts, args)
  local path = M.policy(code)
  local cmd = { shell_quote(M.mgrun) }
  for _, o in ipairs(opts or {}) do cmd[#cmd + 1] = shell_quote(o) end
  cmd[#cmd + 1] = shell_quote(path)
  for _, a in ipairs(args or {}) do cmd[#cmd + 1] = shell_quote(a) end
  local status, out = M.sh(table.concat(cmd, " "))
  os.remove(path)
  return status, out
end

-- Run a shell command; returns its exit status and combined output.
function M.sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"__status=$?\""))
  local out = p:read("a")
  p:close()
  local status = tonumber(out:match("__status=(%d+)%s*$"))
  out = out:gsub("__status=%d+%s*$", "")
  return status, out
end

-- Number of times `pat` (plain) occurs in `s`.
function M.count(s, pat)
  local n, i = 0, 1
  while true do
    local j = s:find(pat, i, true)
    if not j then return n end
    n, i = n + 1, j + #pat
  end
end

-- Read a whole file.
function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- MemTotal from /proc/meminfo, in bytes.
function M.memtotal()
  return tonumber(M.read("/proc/meminfo"):match("MemTotal:%s+(%d+) kB")) * 1024
end

-- A fresh temporary path (nothing is created): <TMPDIR>/mgrun-<tag>-<pid>-<n>-<name>.
function M.tmp(name, tag)
  counter = counter + 1
  return ("%s/mgrun-%s-%d-%d-%s"):format(tmpdir, tag or "t", mg.pid, counter, name)
end

-- Everything observable about a context store, as one string: every
-- message field in order, the stats (minus the rejected-add counter) and
-- the snapshot. Two equal dumps mean an operation changed nothing.
function M.store_dump(ctx)
  local out = {}
  for m in ctx:messages() do
    local meta = {}
    for k, v in pairs(m.meta or {}) do meta[#meta + 1] = k .. "=" .. v end
    table.sort(meta)
    out[#out + 1] = table.concat({ m.id, m.role, m.content, m.source or "-",
      m.group or "-", tostring(m.pinned), m.priority, m.tokens,
      ("%.6f"):format(m.time), m.size, table.concat(meta, ",") }, "|")
  end
  local st, keys = ctx:stats(), {}
  st.rejected_count = nil
  for k in pairs(st) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do out[#out + 1] = k .. "=" .. tostring(st[k]) end
  local path = M.tmp("dump.json", "dump")
  assert(ctx:save(path))
  out[#out + 1] = M.read(path)
  os.remove(path)
  return table.concat(out, "\n")
end

return M
