# The control socket and `mgrun ctl` end to end: a real mgrun with a child
# (mg-hog) and a store, --control on a temporary path; status for people
# and as JSON (jq), set-limit seen in the child's cgroup file, stop,
# restart, stats, reload through mg.on_reload, a policy command through
# mg.on_control (and one that ends mgrun), an event stream that shows the
# exits, health 0 / 1 (a restart loop in a second instance; no answer),
# the socket's mode 0600, a connection from another uid refused (by the
# file's mode, and by SO_PEERCRED when the mode lets it through),
# malformed, oversized and endless lines answered with errors while mgrun
# goes on, a subscriber that does not read (events dropped and said so),
# a second mgrun on a live path refused, a stale socket replaced, the
# default path, and the socket removed at the end.
source "$(dirname "$0")/lib.sh"
HOG="$(dirname "$MGRUN")/mg-hog"
[[ -x $HOG ]] || { echo "FAIL: no mg-hog next to $MGRUN"; exit 1; }
command -v jq >/dev/null || { echo "FAIL: jq is missing (a dependency: build.sh deps)"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 is missing (a dependency: build.sh deps)"; exit 1; }
export HOG

# A directory others may enter (the socket's mode is what keeps them out).
PUB=$(mktemp -d /tmp/mgrun-ctl.XXXXXX)
chmod 755 "$PUB"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$T_TMP" "$PUB"
}
trap cleanup EXIT

