# mgrun's command line: help, version, usage errors, --probe.
source "$(dirname "$0")/lib.sh"

out=$("$MGRUN" --help)
check "--help exits 0 and shows usage" grep -q "Usage: mgrun" <<<"$out"
check "--help lists every option" bash -c 'for o in --log-format --log-level --lua-mem --cb-timeout --cb-instructions --setup-timeout --sandbox --cgroup-parent --check --probe --json; do grep -q -- "$o" <<<"$1" || exit 1; done' _ "$out"
check "--version" bash -c '[[ $("$MGRUN" --version) == "mgrun 0.1.0" ]]'

"$MGRUN" >/dev/null 2>&1
check "no policy: exit 2" test $? -eq 2
"$MGRUN" --nope >"$T_TMP/o" 2>&1
check "unknown option: exit 2 with a hint" test $? -eq 2
check "unknown option names it" grep -q "unknown option '--nope'" "$T_TMP/o"
"$MGRUN" --lua-mem 12Gx p.lua >"$T_TMP/o" 2>&1
check "bad size: exit 2" test $? -eq 2
check "bad size quoted" grep -q '"12Gx"' "$T_TMP/o"
"$MGRUN" --probe extra >/dev/null 2>&1
check "--probe takes no policy" test $? -eq 2
"$MGRUN" --limit >"$T_TMP/o" 2>&1
check "--limit without its value: exit 2" test $? -eq 2
check "--limit without its value: names the option" grep -q "option '--limit' needs a value" "$T_TMP/o"
"$MGRUN" --cb-timeout >"$T_TMP/o" 2>&1
check "--cb-timeout without its value: names the option" grep -q "option '--cb-timeout' needs a value" "$T_TMP/o"
"$MGRUN" --probe --cgroup-parent /nonexistent/mgrun-parent >"$T_TMP/o" 2>&1
check "--probe with a missing --cgroup-parent: exit 2" test $? -eq 2
check "--probe with a missing --cgroup-parent: says so" grep -q "cgroup_parent: '/nonexistent/mgrun-parent' does not exist" "$T_TMP/o"
p=$(policy noop <<<"print('ran')")
"$MGRUN" --cgroup-parent /nonexistent/mgrun-parent "$p" >"$T_TMP/o" 2>&1
check "a policy with a missing --cgroup-parent: exit 2 at start" test $? -eq 2
check "a policy with a missing --cgroup-parent: nothing ran" bash -c '! grep -q "^ran" "$1"' _ "$T_TMP/o"
check "--help prints no doubled %" bash -c '! grep -q "%%" <<<"$1"' _ "$out"
check "--help says what each mode bounds" bash -c 'for m in auto cgroup data as none; do grep -qE "^ +$m +" <<<"$1" || exit 1; done' _ "$out"
check "--help lists the sandbox's allow options" bash -c 'grep -q -- "--allow-spawn PATH" <<<"$1" && grep -q -- "--allow-dir DIR" <<<"$1"' _ "$out"

# --probe --json parses and matches /proc/meminfo
"$MGRUN" --probe --json >"$T_TMP/probe.json"
check "--probe --json exits 0" test $? -eq 0
check "--probe --json parses (jq)" jq -e . "$T_TMP/probe.json" >/dev/null
memtotal=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) * 1024))
check "memory.total == MemTotal" test "$(jq .memory.total "$T_TMP/probe.json")" = "$memtotal"
check "effective_total <= total" jq -e '.memory.effective_total <= .memory.total' "$T_TMP/probe.json"
check "cgroup version reported" jq -e '.cgroup.version | test("^(v1|v2|none)$")' "$T_TMP/probe.json"
check "rlimit data reported" jq -e '.rlimit.data.enforced | type == "boolean"' "$T_TMP/probe.json"
check "rlimit preferred is data" jq -e '.rlimit.preferred == "data"' "$T_TMP/probe.json"
if [[ -r /proc/pressure/memory ]]; then
  check "pressure some.avg10" jq -e '.pressure.some.avg10 | type == "number"' "$T_TMP/probe.json"
fi
# mg.probe() is the same document
p=$(policy same <<'LUA'
local p = mg.probe()
print(p.memory.total, p.cgroup.version, p.rlimit.preferred)
LUA
)
check "mg.probe() matches --probe --json" test "$("$MGRUN" "$p")" = "$(jq -r '"\(.memory.total)\t\(.cgroup.version)\t\(.rlimit.preferred)"' "$T_TMP/probe.json")"

"$MGRUN" --probe >"$T_TMP/probe.txt"
check "--probe text has every section" bash -c 'for s in memory: effective: cgroup: rlimit: pressure:; do grep -q "^$s" "$1" || exit 1; done' _ "$T_TMP/probe.txt"
finish
