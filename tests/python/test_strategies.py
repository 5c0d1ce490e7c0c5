"""mgrun.strategies: the built-in strategies in C choose exactly what their
Lua twins (scripts/mg/strategies.lua, run by the real mgrun) choose, on the
same histories; the Python summarize against the Lua one; the helpers."""

import os
import random
import subprocess

import pytest

import mgrun
from conftest import MGRUN
from mgrun import Store, strategies as S

# ---------------------------------------------------------------- histories


def history(seed, n=160):
    """A deterministic agent history: a pinned prompt, user turns,
    assistant replies, tool calls with their results in a group,
    priorities, given and estimated tokens."""
    rnd = random.Random(seed)
    ops = [dict(role="system", content="p" * 40, pinned=True, group=None, priority=9, tokens=None)]
    call = 0
    while len(ops) < n:
        r = rnd.random()
        if r < 0.35:
            ops.append(dict(role="user", content="u" * rnd.randint(0, 200), pinned=False, group=None,
                            priority=rnd.randint(-3, 3), tokens=None))
        elif r < 0.7:
            ops.append(dict(role="assistant", content="a" * rnd.randint(1, 300), pinned=False, group=None,
                            priority=rnd.randint(-3, 3), tokens=rnd.choice([None, rnd.randint(0, 40)])))
        else:
            call += 1
            g = f"call{call}"
            ops.append(dict(role="assistant", content="c" * rnd.randint(1, 50), pinned=False, group=g,
                            priority=rnd.randint(-3, 3), tokens=None))
            for _ in range(rnd.randint(1, 3)):
                ops.append(dict(role="tool", content="t" * rnd.randint(1, 150), pinned=False, group=g,
                                priority=rnd.randint(-3, 3), tokens=None))
        if rnd.random() < 0.02:
            ops[-1]["pinned"] = True
    return ops[:n]


LIMITS = dict(max_messages=14, max_total_size=5000, max_tokens=300)


def run_python(strategy, ops):
    lines = []
    with Store("cmp", on_full="prune", strategy=strategy, **LIMITS) as s:
        for op in ops:
            try:
                s.add(op["role"], op["content"], group=op["group"], pinned=op["pinned"], priority=op["priority"],
                      tokens=op["tokens"])
                head = "ok"
            except mgrun.BoundsExceededError as e:
                head = "ERR " + e.code
            lines.append(head + " " + " ".join(f"{m.id}:{len(m.content)}" for m in s))
        s.check()
    return lines


def lua_str(x):
    return "nil" if x is None else ("true" if x is True else "false" if x is False else
                                    (f'"{x}"' if isinstance(x, str) else str(x)))


