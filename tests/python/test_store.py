"""mgrun.Store: options, adds and their errors, atomicity, groups and pins,
prune, removal, iteration, stats, snapshots, the archive, closing."""

import json
import logging

import pytest

import mgrun
from conftest import snapshot
from mgrun import MSG_OVERHEAD, BoundsExceededError, Store


# ---------------------------------------------------------------- options


def test_defaults_are_the_seeds():
    with Store() as s:
        st = s.stats()
        assert (st.max_messages, st.max_message_size_bytes, st.max_total_size_bytes) == (1000, 1 << 20, 100 << 20)
        assert st.warn_at == 0.8 and st.max_tokens is None
        assert s.name == "store" and s.strategy == "oldest"
        assert len(s) == 0 and s.len() == 0 and s.check() is True


def test_sizes_and_names_are_accepted():
    with Store("ctx-1.a_b", max_messages=5, max_message_size="64K", max_total_size=4096, max_tokens=100,
               warn_at=0.5) as s:
        assert s.limits() == {"max_messages": 5, "max_message_size": 65536, "max_total_size": 4096,
                              "max_tokens": 100, "warn_at": 0.5}


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"max_messages": 0}, "max_messages 0 is below the minimum 1"),
        ({"max_message_size": 512}, "max_message_size 512 is below the minimum 1024"),
        ({"max_total_size": "1000"}, "max_total_size 1000 is below the minimum 1024"),
        ({"max_messages": -1}, "max_messages -1 is below the minimum 1"),
        ({"max_tokens": -1}, "max_tokens -1 is below the minimum 0"),
        ({"warn_at": 0}, "warn_at 0 is out of range: it must be > 0 and <= 1"),
        ({"warn_at": 1.5}, "warn_at 1.5 is out of range"),
        ({"on_full": "drop"}, 'on_full must be "error" or "prune", got \'drop\''),
        ({"strategy": "newest"}, "strategy 'newest': unknown strategy (accepted: oldest, keep_last(N)"),
        ({"strategy": "keep_last(x)"}, "N must be a non-negative integer"),
        ({"name": "a b"}, "store name: invalid name 'a b'"),
        ({"name": ""}, "store name"),
        ({"name": "x" * 65}, "store name"),
        ({"name": ".."}, "store name"),
        ({"max_total_size": "lots"}, 'max_total_size: invalid size "lots"'),
    ],
)
def test_bad_option_values_say_what_and_what_is_accepted(kw, message):
    with pytest.raises(ValueError) as ei:
        Store(**kw)
    assert message in str(ei.value)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"max_messages": "10"}, "max_messages must be an int, got str"),
        ({"max_messages": True}, "max_messages must be an int, got bool"),
        ({"warn_at": "0.8"}, "warn_at must be a number"),
        ({"on_full": None}, "on_full must be"),
        ({"strategy": 42}, "strategy must be \"oldest\", a built-in strategy name"),
        ({"on_warn": 1}, "on_warn must be callable or None, got int"),
        ({"on_evict": "f"}, "on_evict must be callable"),
        ({"estimator": 3.0}, "estimator must be callable"),
        ({"archive": 5}, "archive must be a path"),
        ({"name": 7}, "name must be a str"),
        ({"archive_fsync": 1}, "archive_fsync must be a bool"),
        ({"max_message_size": None}, "max_message_size must be a number of bytes"),
    ],
)
def test_bad_option_types(kw, message):
    with pytest.raises(TypeError) as ei:
        Store(**kw)
    assert message in str(ei.value)


# ---------------------------------------------------------------- adding


