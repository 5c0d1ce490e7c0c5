# mg-hog's options for the reaction benchmark: --mark (stdout or
# --mark-file), --kill-self-at, --start-delay-us, --fast-to. Timing checks
# are lower bounds only (a loaded machine can only make them slower).
source "$(dirname "$0")/lib.sh"
HOG="$(dirname "$MGRUN")/mg-hog"
[[ -x $HOG ]] || { echo "FAIL: no mg-hog next to $MGRUN"; exit 1; }
MiB=$((1 << 20))

field() { # field FILE NAME → its value, leading zeros dropped
  local v
  v=$(sed -n "s/^$2=//p" "$1")
  echo $((10#${v:-0}))
}
ms_since() { # ms_since NS
  echo $((($(date +%s%N) - $1) / 1000000))
}

# --mark without a file: one line on stdout, also with --quiet
out=$("$HOG" --quiet --max 8M --hold 0 --mark 4M)
has() { # has ERE TEXT
  grep -E -- "$1" <<<"$2" >/dev/null
}
check "--mark prints mark_ns and the usage on stdout" \
  has '^mg-hog mark_ns=[0-9]+ usage_bytes=[0-9]+$' "$out"
u=$(sed -n 's/.*usage_bytes=//p' <<<"$out")
check "the usage at the mark is at least the mark, at most a page more" \
  test "$u" -ge $((4 * MiB)) -a "$u" -lt $((4 * MiB + 4096))

# --mark-file: pid, start, base, usage and the mark, readable afterwards
mf="$T_TMP/mark"
"$HOG" --quiet --max 16M --hold 0 --mark 8M --mark-file "$mf" &
pid=$!
wait "$pid"
check "--mark-file: exit 0" test $? -eq 0
check "--mark-file: the pid" test "$(field "$mf" pid)" -eq "$pid"
base=$(field "$mf" base_bytes)
check "--mark-file: base_bytes is the RSS before growing (> 0)" test "$base" -gt 0
check "--mark-file: usage_bytes = base + 16 MiB" \
  test "$(field "$mf" usage_bytes)" -eq $((base + 16 * MiB))
check "--mark-file: mark_ns after start_ns" \
  test "$(field "$mf" mark_ns)" -gt "$(field "$mf" start_ns)" -a "$(field "$mf" start_ns)" -gt 0
mu=$(field "$mf" mark_usage_bytes)
check "--mark-file: mark_usage_bytes within a page past the mark" \
  test "$mu" -ge $((8 * MiB)) -a "$mu" -lt $((8 * MiB + 4096))
check "--mark-file: no mark line on stdout" \
  test -z "$("$HOG" --quiet --max 2M --hold 0 --mark 1M --mark-file "$mf")"

# --kill-self-at: SIGKILL right after the page that reaches the size
"$HOG" --quiet --max 64M --kill-self-at 12M --mark 12M --mark-file "$mf" &
wait $! 2>/dev/null
check "--kill-self-at: died of SIGKILL" test $? -eq 137
u=$(field "$mf" usage_bytes)
check "--kill-self-at: the usage at death is within a page past the size" \
  test "$u" -ge $((12 * MiB)) -a "$u" -lt $((12 * MiB + 4096))
check "--kill-self-at: the mark was recorded first" \
  test "$(field "$mf" mark_ns)" -gt 0

# --start-delay-us: no growth before it
t0=$(date +%s%N)
"$HOG" --quiet --max 1M --hold 0 --start-delay-us 300000
check "--start-delay-us 300000 waits 300 ms" test "$(ms_since "$t0")" -ge 300

# --fast-to: full speed up to it, --rate after (2 MiB at 16 MiB/s: 125 ms)
t0=$(date +%s%N)
"$HOG" --quiet --rate 16M --fast-to 30M --max 32M --hold 0 --step 256K
check "--fast-to: the last 2 MiB at --rate take >= 125 ms" \
  test "$(ms_since "$t0")" -ge 125
"$HOG" --fast-to 1M 2>"$T_TMP/err"
check "--fast-to without --rate is a usage error" test $? -eq 2
check "the usage error says why" has "--fast-to needs --rate" "$(cat "$T_TMP/err")"
"$HOG" --mark 0 2>/dev/null
check "--mark 0 is a usage error" test $? -eq 2
check "--help lists the new options" has "--kill-self-at SIZE" "$("$HOG" --help)"
finish
