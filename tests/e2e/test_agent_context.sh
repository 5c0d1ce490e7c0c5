# The shipped policy policies/agent_context.lua: a simulated agent
# conversation against a small store, once per strategy.
source "$(dirname "$0")/lib.sh"
P="$MG_SOURCE_DIR/policies/agent_context.lua"

for s in user_turn_start oldest keep_last lowest_priority token_budget older_than summarize; do
  out="$T_TMP/$s.out"
  arch="$T_TMP/$s.jsonl"
  start=$(date +%s%N)
  timeout 20 "$MGRUN" "$P" "$s" 30 "$arch" >"$out" 2>&1
  rc=$?
  ms=$((($(date +%s%N) - start) / 1000000))
  check "$s: exits 0" test $rc -eq 0
  check "$s: bounded (${ms} ms < 5000)" test $ms -lt 5000
  check "$s: ran 30 turns" grep -q "^done: 30 turns" "$out"
  check "$s: invariants hold" grep -q "^system prompt kept; groups whole; check ok$" "$out"
  check "$s: evicted as it went" grep -q "^  evicted [0-9]* (strategy): #" "$out"
  check "$s: stats printed" grep -q "^stats after turn 10: [0-9]* messages, .*payload .* overhead .* tokens" "$out"
  check "$s: on_warn and the log line" bash -c 'grep -q "^  warn: " "$1" && grep -q "approaching_[a-z]*_limit store=agent" "$1"' _ "$out"
  # every evicted message is in the archive, exactly once
  evicted=$(sed -n 's/^done: .* \([0-9]*\) evicted.*/\1/p' "$out")
  check "$s: archive has every eviction ($evicted)" test "$(wc -l <"$arch")" -eq "${evicted:-x}"
  check "$s: archive lines are JSON" jq -e -s 'all(.[]; .store == "agent" and .reason == "strategy" and (.id | type) == "number")' "$arch" >/dev/null
  check "$s: archived ids are distinct" test "$(jq -s 'map(.id) | unique | length' "$arch")" -eq "${evicted:-x}"
  check "$s: nothing pinned archived" jq -e -s 'all(.[]; .pinned == false)' "$arch" >/dev/null
  # a group in the archive was evicted whole: its members share one line range
  check "$s: no group split in the archive" jq -e -s '
    [.[] | select(.group != "")] | group_by(.group) |
    all(.[]; (map(.evicted_at) | unique | length) == 1)' "$arch" >/dev/null
done
check "user_turn_start: kept history starts on a user turn" grep -q "^history starts with: user$" "$T_TMP/user_turn_start.out"
check "summarize: summaries replaced evicted turns" grep -q "[1-9][0-9]* summaries" "$T_TMP/summarize.out"

# the default archive is a temporary file, removed at the end
out=$("$MGRUN" "$P" oldest 6 2>&1)
check "default run exits 0" test $? -eq 0
tmpfile=$(sed -n 's/.* archive \(.*\.jsonl\)$/\1/p' <<<"$out" | head -1)
check "temporary archive removed ($tmpfile)" test -n "$tmpfile" -a ! -e "$tmpfile"

"$MGRUN" "$P" nonsense >"$T_TMP/bad" 2>&1
check "unknown strategy: exit 2" test $? -eq 2
check "unknown strategy names the accepted ones" grep -q "accepted: keep_last, lowest_priority" "$T_TMP/bad"
finish