def test_add_and_get_every_field():
    with Store("f") as s:
        i = s.add("tool", b"bin\0ary\xff", source="web", group="call-1", pinned=True, priority=-7, tokens=42,
                  meta={"tool_call_id": "c1", "k": "v"})
        m = s.get(i)
        assert m == mgrun.Message(id=i, role="tool", content=b"bin\0ary\xff", source="web", group="call-1",
                                  pinned=True, priority=-7, tokens=42, time=m.time,
                                  size=8 + 4 + 3 + 6 + (12 + 1 + 2 + 1) + (1 + 1 + 1 + 1) + MSG_OVERHEAD,
                                  meta={"tool_call_id": "c1", "k": "v"})
        assert m.time > 1.6e9
        j = s.add("user", "héllo")  # str is stored as UTF-8
        n = s.get(j)
        assert n.content == "héllo".encode() and n.text == "héllo"
        assert n.source is None and n.group is None and n.meta == {} and not n.pinned
        assert n.tokens == 2  # ceil(6 bytes / 4), estimated once
        assert n.size == 6 + 4 + MSG_OVERHEAD
        assert s.get(999) is None and s.get(0) is None and s.get(-1) is None
        assert j in s and 999 not in s and "x" not in s
        assert s.add("user", bytearray(b"ba")) > j
        assert s.add("user", memoryview(b"mv")) > j


def test_ids_increase_and_are_never_reused():
    with Store(max_messages=2, on_full="prune") as s:
        ids = [s.add("u", "m") for _ in range(5)]
        assert ids == [1, 2, 3, 4, 5]
        s.clear()
        assert s.add("u", "m") == 6


@pytest.mark.parametrize(
    "args, kw, exc, message",
    [
        ((None, "x"), {}, TypeError, "role must be a str"),
        ((1, "x"), {}, TypeError, "role must be a str, got int"),
        (("u\0", "x"), {}, ValueError, "role must not contain NUL"),
        (("u", 5), {}, TypeError, "content must be str or bytes, got int"),
        (("u", None), {}, TypeError, "content must be str or bytes"),
        (("u", "\ud800"), {}, ValueError, "content is not encodable as UTF-8"),
        (("u", "x"), {"source": 3}, TypeError, "source must be a str"),
        (("u", "x"), {"group": "g\0"}, ValueError, "group must not contain NUL"),
        (("u", "x"), {"pinned": 1}, TypeError, "pinned must be a bool, got int"),
        (("u", "x"), {"priority": "high"}, TypeError, "priority must be an integer"),
        (("u", "x"), {"priority": 1 << 63}, ValueError, "priority must be from"),
        (("u", "x"), {"tokens": -1}, ValueError, "tokens must be from 0"),
        (("u", "x"), {"tokens": 2.5}, ValueError, "tokens must be an integer"),
        (("u", "x"), {"meta": ["k"]}, TypeError, "meta must be a dict of str to str"),
        (("u", "x"), {"meta": {"k": 1}}, TypeError, "meta value of 'k' must be a str"),
        (("u", "x"), {"meta": {1: "v"}}, TypeError, "meta keys must be str"),
        (("u", "x"), {"meta": {f"k{i}": "v" for i in range(33)}}, ValueError, "at most 32"),
    ],
)
def test_add_refuses_bad_fields_and_changes_nothing(args, kw, exc, message):
    with Store() as s:
        s.add("u", "first")
        before = snapshot(s)
        with pytest.raises(exc) as ei:
            s.add(*args, **kw)
        assert message in str(ei.value)
        assert snapshot(s) == before


def test_message_count_limit_is_atomic_and_seed_shaped():
    with Store("ctx", max_messages=3) as s:
        for i in range(3):
            s.add("user", f"m{i}")
        before = snapshot(s)
        rejected = s.stats().rejected_count
        with pytest.raises(BoundsExceededError) as ei:
            s.add("user", "one too many")
        e = ei.value
        assert str(e) == "Message count 3 exceeds limit of 3"
        assert (e.limit_type, e.current_value, e.limit_value, e.code) == ("message_count", 3, 3, "ELIMIT")
        assert e.details["store"] == "ctx" and "3 messages" in e.details["state"]
        assert isinstance(e, mgrun.StoreError) and isinstance(e, mgrun.Error)
        assert snapshot(s) == before  # same messages, totals, next id
        assert s.stats().rejected_count == rejected + 1
        s.remove(1)
        assert s.add("user", "fits after a remove") == 4  # the refused add took no id


