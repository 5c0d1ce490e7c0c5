#!/usr/bin/env bash
# bench/metrics/run.sh BUILD_DIR [SCRAPES] — the cost of serving metrics
# (issue 11): mgrun runs a policy with 10 children (mg-hog holding 8 MiB,
# each under a 64 MiB limit in its own group where one can be made) and 5
# stores of 200 messages, with --metrics 127.0.0.1:0; a client (python3,
# another process) makes SCRAPES (default 1000) GET /metrics one after the
# other. Rows (markdown, like bench/run.sh's):
#   - mgrun's CPU per scrape: its utime + stime over the scrapes
#     (mgrun_process_cpu_seconds_total from the first and the last scrape,
#     which getrusage measures in µs; /proc/PID/stat's ticks beside it),
#     less what the same mgrun uses idle over as long (the children's own
#     1 s samples, which the scrapes reuse);
#   - the same where every scrape must sample the children itself (their
#     sample_ms = 0, 20 scrapes 1.05 s apart: a sample is reused for 1 s);
#   - the client's wall time per scrape (p50 / p99) and the text's size;
#   - mgrun's RSS with --metrics after the scrapes against the same policy
#     without --metrics (VmRSS, same wait).
set -euo pipefail
B=${1:?usage: bench/metrics/run.sh BUILD_DIR [SCRAPES]}
N=${2:-1000}
MGRUN="$B/mgrun"
for f in mgrun mg-hog; do
  [[ -x $B/$f ]] || { echo "bench/metrics/run.sh: $B/$f is not built" >&2; exit 1; }
done
T=$(mktemp -d /tmp/mgrun-bench-metrics.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT

cat >"$T/policy.lua" <<'LUA'
for i = 1, 5 do
  local s = assert(mg.store { name = "ctx" .. i, max_messages = 1000 })
  for j = 1, 200 do s:add { role = "user", content = ("message %d of store %d"):format(j, i) } end
  _G["store" .. i] = s
end
local turns = mg.metrics.counter("bench_turns_total", "Turns.", { "agent" })
for i = 1, 5 do turns:inc(i, { agent = "a" .. i }) end
children = {}
for i = 1, 10 do
  children[i] = assert(mg.spawn { name = "hog" .. i, limit = "64M", stdout = "null",
    sample_ms = tonumber(os.getenv("SAMPLE_MS") or "1000"),
    cmd = { mg.bindir .. "/mg-hog", "--max", "8M", "--quiet" } })
end
LUA

# start POLICY OPTIONS... → pid in $pid (stderr in $T/log.$pid)
start() {
  "$MGRUN" "$@" "$T/policy.lua" 2>"$T/log" &
  pid=$!
  pids+=("$pid")
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# --- with --metrics: idle first (the baseline), then the scrapes
start --metrics 127.0.0.1:0
on=$pid
for ((i = 0; i < 100; i++)); do
  grep -q "metrics_listening addr=" "$T/log" && break
  sleep 0.1
done
addr=$(sed -n 's/.*metrics_listening addr=\(127\.0\.0\.1:[0-9]*\).*/\1/p' "$T/log" | head -1)
sleep 2 # the children are up and holding
cat >"$T/client.py" <<'PY'
import re, socket, sys, time
addr, n, pid, hz = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
gap = float(sys.argv[5])  # seconds between scrapes
host, port = addr.split(":")

def ticks():
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])  # utime, stime (fields 14, 15)

def scrape():
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: mgrun\r\n\r\n")
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return body.decode()

def cpu(text):
    return float(re.search(r"^mgrun_process_cpu_seconds_total (\S+)$", text, re.M).group(1))

# idle baseline over as long as the scrapes will take (measured first)
t0 = time.monotonic()
first = scrape()
k0 = ticks()
c0 = cpu(first)
lat = []
for _ in range(n):
    a = time.monotonic()
    text = scrape()
    lat.append(time.monotonic() - a)
    if gap:
        time.sleep(gap)
c1 = cpu(text)
k1 = ticks()
wall = time.monotonic() - t0
# idle: the same mgrun, as long, no scrapes (one at each end)
time.sleep(0.5)
i0 = cpu(scrape())
time.sleep(wall)
i1 = cpu(scrape())
lat.sort()
print(n, c1 - c0, (k1 - k0) / hz, i1 - i0, wall, lat[len(lat) // 2],
      lat[min(len(lat) - 1, int(len(lat) * 0.99))], len(text.encode()),
      text.count("\nmgrun_child_up{"))
PY
python3 "$T/client.py" "$addr" "$N" "$on" "$hz" 0 >"$T/scrapes"
read -r n cpu_m cpu_t idle wall p50 p99 bytes nchild <"$T/scrapes"
rss_on=$(rss_kib "$on")
kill -TERM "$on"
wait "$on" 2>/dev/null || true

# --- every scrape samples the children (no sample of their own to reuse)
SAMPLE_MS=0 start --metrics 127.0.0.1:0
fresh=$pid
for ((i = 0; i < 100; i++)); do
  grep -q "metrics_listening addr=" "$T/log" && break
  sleep 0.1
done
addr=$(sed -n 's/.*metrics_listening addr=\(127\.0\.0\.1:[0-9]*\).*/\1/p' "$T/log" | head -1)
sleep 2
python3 "$T/client.py" "$addr" 20 "$fresh" "$hz" 1.05 >"$T/fresh"
read -r fn fcpu _ fidle fwall _ _ _ _ <"$T/fresh"
kill -TERM "$fresh"
wait "$fresh" 2>/dev/null || true

# --- the same policy without --metrics, as long
start
off=$pid
sleep 2
sleep "$(awk -v w="$wall" 'BEGIN { printf "%.1f", w + 1 }')"
rss_off=$(rss_kib "$off")
kill -TERM "$off"
wait "$off" 2>/dev/null || true

awk -v n="$n" -v cm="$cpu_m" -v ct="$cpu_t" -v idle="$idle" -v wall="$wall" \
  -v fn="$fn" -v fcpu="$fcpu" -v fidle="$fidle" \
  -v p50="$p50" -v p99="$p99" -v bytes="$bytes" -v nc="$nchild" \
  -v on="$rss_on" -v off="$rss_off" 'BEGIN {
  per = (cm - idle) / n * 1e6
  printf "| mgrun CPU per scrape of GET /metrics (%d children, 5 stores; %d scrapes, getrusage delta %.3f s less %.3f s idle over the same %.1f s; /proc ticks %.2f s) | %.0f µs | ≤ 1000 µs |\n", nc, n, cm, idle, wall, ct, per
  printf "| the same where each scrape samples the 10 children itself (their sample_ms = 0; %d scrapes 1.05 s apart, %.4f s less %.4f s idle) | %.0f µs | — |\n", fn, fcpu, fidle, (fcpu - fidle) / fn * 1e6
  printf "| scrape wall time seen by the client, p50 / p99 (a new connection each; %d bytes of text) | %.2f / %.2f ms | — |\n", bytes, p50 * 1e3, p99 * 1e3
  printf "| mgrun RSS with --metrics after %d scrapes / without --metrics (same policy) | %.2f / %.2f MiB (+%d KiB) | ≤ +1 MiB |\n", n, on / 1024, off / 1024, on - off
}'
