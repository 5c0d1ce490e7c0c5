# --metrics with real parts: mgrun runs a policy with a child (mg-hog) and
# a store and serves GET /metrics on 127.0.0.1:0 (the port read from its
# log); promtool (Debian prometheus) checks the text; a real Prometheus
# server (its own config and data directory here, loopback only) scrapes
# it every second and its HTTP API is asked for the child's memory series.
# Then the endpoint's edges (404, 405, 400, 431, HEAD, a slow client, too
# many connections), a unix socket (0600) with --metrics-file, and the
# errors of a start (exit 2). Only prometheus/promtool may be missing: the
# checks that need them are skipped with the reason (a failure under
# MG_REQUIRE_CGROUP=1, where CI installs them).
source "$(dirname "$0")/lib.sh"
CLIENT=(python3 "$MG_SOURCE_DIR/tests/e2e/metrics_client.py")
DOCS="$MG_SOURCE_DIR/docs/operations.md"

missing=()
command -v promtool >/dev/null || missing+=(promtool)
command -v prometheus >/dev/null || missing+=(prometheus)
if ((${#missing[@]})) && [[ ${MG_REQUIRE_CGROUP:-} == 1 ]]; then
  echo "FAIL: ${missing[*]} missing (Debian package prometheus; build.sh installs it)"
  exit 1
fi

fetch() { # fetch URL → the body on stdout
  if command -v curl >/dev/null; then
    curl -sf --max-time 10 "$1"
  else
    "${CLIENT[@]}" get "$1"
  fi
}

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$T_TMP"
}
trap cleanup EXIT

# wait_log FILE PATTERN — up to 10 s for PATTERN in FILE
wait_log() {
  local i
  for ((i = 0; i < 100; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

POLICY=$(policy serve <<EOF
local turns = mg.metrics.counter("agent_turns_total", "Turns the agent took.", { "agent" })
local depth = mg.metrics.gauge("agent_queue_depth", "Jobs waiting.")
ctx = assert(mg.store { name = "ctx", max_messages = 4, on_full = "prune" })
for i = 1, 6 do ctx:add { role = "user", content = "message " .. i } end
turns:inc(3, { agent = "planner" })
depth:set(7)
hog = assert(mg.spawn { name = "hog", limit = "128M", thresholds = { "4M" },
  stdout = "null", cmd = { mg.bindir .. "/mg-hog", "--rate", "32M", "--max", "16M", "--quiet" } })
mg.every(200, function() turns:inc({ agent = "planner" }) end)
EOF
)

# ------------------------------------------------------------ TCP, port 0
"$MGRUN" --metrics 127.0.0.1:0 "$POLICY" 2>"$T_TMP/serve.log" &
MG_PID=$!
PIDS+=("$MG_PID")
wait_log "$T_TMP/serve.log" "metrics_listening addr=127.0.0.1:"
check "port 0: the address is logged (metrics_listening addr=127.0.0.1:PORT)" test $? -eq 0
ADDR=$(sed -n 's/.*metrics_listening addr=\(127\.0\.0\.1:[0-9]*\).*/\1/p' "$T_TMP/serve.log" | head -1)
PORT=${ADDR#*:}
check "port 0 became a real port ($PORT)" test "${PORT:-0}" -gt 0
sleep 1.5 # the hog has grown past its 4M threshold (sampled where no
          # group notifies it)
fetch "http://$ADDR/metrics" >"$T_TMP/m.txt"
check "GET /metrics answers" test -s "$T_TMP/m.txt"
check "the child's memory series is there and not 0" \
  awk '/^mgrun_child_memory_bytes\{name="hog",enforce="[a-z]+"\} [0-9]+$/ && $2 > 0 { f = 1 } END { exit !f }' "$T_TMP/m.txt"
check "the child's limit is 128 MiB" grep -Eq '^mgrun_child_memory_limit_bytes\{name="hog",enforce="[a-z]+"\} 134217728$' "$T_TMP/m.txt"
check "the child is up" grep -Eq '^mgrun_child_up\{name="hog",enforce="[a-z]+"\} 1$' "$T_TMP/m.txt"
check "its 4M threshold was crossed once" grep -Eq '^mgrun_child_thresholds_crossed_total\{name="hog",enforce="[a-z]+"\} 1$' "$T_TMP/m.txt"
check "the store's series: 4 messages, 2 evicted" \
  bash -c 'grep -q "^mgrun_store_messages{store=\"ctx\"} 4$" "$1" && grep -q "^mgrun_store_evictions_total{store=\"ctx\"} 2$" "$1"' _ "$T_TMP/m.txt"
check "the policy's metrics come after the built-ins" \
  bash -c 'grep -q "^agent_queue_depth 7$" "$1" && grep -Eq "^agent_turns_total\{agent=\"planner\"\} [0-9]+$" "$1"' _ "$T_TMP/m.txt"
check "mgrun's own RSS and CPU" \
  bash -c 'grep -q "^mgrun_process_resident_memory_bytes [1-9]" "$1" && grep -q "^mgrun_process_cpu_seconds_total " "$1"' _ "$T_TMP/m.txt"
# every built-in family is in the one list of docs/operations.md
undocumented=$(grep -o '^# TYPE mgrun_[a-z_]*' "$T_TMP/m.txt" | awk '{print $3}' |
  while read -r n; do grep -q "\`$n\`" "$DOCS" || echo "$n"; done)
check "every built-in family is listed in docs/operations.md${undocumented:+ (missing: $undocumented)}" test -z "$undocumented"

if ((${#missing[@]} == 0)); then
  promtool check metrics <"$T_TMP/m.txt" >"$T_TMP/promtool.out" 2>&1
  check "promtool check metrics: no error, no lint ($(head -c 300 "$T_TMP/promtool.out"))" test $? -eq 0
fi

# ------------------------------------------------------------ the endpoint's edges
raw() { "${CLIENT[@]}" raw 127.0.0.1 "$PORT" "$(printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n')"; }
r=$(raw $'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
check "200 with Content-Type text/plain; version=0.0.4; charset=utf-8" \
  grep -q $'^Content-Type: text/plain; version=0.0.4; charset=utf-8\r$' <<<"$r"
check "the response says Connection: close" grep -q $'^Connection: close\r$' <<<"$r"
r=$(raw $'HEAD /metrics HTTP/1.1\r\n\r\n')
check "HEAD: 200, a Content-Length and no body" \
  bash -c '[[ $1 == "HTTP/1.1 200 OK"* && $1 == *"Content-Length: "* && $1 != *"# HELP"* ]]' _ "$r"
r=$(raw $'GET /metrics?x=1 HTTP/1.0\n\n')
check "a query string and bare LFs: 200" grep -q "^HTTP/1.1 200 OK" <<<"$r"
r=$(raw $'GET / HTTP/1.1\r\n\r\n')
check "another path: 404" grep -q "^HTTP/1.1 404 Not Found" <<<"$r"
r=$(raw $'POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi')
check "another method: 405 with Allow: GET, HEAD" \
  bash -c '[[ $1 == "HTTP/1.1 405 Method Not Allowed"* && $1 == *"Allow: GET, HEAD"* ]]' _ "$r"
r=$(raw $'hello\r\n\r\n')
check "a malformed request line: 400" grep -q "^HTTP/1.1 400 Bad Request" <<<"$r"
r=$(raw $'GET /metrics HTTP/2.0\r\n\r\n')
check "not HTTP/1.x: 400" grep -q "^HTTP/1.1 400 Bad Request" <<<"$r"
r=$(raw "GET /metrics HTTP/1.1"$'\r\n'"X-Big: $(head -c 9000 /dev/zero | tr '\0' a)"$'\r\n\r\n')
check "a request over 8 KiB: 431" grep -q "^HTTP/1.1 431 Request Header Fields Too Large" <<<"$r"
sleep 0.5 # the connections above are closed on both sides
n=$("${CLIENT[@]}" flood 127.0.0.1 "$PORT" 20)
check "20 idle connections at once: the 4 past the limit of 16 are closed ($n)" test "$n" -eq 4
secs=$("${CLIENT[@]}" slow 127.0.0.1 "$PORT")
check "a client that sends nothing is closed after about 5 s ($secs s)" \
  awk -v s="$secs" 'BEGIN { exit !(s >= 4 && s <= 9) }'
fetch "http://$ADDR/metrics" >"$T_TMP/m2.txt"
check "after all that, GET /metrics still answers" grep -q "^mgrun_child_up" "$T_TMP/m2.txt"

# ------------------------------------------------------------ errors of a start
start_error() { # start_error DESCRIPTION PATTERN OPTIONS... → exit 2 and PATTERN
  local d=$1 pat=$2
  shift 2
  "$MGRUN" "$@" "$POLICY" >/dev/null 2>"$T_TMP/err"
  local rc=$?
  check "$d: exit 2 ($rc)" test "$rc" -eq 2
  check "$d: says so ($(head -c 160 "$T_TMP/err"))" grep -q -- "$pat" "$T_TMP/err"
}
start_error "a bad port" "is not a number from 0 to 65535" --metrics 127.0.0.1:xx
start_error "a bad address" "accepted: 127.0.0.1:PORT" --metrics nope
start_error "a host name" "does not resolve host names" --metrics example.org:9100
start_error "not loopback without --metrics-allow-remote" "unless --metrics-allow-remote is given" --metrics 0.0.0.0:9100
start_error "a busy port" "address already in use" --metrics "127.0.0.1:$PORT"
start_error "a file in a directory that does not exist" "cannot write '/nonexistent-mgrun-dir/m.prom.tmp'" --metrics-file /nonexistent-mgrun-dir/m.prom
start_error "a file under a file" "Not a directory" --metrics-file /etc/passwd/m.prom
start_error "a directory as the file" "is a directory" --metrics-file "$T_TMP"
start_error "a unix socket path that is a file" "exists and is not a socket" --metrics "unix:$POLICY"
start_error "a too short interval" "metrics-interval" --metrics-file "$T_TMP/x.prom" --metrics-interval 1

# ------------------------------------------------------------ a real Prometheus
if ((${#missing[@]} == 0)); then
  PPORT=$("${CLIENT[@]}" freeport)
  mkdir -p "$T_TMP/prom/data"
  cat >"$T_TMP/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: mgrun
    static_configs:
      - targets: ['$ADDR']
EOF
  prometheus --config.file="$T_TMP/prom/prometheus.yml" \
    --storage.tsdb.path="$T_TMP/prom/data" \
    --web.listen-address="127.0.0.1:$PPORT" --log.level=warn \
    >"$T_TMP/prom/log" 2>&1 &
  PROM_PID=$!
  PIDS+=("$PROM_PID")
  API="http://127.0.0.1:$PPORT"
  series=""
  for ((i = 0; i < 60; i++)); do # up to 30 s: start, first scrapes
    series=$(fetch "$API/api/v1/query?query=mgrun_child_memory_bytes" 2>/dev/null)
    [[ $series == *'"name":"hog"'* ]] && break
    sleep 0.5
  done
  check "Prometheus has the child's memory series (mgrun_child_memory_bytes{name=\"hog\"})" \
    grep -q '"name":"hog"' <<<"$series"
  check "... with the job's labels and a value above 0" \
    python3 -c 'import json,sys; r=json.loads(sys.argv[1])["data"]["result"]; h=[x for x in r if x["metric"]["name"]=="hog"]; sys.exit(not (h and h[0]["metric"]["job"]=="mgrun" and float(h[0]["value"][1]) > 0))' "$series"
  targets=$(fetch "$API/api/v1/targets")
  check "the scrape target is healthy" python3 -c 'import json,sys; t=json.loads(sys.argv[1])["data"]["activeTargets"]; sys.exit(not (t and t[0]["health"]=="up" and t[0]["lastError"]==""))' "$targets"
  q=$(fetch "$API/api/v1/query?query=agent_turns_total")
  check "Prometheus has the policy's own counter too" grep -q '"agent":"planner"' <<<"$q"
  kill -TERM "$PROM_PID"
  wait "$PROM_PID" 2>/dev/null
  if grep -qi "level=error" "$T_TMP/prom/log"; then
    fail "Prometheus logged errors: $(grep -i level=error "$T_TMP/prom/log" | head -3)"
  fi
fi
kill -TERM "$MG_PID"
wait "$MG_PID"
check "mgrun ends on SIGTERM as usual (143)" test $? -eq 143

# ------------------------------------------------------------ a unix socket and --metrics-file
SOCK="$T_TMP/m.sock"
FILE="$T_TMP/node/mgrun.prom"
mkdir -p "$T_TMP/node"
"$MGRUN" --metrics "unix:$SOCK" --metrics-file "$FILE" --metrics-interval 200 "$POLICY" \
  2>"$T_TMP/unix.log" &
MG_PID=$!
PIDS+=("$MG_PID")
wait_log "$T_TMP/unix.log" "metrics_listening addr=unix:$SOCK"
check "unix socket: metrics_listening addr=unix:PATH" test $? -eq 0
check "unix socket: mode 0600" test "$(stat -c %a "$SOCK")" = 600
out=$("${CLIENT[@]}" unix "$SOCK")
check "unix socket: GET /metrics is 200 with the child's series" \
  bash -c '[[ $1 == "HTTP/1.1 200 OK"* && $1 == *"mgrun_child_memory_bytes{name=\"hog\""* ]]' _ "$out"
check "unix socket: another path is 404" bash -c '[[ $("$@") == "HTTP/1.1 404"* ]]' _ "${CLIENT[@]}" unix "$SOCK" /x
check "--metrics-file: logged with its interval" grep -q "metrics_file path=$FILE interval_ms=200" "$T_TMP/unix.log"
first=$(grep '^mgrun_process_cpu_seconds_total' "$FILE")
sleep 1
second=$(grep '^mgrun_process_cpu_seconds_total' "$FILE")
check "--metrics-file: rewritten every interval" test -n "$second" -a "$first" != "$second"
check "--metrics-file: no temporary file left beside it" test ! -e "$FILE.tmp"
if ((${#missing[@]} == 0)); then
  promtool check metrics <"$FILE" >"$T_TMP/promtool.out" 2>&1
  check "--metrics-file: promtool check metrics ($(head -c 300 "$T_TMP/promtool.out"))" test $? -eq 0
fi
kill -TERM "$MG_PID"
wait "$MG_PID"
check "unix socket: removed at stop" test ! -e "$SOCK"
check "--metrics-file: the last text (at stop) has the child down" \
  grep -Eq '^mgrun_child_up\{name="hog",enforce="[a-z]+"\} 0$' "$FILE"
check "--metrics-file: ... and its exit counted (signal)" \
  grep -Eq '^mgrun_child_exits_total\{name="hog",enforce="[a-z]+",reason="signal"\} 1$' "$FILE"

if ((${#missing[@]})); then
  echo "SKIP (in part): ${missing[*]} not installed (Debian package prometheus): promtool and the Prometheus server were not run"
  ((T_FAIL == 0)) && exit 77
fi
finish