def test_message_size_limit_counts_the_overhead():
    with Store(max_message_size=1024) as s:
        with pytest.raises(BoundsExceededError) as ei:
            s.add("", "x" * 50000)
        assert str(ei.value) == "Message size 50256 exceeds limit of 1024"
        assert ei.value.limit_type == "message_size"
        assert s.add("", "x" * (1024 - MSG_OVERHEAD)) == 1  # exactly at the limit
        with pytest.raises(BoundsExceededError):
            s.add("", "x" * (1024 - MSG_OVERHEAD + 1))


def test_total_size_and_token_limits():
    with Store(max_total_size=2048, max_tokens=10) as s:
        s.add("", "x" * 700, tokens=1)
        s.add("", "x" * 700, tokens=1)
        with pytest.raises(BoundsExceededError) as ei:
            s.add("", "x" * 100, tokens=1)
        assert ei.value.limit_type == "total_size" and ei.value.limit_value == 2048
        assert ei.value.current_value == 2 * 956 + 356
    with Store(max_tokens=10) as s:
        s.add("", "x", tokens=2)
        with pytest.raises(BoundsExceededError) as ei:
            s.add("", "", tokens=9)
        assert ei.value.limit_type == "tokens" and str(ei.value) == "Token count 11 exceeds limit of 10"


def test_prune_on_full_keeps_pins_and_whole_groups():
    with Store(max_messages=4, on_full="prune") as s:
        sys_id = s.add("system", "prompt", pinned=True)
        s.add("user", "q1")
        call = s.add("assistant", "call", group="t1")
        res = s.add("tool", "result", group="t1")
        s.add("user", "q2")  # evicts q1
        assert s.ids() == [sys_id, call, res, 5]
        s.add("user", "q3")  # evicts the whole group t1
        assert s.ids() == [sys_id, 5, 6]
        st = s.stats()
        assert st.evicted_count == 3 and st.pinned_count == 1
        s.check()


def test_a_group_is_not_evicted_for_its_own_member():
    with Store(max_messages=2, on_full="prune") as s:
        s.add("assistant", "call", group="g")
        s.add("tool", "r1", group="g")
        with pytest.raises(BoundsExceededError) as ei:
            s.add("tool", "r2", group="g")
        assert ei.value.code == "ESTRATEGY"
        assert "strategy 'oldest' could free only 0 messages" in str(ei.value)


def test_pinned_alone_leave_no_room():
    with Store(max_messages=2, on_full="prune") as s:
        s.add("system", "a", pinned=True)
        s.add("system", "b", pinned=True)
        with pytest.raises(BoundsExceededError) as ei:
            s.add("user", "x")
        assert "pinned messages alone leave no room (2 pinned)" in str(ei.value)


# ---------------------------------------------------------------- prune, remove


def test_prune_default_keeps_half_and_returns_the_true_count():
    with Store(max_messages=10) as s:
        for i in range(10):
            s.add("u", str(i))
        assert s.prune() == 5
        assert s.ids() == [6, 7, 8, 9, 10]
        assert s.prune(5) == 0


def test_prune_zero_removes_all_but_pinned():
    with Store() as s:
        s.add("system", "p", pinned=True)
        for i in range(4):
            s.add("u", str(i))
        assert s.prune(0) == 4  # the seed reported 5
        assert s.ids() == [1]


def test_prune_keeps_a_straddling_group_whole():
    with Store() as s:
        s.add("u", "a")
        s.add("assistant", "call", group="g")
        s.add("tool", "r1", group="g")
        s.add("tool", "r2", group="g")
        assert s.prune(1) == 1  # only "a": the group has a member among the kept
        assert s.ids() == [2, 3, 4]


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (2.5, ValueError), (float("nan"), ValueError),
                                      ("3", TypeError), (True, TypeError), ([], TypeError)])
def test_prune_bad_keep_count(bad, exc):
    with Store() as s:
        with pytest.raises(exc, match="keep_count must be a non-negative integer"):
            s.prune(bad)


