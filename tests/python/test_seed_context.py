"""mgrun.context: the seed's bounded ExecutionContext, its documented
examples run unchanged (but for the import), and its bugs fixed."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mgrun
from mgrun.context import BoundsExceededError, ExecutionContext, MemoryUsageStats

EXAMPLES = Path(__file__).resolve().parent / "seed_examples"
sys.path.insert(0, str(EXAMPLES))
from tinyllm.config.loader import Config  # noqa: E402
from tinyllm.core.message import Message, MessagePayload  # noqa: E402

OVERHEAD = mgrun.MSG_OVERHEAD


def run_example(name, *args):
    out = subprocess.run([sys.executable, str(EXAMPLES / "run_example.py"), name, *args], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    return out.stdout, out.stderr


def msg(text, node="node-1"):
    return Message(trace_id="trace-123", source_node=node, payload=MessagePayload(content=text))


# ---------------------------------------------------------------- construction


def test_defaults_and_the_seeds_other_arguments():
    cfg = Config(model="x")
    ctx = ExecutionContext(trace_id="t", graph_id="g", config=cfg, variables={"a": 1})
    assert (ctx.max_messages, ctx.max_message_size_bytes, ctx.max_total_size_bytes) == (1000, 1_048_576,
                                                                                       104_857_600)
    assert ctx.config is cfg and ctx.variables == {"a": 1} and ctx.trace_id == "t" and ctx.graph_id == "g"
    assert ctx.store.name == "g"
    assert ExecutionContext("t", "graph with spaces/and:colons").store.name == "graph_with_spaces_and_colons"


@pytest.mark.parametrize("kw, text", [
    ({"max_messages": 0}, "max_messages 0 is below the minimum 1"),
    ({"max_message_size_bytes": 1023}, "max_message_size_bytes 1023 is below the minimum 1024"),
    ({"max_total_size_bytes": 10}, "max_total_size_bytes 10 is below the minimum 1024"),
])
def test_the_seeds_minimums(kw, text):
    with pytest.raises(ValueError, match=text):
        ExecutionContext("t", "g", **kw)


def test_limit_types_and_reserved_names():
    with pytest.raises(TypeError, match="max_messages must be an int"):
        ExecutionContext("t", "g", max_messages="10")
    with pytest.raises(TypeError, match="'messages' cannot be given"):
        ExecutionContext("t", "g", messages=[])


# ---------------------------------------------------------------- messages


def test_messages_of_every_kind_are_stored_as_they_serialise_and_rebuilt():
    ctx = ExecutionContext("t", "g")
    m = msg("Hello world")
    ctx.add_message(m)
    ctx.add_message("plain text")
    ctx.add_message(b"\x00raw")
    ctx.add_message({"role": "user", "content": "hi", "source_node": "n2"})
    got = ctx.messages
    assert got[0] == m and got[0] is not m
    assert got[1:] == ["plain text", b"\x00raw", {"role": "user", "content": "hi", "source_node": "n2"}]
    stored = list(ctx.store)
    assert stored[0].content == m.model_dump_json().encode() and stored[0].source == "node-1"
    assert stored[3].role == "user" and stored[3].source == "n2"
    with pytest.raises(TypeError, match="add_message takes a str, bytes, a dict or a message model"):
        ctx.add_message(42)
    circular = {}
    circular["self"] = circular
    with pytest.raises(TypeError, match="add_message: the dict cannot be written as JSON: Circular reference"):
        ctx.add_message(circular)
    n = ctx.add_message({"when": Config})  # what JSON cannot hold is written as its str()
    assert ctx.messages[-1] == {"when": str(Config)} and n == 5


def test_sizes_are_exact_not_getsizeof():
    ctx = ExecutionContext("t", "g")
    m = msg("x" * 1000)
    ctx.add_message(m)
    u = ctx.get_memory_usage()
    dump = m.model_dump_json().encode()
    assert u.total_size_bytes == len(dump) + len("node-1") + OVERHEAD  # what is stored, counted exactly
    assert u.largest_message_bytes == u.total_size_bytes


def test_a_message_too_large_is_refused_before_anything_changes():
    ctx = ExecutionContext("trace-9", "g", max_message_size_bytes=1024)
    ctx.add_message("small")
    with pytest.raises(BoundsExceededError) as ei:
        ctx.add_message("x" * 2000)
    e = ei.value
    assert (e.limit_type, e.current_value, e.limit_value) == ("message_size", 2000 + OVERHEAD, 1024)
    assert str(e) == f"Message size {2000 + OVERHEAD} exceeds limit of 1024"
    assert e.details["trace_id"] == "trace-9" and e.details["graph_id"] == "g"
    assert len(ctx) == 1


def test_count_and_total_are_checked_before_appending():
    """The seed appended the message, then checked the total and popped it:
    a failed add must leave everything as it was, counters and ids too."""
    ctx = ExecutionContext("t", "g", max_messages=3, max_total_size_bytes=2048)
    for i in range(3):
        ctx.add_message(f"m{i}")
    before = (ctx.messages, ctx.get_memory_usage(), ctx.store.stats().next_id)
    with pytest.raises(BoundsExceededError) as ei:
        ctx.add_message("m3")
    assert ei.value.limit_type == "message_count" and str(ei.value) == "Message count 3 exceeds limit of 3"
    assert (ctx.messages, ctx.get_memory_usage(), ctx.store.stats().next_id) == before
    ctx.prune_old_messages(0)
    ctx.add_message("x" * 1000)
    with pytest.raises(BoundsExceededError) as ei:
        ctx.add_message("y" * 1000)
    assert ei.value.limit_type == "total_size" and len(ctx) == 1


def test_usage_stats_have_the_seeds_ten_fields_and_never_raise():
    ctx = ExecutionContext("t", "g", max_messages=10)
    for i in range(8):
        ctx.add_message(f"m{i}")
    u = ctx.get_memory_usage()
    assert isinstance(u, MemoryUsageStats)
    assert list(u.model_dump()) == ["message_count", "total_size_bytes", "largest_message_bytes", "max_messages",
                                    "max_message_size_bytes", "max_total_size_bytes", "message_count_utilization",
                                    "total_size_utilization", "near_message_limit", "near_size_limit"]
    assert u.message_count_utilization == 0.8 and u.near_message_limit and not u.near_size_limit
    ctx.max_messages = 4  # lowered below the use
    u = ctx.get_memory_usage()  # the seed raised here (utilisation > 1.0)
    assert u.message_count_utilization == 2.0 and u.max_messages == 4
    with pytest.raises(BoundsExceededError) as ei:
        ctx.check_bounds()
    assert ei.value.limit_type == "message_count" and str(ei.value) == "Message count 8 exceeds limit of 4"
    ctx.prune_old_messages(4)
    ctx.check_bounds()
    with pytest.raises(ValueError):
        ctx.max_messages = 0


def test_prune_returns_the_true_number_and_validates():
    ctx = ExecutionContext("t", "g", max_messages=10)
    for i in range(6):
        ctx.add_message(f"m{i}")
    assert ctx.prune_old_messages(keep_count=4) == 2
    assert ctx.prune_old_messages() == 0  # default keeps max_messages // 2 = 5
    assert ctx.prune_old_messages(0) == 4  # the seed reported every message, kept or not
    assert ctx.prune_old_messages(0) == 0
    ctx.add_message("system prompt", pinned=True)
    ctx.add_message("turn")
    assert ctx.prune_old_messages(0) == 1 and ctx.messages == ["system prompt"]
    for bad in (-1, 2.5, "3", None.__class__):
        with pytest.raises(ValueError, match="keep_count"):
            ctx.prune_old_messages(bad)


def test_warnings_once_per_crossing_with_the_seeds_event_names(caplog):
    caplog.set_level(logging.DEBUG, logger="mgrun")
    ctx = ExecutionContext("trace-7", "g", max_messages=10)
    for i in range(10):
        ctx.add_message(f"m{i}")
    with pytest.raises(BoundsExceededError):
        ctx.add_message("too many")
    ctx.check_bounds()
    ctx.get_memory_usage()
    ctx.prune_old_messages()
    for i in range(4):
        ctx.add_message(f"again {i}")
    events = [getattr(r, "event", None) for r in caplog.records if r.name == "mgrun.context"]
    assert events.count("approaching_message_limit") == 2  # crossed, re-armed by the prune, crossed again
    for name in ("message_added", "message_count_exceeded", "bounds_check_passed", "memory_usage_calculated",
                 "messages_pruned", "memory_after_pruning"):
        assert name in events, name
    # the store's own lines are not logged twice
    assert not [r for r in caplog.records if r.name == "mgrun.store"]
    rec = next(r for r in caplog.records if getattr(r, "event", "") == "message_count_exceeded")
    assert rec.fields["trace_id"] == "trace-7" and rec.levelno == logging.ERROR


def test_on_full_prune_is_an_option():
    ctx = ExecutionContext("t", "g", max_messages=3, on_full="prune", strategy="user_turn_start")
    ctx.add_message({"role": "system", "content": "p"}, pinned=True)
    for i, role in enumerate(["user", "assistant", "user", "assistant"]):
        ctx.add_message({"role": role, "content": str(i)})
    assert [m["role"] for m in ctx.messages] == ["system", "user", "assistant"]


def test_thread_safe():
    import threading

    ctx = ExecutionContext("t", "g", max_messages=100000)
    threads = [threading.Thread(target=lambda: [ctx.add_message({"n": i}) for i in range(2000)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(ctx) == 8000 and len(ctx.messages) == 8000


# ---------------------------------------------------------------- examples


def test_example_raise():
    out, _ = run_example("context_raise.py")
    assert ("RAISED BoundsExceededError: Message count 1000 exceeds limit of 1000 {'limit_type': 'message_count', "
            "'current_value': 1000, 'limit_value': 1000, 'details': {'trace_id': 'abc-123'}, 'code': 'ELIMIT'}") in out


def test_example_check_bounds():
    out, _ = run_example("context_check_bounds.py", "--ctx", "5", "10")
    assert "RAISED" not in out and "CTX 5" in out


def test_example_usage():
    out, _ = run_example("context_usage.py", "--ctx", "9", "10")
    assert "Messages: 9/10" in out and "Utilization: 90.0%" in out and "Near limit: True" in out


def test_example_prune():
    out, _ = run_example("context_prune.py", "--ctx", "300", "1000")
    assert "CTX 100" in out  # keep 100, then keep 500 of 100: nothing more


def test_example_auto_prune():
    out, _ = run_example("context_auto_prune.py", "--ctx", "10", "10")
    assert "CTX 5" in out
    out, _ = run_example("context_auto_prune.py", "--ctx", "9", "10")
    assert "CTX 9" in out


def test_example_integration():
    out, err = run_example("context_integration.py")
    assert "RAISED" not in out and "Limit exceeded" not in out, out + err
