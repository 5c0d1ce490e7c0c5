# mgrun plot / mgrun-plot end to end: a real run recorded with --timeline
# (a child that dies at 28 MiB and restarts, a steady one, a store that
# evicts), drawn as SVG and PNG. The SVG parses (xmllint) and renders
# (rsvg-convert); every recorded sample and store figure is a vertex of its
# line in the SVG, at the pixel that jq computes from the JSONL and the
# panel's scale (--dump-points gives the scales; its points are checked
# too); each run of a child's line is a path of its own (a break at every
# restart) and each restart a dashed vertical line. Bad inputs fail with a
# clear message; mgrun itself links no cairo. xmllint (libxml2-utils),
# rsvg-convert (librsvg2-bin), jq and python3 come from build.sh's DEPS.
source "$(dirname "$0")/lib.sh"
BIN=$(dirname "$MGRUN")
PLOT="$BIN/mgrun-plot"
HOG="$BIN/mg-hog"
if [[ ! -x $PLOT ]]; then
  echo "SKIP: no mgrun-plot beside $MGRUN (built with -DMG_BUILD_PLOT=OFF?)"
  exit 77
fi
missing=()
for c in xmllint rsvg-convert jq python3; do
  command -v "$c" >/dev/null || missing+=("$c")
done
if ((${#missing[@]})); then
  if [[ ${MG_REQUIRE_CGROUP:-} == 1 ]]; then
    echo "FAIL: ${missing[*]} missing (build.sh installs them)"
    exit 1
  fi
  echo "SKIP: ${missing[*]} not installed"
  exit 77
fi

# ------------------------------------------------------------ a real run
p=$(policy rec <<'LUA'
local hog = arg[1]
assert(mg.spawn {
  name = "worker", limit = "32M", warn_at = 0.5, sample_ms = 100,
  cmd = { hog, "--quiet", "--rate", "40M", "--kill-self-at", "28M" },
  restart = "on-failure", backoff_ms = 150, stdout = "null", grace_ms = 500,
})
assert(mg.spawn {
  name = "steady", limit = "64M", sample_ms = 100,
  cmd = { hog, "--quiet", "--rate", "20M", "--max", "12M" },
  stdout = "null", grace_ms = 500,
})
local ctx = assert(mg.store { name = "chat", max_messages = 12, on_full = "prune" })
local n = 0
mg.every(50, function()
  n = n + 1
  ctx:add { role = "user", content = ("message %d %s"):format(n, ("x"):rep(n * 10)) }
end)
mg.after(3200, function() mg.exit(0) end)
LUA
)
RUN="$T_TMP/run.jsonl"
timeout 30 "$MGRUN" --log-level error --timeline "$RUN" "$p" "$HOG" >"$T_TMP/rec.out" 2>&1
check "the run is recorded (exit 0)" test $? -eq 0
nsamples=$(jq -s '[.[] | select(.type == "sample")] | length' "$RUN")
nstore=$(jq -s '[.[] | select(.type == "store")] | length' "$RUN")
nrestart=$(jq -s '[.[] | select(.type == "restart")] | length' "$RUN")
nexit=$(jq -s '[.[] | select(.type == "child_exited")] | length' "$RUN")
check "the timeline has samples ($nsamples), store lines ($nstore), restarts ($nrestart)" \
  test "$nsamples" -ge 10 -a "$nstore" -ge 2 -a "$nrestart" -ge 1
check "the store evicted" jq -e -s 'any(.[]; .type == "evict")' "$RUN" >/dev/null

# ------------------------------------------------------------ SVG and PNG
"$PLOT" "$RUN" -o "$T_TMP/run.svg" --dump-points "$T_TMP/pts.tsv" 2>"$T_TMP/svg.err"
check "mgrun-plot draws an SVG (exit 0, nothing on stderr)" \
  bash -c '[[ $1 -eq 0 && ! -s $2 ]]' _ $? "$T_TMP/svg.err"
check "the SVG parses (xmllint)" xmllint --noout "$T_TMP/run.svg"
check "the SVG is 1200 px wide" \
  test "$(xmllint --xpath 'string(/*[local-name()="svg"]/@width)' "$T_TMP/run.svg")" = 1200px
rsvg-convert "$T_TMP/run.svg" -o "$T_TMP/rsvg.png" 2>"$T_TMP/rsvg.err"
check "the SVG renders (rsvg-convert)" test $? -eq 0 -a -s "$T_TMP/rsvg.png"
"$MGRUN" plot "$RUN" -o "$T_TMP/run.png" --width 900 --height 700 --title "a test run"
check "mgrun plot draws a PNG (exit 0)" test $? -eq 0
pngsize() { python3 -c '
import struct, sys
b = open(sys.argv[1], "rb").read(24)
assert b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR", "not a PNG"
print("%dx%d" % struct.unpack(">II", b[16:24]))' "$1"; }
check "the PNG is a PNG of 900x700" test "$(pngsize "$T_TMP/run.png")" = 900x700
rs=$(pngsize "$T_TMP/rsvg.png")
check "rsvg-convert renders it 1200 px wide ($rs)" bash -c '[[ $1 == 1200x* ]]' _ "$rs"
check "the same run from standard input" bash -c '"$1" - -o "$2" <"$3"' _ "$PLOT" "$T_TMP/stdin.svg" "$RUN"
check "mgrun does not link cairo" bash -c '! readelf -d "$1" | grep -q "NEEDED.*cairo"' _ "$MGRUN"
check "mgrun-plot does" bash -c 'readelf -d "$1" | grep -q "NEEDED.*cairo"' _ "$PLOT"

# ------------------------------------------------------------ the points
# The scale of each panel, from the dump: {"child/worker": {...}, ...}, in
# drawing order.
geom=$(jq -R -s '[split("\n")[] | select(startswith("panel\t")) | split("\t") |
  {key: (.[1] + "/" + .[2]),
   value: {t_lo: (.[3] | tonumber), t_hi: (.[4] | tonumber),
           x_lo: (.[5] | tonumber), x_hi: (.[6] | tonumber),
           v_lo: (.[7] | tonumber), v_hi: (.[8] | tonumber),
           y_lo: (.[9] | tonumber), y_hi: (.[10] | tonumber)}}]' "$T_TMP/pts.tsv")
npanels=$(jq length <<<"$geom")
nchildren=$(jq -s '[.[] | select(.name) | .name] | unique | length' "$RUN")
check "a panel per child ($nchildren) and two scales per store: $npanels" \
  test "$npanels" -eq $((nchildren + 2))
# every scale covers its data: time from 0 to the last line, values from 0
# to at least the largest sample / limit / store figure
check "the scales cover the data" jq -e -s --argjson g "$(jq 'from_entries' <<<"$geom")" '
  (map(.t_ms) | max) as $tmax |
  all($g[]; .t_lo <= 0 and .t_hi * 1000 >= $tmax - 0.001 and .v_lo == 0) and
  all(.[] | select(.type == "sample"); $g["child/" + .name].v_hi >= ([.used, .limit // 0] | max)) and
  all(.[] | select(.type == "store"); $g["store-bytes/" + .store].v_hi >= .bytes and
                                      $g["store-messages/" + .store].v_hi >= .messages)' \
  "$RUN" >/dev/null

# What jq expects, in drawing order (panel, then file order): KIND NAME
# T_MS VALUE X Y RUN_START.
jq -r -s --argjson order "$(jq 'map(.key)' <<<"$geom")" \
  --argjson g "$(jq 'from_entries' <<<"$geom")" '
  def px($p; $t; $v):
    [$p.x_lo + ($t / 1000 - $p.t_lo) / ($p.t_hi - $p.t_lo) * ($p.x_hi - $p.x_lo),
     $p.y_lo + ($v - $p.v_lo) / ($p.v_hi - $p.v_lo) * ($p.y_hi - $p.y_lo)];
  # a run of the line starts at the first sample after a start, exit or restart
  (reduce to_entries[] as $e ({brk: {}, rows: []};
    $e.value as $l |
    if $l.type == "sample" then
      .rows += [{i: $e.key, k: "child", n: $l.name, t: $l.t_ms, v: $l.used,
                 s: (if .brk[$l.name] == false then 0 else 1 end)}] |
      .brk[$l.name] = false
    elif ($l.type == "child_exited" or $l.type == "restart") then .brk[$l.name] = true
    elif $l.type == "store" then
      .rows += [{i: $e.key, k: "store-bytes", n: $l.store, t: $l.t_ms, v: $l.bytes,
                 s: (if .brk["/" + $l.store] == false then 0 else 1 end)},
                {i: $e.key, k: "store-messages", n: $l.store, t: $l.t_ms, v: $l.messages,
                 s: (if .brk["/" + $l.store] == false then 0 else 1 end)}] |
      .brk["/" + $l.store] = false
    else . end) | .rows)
  | map((.k + "/" + .n) as $key | . + {o: ($order | index($key))})
  | sort_by([.o, .i])[]
  | px($g[.k + "/" + .n]; .t; .v) as $xy
  | [.k, .n, .t, .v, $xy[0], $xy[1], .s] | @tsv' "$RUN" >"$T_TMP/expected.tsv"
awk -F'\t' '$1 == "point" { OFS = "\t"; print $2, $3, $5, $6, $7, $8, $9 }' \
  "$T_TMP/pts.tsv" >"$T_TMP/dumped.tsv"
nexp=$(wc -l <"$T_TMP/expected.tsv")
check "jq expects every sample and two points per store line ($nexp)" \
  test "$nexp" -eq $((nsamples + 2 * nstore))
# same(A, B, TOL): the same rows, names and run starts equal, numbers within TOL
same() {
  awk -F'\t' -v tol="$3" '
    function d(a, b) { return a > b ? a - b : b - a }
    NR == FNR { e[FNR] = $0; n = FNR; next }
    { m = FNR; split(e[FNR], x, "\t")
      if (x[1] != $1 || x[2] != $2 || x[7] != $7 || d(x[3], $3) > 0.0005 ||
          d(x[4], $4) > 0.5 || d(x[5], $5) > tol || d(x[6], $6) > tol) {
        print "row " FNR ": expected " e[FNR] ", got " $0; bad = 1; exit } }
    END { if (!bad && m != n) { print m " rows, expected " n; bad = 1 } exit bad }' "$1" "$2"
}
check "the dumped points are the samples at jq's pixels (0.01 px)" \
  same "$T_TMP/expected.tsv" "$T_TMP/dumped.tsv" 0.01

# The SVG itself: the vertices of the paths stroked in each data line's
# colour (cairo writes components in percents), in document order, one
# path per run of the line; and the dashed restart lines.
python3 - "$T_TMP/run.svg" >"$T_TMP/svg.tsv" <<'EOF'
import re, sys, xml.etree.ElementTree as ET
kinds = {"12%,47%,71%": "child", "17%,63%,17%": "store-bytes",
         "9%,66%,75%": "store-messages", "50%,50%,50%": "restart"}
def stroke(el):
    st = re.sub(r"\s", "", el.get("style", "")) + ";stroke:" + \
         re.sub(r"\s", "", el.get("stroke", ""))
    m = re.search(r"stroke:rgb\(([^)]*)\)", st)
    return m and re.sub(r"(\d+)\.0*%", r"\1%", m.group(1))
for el in ET.parse(sys.argv[1]).iter():
    if not el.tag.endswith("path"):
        continue
    kind = kinds.get(stroke(el))
    if not kind:
        continue
    nums = [float(v) for v in re.findall(r"-?[\d.]+(?:e[-+]?\d+)?", el.get("d", ""))]
    if re.search(r"[^MLml\d\s.e+-]", el.get("d", "")):
        sys.exit("a %s path with curves: %s" % (kind, el.get("d")))
    pts = list(zip(nums[::2], nums[1::2]))
    dedup = [p for i, p in enumerate(pts) if i == 0 or p != pts[i - 1]]
    for i, (x, y) in enumerate(dedup):
        print("%s\t%d\t%.4f\t%.4f" % (kind, i == 0, x, y))
EOF
check "the SVG's data paths read back" test $? -eq 0 -a -s "$T_TMP/svg.tsv"
# jq's points in the SVG's terms: KIND RUN_START X Y (a run of one sample
# is a dot, its point written twice: deduplicated as the SVG's are)
awk -F'\t' '{ OFS = "\t"
  if (prev != $1 "\t" $5 "\t" $6 || $7 == 1) print $1, $7, $5, $6; prev = $1 "\t" $5 "\t" $6 }' \
  "$T_TMP/expected.tsv" >"$T_TMP/expected-svg.tsv"
grep -v '^restart' "$T_TMP/svg.tsv" >"$T_TMP/svg-data.tsv"
# In order, each expected point is the SVG's next vertex, or (cairo merges
# a line_to that goes on in the same direction: a flat stretch of samples)
# lies on the segment from the vertex before to the next one; each run of
# the line starts where jq says one does.
on_lines() {
  python3 - "$1" "$2" <<'EOF'
import sys
def rows(path):
    return [(r[0], r[1] == "1", float(r[2]), float(r[3]))
            for r in (l.rstrip("\n").split("\t") for l in open(path)) if r[0]]
exp, svg = rows(sys.argv[1]), rows(sys.argv[2])
TOL = 0.01
def near(a, b):
    return abs(a[2] - b[2]) <= TOL and abs(a[3] - b[3]) <= TOL
def on_segment(p, a, b):
    (x, y), (x0, y0), (x1, y1) = p[2:], a[2:], b[2:]
    dx, dy = x1 - x0, y1 - y0
    l2 = dx * dx + dy * dy
    u = ((x - x0) * dx + (y - y0) * dy) / l2 if l2 else 0
    if u < -1e-9 or u > 1 + 1e-9:
        return False
    return ((x0 + u * dx - x) ** 2 + (y0 + u * dy - y) ** 2) ** 0.5 <= TOL
j = merged = 0
for i, e in enumerate(exp):
    if j < len(svg) and svg[j][0] == e[0] and svg[j][1] == e[1] and near(svg[j], e):
        j += 1
        continue
    if (not e[1] and 0 < j < len(svg) and svg[j][0] == e[0] and not svg[j][1]
            and on_segment(e, svg[j - 1], svg[j])):
        merged += 1
        continue
    sys.exit("point %d %s: not on its line in the SVG (next vertex %d: %s)"
             % (i + 1, e, j + 1, svg[j] if j < len(svg) else "none"))
if j != len(svg):
    sys.exit("%d SVG vertices left over after the last point" % (len(svg) - j))
print("%d points: %d vertices, %d on a straight stretch" % (len(exp), j, merged))
EOF
}
on_lines "$T_TMP/expected-svg.tsv" "$T_TMP/svg-data.tsv" >"$T_TMP/on_lines.out" 2>&1
rc=$?
check "every sample and store figure is on its line in the SVG at jq's pixel (0.01 px), each run a path: $(cat "$T_TMP/on_lines.out")" \
  test $rc -eq 0
runs=$(awk -F'\t' '$1 == "child" && $7 == 1' "$T_TMP/expected.tsv" | wc -l)
check "the child lines break at each restart: $runs runs, one path each" \
  test "$(grep -c $'^child\t1' "$T_TMP/svg.tsv")" -eq "$runs" -a "$runs" -ge $((nrestart + nchildren))
check "a dashed vertical line per restart ($nrestart), at its time" bash -c '
  xs=$(jq -r -s --argjson g "$(jq from_entries <<<"$1")" ".[] | select(.type == \"restart\") |
    \$g[\"child/\" + .name] as \$p | \$p.x_lo + (.t_ms / 1000 - \$p.t_lo) / (\$p.t_hi - \$p.t_lo) * (\$p.x_hi - \$p.x_lo)" "$2")
  got=$(awk -F"\t" "\$1 == \"restart\" && \$2 == 1 { print \$3 }" "$3")
  [[ $(wc -l <<<"$got") -eq $(wc -l <<<"$xs") ]] &&
  paste <(sort -n <<<"$xs") <(sort -n <<<"$got") | awk "{ d = \$1 - \$2; if (d > 0.01 || d < -0.01) exit 1 }"' \
  _ "$geom" "$RUN" "$T_TMP/svg.tsv"
check "every exit is marked with its reason ($nexit)" bash -c '
  diff <(jq -r "select(.type == \"child_exited\") | [.name, (if .reason == \"exit\" and .code != null then \"exit \(.code)\"
          elif .reason == \"signal\" and .signal != null then \"signal \(.signal)\" else .reason end)] | @tsv" "$1" | sort) \
       <(awk -F"\t" "\$1 == \"event\" && \$4 == \"child_exited\" { OFS = \"\t\"; print \$3, \$8 }" "$2" | sort)' \
  _ "$RUN" "$T_TMP/pts.tsv"
check "every eviction is marked" test "$(grep -c $'^event\tstore-bytes\t[^\t]*\tevict' "$T_TMP/pts.tsv")" -ge \
  "$(jq -s '[.[] | select(.type == "evict")] | length' "$RUN")"

# ------------------------------------------------------------ bad inputs
# expect_fail DESCRIPTION STATUS NEEDLE ARGS...: mgrun-plot exits STATUS,
# says NEEDLE on stderr, and leaves no picture (nor a temporary file).
expect_fail() {
  local d=$1 want=$2 needle=$3
  shift 3
  rm -f "$T_TMP"/out.*
  "$PLOT" "$@" >"$T_TMP/bad.out" 2>"$T_TMP/bad.err"
  local rc=$?
  if [[ $rc -eq $want ]] && grep -qF -- "$needle" "$T_TMP/bad.err" &&
    ! compgen -G "$T_TMP/out.*" >/dev/null; then
    ok "$d"
  else
    fail "$d (exit $rc, want $want; stderr: $(head -c 400 "$T_TMP/bad.err"))"
  fi
}
expect_fail "a missing file" 1 "cannot open the timeline '$T_TMP/nope.jsonl': No such file or directory" \
  "$T_TMP/nope.jsonl" -o "$T_TMP/out.svg"
: >"$T_TMP/empty.jsonl"
expect_fail "an empty file" 1 "is empty: nothing to plot" "$T_TMP/empty.jsonl" -o "$T_TMP/out.svg"
printf 'not json\n{"t_ms": 1}\n{"t_ms": 2, "type": "sample", "name": "a"}\n{"t_ms": 3, "type": "x"}\n' \
  >"$T_TMP/junk.jsonl"
expect_fail "nothing plottable: the reason" 1 "nothing to plot: no child and no store line among its 4 lines (3 skipped, 1 of other types)" \
  "$T_TMP/junk.jsonl" -o "$T_TMP/out.svg"
check "... and the skipped lines, each with why" bash -c '
  grep -q "warning: .*junk.jsonl: skipped 3 of 4 lines" "$1" &&
  grep -q "line 1: not JSON" "$1" && grep -q "line 2: no string \"type\"" "$1" &&
  grep -q "line 3: a sample line whose \"used\" is not a non-negative number (missing)" "$1"' _ "$T_TMP/bad.err"
expect_fail "a directory" 1 "is a directory, not a timeline" "$T_TMP" -o "$T_TMP/out.svg"
expect_fail "an output of another type" 2 "accepted: a name ending in .svg or .png" "$RUN" -o "$T_TMP/out.pdf"
expect_fail "no output" 2 "no output given" "$RUN"
expect_fail "no timeline" 2 "no timeline given" -o "$T_TMP/out.svg"
expect_fail "two timelines" 2 "one timeline at a time" "$RUN" "$RUN" -o "$T_TMP/out.svg"
expect_fail "a width out of range" 2 "--width '10': accepted: a whole number of pixels, 320 to 8192" \
  "$RUN" -o "$T_TMP/out.svg" --width 10
expect_fail "a width that is no number" 2 "--width '12x'" "$RUN" -o "$T_TMP/out.svg" --width 12x
expect_fail "a height too small for the panels" 2 "need a height of at least" \
  "$RUN" -o "$T_TMP/out.png" --height 100
expect_fail "an unknown option" 2 "unknown option '--nope'" "$RUN" -o "$T_TMP/out.svg" --nope
expect_fail "an option without its value" 2 "option '--title' needs a value" "$RUN" -o "$T_TMP/out.svg" --title
expect_fail "an output in a missing directory" 1 "cannot write '$T_TMP/none/out.svg': No such file or directory" \
  "$RUN" -o "$T_TMP/none/out.svg"

# A damaged run still draws: junk lines, a type from elsewhere and a last
# line cut short are skipped or ignored, the rest plotted.
{
  head -n 5 "$RUN"
  echo 'this is not json'
  echo '{"t_ms": 7, "type": "from_a_later_mgrun", "x": 1}'
  echo '{"t_ms": 8, "type": "sample", "name": "worker", "used": "lots"}'
  tail -n +6 "$RUN"
  printf '{"t_ms": 99999, "type": "sample", "na'
} >"$T_TMP/damaged.jsonl"
"$PLOT" "$T_TMP/damaged.jsonl" -o "$T_TMP/damaged.svg" --dump-points "$T_TMP/damaged.tsv" 2>"$T_TMP/damaged.err"
check "a damaged timeline still draws (exit 0)" test $? -eq 0 -a -s "$T_TMP/damaged.svg"
check "... with a warning: 3 lines skipped, the last one cut short" bash -c '
  grep -q "skipped 3 of" "$1" && grep -q "not JSON" "$1" &&
  grep -q "(it has another kind)" "$1" && grep -q "the last line, cut short: no newline" "$1"' _ "$T_TMP/damaged.err"
check "... and every good sample plotted" \
  test "$(grep -c $'^point\tchild' "$T_TMP/damaged.tsv")" -eq "$nsamples"
check "... the SVG parses" xmllint --noout "$T_TMP/damaged.svg"

# mgrun plot: the mgrun-plot beside mgrun, else on PATH, else a clear error
out=$("$MGRUN" plot "$T_TMP/nope.jsonl" -o "$T_TMP/out.svg" 2>&1)
check "mgrun plot passes its arguments on (exit 1, 'mgrun plot:' messages)" \
  bash -c '[[ $1 -eq 1 && $2 == "mgrun plot: cannot open the timeline"* ]]' _ $? "$out"
check "mgrun plot --help is mgrun-plot's" bash -c '"$1" plot --help | grep -q "^Usage: mgrun plot RUN.jsonl -o OUT.svg|OUT.png"' _ "$MGRUN"
mkdir -p "$T_TMP/alone"
cp "$MGRUN" "$T_TMP/alone/mgrun"
out=$(PATH=/usr/bin:/bin "$T_TMP/alone/mgrun" plot "$RUN" -o "$T_TMP/out.svg" 2>&1)
rc=$?
check "mgrun plot without mgrun-plot: exit 127" test $rc -eq 127
check "... and says so" grep -q "'mgrun plot' needs mgrun-plot, which is not installed: not found as $T_TMP/alone/mgrun-plot nor on PATH" <<<"$out"
mkdir -p "$T_TMP/path"
ln -s "$PLOT" "$T_TMP/path/mgrun-plot"
PATH="$T_TMP/path:/usr/bin:/bin" "$T_TMP/alone/mgrun" plot "$RUN" -o "$T_TMP/path.svg"
check "... and finds one on PATH" test $? -eq 0 -a -s "$T_TMP/path.svg"
finish