def test_prune_accepts_an_integral_float():
    with Store() as s:
        for i in range(3):
            s.add("u", "x")
        assert s.prune(1.0) == 2


def test_remove_and_clear():
    with Store() as s:
        a = s.add("assistant", "call", group="g")
        b = s.add("tool", "res", group="g")
        s.add("system", "p", pinned=True)
        s.remove(a)  # only that id, not its group
        assert s.ids() == [b, 3]
        with pytest.raises(KeyError):
            s.remove(a)
        with pytest.raises(KeyError):
            s.remove(0)
        with pytest.raises(TypeError):
            s.remove("1")
        assert s.clear() == 2  # pinned too
        assert len(s) == 0 and s.stats().removed_count == 3


def test_make_room():
    with Store(max_messages=10) as s:
        for i in range(5):
            s.add("u", "x")
        assert s.make_room(count=2) == 2
        assert s.ids() == [3, 4, 5]
        with pytest.raises(mgrun.StoreError) as ei:
            s.make_room(count=10)
        assert ei.value.code == "ESTRATEGY" and "could not make room" in str(ei.value)
        assert s.make_room() == 0
        with pytest.raises(ValueError):
            s.make_room(count=-1)


# ---------------------------------------------------------------- reading


def test_iteration_is_oldest_first_and_safe_to_change():
    with Store() as s:
        for i in range(5):
            s.add("u", str(i))
        seen = []
        for m in s:
            seen.append(m.id)
            if m.id == 2:
                s.remove(4)  # removed meanwhile: skipped
                s.add("u", "new")  # added meanwhile: not visited
        assert seen == [1, 2, 3, 5]
        assert [m.text for m in s.messages()] == ["0", "1", "2", "4", "new"]


def test_stats_fields_and_utilisation_above_one_never_raises():
    with Store(max_messages=10, max_total_size=4096) as s:
        for i in range(8):
            s.add("u", "x" * 100, tokens=3)
        st = s.stats()
        assert st.message_count == 8 and st.total_size_bytes == 8 * (101 + MSG_OVERHEAD)
        assert st.payload_bytes + st.overhead_bytes == st.total_size_bytes
        assert st.largest_message_bytes == 101 + MSG_OVERHEAD
        assert st.message_count_utilization == 0.8 and st.near_message_limit
        assert st.total_tokens == 24 and st.next_id == 9
        s.set_limits(max_messages=4)  # lowered below the use: nothing evicted
        st = s.stats()
        assert st.message_count == 8 and st.message_count_utilization == 2.0
        s.check()
        with pytest.raises(BoundsExceededError):
            s.add("u", "x")
        assert s.limits()["max_messages"] == 4


def test_set_limits_validates():
    with Store() as s:
        with pytest.raises(ValueError, match="max_message_size 100 is below the minimum 1024"):
            s.set_limits(max_message_size=100)
        with pytest.raises(TypeError):
            s.set_limits(max_messages="3")
        s.set_limits(max_tokens=50)
        assert s.limits()["max_tokens"] == 50
        s.set_limits(max_tokens=False)
        assert s.limits()["max_tokens"] is None


def test_set_strategy_and_on_full():
    with Store(max_messages=2) as s:
        s.add("u", "a")
        s.add("u", "b")
        s.set_on_full("prune")
        s.set_strategy("keep_last(0)")
        assert s.strategy == "keep_last(0)"
        s.add("u", "c")
        assert s.ids() == [3]
        s.set_strategy(mgrun.strategies.oldest)
        assert s.strategy == "oldest"
        with pytest.raises(ValueError):
            s.set_on_full("never")


# ---------------------------------------------------------------- snapshots