SOCK=$PUB/a.sock
ctl() { "$MGRUN" ctl --socket "$SOCK" "$@"; }
wait_sock() { # wait_sock PATH: until a socket is there (10 s)
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -S $1 ]] && return 0
    sleep 0.1
  done
  return 1
}
# until COMMAND succeeds (10 s)
eventually() {
  local i
  for ((i = 0; i < 100; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}
json() { ctl --json "$@"; }
jqe() { jq -e "$@" >/dev/null; }
jqse() { jq -se "$@" >/dev/null; }

p=$(policy a <<'LUA'
local hog = os.getenv("HOG")
assert(mg.spawn { name = "worker", limit = "64M", restart = "on-failure",
  grace_ms = 2000, cmd = { hog, "--quiet", "--max", "4M" } })
local ctx = assert(mg.store { name = "ctx", max_messages = 50 })
for i = 1, 3 do ctx:add { role = "user", content = "message " .. i } end
local reloads = 0
mg.on_reload(function()
  reloads = reloads + 1
  mg.log.info("policy_reloaded", { n = reloads })
  return { reloads = reloads }
end)
mg.on_control("add", function(args)
  local id = assert(ctx:add { role = "user", content = args.text or "?" })
  return { id = id, count = ctx:len() }
end)
mg.on_control("reloads", function() return reloads end)
mg.on_control("quit", function() mg.exit(0) end)
mg.every(1000, function() end) -- mgrun runs on without its child
LUA
)
"$MGRUN" --control="$SOCK" "$p" 2>"$T_TMP/a.err" &
APID=$!
PIDS+=("$APID")
check "the socket appears" wait_sock "$SOCK"
check "the socket is mode 0600" test "$(stat -c %a "$SOCK")" = 600
check "the log names the path" grep -q "control_listening path=$SOCK" "$T_TMP/a.err"

# a stream of events, for later (it ends when mgrun says shutdown)
ctl events --json >"$T_TMP/events.jsonl" 2>"$T_TMP/events.err" &
EVPID=$!
ctl events >"$T_TMP/events.txt" 2>&1 &
EVPID2=$!
eventually grep -q subscribed "$T_TMP/events.jsonl"

# ------------------------------------------------------------ status
out=$(ctl status)
check "status: exit 0" test $? -eq 0
check "status: a table with the child" grep -Eq "^worker +running +[0-9]+ +(cgroup|data|as) " <<<"$out"
check "status: its limit formatted" grep -q "64.00 MiB" <<<"$out"
check "status: the store" grep -Eq "^ctx +3 / 50 " <<<"$out"
[[ $T_FAIL -gt 0 ]] && echo "$out"
js=$(json status)
check "status --json: the child" jqe '.ok and .v == 1 and .children[0].name == "worker" and .children[0].state == "running" and .children[0].limit == 67108864 and (.children[0].usage | type) == "number"' <<<"$js"
check "status --json: the store" jqe '.stores[0].name == "ctx" and .stores[0].messages == 3 and .stores[0].max_messages == 50' <<<"$js"
check "status --json: mgrun's pid" jqe --argjson p "$APID" '.pid == $p' <<<"$js"
WPID=$(jq .children[0].pid <<<"$js")
ENF=$(jq -r .children[0].enforce <<<"$js")
CG=$(jq -r '.children[0].cgroup // empty' <<<"$js")

# ------------------------------------------------------------ set-limit
out=$(ctl set-limit worker 48M)
check "set-limit: exit 0" test $? -eq 0
check "set-limit: says what it did" grep -q "worker: limit 48.00 MiB (was 64.00 MiB)" <<<"$out"
check "set-limit: status shows it" jqe '.children[0].limit == 50331648' <<<"$(json status)"
if [[ $ENF == cgroup && -n $CG ]]; then
  if [[ -f $CG/memory.limit_in_bytes ]]; then f=$CG/memory.limit_in_bytes; else f=$CG/memory.max; fi
  check "set-limit: the child's cgroup file says 48 MiB" test "$(cat "$f")" = 50331648
else
  [[ ${MG_REQUIRE_CGROUP:-} == 1 ]] && fail "set-limit: MG_REQUIRE_CGROUP=1 but the child has no cgroup ($ENF)"
  echo "skip - set-limit in a cgroup file: the child is enforced by $ENF here (no writable cgroup)"
fi
err=$(ctl set-limit worker lots 2>&1)
check "set-limit lots: exit 1" test $? -eq 1
check "set-limit lots: the size parser's message and code" grep -q 'invalid size "lots".*(EPARSE)' <<<"$err"
err=$(ctl set-limit worker 100T 2>&1)
check "set-limit 100T: the limit rule's message" grep -q "exceeds total system memory.*(ELIMIT)" <<<"$err"
err=$(ctl set-limit nosuch 1G 2>&1)
check "set-limit of no child: named" grep -q "no child named 'nosuch' (children: worker) (ENOENT)" <<<"$err"

# ------------------------------------------------------------ stats, commands, reload
out=$(ctl stats ctx)
check "stats: exit 0 and the figures" grep -Eq "^  messages +3$" <<<"$out"
check "stats --json" jqe '.stats.messages == 3 and .stats.max_messages == 50' <<<"$(json stats ctx)"
err=$(ctl stats nope 2>&1)
check "stats of no store: exit 1" test $? -eq 1
check "a policy command: its result" jqe '.ok and .result.count == 4 and .result.id == 4' <<<"$(json add text=hello)"
check "a policy command: the store changed" jqe '.stores[0].messages == 4' <<<"$(json status)"
check "a policy command for people" test "$(ctl reloads)" = 0
out=$(ctl reload)
check "reload: exit 0" test $? -eq 0
check "reload: says so, with the handler's result" grep -q '"reloads": 1' <<<"$out"
check "reload: the handler ran" test "$(ctl reloads)" = 1
check "reload: the handler's log line" grep -q "policy_reloaded n=1" "$T_TMP/a.err"
check "hello: lists the policy's commands" grep -q "policy commands: add, quit, reloads" <<<"$(ctl hello)"
err=$(ctl frobnicate 2>&1)
check "an unknown command: exit 1, named" grep -q "unknown command 'frobnicate'.*(ENOENT)" <<<"$err"

# ------------------------------------------------------------ usage
"$MGRUN" ctl >/dev/null 2>&1
check "ctl without a command: exit 2" test $? -eq 2
ctl set-limit worker >/dev/null 2>&1
check "set-limit without a size: exit 2" test $? -eq 2
ctl --timeout soon status >/dev/null 2>&1
check "a bad --timeout: exit 2" test $? -eq 2
check "ctl --help" grep -q "Usage: mgrun ctl" <<<"$("$MGRUN" ctl --help)"

# ------------------------------------------------------------ restart
out=$(ctl restart worker)
check "restart: exit 0" test $? -eq 0
check "restart: says the policy brings it back" grep -q "worker: restarting (pid $WPID" <<<"$out"
new_run() { jq -e --argjson p "$WPID" '.children[0].pid != $p and .children[0].pid != null and .children[0].restarts == 1 and .children[0].state == "running"' <<<"$(json status)" >/dev/null; }
check "restart: a new run, restarts 1" eventually new_run
check "restart: the new run keeps the changed limit" jqe '.children[0].limit == 50331648' <<<"$(json status)"

# ------------------------------------------------------------ malformed lines
cat >"$T_TMP/raw.py" <<'PY'
import json, socket, sys
def conn():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(sys.argv[1])
    return s, s.makefile("rb")
s, f = conn()
for b in [b"garbage\n", b"[1]\n", b'{"cmd":"nope"}\n', b"x" * 70000 + b"\n",
          b'{"v":1,"id":5,"cmd":"status"}\n', b'{"v":9,"cmd":"status"}\n',
          b'{"cmd":"status","cmd":"status"}\n', b"\n", b'{"id":"t","cmd":"health"}\r\n']:
    s.sendall(b)
    if b.strip():
        r = json.loads(f.readline())
        print("answer", r.get("ok"), r.get("code"), r.get("id"))
s.sendall(b"nonsense\n" * 40)  # garbage for ever: closed after 16 in a row
n, last = 0, None
for line in f:
    n, last = n + 1, json.loads(line)
print("closed after", n, last.get("code"), last.get("error"))
s.close()
s, f = conn()  # a line that never ends
try:
    for _ in range(64):
        s.sendall(b"y" * 65536)
except (BrokenPipeError, ConnectionResetError):
    pass
codes = []
try:
    for line in f:
        codes.append(json.loads(line).get("code"))
except ConnectionResetError:
    pass
print("endless", " ".join(codes))
PY
out=$(python3 "$T_TMP/raw.py" "$SOCK" 2>&1)
check "garbage: a parse error" grep -q "^answer False EPARSE None" <<<"$out"
check "an array: EINVAL" grep -q "^answer False EINVAL None" <<<"$out"
check "an unknown command: ENOENT" grep -q "^answer False ENOENT None" <<<"$out"
check "an oversized line: EMSGSIZE, then the next line is served" grep -q "^answer False EMSGSIZE None" <<<"$out"
check "a valid request after them: answered with its id" grep -q "^answer True None 5" <<<"$out"
check "another protocol version: EPROTO" grep -q "^answer False EPROTO None" <<<"$out"
check "a CRLF line: served" grep -q "^answer True None t" <<<"$out"
check "garbage for ever: closed with a reason" grep -q "^closed after 17 EPROTO closing the connection: 16 malformed requests in a row" <<<"$out"
check "a line that never ends: refused, then closed" grep -q "^endless EMSGSIZE EMSGSIZE" <<<"$out"
[[ $T_FAIL -gt 0 ]] && echo "$out"
check "mgrun goes on after all that" test "$(ctl health)" = healthy

# ------------------------------------------------------------ a subscriber that does not read
cat >"$T_TMP/slow.py" <<'PY'
import json, socket, sys, time
sub = socket.socket(socket.AF_UNIX)
sub.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
sub.connect(sys.argv[1])
sub.sendall(b'{"cmd":"subscribe"}\n')
c = socket.socket(socket.AF_UNIX)
c.connect(sys.argv[1])
cf = c.makefile("rb")
for batch in range(40):  # 12,000 reload events, while the subscriber sleeps
    c.sendall(b'{"cmd":"reload"}\n' * 300)
    for i in range(300):
        assert json.loads(cf.readline())["ok"]
sf = sub.makefile("rb")
sub.settimeout(10)
dropped = 0
lines = 0
try:
    for line in sf:
        lines += 1
        e = json.loads(line)
        if e.get("event") == "dropped":
            dropped = e["count"]
            break
except socket.timeout:
    pass
print("events", lines, "dropped", dropped)
PY
out=$(python3 "$T_TMP/slow.py" "$SOCK" 2>&1)
check "a slow subscriber: events dropped, and it is told how many" grep -Eq "^events [0-9]+ dropped [1-9][0-9]*$" <<<"$out"
check "a slow subscriber: logged" grep -q "control_subscriber_behind" "$T_TMP/a.err"
[[ $T_FAIL -gt 0 ]] && echo "$out"
check "mgrun goes on after the flood" test "$(ctl health)" = healthy

# ------------------------------------------------------------ another uid
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
if "${NOBODY[@]}" "$MGRUN" --version >/dev/null 2>&1; then
  err=$("${NOBODY[@]}" "$MGRUN" ctl --socket "$SOCK" status 2>&1)
  check "another uid: refused by the socket's mode (exit 3)" test $? -eq 3
  check "another uid: told why" grep -q "permission denied on $SOCK (the socket is mode 0600" <<<"$err"
  err=$("${NOBODY[@]}" "$MGRUN" ctl --socket "$SOCK" health 2>&1)
  check "another uid: health says 1" test $? -eq 1
  chmod 666 "$SOCK" # the mode lets it through: SO_PEERCRED does not
  err=$("${NOBODY[@]}" "$MGRUN" ctl --socket "$SOCK" status 2>&1)
  check "another uid past the mode: refused by SO_PEERCRED (exit 1)" test $? -eq 1
  check "another uid past the mode: one error line" grep -q "permission denied: this control socket serves uid $(id -u) (mgrun's) and root, not uid 65534 (EACCES)" <<<"$err"
  check "another uid: logged" grep -q "control_refused uid=65534" "$T_TMP/a.err"
  chmod 600 "$SOCK"
else
  echo "skip - another uid: $MGRUN cannot be run as uid 65534 here (its directory is closed to others)"
fi

# ------------------------------------------------------------ stop, health
out=$(ctl stop worker 500)
check "stop: exit 0" test $? -eq 0
check "stop: says so" grep -q "worker: stopping (pid [0-9]*: SIGTERM, SIGKILL after 500 ms)" <<<"$out"
no_child() { jq -e '.children == []' <<<"$(json status)" >/dev/null; }
check "stop: the child is gone for good" eventually no_child
err=$(ctl restart worker 2>&1)
check "restart of a stopped child: no such child" grep -q "no child named 'worker'" <<<"$err"
out=$(ctl health)
check "health: exit 0 when healthy" test $? -eq 0
check "health: says healthy" test "$out" = healthy
check "health --json" jqe '.healthy == true and .problems == []' <<<"$(json health)"

# ------------------------------------------------------------ a second instance
SOCKB=$PUB/b.sock
pb=$(policy b <<'LUA'
assert(mg.spawn { name = "crasher", restart = "always", backoff_ms = 50,
  backoff_max_ms = 100, cmd = { "sh", "-c", "exit 3" } })
assert(mg.spawn { name = "quitter", restart = "on-failure", max_restarts = 1,
  backoff_ms = 50, cmd = { "sh", "-c", "exit 2" } })
assert(mg.spawn { name = "sleeper", cmd = { "sleep", "60" } }) -- restart "no"
LUA
)
"$MGRUN" --control="$SOCKB" "$pb" 2>"$T_TMP/b.err" &
BPID=$!
PIDS+=("$BPID")
check "a second instance on its own path" wait_sock "$SOCKB"
unhealthy() { ! "$MGRUN" ctl --socket "$SOCKB" health >/dev/null 2>&1; }
check "health: exit 1 for a restart loop" eventually unhealthy
# (health exits 1 here: its output is taken first, pipefail is on)
health_b() { "$MGRUN" ctl --socket "$SOCKB" health || true; }
looping() { grep -q "child 'crasher' restarted [0-9]* times in the last 60 s (a restart loop)" <<<"$(health_b)"; }
check "health: names the loop" eventually looping
gave_up() { grep -q "child 'quitter' used up its restarts (max_restarts) and is not running" <<<"$(health_b)"; }
check "health: names a child out of restarts" eventually gave_up
err=$("$MGRUN" ctl --socket "$SOCKB" restart sleeper 2>&1)
check "restart of a child whose policy is no: exit 1" test $? -eq 1
check "restart of a child whose policy is no: refused, saying why" grep -q "restart sleeper: it would not be restarted: its restart policy is \"no\".*(ENORESTART)" <<<"$err"
check "restart of a child whose policy is no: it still runs" jqe '.children | map(select(.name == "sleeper" and .state == "running")) | length == 1' <<<"$("$MGRUN" ctl --socket "$SOCKB" --json status)"
check "the first instance is unaffected" test "$(ctl health)" = healthy
"$MGRUN" --control="$SOCKB" "$pb" 2>"$T_TMP/c.err"
check "a third mgrun on a live path: exit 1" test $? -eq 1
check "a third mgrun on a live path: told why" grep -q "another mgrun listens on $SOCKB (two instances need two paths: --control=PATH)" "$T_TMP/c.err"
kill -TERM "$BPID"
wait "$BPID"
check "the second instance removed its socket" test ! -e "$SOCKB"
err=$("$MGRUN" ctl --socket "$SOCKB" health 2>&1)
check "health without an answer: exit 1" test $? -eq 1
check "health without an answer: the reason on stderr" grep -q "no control socket at $SOCKB" <<<"$err"
err=$("$MGRUN" ctl --socket "$SOCKB" status 2>&1)
check "status without an answer: exit 3" test $? -eq 3

# a stale socket (a mgrun killed with SIGKILL leaves it) is replaced
pc=$(policy c <<<'mg.every(1000, function() end)')
"$MGRUN" --control="$SOCKB" "$pc" 2>"$T_TMP/killed.log" &
CPID=$!
PIDS+=("$CPID")
wait_sock "$SOCKB"
kill -KILL "$CPID"
wait "$CPID" 2>/dev/null
check "SIGKILL leaves the socket" test -S "$SOCKB"
"$MGRUN" --control="$SOCKB" "$pc" 2>"$T_TMP/d.err" &
DPID=$!
PIDS+=("$DPID")
check "a stale socket: replaced" eventually grep -q "control_stale_socket_removed path=$SOCKB" "$T_TMP/d.err"
check "a stale socket: the new one answers" eventually "$MGRUN" ctl --socket "$SOCKB" health
kill -TERM "$DPID"
wait "$DPID"

# the default path: $XDG_RUNTIME_DIR/mgrun/mgrun.sock, its directory 0700
mkdir -p "$T_TMP/xdg"
XDG_RUNTIME_DIR=$T_TMP/xdg "$MGRUN" --control "$pc" 2>"$T_TMP/e.err" &
EPID=$!
PIDS+=("$EPID")
check "--control without a path: the default socket" wait_sock "$T_TMP/xdg/mgrun/mgrun.sock"
check "the default socket's directory is 0700" test "$(stat -c %a "$T_TMP/xdg/mgrun")" = 700
check "mgrun ctl finds the default socket" eventually env XDG_RUNTIME_DIR="$T_TMP/xdg" "$MGRUN" ctl health
kill -TERM "$EPID"
wait "$EPID"

# ------------------------------------------------------------ the end
check "a policy command that ends mgrun" jqe '.ok and .exiting == true' <<<"$(json quit)"
wait "$APID"
check "mgrun exits 0 (mg.exit(0))" test $? -eq 0
check "the socket is removed at the end" test ! -e "$SOCK"
wait "$EVPID"
check "events: the stream ends with mgrun, exit 0" test $? -eq 0
wait "$EVPID2"
ev=$T_TMP/events.jsonl
check "events: the restart's exit" jqse 'map(select(.event == "exit" and .name == "worker" and .will_restart == true)) | length == 1' "$ev"
check "events: the stop's exit" jqse 'map(select(.event == "exit" and .name == "worker" and .will_restart == false)) | length == 1' "$ev"
check "events: the kill, the restart, the new start" jqse '(map(select(.event == "kill")) | length >= 2) and (map(select(.event == "restart" and .restarts == 1)) | length == 1) and (map(select(.event == "start")) | length == 1)' "$ev"
check "events: the limit set" jqse 'map(select(.event == "limit" and .limit == 50331648 and .previous == 67108864)) | length == 1' "$ev"
check "events: the reloads" jqse 'map(select(.event == "reload" and .ok == true)) | length > 1000' "$ev"
check "events: the last line says shutdown" jqse 'last | .event == "shutdown"' "$ev"
check "events for people: the exit" grep -Eq "^ +[0-9.]+s exit +worker pid=[0-9]+ reason=signal signal=TERM" "$T_TMP/events.txt"
err=$(ctl status 2>&1)
check "after the end: no socket (exit 3)" test $? -eq 3
sanitized() { ! grep -l "Sanitizer\|runtime error:" "$T_TMP"/*.err "$T_TMP"/events.* 2>/dev/null; }
check "no sanitizer report from any mgrun" sanitized
[[ $T_FAIL -gt 0 ]] && { echo "--- a.err (tail)"; tail -20 "$T_TMP/a.err"; echo "--- events.txt (head)"; head -20 "$T_TMP/events.txt"; }
finish
