# Reaction end to end, on a real cgroup hierarchy: thresholds that fire
# once per upward crossing and re-arm (kernel notifications, no sampling),
# warn without sampling, an `oom` event for a descendant's OOM kill while
# the main process lives, p:kill{} of a child that ignores TERM and has
# grandchildren, the ladder policy's rungs in order, deaths named right
# (a fast hog under data, SIGTRAP / SIGABRT after a refused allocation, a
# death before the first sample, a stderr text), the stderr relay (live,
# in order, its tail in the exit info), throttle / freeze, cgroup = false,
# and PSI triggers with their window fallback.
source "$(dirname "$0")/lib.sh"
HOG="$(dirname "$MGRUN")/mg-hog"
[[ -x $HOG ]] || { echo "FAIL: no mg-hog next to $MGRUN"; exit 1; }
export HOG T_TMP

# Can a child get a group of its own here?
probe=$(policy probe <<'LUA'
local p, err = mg.spawn { name = "probe", cmd = { "true" }, cgroup = true }
print(p and ("group " .. tostring(p.cgroup)) or ("none " .. err))
LUA
)
g=$("$MGRUN" --log-level error "$probe" 2>&1)
[[ $g == "group /"* ]] || skip_cgroup "no group can be made for a child: $g"
v1=0
[[ $g == *"/memory/"* ]] && v1=1

# ----------------------------------------------------------- thresholds
# A saw-tooth to 48 MiB, twice: each of 16 MiB and 40% (of 64M = 25.6 MiB)
# fires once per rise, by the kernel, with no sampling at all.
p=$(policy th <<'LUA'
local p = assert(mg.spawn { name = "saw", enforce = "none", limit = "64M",
  thresholds = { 16 * 2^20, "40%" }, sample_ms = 0, warn_at = 0.7,
  cmd = { os.getenv("HOG"), "--quiet", "--rate", "256M", "--max", "48M",
          "--cycle", "0.5", "--cycles", "2" } })
local n, warns = {}, 0
p:on("threshold", function(_, t)
  n[t.id] = (n[t.id] or 0) + 1
  print("th", t.id, t.level, t.usage >= t.level, t.rising, t.kind, t.by_kernel,
        t.fraction and string.format("%.2f", t.fraction))
  if t.anon then print("parts", t.anon > 8 * 2^20, t.file >= 0, t.shmem >= 0) end
end)
p:on("warn", function() warns = warns + 1 end)
p:on("sample", function() print("SAMPLED") end)
p:on("exit", function(_, e)
  print("done", n[1], n[2], warns, e.reason)
  mg.exit(0)
end)
LUA
)
out=$("$MGRUN" "$p" 2>&1)
check "threshold: each fires once per rise, twice in two cycles (and warn)" grep -q "^done	2	2	2	exit" <<<"$out"
check "threshold: the usage is past the level, rising, kind memory" grep -q "^th	1	16777216	true	true	memory" <<<"$out"
check "threshold: a percentage is of the limit" grep -q "^th	2	26843545	true	true	memory	.*	0.40" <<<"$out"
if ((v1)); then
  check "threshold: v1 notifies (by_kernel)" grep -q "^th	1	16777216	true	true	memory	true" <<<"$out"
fi
check "threshold: the table has the group's anon/file/shmem" grep -q "^parts	true	true	true" <<<"$out"
check "threshold: nothing sampled (sample_ms = 0)" bash -c "! grep -q SAMPLED <<<\"\$1\"" _ "$out"

