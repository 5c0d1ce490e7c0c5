"""Python callbacks of a Store: strategies (the view, answers, failures),
on_evict, the estimator, on_warn — and that a failing one leaves the store
unchanged with its exception chained."""

import logging

import pytest

import mgrun
from mgrun import BoundsExceededError, Store
from conftest import snapshot


def full_store(strategy, n=4, **kw):
    s = Store("cb", max_messages=n, on_full="prune", strategy=strategy, **kw)
    s.add("system", "prompt", pinned=True)
    for i in range(n - 1):
        s.add("user", f"m{i}")
    return s


# ---------------------------------------------------------------- strategies


def test_a_python_strategy_sees_a_view_and_the_need():
    seen = {}

    def drop_second(view, need):
        seen["need"] = need
        seen["len"] = len(view)
        seen["name"] = view.name
        seen["first"] = view[0].role
        seen["last"] = view[-1].text
        seen["info"] = view.info(1)
        seen["get"] = view.get(2).text
        seen["missing"] = view.get(99)
        seen["iter"] = [m.id for m in view]
        seen["stats"] = view.stats().message_count
        seen["now"] = view.now()
        seen["units"] = view.units().n
        return [view[1].id]

    s = full_store(drop_second)
    assert s.strategy == "drop_second"
    new = s.add("user", "new")
    assert s.ids() == [1, 3, 4, new]
    need = seen["need"]
    assert (need.count, need.bytes, need.tokens, need.limit_type, need.group, need.adding) == (
        1, 0, 0, "message_count", None, True)
    assert need.incoming_bytes == 3 + 4 + mgrun.MSG_OVERHEAD and need.incoming_tokens == 1
    assert seen["len"] == 4 and seen["name"] == "cb" and seen["first"] == "system" and seen["last"] == "m2"
    assert seen["info"][:5] == (2, 2 + 4 + mgrun.MSG_OVERHEAD, 1, 0, False) and seen["info"][6:] == (None, "user")
    assert seen["get"] == "m0" and seen["missing"] is None
    assert seen["iter"] == [1, 2, 3, 4] and seen["stats"] == 4 and seen["now"] > 1.6e9 and seen["units"] == 4
    s.check()


def test_a_view_dies_with_its_strategy():
    kept = []

    def keep(view, need):
        kept.append(view)
        return [view[1].id]

    s = full_store(keep)
    s.add("user", "x")
    with pytest.raises(mgrun.StoreError, match="store view used after its strategy returned"):
        len(kept[0])
    with pytest.raises(mgrun.StoreError):
        kept[0][0]
    assert "expired" in repr(kept[0])


def test_units_read_their_strings_only_while_the_view_lives():
    kept = []

    def keep(view, need):
        u = view.units()
        kept.append(u)
        kept.append(view.units())
        assert u.role[1] == "user"  # read now: cached
        return [u.id[1]]

    full_store(keep).add("user", "x")
    assert kept[0].role[1] == "user" and kept[0].n == 4
    with pytest.raises(mgrun.StoreError, match="store view used after its strategy returned"):
        kept[1].group


def test_view_positions_are_checked():
    errors = []

    def probe(view, need):
        for bad in (4, -5):
            try:
                view[bad]
            except IndexError as e:
                errors.append(str(e))
        try:
            view["0"]
        except TypeError as e:
            errors.append(str(e))
        return [view[1].id]

    full_store(probe).add("u", "x")
    assert errors == ["position 4 is out of range (the store holds 4 messages)",
                      "position -1 is out of range (the store holds 4 messages)",
                      "a position must be an int, got str"]


def test_a_replacement_takes_the_place_of_the_oldest_evicted():
    def summarize(view, need):
        ids = [view[1].id, view[2].id]
        return ids, {"role": "system", "content": "summary of m0 m1", "source": "summary", "meta": {"n": "2"}}

    s = full_store(summarize, n=5)
    s.add("user", "new")
    got = [(m.id, m.role, m.text) for m in s]
    assert got == [(1, "system", "prompt"), (6, "system", "summary of m0 m1"), (4, "user", "m2"),
                   (5, "user", "m3"), (7, "user", "new")]
    assert s.get(6).meta == {"n": "2"} and s.get(6).source == "summary"
    assert s.stats().replaced_count == 1
    s.check()


