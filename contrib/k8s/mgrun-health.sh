#!/bin/sh
# mgrun-health.sh — a node-problem-detector custom plugin (and a plain
# health check): asks a running mgrun through its control socket whether
# it is healthy. node-problem-detector's protocol: exit 0 OK, 1 a problem,
# 2 unknown (here: mgrun cannot be asked), and one line on stdout.
#   MGRUN=/usr/local/bin/mgrun MGRUN_SOCKET=/run/mgrun/agent.sock mgrun-health.sh
MGRUN=${MGRUN:-mgrun}
SOCKET=${MGRUN_SOCKET:-/run/mgrun/mgrun.sock}
if [ ! -S "$SOCKET" ]; then
  echo "mgrun control socket $SOCKET does not exist (mgrun not running, or started without --control)"
  exit 2
fi
out=$("$MGRUN" ctl --socket "$SOCKET" health 2>&1)
rc=$?
case $rc in
0) echo "mgrun healthy: $out"; exit 0 ;;
1) echo "mgrun unhealthy: $out"; exit 1 ;;
*) echo "mgrun health unknown (exit $rc): $out"; exit 2 ;;
esac