def run_lua(strategy_expr, ops, tmp_path):
    adds = "\n".join(
        "add{ role = %s, content = string.rep(%s, %d), group = %s, pinned = %s, priority = %d, tokens = %s }" % (
            lua_str(o["role"]), lua_str(o["content"][:1] or "x"), len(o["content"]), lua_str(o["group"]),
            lua_str(o["pinned"]), o["priority"], lua_str(o["tokens"])) for o in ops)
    code = f"""
local S = require("mg.strategies")
local ctx = assert(mg.store{{ name = "cmp", max_messages = {LIMITS['max_messages']},
  max_total_size = {LIMITS['max_total_size']}, max_tokens = {LIMITS['max_tokens']},
  on_full = "prune", strategy = {strategy_expr} }})
local function add(m)
  local id, err, code = ctx:add(m)
  local parts = {{ id and "ok" or ("ERR " .. tostring(err.code or code)) }}
  for msg in ctx:messages() do parts[#parts + 1] = msg.id .. ":" .. #msg.content end
  print(table.concat(parts, " "))
end
{adds}
assert(ctx:check())
"""
    path = tmp_path / "cmp.lua"
    path.write_text(code)
    out = subprocess.run([str(MGRUN), "--log-level", "error", str(path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


needs_mgrun = pytest.mark.skipif(MGRUN is None or not os.access(str(MGRUN), os.X_OK),
                                 reason="MGRUN (the mgrun binary, to run the Lua strategies) is not set")

PAIRS = [
    ("oldest", '"oldest"'),
    (S.keep_last(5), "S.keep_last(5)"),
    ("keep_last(0)", "S.keep_last(0)"),
    (S.lowest_priority_first, "S.lowest_priority_first"),
    ("user_turn_start", "S.user_turn_start"),
    (S.token_budget(60), "S.token_budget(60)"),
    ("older_than(3600)", "S.older_than(3600)"),
    (S.older_than(3600, strict=True), "S.older_than(3600, { strict = true })"),
    (S.older_than(60, now=4e9), "S.older_than(60, { now = function() return 4e9 end })"),
]


@needs_mgrun
@pytest.mark.parametrize("py_strategy, lua_expr", PAIRS, ids=[p[1] for p in PAIRS])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_builtin_in_c_matches_the_lua_strategy(py_strategy, lua_expr, seed, tmp_path):
    ops = history(seed)
    py = run_python(py_strategy, ops)
    lua = run_lua(lua_expr, ops, tmp_path)
    assert len(py) == len(lua) == len(ops)
    for i, (a, b) in enumerate(zip(py, lua)):
        assert a == b, f"add {i + 1} ({ops[i]}): Python {a!r}, Lua {b!r}"
    if "strict" not in lua_expr:
        assert sum(x.startswith("ok") for x in py) > len(ops) // 2  # the history did exercise the strategy


def summarizer_py(msgs, need):
    return "S" + ",".join(str(m.id) for m in msgs)


@needs_mgrun
@pytest.mark.parametrize("fraction", [0.5, 0.25, 1.0])
def test_python_summarize_matches_the_lua_one(fraction, tmp_path):
    ops = history(7, n=80)
    py = run_python(S.summarize(summarizer_py, fraction), ops)
    lua_summ = ('S.summarize(function(msgs) local t = {} for i, m in ipairs(msgs) do t[i] = m.id end '
                'return "S" .. table.concat(t, ",") end, { fraction = %r })' % fraction)
    lua = run_lua(lua_summ, ops, tmp_path)
    assert py == lua


# ---------------------------------------------------------------- builtins


def test_builtin_specs_by_name_and_constructor():
    assert S.keep_last(200).name == "keep_last(200)"
    assert S.Builtin(" keep_last ( 200 ) ") == S.keep_last(200)
    assert S.older_than(1.5).name == "older_than(1.5)"
    assert S.older_than(60, strict=True).spec == "older_than(60, strict)"
    assert S.token_budget(6000).name == "token_budget(6000)"
    assert {S.oldest, S.Builtin("oldest")} == {S.oldest}
    assert "keep_last(3)" in repr(S.keep_last(3))
    with Store(strategy="lowest_priority_first") as s:
        assert s.strategy == "lowest_priority_first"
    with Store(strategy=S.keep_last(3)) as s:
        assert s.strategy == "keep_last(3)"
    assert set(S.BUILTIN_NAMES) == {"oldest", "keep_last", "lowest_priority_first", "older_than", "token_budget",
                                    "user_turn_start"}


@pytest.mark.parametrize("make, exc, text", [
    (lambda: S.keep_last(-1), ValueError, "keep_last: n must be from 0"),
    (lambda: S.keep_last("3"), TypeError, "keep_last: n must be an integer"),
    (lambda: S.token_budget(1.5), ValueError, "token_budget: max_tokens must be an integer"),
    (lambda: S.older_than(-1), ValueError, "older_than: seconds must be a non-negative number"),
    (lambda: S.older_than(float("inf")), ValueError, "older_than: seconds"),
    (lambda: S.older_than(5, strict="yes"), TypeError, "older_than: strict must be a bool"),
    (lambda: S.older_than(5, now=-3), ValueError, "older_than: now must be"),
    (lambda: S.Builtin("oldest(1)"), ValueError, "this strategy takes no arguments"),
    (lambda: S.Builtin("nope"), ValueError, "strategy 'nope': unknown strategy (accepted: oldest"),
    (lambda: S.Builtin(3), TypeError, "a built-in strategy is a str"),
    (lambda: S.summarize("f"), TypeError, "summarizer must be callable"),
    (lambda: S.summarize(print, 0), ValueError, "fraction must be > 0 and <= 1"),
    (lambda: S.summarize(print, role=1), TypeError, "role must be a str"),
])
def test_bad_strategy_arguments(make, exc, text):
    with pytest.raises(exc) as ei:
        make()
    assert text in str(ei.value)


def test_a_builtin_outlives_the_store_that_copied_it():
    b = S.keep_last(1)
    stores = [Store(max_messages=3, on_full="prune", strategy=b) for _ in range(3)]
    del b
    for s in stores:
        for i in range(5):
            s.add("u", str(i))
        assert s.ids() == [3, 4, 5]  # the 4th add kept 1 and added its own
        s.close()


def test_summarize_replaces_and_a_failing_summarizer_changes_nothing():
    def summary(msgs, need):
        return {"role": "system", "content": "sum of " + " ".join(m.text for m in msgs), "source": "summary"}

    with Store(max_messages=5, on_full="prune", strategy=S.summarize(summary)) as s:
        s.add("system", "prompt", pinned=True)
        for i in range(4):
            s.add("user", f"m{i}")
        s.add("user", "m4")
        # half of the history is chosen, then more until it frees the
        # summary's estimated tokens too (as the Lua S.summarize does)
        assert [m.text for m in s] == ["prompt", "sum of m0 m1 m2 m3", "m4"]
        assert s.get(6).source == "summary"
        assert s.strategy == "summarize"

    def broken(msgs, need):
        raise ConnectionError("the model is down")

    with Store(max_messages=3, on_full="prune", strategy=S.summarize(broken)) as s:
        for i in range(3):
            s.add("user", f"m{i}")
        with pytest.raises(mgrun.BoundsExceededError) as ei:
            s.add("user", "x")
        assert isinstance(ei.value.__cause__, ConnectionError)
        assert [m.text for m in s] == ["m0", "m1", "m2"]

    with Store(max_messages=3, on_full="prune", strategy=S.summarize(lambda m, n: 42)) as s:
        for i in range(3):
            s.add("user", f"m{i}")
        with pytest.raises(mgrun.BoundsExceededError, match="summarizer must return a str or a dict"):
            s.add("user", "x")


# ---------------------------------------------------------------- helpers


def test_units_and_helpers():
    got = {}

    def look(view, need):
        u = S.units(view)
        got["u"] = {k: getattr(u, k) for k in ("n", "id", "first", "count", "bytes", "tokens", "pinned",
                                                "priority", "role", "group", "of")}
        got["evictable"] = [S.evictable(u, k, need) for k in range(u.n)]
        acc = S.Accumulator()
        acc.take(u, 1)
        got["enough"] = (S.enough(acc, need), S.enough({"count": 0, "bytes": 0, "tokens": 0}, need))
        return acc.ids

    s = Store(max_messages=5, on_full="prune", strategy=look)
    s.add("system", "p", pinned=True, priority=1)
    s.add("assistant", "call", group="g", priority=2)
    s.add("user", "q", priority=5)
    s.add("tool", "res", group="g", priority=4)
    s.add("tool", "new", group="h")
    s.add("tool", "more", group="h")
    o = mgrun.MSG_OVERHEAD
    assert got["u"] == {
        "n": 4, "id": [1, 2, 3, 5], "first": [0, 1, 2, 4], "count": [1, 2, 1, 1],
        "bytes": [1 + 6 + o, (4 + 9 + 1) + (3 + 4 + 1) + 2 * o, 1 + 4 + o, 3 + 4 + 1 + o],
        "tokens": [1, 2, 1, 1], "pinned": [True, False, False, False], "priority": [1, 4, 5, 0],
        "role": ["system", "assistant", "user", "tool"], "group": [None, "g", None, "h"], "of": [0, 1, 2, 1, 3],
    }
    assert got["evictable"] == [False, True, True, False]  # pinned; the incoming group h
    assert got["enough"] == (True, False)
    assert s.ids() == [1, 3, 5, 6]
    s.close()