@pytest.mark.parametrize(
    "answer, code, text",
    [
        (None, "ESTRATEGY", "TypeError: the strategy returned None"),
        ("2", "ESTRATEGY", "must return the ids to evict"),
        ({2: 1}, "ESTRATEGY", "must return the ids to evict"),
        ([0], "ESTRATEGY", "the strategy returned 0, which is not a message id"),
        (["2"], "ESTRATEGY", "the strategy returned '2', which is not a message id"),
        ([True], "ESTRATEGY", "which is not a message id"),
        ([1], "EPINNED", "strategy 'answer' chose message 1, which is pinned"),
        ([99], "ESTRATEGY", "strategy 'answer' chose message 99, which is not in the store"),
        ([], "ESTRATEGY", "strategy 'answer' freed too little: 0 messages of the 1 needed"),
        (([2], {"content": "x", "colour": "red"}), "ESTRATEGY", "unknown field 'colour'"),
        (([2], {"content": "x" * 2000000}), "ELIMIT", "gave a replacement whose size"),
        (([2], {"role": 5}), "ESTRATEGY", "role must be a str"),
    ],
)
def test_bad_answers_fail_the_add_and_change_nothing(answer, code, text):
    def answer_fn(view, need):
        return answer

    answer_fn.__name__ = "answer"
    s = full_store(answer_fn)
    before = snapshot(s)
    with pytest.raises(BoundsExceededError) as ei:
        s.add("user", "x")
    assert ei.value.code == code, str(ei.value)
    assert text in str(ei.value)
    assert str(ei.value).startswith("Message count 4 exceeds limit of 4: ")
    assert snapshot(s) == before
    s.check()


def test_an_exception_in_a_strategy_is_chained():
    class Boom(RuntimeError):
        pass

    def boom(view, need):
        raise Boom("no idea what to evict")

    s = full_store(boom)
    before = snapshot(s)
    with pytest.raises(BoundsExceededError) as ei:
        s.add("user", "x")
    e = ei.value
    assert isinstance(e.__cause__, Boom) and str(e.__cause__) == "no idea what to evict"
    assert e.code == "ESTRATEGY" and e.limit_type == "message_count"
    assert "strategy 'boom' failed: Boom: no idea what to evict" in str(e)
    assert snapshot(s) == before
    # and the store still works
    s.set_strategy("oldest")
    s.add("user", "y")


def test_keyboard_interrupt_in_a_strategy_propagates_as_it_is():
    def stop(view, need):
        raise KeyboardInterrupt

    s = full_store(stop)
    before = snapshot(s)
    with pytest.raises(KeyboardInterrupt):
        s.add("user", "x")
    assert snapshot(s) == before


def test_inside_a_strategy_reads_work_and_changes_are_refused():
    inside = {}

    def nosy(view, need):
        inside["len"] = len(s)
        inside["get"] = s.get(2).text
        inside["stats"] = s.stats().message_count
        for name, change in (("add", lambda: s.add("u", "x")), ("remove", lambda: s.remove(2)),
                             ("prune", lambda: s.prune(0)), ("clear", s.clear)):
            try:
                change()
            except mgrun.StoreBusyError as e:
                inside[name] = e.code
        return [2]

    s = full_store(nosy)
    s.add("user", "new")
    assert inside == {"len": 4, "get": "m0", "stats": 4, "add": "EBUSY", "remove": "EBUSY", "prune": "EBUSY",
                      "clear": "EBUSY"}
    assert s.ids() == [1, 3, 4, 5]


def test_a_store_closed_from_its_strategy_closes_after_the_call():
    def close_me(view, need):
        s.close()
        return [2]

    s = full_store(close_me)
    s.add("user", "x")  # completes
    assert s.closed
    with pytest.raises(mgrun.StoreClosedError):
        len(s)


# ---------------------------------------------------------------- on_evict


