# What contrib/ ships: the systemd unit passes `systemd-analyze verify`
# (with this build's mgrun in ExecStart) and says what docs/operations.md
# says (Delegate=yes, MemoryAccounting=yes, restart on failure, mgrun
# alone gets the stop signal); the Kubernetes examples parse; the
# node-problem-detector plugin answers 2 (unknown) without a socket.
source "$(dirname "$0")/lib.sh"
SRC=$MG_SOURCE_DIR/contrib
unit=$T_TMP/mgrun@agent.service
sed "s|@MG_BINDIR@|$(dirname "$MGRUN")|" "$SRC/systemd/mgrun@.service.in" >"$unit"
for k in "Delegate=yes" "MemoryAccounting=yes" "Restart=on-failure" "KillMode=mixed" "RuntimeDirectory=mgrun"; do
  check "unit: $k" grep -qx "$k" "$unit"
done
check "unit: one policy per instance" grep -q "/etc/mgrun/%i.lua" "$unit"
if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify --man=no "$unit" 2>&1)
  check "unit: systemd-analyze verify is silent ($out)" test -z "$out"
else
  echo "# systemd-analyze not installed: the unit is not verified"
fi
check "k8s: the NPD monitor config is JSON" jq -e '.plugin == "custom" and (.rules | length) == 1' "$SRC/k8s/mgrun-health-monitor.json"
out=$(MGRUN=$MGRUN MGRUN_SOCKET=$T_TMP/none.sock sh "$SRC/k8s/mgrun-health.sh")
check "npd plugin: no socket is 'unknown' (2)" test $? -eq 2
check "npd plugin: says why on one line" grep -q "does not exist" <<<"$out"
if python3 -c 'import yaml' 2>/dev/null; then
  for y in "$SRC"/k8s/*.yaml; do
    check "k8s: $(basename "$y") parses" python3 -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$y"
  done
else
  echo "# python3-yaml not installed: the k8s examples are not parsed"
fi
finish
