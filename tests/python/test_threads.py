"""A Store shared by threads: concurrent adds, the GIL released during C
calls (a thread blocked on the store's lock does not hold it), closing
while another thread is inside a call."""

import threading

import pytest

import mgrun
from mgrun import Store

TIMEOUT = 20


def join_all(threads):
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive(), "a thread hung: the GIL or the store's lock was not released"


def test_concurrent_adds_and_prunes_keep_the_store_consistent():
    s = Store("shared", max_messages=500, on_full="prune", strategy="keep_last(400)")
    errors = []
    got = {}

    def worker(k):
        try:
            ids = []
            for i in range(3000):
                ids.append(s.add("user", f"{k}:{i}", group=f"g{k}-{i // 3}" if k % 2 else None))
                if i % 500 == 0:
                    s.stats()
                    list(s)
            got[k] = ids
        except BaseException as e:  # noqa: B902
            errors.append(e)

    def pruner():
        try:
            for _ in range(50):
                s.prune(100)
        except BaseException as e:  # noqa: B902
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)] + [threading.Thread(target=pruner)]
    for t in threads:
        t.start()
    join_all(threads)
    assert errors == []
    for ids in got.values():
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
    all_ids = [i for ids in got.values() for i in ids]
    assert len(set(all_ids)) == len(all_ids) == 12000
    assert s.check()
    assert len(s) <= 500
    s.close()


def test_a_thread_waiting_for_the_store_does_not_hold_the_gil():
    """Thread A holds the store's lock inside a Python strategy that waits
    for an event; thread B calls len(store) and blocks on the store's lock.
    The main thread can still run Python and set the event only if B
    released the GIL before blocking (else: a deadlock, which ctest's
    timeout reports)."""
    entered = threading.Event()
    go = threading.Event()

    def slow(view, need):
        entered.set()
        assert go.wait(TIMEOUT)
        return [view[0].id]

    s = Store(max_messages=2, on_full="prune", strategy=slow)
    s.add("u", "a")
    s.add("u", "b")
    out = {}
    a = threading.Thread(target=lambda: out.setdefault("add", s.add("u", "c")))
    b_started = threading.Event()

    def reader():
        b_started.set()
        out["len"] = len(s)

    b = threading.Thread(target=reader)
    a.start()
    assert entered.wait(TIMEOUT)
    b.start()
    assert b_started.wait(TIMEOUT)
    b.join(0.2)
    assert b.is_alive()  # blocked on the store's lock, inside C
    n = sum(range(100000))  # the main thread runs Python meanwhile
    assert n > 0
    go.set()
    join_all([a, b])
    assert out == {"add": 3, "len": 2}
    s.close()


def test_close_while_another_thread_is_inside_a_call():
    entered = threading.Event()
    go = threading.Event()

    def slow(view, need):
        entered.set()
        go.wait(TIMEOUT)
        return [view[0].id]

    s = Store(max_messages=1, on_full="prune", strategy=slow)
    s.add("u", "a")
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("id", s.add("u", "b")))
    t.start()
    assert entered.wait(TIMEOUT)
    s.close()  # returns at once; takes effect when the add returns
    assert s.closed
    with pytest.raises(mgrun.StoreClosedError):
        s.add("u", "c")
    go.set()
    join_all([t])
    assert out == {"id": 2}
    assert s._raw is None  # released by the call that returned last


def test_stores_with_python_callbacks_on_several_threads():
    def every_other(view, need):
        return [view[0].id]

    stores = [Store(f"s{k}", max_messages=20, on_full="prune", strategy=every_other,
                    estimator=lambda c: len(c)) for k in range(4)]
    errors = []

    def run(s):
        try:
            for i in range(2000):
                s.add("u", "x" * (i % 7))
        except BaseException as e:  # noqa: B902
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    join_all(threads)
    assert errors == []
    for s in stores:
        assert len(s) == 20 and s.check()
        s.close()
