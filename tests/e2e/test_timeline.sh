# --timeline: every sample and event of a real run as JSON lines — a child
# that restarts, a threshold, a kill, an OOM kill, a store that evicts —
# in order of a monotonic time, first "start", last "end"; bad paths are
# refused at start.
source "$(dirname "$0")/lib.sh"
HOG="$(dirname "$MGRUN")/mg-hog"
export HOG
p=$(policy tl <<'LUA'
local hog = os.getenv("HOG")
local ctx = assert(mg.store { name = "ctx", max_messages = 5, on_full = "prune", strategy = "oldest" })
for i = 1, 12 do ctx:add { role = "user", content = "turn " .. i } end
local runs = 0
local p = assert(mg.spawn { name = "hog", enforce = "cgroup", limit = "48M", sample_ms = 50,
  thresholds = { "50%" }, restart = "on-failure", max_restarts = 1, backoff_ms = 50,
  cmd = { hog, "--quiet", "--rate", "128M" } })
p:on("exit", function(_, e)
  if not e.will_restart then mg.after(1200, function() mg.exit(0) end) end
end)
mg.after(150, function() p:kill { signal = "TERM", grace_ms = 100 } end)
mg.every(200, function() ctx:add { role = "user", content = "more" } end)
LUA
)
"$MGRUN" --timeline "$T_TMP/run.jsonl" "$p" 2>"$T_TMP/e"
check "the run exits 0" test $? -eq 0
f=$T_TMP/run.jsonl
check "every line is a JSON object with t_ms and type" jq -e -s 'all(.[]; (.t_ms | type) == "number" and (.type | type) == "string")' "$f"
check "first start, last end" jq -e -s '.[0].type == "start" and .[-1].type == "end" and (.[0].pid | type) == "number"' "$f"
check "t_ms never goes back" jq -e -s '[.[].t_ms] as $t | all(range(1; $t | length); $t[.] >= $t[. - 1])' "$f"
types=$(jq -r .type "$f" | sort -u | tr '\n' ' ')
for t in child_started sample threshold kill child_exited restart oom_kill store evict; do
  check "has $t" grep -qw "$t" <<<"$types"
done
check "two runs started, the second after a restart" jq -e -s '[.[] | select(.type == "child_started") | .restarts] == [0, 1]' "$f"
check "samples carry used and limit" jq -e -s 'all(.[] | select(.type == "sample"); .name == "hog" and .used > 0 and .limit == 50331648)' "$f"
check "the kill is TERM with its grace" jq -e -s 'any(.[]; .type == "kill" and .signame == "TERM" and .grace_ms == 100)' "$f"
check "the second run died of the OOM killer" jq -e -s '[.[] | select(.type == "child_exited")][-1].reason == "oom"' "$f"
check "the store's figures are bounded by its limit" jq -e -s 'all(.[] | select(.type == "store"); .store == "ctx" and .messages <= 5 and .max_messages == 5)' "$f"

"$MGRUN" --timeline /nonexistent/dir/run.jsonl "$p" 2>"$T_TMP/e"
check "an unwritable timeline path: exit 2" test $? -eq 2
check "…saying which and why" grep -q "timeline: cannot open '/nonexistent/dir/run.jsonl': No such file or directory" "$T_TMP/e"
"$MGRUN" --timeline "" "$p" 2>"$T_TMP/e"
check "an empty path is a usage error" grep -q "needs a path" "$T_TMP/e"
finish