def test_save_and_load_round_trip(tmp_path):
    p = tmp_path / "ctx.json"
    with Store("ctx", max_messages=50, max_tokens=1000) as s:
        s.add("system", "prompt", pinned=True)
        s.add("tool", b"\x00\xffbinary", group="g", meta={"k": "v"}, priority=3, tokens=7)
        s.remove(s.add("u", "gone"))
        s.save(p)
        want = [(m.id, m.role, m.content, m.group, m.pinned, m.priority, m.tokens, m.meta, m.size) for m in s]
        next_id = s.stats().next_id
    with Store.load(p) as t:
        assert t.name == "ctx"
        assert [(m.id, m.role, m.content, m.group, m.pinned, m.priority, m.tokens, m.meta, m.size) for m in t] == want
        assert t.stats().next_id == next_id and t.limits()["max_messages"] == 50
        assert t.add("u", "next") == next_id
    with Store.load(str(p), name="other", max_messages=2, on_full="prune") as u:
        assert u.name == "other" and u.limits()["max_messages"] == 2 and u.limits()["max_tokens"] == 1000
        u.add("u", "x")  # evicts the unpinned one to stay within 2
        assert [m.role for m in u] == ["system", "u"]


@pytest.mark.parametrize("name, code, text", [
    ("truncated.json", "ECORRUPT", "truncated.json"),
    ("corrupt.json", "ECORRUPT", "corrupt.json"),
    ("version2.json", "EVERSION", "has version 2; this mgrun reads version 1"),
    ("wrong_format.json", "ECORRUPT", "wrong_format.json"),
    ("dup_id.json", "ECORRUPT", "appears twice"),
])
def test_load_refuses_files_that_are_not_snapshots(fixtures, name, code, text):
    with pytest.raises(mgrun.SnapshotError) as ei:
        Store.load(fixtures / "store" / name)
    assert ei.value.code == code
    assert text in str(ei.value)


def test_load_and_save_system_errors(tmp_path):
    with pytest.raises(mgrun.SnapshotError) as ei:
        Store.load(tmp_path / "missing.json")
    assert ei.value.code == "ENOENT" and "missing.json" in str(ei.value)
    with pytest.raises(mgrun.SnapshotError) as ei:
        Store.load(tmp_path)
    assert ei.value.code == "EISDIR"
    with Store() as s:
        with pytest.raises(mgrun.StoreError) as ei:
            s.save(tmp_path / "no" / "such" / "dir.json")
        assert ei.value.code == "ENOENT"
        with pytest.raises(ValueError, match="path must not be empty"):
            s.save("")
    with pytest.raises(TypeError, match="unexpected option 'max_message'"):
        Store.load(tmp_path / "x.json", max_message=3)
    with pytest.raises(TypeError, match="max_messages must be an int"):
        Store.load(tmp_path / "x.json", max_messages="3")


# ---------------------------------------------------------------- archive


def test_archive_receives_every_eviction(tmp_path):
    arc = tmp_path / "evicted.jsonl"
    with Store("ctx", max_messages=2, on_full="prune", archive=arc) as s:
        s.add("u", "a")
        s.add("u", "b")
        s.add("u", "c")
        s.add("u", "d")
        assert s.prune(0) == 2
        assert s.stats().archived_count == 4
    lines = [json.loads(x) for x in arc.read_text().splitlines()]
    assert [x["content"] for x in lines] == ["a", "b", "c", "d"]
    assert [x["reason"] for x in lines] == ["strategy", "strategy", "prune", "prune"]
    assert all(x["store"] == "ctx" for x in lines)


def test_an_archive_that_cannot_be_written_fails_the_add(tmp_path):
    with Store(max_messages=1, on_full="prune", archive=tmp_path / "nodir" / "a.jsonl") as s:
        s.add("u", "a")
        before = snapshot(s)
        with pytest.raises(BoundsExceededError) as ei:
            s.add("u", "b")
        assert ei.value.code == "ENOENT"
        assert snapshot(s) == before


# ---------------------------------------------------------------- logging