# The order thresholds fire in: JUMP_OPTS (a Lua table of spawn fields)
# over a hog that goes to 48 MiB at full speed and holds it; prints the ids
# in the order they fired.
p_order=$(policy th_order <<'LUA'
local o = assert(load("return " .. os.getenv("JUMP_OPTS")))()
o.name, o.enforce, o.limit, o.warn_at = "jump", "none", "64M", false
o.cmd = { os.getenv("HOG"), "--quiet", "--max", "48M", "--hold", "1" }
local p = assert(mg.spawn(o))
local order = {}
p:on("threshold", function(_, t) order[#order + 1] = t.id end)
p:on("exit", function() print("order", table.concat(order, " ")) mg.exit(0) end)
LUA
)
# Levels passed between two measurements fire lowest first, whatever
# order the spawn listed them in: sampled (no group), the hog at 48 MiB
# well before the first sample passes all three at once.
out=$(JUMP_OPTS='{ cgroup = false, sample_ms = 300, thresholds = { "60%", "30%", "45%" } }' \
  "$MGRUN" "$p_order" 2>&1)
check "threshold: levels passed at once fire lowest first" grep -q "^order	2 3 1$" <<<"$out"
# Levels a fast child passes while its watches are being set up (a v1
# eventfd registration waits for an RCU grace period: 10-30 ms each here)
# fire too, lowest first: eight levels, the hog at 40 MiB in ~20 ms.
out=$(JUMP_OPTS='{ sample_ms = 0, thresholds = { "5%", "10%", "15%", "20%", "25%", "30%", "35%", "40%" } }' \
  "$MGRUN" "$p_order" 2>&1)
check "threshold: levels passed while arming fire, lowest first" grep -q "^order	1 2 3 4 5 6 7 8$" <<<"$out"

# Memory + swap: { level, swap = true } compares the group's memsw (v1
# memory.memsw.usage_in_bytes, v2 memory.current + memory.swap.current);
# kind "memsw". Needs a group; malformed entries say what is accepted.
p=$(policy th_swap <<'LUA'
local p = assert(mg.spawn { name = "sw", enforce = "none", limit = "64M",
  sample_ms = 0, warn_at = false,
  thresholds = { "20%", { "30%", swap = true }, { level = 24 * 2^20, swap = false } },
  cmd = { os.getenv("HOG"), "--quiet", "--max", "40M", "--hold", "1",
          "--start-delay-us", "300000" } })
local w = assert(p:watch({ "50%", swap = true }, function(_, t)
  print("watch", t.kind, t.level, t.usage >= t.level)
end))
p:on("threshold", function(_, t) print("th", t.id, t.kind, t.level, t.usage >= t.level) end)
for _, bad in ipairs { { "50%", swap = 1 }, { "5%", level = "3M" }, { swap = true },
                       { "1M", bogus = 1 }, { "1M", [2] = 1 } } do
  print("bad", p:watch(bad, print))
end
print("nogroup", mg.spawn { name = "x", cgroup = false, cmd = { "true" },
                           thresholds = { { "1M", swap = true } } })
p:on("exit", function() mg.exit(0) end)
LUA
)
out=$("$MGRUN" "$p" 2>&1)
check "swap: a memory threshold is kind memory" grep -q "^th	1	memory	13421772	true" <<<"$out"
check "swap: { level, swap = true } is kind memsw" grep -q "^th	2	memsw	20132659	true" <<<"$out"
check "swap: level = with swap = false is memory" grep -q "^th	3	memory	25165824	true" <<<"$out"
check "swap: p:watch takes one too" grep -q "^watch	memsw	33554432	true" <<<"$out"
check "swap: a swap that is no boolean refused" grep -q "^bad	nil	level: swap must be a boolean (true: compare memory + swap), not a number	EINVAL" <<<"$out"
check "swap: two levels refused" grep -q "^bad	nil	level: two levels (\[1\] and level) (accepted: a level (\"80%\" or a size), or { level, swap = true|false })	EINVAL" <<<"$out"
check "swap: no level refused" grep -q "^bad	nil	level: no level " <<<"$out"
check "swap: unknown keys refused, named" grep -q "^bad	nil	level: unknown key 'bogus' " <<<"$out"
check "swap: a number key other than 1 refused" grep -q "^bad	nil	level: unknown key a number " <<<"$out"
check "swap: without a group ENOTSUP, saying why" grep -q "^nogroup	nil	thresholds: a memory + swap threshold (swap = true) needs a group of the process's own .*	ENOTSUP" <<<"$out"

# p:watch at run time, stopped from its own handler; bad levels refused
p=$(policy watch <<'LUA'
local p = assert(mg.spawn { name = "w", enforce = "none", limit = "64M",
  sample_ms = 0, cmd = { os.getenv("HOG"), "--quiet", "--rate", "128M",
  "--max", "40M", "--cycle", "0.4", "--cycles", "2" } })
local hits = 0
local h = assert(p:watch("20M", function(_, t)
  hits = hits + 1
  print("watch", t.level, t.id > 0)
end))
local once
once = p:watch(8 * 2^20, function(_, t) print("once", t.level) once:stop() end)
print("bad", select(2, p:watch("120%", function() end)))
print("bad0", select(3, p:watch(0, function() end)))
print("active", h:active(), tostring(h):match("^mg.watch %d+ %(active%)") ~= nil)
p:on("exit", function() print("hits", hits, once:active()) mg.exit(0) end)
LUA
)
out=$("$MGRUN" "$p" 2>&1)
check "watch: fires on each rise" grep -q "^hits	2	false" <<<"$out"
check "watch: a handle stopped in its handler fires once" test "$(grep -c '^once' <<<"$out")" -eq 1
check "watch: above 100% refused, saying what is accepted" grep -q "^bad	thresholds\?.*above 0 and up to 100\|^bad	level: invalid percentage '120%'" <<<"$out"
check "watch: 0 bytes refused" grep -q "^bad0	EPARSE" <<<"$out"
check "watch: handle is active" grep -q "^active	true	true" <<<"$out"

# mg.spawn refuses bad thresholds before starting anything
p=$(policy badth <<'LUA'
print("a", select(2, mg.spawn { cmd = { "true" }, thresholds = { "0%" } }))
print("b", select(2, mg.spawn { cmd = { "true" }, thresholds = { "abc" } }))
print("c", pcall(mg.spawn, { cmd = { "true" }, thresholds = "80%" }))
print("d", select(2, mg.spawn { cmd = { "true" }, sample = "often" }))
print("e", pcall(mg.spawn, { cmd = { "true" }, cgroup = "yes" }))
print("f", select(2, mg.spawn { cmd = { "true" }, cgroup = false, enforce = "cgroup", limit = "1G" }))
LUA
)
out=$("$MGRUN" --log-level error "$p" 2>&1)
check "spawn: a 0% threshold refused" grep -q "^a	thresholds\[1\]: invalid percentage '0%'" <<<"$out"
check "spawn: a threshold that is no size refused" grep -q "^b	thresholds\[1\]: " <<<"$out"
check "spawn: thresholds must be a table" grep -q "^c	false	.*bad field 'thresholds'" <<<"$out"
check "spawn: sample must be always or fallback" grep -q "^d	sample: 'often' (accepted: \"always\"" <<<"$out"
check "spawn: cgroup must be a boolean" grep -q "^e	false	.*bad field 'cgroup' in mg.spawn (boolean expected" <<<"$out"
check "spawn: cgroup = false with enforce = cgroup refused" grep -q "^f	cgroup: false with enforce=cgroup" <<<"$out"

# ------------------------------------------------- every child a group
p=$(policy groups <<'LUA'
local a = assert(mg.spawn { name = "d", enforce = "data", limit = "256M", cmd = { "sleep", "0.2" } })
local b = assert(mg.spawn { name = "n", enforce = "none", cmd = { "sleep", "0.2" } })
local c = assert(mg.spawn { name = "x", enforce = "data", limit = "256M", cgroup = false, cmd = { "sleep", "0.2" } })
print("groups", a.cgroup ~= nil, b.cgroup ~= nil, c.cgroup == nil)
local m = assert(a:memory())
print("mem", m.cgroup_current ~= nil, m.anon ~= nil, m.file ~= nil)
print("throttle-no-group", select(3, c:throttle("100M")))
local e = assert(mg.spawn { name = "env", memory_pressure = true, stdout = os.getenv("T_TMP") .. "/env",
  cmd = { "sh", "-c", "echo W=${MEMORY_PRESSURE_WATCH:-unset} X=${MEMORY_PRESSURE_WRITE:-unset}" } })
mg.after(600, function() mg.exit(0) end)
LUA
)
out=$("$MGRUN" --log-level error "$p" 2>&1)
check "groups: data and none get one, cgroup = false does not" grep -q "^groups	true	true	true" <<<"$out"
check "groups: p:memory() has the group's figures and anon/file" grep -q "^mem	true	true	true" <<<"$out"
check "groups: throttle without a group is ENOTSUP" grep -q "^throttle-no-group	ENOTSUP" <<<"$out"
if ((v1)); then # v1 has no memory.pressure: nothing to point at
  check "memory_pressure: not set on cgroup v1" grep -q "^W=unset X=unset" "$T_TMP/env"
else
  check "memory_pressure: systemd's protocol on v2" grep -q "^W=/sys/fs/cgroup/.*/memory.pressure X=c29tZSAyMDAwMDAgMjAwMDAwMA==" "$T_TMP/env"
fi

# --------------------------------------------- OOM kill of a descendant
p=$(policy oom <<'LUA'
local hog = os.getenv("HOG")
local p = assert(mg.spawn { name = "fam", enforce = "cgroup", limit = "48M",
  sample_ms = 0, cmd = { "sh", "-c", hog .. " --quiet --max 200M; sleep 0.5; exit 0" } })
local seen = 0
p:on("oom", function(_, o)
  seen = seen + o.count
  print("oom", o.count, o.total, p.running)
end)
p:on("exit", function(_, e)
  print("exit", e.reason, e.code, e.oom_kills, seen)
  mg.exit(0)
end)
LUA
)
out=$("$MGRUN" "$p" 2>&1)
check "oom: an event while the main process lives" grep -q "^oom	1	1	true" <<<"$out"
check "oom: logged when it happens" grep -q "child_oom_kill name=fam .*count=1 total=1" <<<"$out"
check "oom: counted in the exit info, main process exit 0" grep -q "^exit	exit	0	1	1" <<<"$out"

# ------------------------------- p:kill{} of a TERM-ignoring process tree
p=$(policy kill <<'LUA'
local p = assert(mg.spawn { name = "tree", enforce = "none", sample_ms = 0,
  cmd = { os.getenv("HOG"), "--quiet", "--max", "8M", "--fork", "2",
          "--fork-setsid", "--ignore-term" } })
mg.after(400, function()
  print("pids", p.pid, p.cgroup)
  t0 = mg.now()
  assert(p:kill { signal = "TERM", grace_ms = 300 })
end)
p:on("exit", function(_, e)
  print("exit", e.reason, e.signame, math.floor(mg.now() - t0) >= 250)
  print("detail", e.detail)
  mg.exit(0)
end)
LUA
)
out=$("$MGRUN" "$p" 2>&1)
check "kill{}: TERM ignored, KILL after the grace" grep -q "^exit	signal	KILL	true" <<<"$out"
check "kill{}: the kill is named ours" grep -q "^detail	.*sent by the supervisor after the grace period" <<<"$out"
grp=$(awk -F'\t' '/^pids/ {print $3}' <<<"$out")
check "kill{}: the group is gone with everything in it" test ! -d "$grp"
survivors() { pgrep -f -- "$HOG --quiet --max 8M --fork 2 --fork-setsid" || true; }
check "kill{}: no setsid grandchild survives" test -z "$(survivors)"
check "kill{}: logged" grep -q "child_terminating name=tree .*signal=SIGTERM grace_ms=300" <<<"$out"

# -------------------------------------------------- the ladder, in order
out=$(timeout 60 "$MGRUN" "$MG_SOURCE_DIR/policies/ladder.lua" --seconds 8 2>&1)
steps=$(sed -nE 's/.* (ladder_(warn|throttle|stop|kernel_kill)) .*name=([a-z]+).*/\1 \3/p' <<<"$out")
agent=$(awk '$2 == "agent" { print $1 }' <<<"$steps" | head -3 | tr '\n' ' ')
stub=$(awk '$2 == "stubborn" { print $1 }' <<<"$steps" | head -4 | tr '\n' ' ')
check "ladder: agent warns, throttles, stops, in that order" test "$agent" = "ladder_warn ladder_throttle ladder_stop "
check "ladder: stubborn goes on to the kernel's kill" test "$stub" = "ladder_warn ladder_throttle ladder_stop ladder_kernel_kill "
check "ladder: the kernel's kill is an OOM exit" grep -q "child_exited name=stubborn .*reason=oom" <<<"$out"
if [[ $agent != "ladder_warn ladder_throttle ladder_stop " ||
  $stub != "ladder_warn ladder_throttle ladder_stop ladder_kernel_kill " ]]; then
  echo "# agent: $agent / stubborn: $stub; the run's log:"
  grep -E "ladder_|child_|threshold" <<<"$out" | sed 's/^/#   /'
fi
if ((v1)); then
  check "ladder: throttling on v1 is refused, saying why" grep -q "ladder_throttle code=ENOTSUP error=\"throttle: cgroup v1 has no memory.high" <<<"$out"
fi

# ------------------------------------------------------ deaths named right
# A hog at full speed under data dies between samples, exit 3: the group's
# peak is at the limit.
lim=0
for i in 1 2 3; do
  "$MGRUN" --limit 128M --enforce data -- "$HOG" --quiet 2>"$T_TMP/e$i"
  grep -q "died after an allocation was refused at its RLIMIT_DATA (exit status 3" "$T_TMP/e$i" && lim=$((lim + 1))
done
check "deaths: a full-speed hog under data is limit (3 of 3)" test "$lim" -eq 3

p=$(policy deaths <<'LUA'
local hog = os.getenv("HOG")
local cases = {
  { "trap", "data", { hog, "--quiet", "--fail-signal", "5" } },
  { "abrt", "data", { hog, "--quiet", "--fail-signal", "6" } },
  -- dies at once, before any sample (sample_ms 10 s): the group's peak
  { "early", "cgroup", { "sh", "-c", "MG_HOG_ALLOC_AT_START=200M exec " .. hog } },
  -- a refused allocation only its stderr tells of (under RLIMIT_DATA: a
  -- cgroup refuses nothing, its exact charge would clear the text)
  { "text", "data", { "sh", "-c", "echo 'terminate called after throwing an instance of std::bad_alloc' >&2; exit 1" } },
  { "text-cg", "cgroup", { "sh", "-c", "echo 'terminate called after throwing an instance of std::bad_alloc' >&2; exit 1" } },
}
local left = #cases
for _, c in ipairs(cases) do
  local p = assert(mg.spawn { name = c[1], enforce = c[2], limit = "64M",
    sample_ms = 10000, cmd = c[3], stderr = "null" })
  p:on("exit", function(_, e)
    print(c[1], e.reason, e.signame or e.code, e.peak > 0, #e.stderr_tail > 0)
    left = left - 1
    if left == 0 then mg.exit(0) end
  end)
end
LUA
)
out=$("$MGRUN" --log-level error "$p" 2>&1)
check "deaths: SIGTRAP after a refused allocation is limit" grep -q "^trap	limit	TRAP	true	true" <<<"$out"
check "deaths: SIGABRT after a refused allocation is limit" grep -q "^abrt	limit	ABRT	true	true" <<<"$out"
check "deaths: a death before the first sample has its peak and a reason" grep -qE "^early	(oom|limit)	.*	true	" <<<"$out"
check "deaths: an allocation failure in the stderr tail is limit" grep -q "^text	limit	1	true	true" <<<"$out"
check "deaths: …but not under a cgroup whose exact charge was far below" grep -q "^text-cg	exit	1	true	true" <<<"$out"

# ------------------------------------------------------- the stderr relay
p=$(policy relay <<'LUA'
local p = assert(mg.spawn { name = "say", cmd = { "sh", "-c",
  "echo one >&2; sleep 0.2; echo two >&2; exit 4" } })
mg.after(100, function() io.stderr:write("between\n") end)
p:on("exit", function(_, e)
  io.stdout:write("tail=[", e.stderr_tail, "]\n")
  mg.exit(0)
end)
LUA
)
"$MGRUN" --log-level error "$p" >"$T_TMP/o" 2>"$T_TMP/e"
check "relay: inherited stderr is shown live and in order" test "$(grep -v '^$' "$T_TMP/e" | tr '\n' ' ')" = "one between two "
check "relay: its tail is in the exit info" grep -qz "tail=\[one"$'\n'"two"$'\n'"\]" "$T_TMP/o"

# a reader of mgrun's stderr that stalls does not stall mgrun: the child's
# 1 MiB of stderr is dropped past 100 ms of waiting, its tail kept
p=$(policy stuck <<'LUA'
local p = assert(mg.spawn { name = "loud", cmd = { "sh", "-c",
  "head -c 1048576 /dev/zero | tr '\\0' x >&2; echo last words >&2" } })
p:on("exit", function(_, e)
  io.stdout:write("tail ", e.stderr_tail:sub(-11), "\n")
  mg.exit(0)
end)
LUA
)
mkfifo "$T_TMP/err.fifo"
exec 7<>"$T_TMP/err.fifo" # held open, never read: a reader that stalls
t0=$(date +%s%N)
"$MGRUN" --log-level error "$p" >"$T_TMP/o" 2>"$T_TMP/err.fifo"
t1=$(date +%s%N)
exec 7>&-
check "stuck stderr: mgrun finishes without waiting for its reader" test $(((t1 - t0) / 1000000)) -lt 5000
check "stuck stderr: the tail is kept" grep -q "^tail last words" "$T_TMP/o"

# ---------------------------------------------------- throttle and freeze
p=$(policy act <<'LUA'
local p = assert(mg.spawn { name = "act", enforce = "cgroup", limit = "64M",
  cmd = { os.getenv("HOG"), "--rate", "4M", "--max", "16M" } })
mg.after(300, function()
  local ok, err, code = p:throttle("32M")
  print("throttle", ok, code, err)
  print("unthrottle", select(3, p:unthrottle()))
  local fok, ferr, fcode = p:freeze()
  print("freeze", fok, fcode, ferr)
  mg.after(300, function()
    print("thaw", p:thaw())
    p:kill()
  end)
end)
p:on("exit", function(_, e) print("exit", e.reason, e.detail) mg.exit(0) end)
LUA
)
out=$("$MGRUN" --log-level info "$p" 2>&1)
if ((v1)); then
  check "throttle: v1 says what is possible" grep -q "^throttle	nil	ENOTSUP	throttle: cgroup v1 has no memory.high" <<<"$out"
  if [[ -d /sys/fs/cgroup/freezer ]]; then
    check "freeze: the v1 freezer freezes the run" grep -q "^freeze	true" <<<"$out"
    check "freeze: thaw" grep -q "^thaw	true" <<<"$out"
    check "freeze: logged" grep -q "child_frozen name=act" <<<"$out"
  fi
else
  check "throttle: memory.high set" grep -q "^throttle	true" <<<"$out"
  check "freeze: cgroup.freeze" grep -q "^freeze	true" <<<"$out"
fi
check "kill of a thawed child: named ours" grep -q "^exit	signal	killed by SIGKILL (9), sent by the supervisor (a kill)" <<<"$out"

# ------------------------------------------------------------ PSI triggers
p=$(policy psi <<'LUA'
local h, err, code = mg.on_pressure { kind = "some", stall_ms = 100,
  window_ms = 500, fn = function() end }
if not h then print("psi", "none", code, err) mg.exit(0) end
print("psi", h.kind, h.stall_ms, h.window_ms, h.fallback ~= nil)
h:stop()
print("stopped", h:active())
print("bad", select(2, mg.on_pressure { stall_ms = 100, window_ms = 100, fn = print }))
print("bad2", pcall(mg.on_pressure, { stall_ms = 100, window_ms = 2000, fn = print, bogus = 1 }))
local h2 = assert(mg.on_pressure { kind = "full", stall_ms = 200, window_ms = 2000, fn = print })
print("psi2", h2.kind, h2.stall_ms, h2.window_ms, h2.fallback)
mg.exit(0)
LUA
)
out=$("$MGRUN" "$p" 2>&1)
if grep -q "^psi	none	ENOTSUP" <<<"$out"; then
  echo "# no PSI on this kernel: $(grep '^psi' <<<"$out")"
else
  # 500 ms arms with CAP_SYS_RESOURCE; without it (containers, this CI) the
  # shortest 2 s multiple arms with the same share of the window
  check "psi: armed as asked, or 400 ms in 2 s with the fallback said" grep -qE "^psi	some	(100	500	false|400	2000	true)" <<<"$out"
  check "psi: a handle stops" grep -q "^stopped	false" <<<"$out"
  check "psi: a window below 500 ms is refused" grep -q "^bad	window_ms: 100 (accepted: 500..10000)" <<<"$out"
  check "psi: unknown options raise" grep -q "^bad2	false	.*unknown option 'bogus'" <<<"$out"
  check "psi: a 2 s window arms as asked" grep -q "^psi2	full	200	2000	nil" <<<"$out"
fi

finish