def test_on_evict_gets_copies_before_they_are_freed():
    calls = []

    def on_evict(store, messages, reason):
        calls.append((store, [(m.id, m.text) for m in messages], reason, len(store)))

    s = full_store("oldest", on_evict=on_evict)
    s.add("user", "x")
    s.prune(1)
    assert calls == [(s, [(2, "m0")], "strategy", 4), (s, [(3, "m1"), (4, "m2")], "prune", 4)]


@pytest.mark.parametrize("refuse", ["raise", "false"])
def test_on_evict_refusing_fails_the_eviction(tmp_path, refuse):
    arc = tmp_path / "a.jsonl"

    def on_evict(store, messages, reason):
        if refuse == "raise":
            raise OSError("remote archive down")
        return False

    s = full_store("oldest", on_evict=on_evict, archive=arc)
    before = snapshot(s)
    with pytest.raises(BoundsExceededError) as ei:
        s.add("user", "x")
    assert "on_evict refused the eviction" in str(ei.value)
    if refuse == "raise":
        assert isinstance(ei.value.__cause__, OSError)
        assert "OSError: remote archive down" in str(ei.value)
    else:
        assert "on_evict returned False" in str(ei.value)
    with pytest.raises(mgrun.StoreError) as ei2:
        s.prune(0)
    assert "prune failed" in str(ei2.value)
    assert snapshot(s) == before
    assert arc.read_text() == ""  # the archive was cut back


# ---------------------------------------------------------------- estimator


def test_the_estimator_runs_once_per_message_without_tokens():
    calls = []

    def estimate(content):
        calls.append(content)
        return len(content) / 3  # a fraction rounds up

    with Store(estimator=estimate, max_tokens=1000) as s:
        s.add("u", "abcdefg")
        s.add("u", "given", tokens=5)
        s.stats()
        list(s)
        s.prune(0)
        assert calls == [b"abcdefg"]
        assert s.stats().total_tokens == 0


@pytest.mark.parametrize("bad", [-1, "7", float("nan"), 2**70, None, True])
def test_a_bad_estimate_fails_the_add(bad):
    with Store("est", estimator=lambda c: bad) as s:
        with pytest.raises(mgrun.StoreError) as ei:
            s.add("u", "x")
        e = ei.value
        assert not isinstance(e, BoundsExceededError)
        assert e.code == "ESTRATEGY"
        assert str(e).startswith("store 'est': estimator failed: ValueError: the estimator must return a "
                                 "non-negative number of tokens (at most 2^63-1), got ")
        assert isinstance(e.__cause__, ValueError)
        assert len(s) == 0 and s.stats().rejected_count == 1


def test_the_estimator_runs_for_a_snapshot_without_tokens(fixtures):
    calls = []
    with Store.load(fixtures / "store" / "v1_small.json", estimator=lambda c: calls.append(c) or 7) as s:
        assert [m.tokens for m in s] == [2, 1, 7]
    assert calls == [b"hello"]  # the only message of the file without "tokens"


# ---------------------------------------------------------------- on_warn


def test_on_warn_fires_once_per_upward_crossing():
    warnings = []
    s = Store(max_messages=10, on_warn=lambda store, kind, st: warnings.append((kind, st.message_count)))
    for _ in range(9):
        s.add("u", "x")
    assert warnings == [("message_count", 8)]
    s.prune(2)  # below again: re-armed
    for _ in range(6):
        s.add("u", "x")
    assert warnings == [("message_count", 8), ("message_count", 8)]
    s.close()


def test_on_warn_may_change_the_store():
    def trim(store, kind, stats):
        store.prune(1)

    with Store(max_messages=5, on_warn=trim) as s:
        for _ in range(4):
            s.add("u", "x")
        assert len(s) == 1


def test_an_exception_in_on_warn_is_logged_and_the_add_stands(caplog):
    def bad(store, kind, stats):
        raise RuntimeError("warn handler broke")

    caplog.set_level(logging.ERROR, logger="mgrun")
    with Store("w", max_messages=5, on_warn=bad) as s:
        for _ in range(4):
            assert s.add("u", "x") > 0
        assert len(s) == 4
    recs = [r for r in caplog.records if getattr(r, "event", "") == "callback_failed"]
    assert len(recs) == 1 and "warn handler broke" in recs[0].getMessage()
    assert recs[0].exc_info is not None