def test_seed_events_are_logged(caplog):
    caplog.set_level(logging.DEBUG, logger="mgrun")
    with Store("logged", max_messages=5) as s:
        for i in range(5):
            s.add("u", "x")
        with pytest.raises(BoundsExceededError):
            s.add("u", "x")
        s.prune(1)
    events = [getattr(r, "event", None) for r in caplog.records]
    assert "approaching_message_limit" in events
    assert "message_count_exceeded" in events
    assert "messages_pruned" in events
    rec = next(r for r in caplog.records if getattr(r, "event", "") == "messages_pruned")
    assert rec.fields == {"store": "logged", "removed": 4, "kept": 1}
    assert rec.getMessage() == "messages_pruned kept=1 removed=4 store=logged"


def test_nothing_reaches_stderr_without_a_handler(py):
    out = py("""
        import mgrun
        s = mgrun.Store(max_messages=1)
        s.add("u", "x")
        try:
            s.add("u", "y")
        except mgrun.BoundsExceededError:
            pass
    """)
    assert out.returncode == 0 and out.stderr == ""


# ---------------------------------------------------------------- closing


def test_close_is_idempotent_and_final():
    s = Store("c")
    s.add("u", "x")
    s.close()
    s.close()
    assert s.closed and s.name == "c" and "closed" in repr(s)
    for call in (lambda: s.add("u", "x"), lambda: len(s), s.stats, lambda: s.get(1), s.clear, s.prune,
                 lambda: list(s), s.check, lambda: s.save("/tmp/x")):
        with pytest.raises(mgrun.StoreClosedError, match="store 'c' is closed"):
            call()


def test_closing_during_iteration_raises_at_the_next_step():
    s = Store()
    for i in range(3):
        s.add("u", str(i))
    it = iter(s)
    assert next(it).id == 1
    s.close()
    with pytest.raises(mgrun.StoreClosedError):
        next(it)


def test_context_manager_closes():
    with Store() as s:
        s.add("u", "x")
    assert s.closed


def test_pickle_of_the_error_keeps_its_attributes():
    import pickle

    e = BoundsExceededError("Message count 1 exceeds limit of 1", "message_count", 1, 1, {"a": 1}, "ELIMIT")
    f = pickle.loads(pickle.dumps(e))
    assert (str(f), f.limit_type, f.current_value, f.limit_value, f.details, f.code) == (
        str(e), "message_count", 1, 1, {"a": 1}, "ELIMIT")


# ---------------------------------------------------------------- foreign stores


class CountingLock:
    """A reentrant lock that counts how often it was taken."""

    def __init__(self):
        import threading

        self.lock = threading.RLock()
        self.taken = 0

    def __enter__(self):
        self.lock.acquire()
        self.taken += 1
        return self

    def __exit__(self, *exc):
        self.lock.release()


def test_wrapping_a_store_made_elsewhere():
    owner = Store("owned", max_messages=3, on_full="prune")
    owner.add("system", "p", pinned=True)
    lock = CountingLock()
    released = []
    w = Store._from_pointer(owner._ptr, lock=lock, release=released.append)
    assert w.name == "owned"
    i = w.add("user", "through the wrapper")
    assert owner.get(i).text == "through the wrapper" and len(w) == 2
    assert [m.id for m in w] == [1, i] and w.stats().message_count == 2 and w.check()
    with pytest.raises(BoundsExceededError):
        w.add("u", "x" * (2 << 20))
    assert lock.taken >= 6  # every call into C held the lock
    w.set_strategy("oldest")
    with pytest.raises(mgrun.StoreError, match="belongs to its creator"):
        w.set_strategy("keep_last(1)")
    with pytest.raises(mgrun.StoreError, match="belongs to its creator"):
        w.set_strategy(lambda v, n: [])
    w.close()
    w.close()
    assert released == [owner._ptr]  # once
    with pytest.raises(mgrun.StoreClosedError):
        len(w)
    assert len(owner) == 2  # the owner's store lives on
    borrowed = Store._from_pointer(owner._ptr)
    borrowed.close()  # release=None: nothing is freed
    assert len(owner) == 2
    owner.close()
    with pytest.raises(ValueError, match="non-NULL"):
        Store._from_pointer(0)
