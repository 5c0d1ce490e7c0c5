#!/usr/bin/env python3
"""examples/python/agent_host.py — an agent loop whose conversation lives in
a store governed by a policy (mgrun.Runtime).

The policy (policy.lua) runs on a background thread: it owns the store
"conversation" and prunes it with a Lua strategy (whole user turns, oldest
first), and it runs the model worker (model_worker.py) under a memory limit.
The host is the agent: each turn, a stand-in model answers with a tool call,
the tool's result comes back, and the model answers — all added to the
policy's store from this thread. The store's stats and the worker's memory
are printed each turn.

    PYTHONPATH=bindings/python MGRUN_LIB=build/libmg.so.0 \\
        python3 examples/python/agent_host.py [TURNS]
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Iterator, Tuple

import mgrun

HERE = os.path.dirname(os.path.abspath(__file__))
SYSTEM = "You are a careful agent. Use the tools; answer briefly."
THINK_S = 0.15


def stand_in_model(turn: int, question: str) -> Iterator[Tuple[str, str, str]]:
    """What a model and its tools produce for one question: (role, content,
    group) — a tool call and its result share the group of the call."""
    call_id = f"call-{turn}"
    yield "assistant", json.dumps({"tool_calls": [{"id": call_id, "name": "search",
                                                   "arguments": {"q": question}}]}), call_id
    yield "tool", json.dumps({"tool_call_id": call_id, "result": [f"doc {turn}.{i}" for i in range(8)]}), call_id
    yield "assistant", f"Turn {turn}: found 8 documents about {question!r}.", ""


def main(argv: list) -> int:
    text = argv[1] if len(argv) > 1 else "10"
    turns = int(text) if text.isdigit() else 0
    if not 1 <= turns <= 10000:
        print(f"agent_host: TURNS must be 1 to 10000, got {text}", file=sys.stderr)
        return 2
    policy = os.path.join(HERE, "policy.lua")
    worker = os.path.join(HERE, "model_worker.py")
    with mgrun.Runtime(policy, args=[sys.executable, worker], log_level="warn") as rt:
        conversation = rt.store("conversation")
        status = rt.store("status")
        conversation.add("system", SYSTEM, pinned=True)
        deadline = time.monotonic() + 30  # wait for the model to be up
        while time.monotonic() < deadline and not any(m.text.startswith("model pid") for m in status):
            time.sleep(0.05)
        for turn in range(1, turns + 1):
            question = f"question {turn}"
            conversation.add("user", question)
            time.sleep(THINK_S)  # the model's latency
            for role, content, group in stand_in_model(turn, question):
                conversation.add(role, content, group=group or None)
            st = conversation.stats()
            last = status.messages()
            model = last[-1].text if last else "model: no news yet"
            print(f"turn {turn:3d}: {st.message_count:2d} messages, {st.total_size_bytes:6d} bytes, "
                  f"{st.evicted_count:3d} evicted | {model}", flush=True)
        first = conversation.messages()[0]
        kept = first.role == "system" and first.pinned
        starts = [m.role for m in conversation.messages() if not m.pinned][:1]
        print(f"system prompt kept: {'yes' if kept else 'no'}; history starts at: "
              f"{starts[0] if starts else 'nothing'}")
        errors = rt.callback_errors
        rt.stop(0)
        code = rt.wait(30)
    print(f"callback errors: {errors}")
    print(f"policy exit code: {code}")
    return 0 if kept and code == 0 and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
