#!/usr/bin/python3
"""bench_store.py — the Python package's store figures, as markdown rows
(what | figure | target) for bench/run.sh.

    MGRUN_LIB=BUILD/libmg.so.0 PYTHONPATH=bindings/python /usr/bin/python3 bench/python/bench_store.py

Rows: Store.add of a 256-byte message at the store's limit (1,000
messages, oldest evicted by the C fast path), bytes and str content; the
floor of doing the same in plain Python without limits or accounting — a
collections.deque(maxlen=1000) append with a running byte total — in the
same run, and the ratio; Store.prune of 4,000 messages to 10 %; the C
built-in keep_last(400) doing that trim through on_full; a Python
strategy ranking 10,000 messages through view.units(); ExecutionContext.
add_message of a dict. Each figure is the median of several rounds.
"""
import statistics
import sys
import time
from collections import deque

import mgrun
from mgrun.context import ExecutionContext

ROUNDS = 7
N_ADD = 200_000


def median_rate(fn, n, rounds=ROUNDS):
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn(n)
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def median_ms(fn, rounds=21):
    times = []
    for _ in range(rounds):
        times.append(fn() * 1000)
    return statistics.median(times)


def store_adds(content):
    s = mgrun.Store("bench", max_messages=1000, on_full="prune")
    for _ in range(1000):
        s.add("user", content)
    add = s.add

    def run(n):
        for _ in range(n):
            add("user", content)

    rate = median_rate(run, N_ADD)
    assert len(s) == 1000 and s.check()
    s.close()
    return rate


def deque_appends(content):
    def run(n):
        d = deque(maxlen=1000)
        total = 0
        for _ in range(n):
            if len(d) == 1000:
                total -= len(d[0])
            d.append(content)
            total += len(content)

    return median_rate(run, N_ADD)


def prune_4000(keep):
    s = mgrun.Store("prune", max_messages=10_000)
    c = b"x" * 256

    def once():
        s.clear()
        for _ in range(4000):
            s.add("user", c)
        t = time.perf_counter()
        removed = s.prune(keep)
        dt = time.perf_counter() - t
        assert removed == 4000 - keep
        return dt

    ms = median_ms(once)
    s.close()
    return ms


def keep_last_trim():
    s = mgrun.Store("trim", max_messages=4000, on_full="prune", strategy="keep_last(400)")
    c = b"x" * 256

    def once():
        s.clear()
        for _ in range(4000):
            s.add("user", c)
        t = time.perf_counter()
        s.add("user", c)  # runs keep_last(400): 3,600 evicted at once
        dt = time.perf_counter() - t
        assert len(s) == 401
        return dt

    ms = median_ms(once)
    s.close()
    return ms


def python_strategy_10000():
    timing = []

    def lowest_priority(view, need):
        t = time.perf_counter()
        u = view.units()
        order = sorted((k for k in range(u.n) if not u.pinned[k]), key=lambda k: (u.priority[k], k))
        acc = mgrun.strategies.Accumulator()
        for k in order:
            if mgrun.strategies.enough(acc, need):
                break
            acc.take(u, k)
        timing.append(time.perf_counter() - t)
        return acc.ids

    s = mgrun.Store("rank", max_messages=10_000, on_full="prune", strategy=lowest_priority)
    for i in range(10_000):
        s.add("user", b"x" * 64, priority=(i * 7919) % 13, group=f"g{i // 4}" if i % 3 == 0 else None)

    def once():
        s.add("user", b"y")
        return timing[-1]

    ms = median_ms(once, rounds=9)
    s.close()
    return ms


def context_adds():
    ctx = ExecutionContext("trace", "bench", max_messages=1000, on_full="prune")
    m = {"role": "user", "content": "x" * 200, "source_node": "node-1"}

    def run(n):
        for _ in range(n):
            ctx.add_message(m)

    return median_rate(run, 50_000, rounds=5)


def row(what, figure, target="—"):
    print(f"| {what} | {figure} | {target} |")


def main():
    content = b"x" * 256
    add_b = store_adds(content)
    add_s = store_adds("x" * 256)
    dq = deque_appends(content)
    row("Python `Store.add`, 256-byte `bytes` messages, store at its limit (1,000) evicting oldest",
        f"{add_b / 1e3:,.0f} k adds/s ({1e9 / add_b:,.0f} ns/add)", "≥ 250 k adds/s")
    row("Python `Store.add`, same with 256-character `str` content (UTF-8 encoded per add)",
        f"{add_s / 1e3:,.0f} k adds/s", "≥ 250 k adds/s")
    row("plain Python `collections.deque(maxlen=1000)` append with a running byte total, same run (no limits, "
        "no accounting, no thread safety)", f"{dq / 1e6:,.2f} M appends/s", "—")
    row("ratio `Store.add` / deque append (the deque is the floor: no limits, no accounting)",
        f"{add_b / dq:.3f}× (the deque is {dq / add_b:.1f}× faster)", "—")
    row("Python `Store.prune(400)` of 4,000 messages (to 10 %)", f"{prune_4000(400):.3f} ms", "< 1 ms")
    row("the same trim by the C built-in `keep_last(400)` from Python (one `add` at the limit)",
        f"{keep_last_trim():.3f} ms", "—")
    row("a Python strategy (`lowest_priority_first` on `view.units()`) choosing from 10,000 messages",
        f"{python_strategy_10000():.2f} ms", "—")
    row("`mgrun.context.ExecutionContext.add_message` of a dict (JSON dump + add), at its limit",
        f"{context_adds() / 1e3:,.0f} k adds/s", "—")


if __name__ == "__main__":
    try:
        main()
    except mgrun.Error as e:  # a library that cannot be used: say so in the table
        print(f"| Python package benchmarks | skipped | {e} |")
        sys.exit(0)
