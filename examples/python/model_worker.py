"""examples/python/model_worker.py — a stand-in for a model server: it loads
"weights" (48 MiB of memory it touches), then serves until it is told to
stop (SIGTERM, as mgrun's shutdown sends)."""

import signal
import sys
import time

weights = bytearray(48 << 20)
for i in range(0, len(weights), 4096):  # touch every page: resident memory
    weights[i] = 1
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(1)
