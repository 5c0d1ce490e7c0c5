"""examples/python/agent_host.py: the agent loop over a policy's store and a
model worker under a limit, run as a user would run it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import SOURCE

EXAMPLE = SOURCE / "examples" / "python" / "agent_host.py"


def test_agent_host_runs_and_cleans_up():
    p = subprocess.run([sys.executable, str(EXAMPLE), "8"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ))
    assert p.returncode == 0, p.stdout + p.stderr
    turns = re.findall(r"^turn +(\d+): +(\d+) messages", p.stdout, re.M)
    assert [int(t) for t, _ in turns] == list(range(1, 9))
    assert max(int(n) for _, n in turns) <= 30  # the store's limit
    assert "system prompt kept: yes; history starts at: user" in p.stdout
    assert "callback errors: 0" in p.stdout and "policy exit code: 0" in p.stdout
    # the model worker ran under its limit, and is gone afterwards
    pids = {int(x) for x in re.findall(r"model pid (\d+): [\d.]+ [KMG]?i?B of 256\.00 MiB", p.stdout)}
    assert pids, "the policy never published the model worker's memory:\n" + p.stdout
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"the model worker {pid} outlived the runtime")
    # evictions happened, whole turns at a time
    evicted = [int(x) for x in re.findall(r"(\d+) evicted", p.stdout)]
    assert evicted[-1] > 0 and all(e % 4 == 0 for e in evicted)


def test_agent_host_refuses_a_bad_turn_count():
    for bad in ("0", "many", "-3"):
        p = subprocess.run([sys.executable, str(EXAMPLE), bad], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ))
        assert p.returncode == 2
        assert f"TURNS must be 1 to 10000, got {bad}" in p.stderr
