-- mg/default.lua — the built-in policy of `mgrun --limit SIZE -- CMD`.
--
-- mgrun's main() runs require("mg.default")(limit, enforce, cmd...) with
-- the limit and the mode as typed. The policy:
--   * spawns CMD under the limit (enforce: auto|cgroup|data|as|none),
--     stdout and stderr inherited, no restart; the supervisor holds the one
--     limit rule (positive; for cgroup, data and none within the effective
--     memory, a warning above 90 %; for as within the hard RLIMIT_AS), and
--     a refusal exits 2,
--   * watches CMD with the kernel's notifications (its own cgroup: a
--     threshold at 80 % of the limit, OOM kills of any of its processes),
--     so an idle CMD costs no CPU; only where no notification can be
--     armed does it sample, every 250 ms (a sample line at debug level);
--     the supervisor logs one line per warning (child_warn) and per OOM
--     kill (child_oom_kill),
--   * forwards INT/TERM/HUP to CMD as a stop (SIGTERM, SIGKILL after 5 s;
--     a second signal kills at once),
--   * when CMD ends, says why on stderr unless it exited 0 (for example
--     "mgrun: CMD was killed by the OOM killer in its cgroup (limit 64.00
--     MiB, peak 64.00 MiB)") and exits with CMD's own status: its exit
--     code, or 128+N when a signal N killed it.
local fmt = mg.format_size

local function say(line)
  if io and io.stderr then
    io.stderr:write("mgrun: ", line, "\n")
  else
    mg.log.error("mgrun", { message = line })
  end
end

-- Why it died, as a sentence (prog as the user typed it).
local function why(prog, e, limit, enforce)
  local mem = ("limit %s, peak %s"):format(limit and fmt(limit) or "none",
                                           fmt(e.peak or 0))
  local sig = e.signal and ("signal %d%s"):format(
    e.signal, e.signame and (" (SIG" .. e.signame .. ")") or "")
  if e.reason == "oom" then
    return ("%s was killed by the OOM killer in its cgroup (%s)"):format(
      prog, mem)
  elseif e.reason == "limit" then
    local res = ({ data = "RLIMIT_DATA", as = "RLIMIT_AS" })[enforce] or
                  (enforce .. " limit")
    local how = e.signal and ("killed by " .. sig) or
                  ("exit status " .. tostring(e.code))
    return ("%s died after an allocation was refused at its %s (%s, %s)")
      :format(prog, res, how, mem)
  elseif e.reason == "signal" then
    return ("%s was killed by %s (%s)"):format(prog, sig, mem)
  end
  return ("%s exited with status %d (%s)"):format(prog, e.code, mem)
end

-- The exit status for a command that could not be started, from the
-- error's code: the shell's 127 (not found) and 126 (found, cannot run);
-- 2 for a limit or mode that is not accepted here; 1 otherwise.
local start_status = {
  ENOENT = 127, EACCES = 126, EISDIR = 126, ENOEXEC = 126, EPERM = 126,
  EINVAL = 2, EPARSE = 2, ERANGE_SIZE = 2, ELIMIT = 2, ENOTENFORCED = 2,
  ENOTSUP = 2, EEXIST = 2,
}

return function(limit, enforce, prog, ...)
  if not prog then
    say("no command given (usage: mgrun --limit SIZE -- CMD [ARGS...])")
    mg.exit(2)
  end
  -- the limit as the user typed it: mg.spawn parses it (once) and the
  -- supervisor decides whether it is accepted; the name comes from prog
  local p, err, code = mg.spawn {
    cmd = { prog, ... },
    limit = limit,
    enforce = enforce,
    warn_at = 0.8,
    sample_ms = 250,
    sample = "fallback",
    restart = "no",
  }
  if not p then
    if code == "EPARSE" or code == "ERANGE_SIZE" then
      say(("invalid --limit '%s': %s"):format(limit, err))
    else
      say("cannot run " .. prog .. ": " .. err)
    end
    mg.exit(start_status[code] or 1)
  end
  mg.log.debug("started", { name = p.name, pid = p.pid, limit = fmt(limit),
                            enforce = p.enforce })

  p:on("sample", function(_, s)
    mg.log.debug("sample", { name = p.name, used = s.used, rss = s.rss,
                             fraction = s.fraction })
  end)

  local stopping = false
  local function on_sig(signame)
    if stopping then
      p:stop(0)
    else
      stopping = true
      mg.log.info("stopping", { name = p.name, signal = signame })
      p:stop()
    end
  end
  mg.on_signal("INT", on_sig)
  mg.on_signal("TERM", on_sig)
  mg.on_signal("HUP", on_sig)

  p:on("exit", function(_, e)
    if e.will_restart then return end
    mg.log.debug("exited", { name = p.name, reason = e.reason,
                             status = e.status, detail = e.detail })
    if e.status ~= 0 and not stopping then
      say(why(prog, e, p.limit, p.enforce))
    end
    mg.exit(e.status > 255 and 255 or e.status)
  end)
end
