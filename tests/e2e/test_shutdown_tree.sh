# Shutdown reaches every descendant, also without a cgroup: a well-behaved
# main process dies at once on SIGTERM, and its setsid children — already
# out of its process group — must not be left behind as orphans. A stopped
# child (SIGSTOP, SIGTTIN) gets SIGCONT so SIGTERM acts without waiting for
# the grace period.
source "$(dirname "$0")/lib.sh"
# (pgrep -f is anchored on the program: mgrun's own command line holds it too)
HOG="$MG_TEST_BINDIR/../mg-hog"
# (a --hold no other run uses: this test's pid in it, so two suites side by
# side never match each other's hogs)
marker=$((100000 + $$ % 800000))

left() { pgrep -f "^[^ ]*mg-hog --quiet --max 8M --hold $marker" | while read -r p; do
  [[ $(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) == Z ]] || echo "$p"; done; }

for mode in data none; do
  "$MGRUN" --limit 256M --enforce $mode -- "$HOG" --quiet --max 8M --hold $marker \
    --fork 2 --fork-setsid 2>"$T_TMP/err.$mode" &
  mg=$!
  for ((i = 0; i < 100; i++)); do [[ $(left | wc -l) -ge 3 ]] && break; sleep 0.05; done
  check "$mode: main and two setsid children running" test "$(left | wc -l)" -ge 3
  kill -TERM $mg
  wait $mg
  check "$mode: mgrun exits 128+15 after SIGTERM" test $? -eq 143
  sleep 0.3
  check "$mode: no setsid grandchild left behind" test -z "$(left)"
  left | xargs -r kill -9
done

# A stopped child: SIGTERM must not wait for the 5 s grace period.
"$MGRUN" --limit 256M --enforce data -- "$HOG" --quiet --max 8M --hold $marker 2>/dev/null &
mg=$!
for ((i = 0; i < 100; i++)); do [[ -n $(left) ]] && break; sleep 0.05; done
kill -STOP "$(left | head -n 1)"
start=$(date +%s%N)
kill -TERM $mg
wait $mg
ms=$((($(date +%s%N) - start) / 1000000))
check "a stopped child is stopped in ${ms} ms (< 2500, grace is 5000)" test $ms -lt 2500
check "nothing left" test -z "$(left)"
left | xargs -r kill -9
finish
