"""mgrun.Runtime: a Lua policy on a background thread, sharing its stores
with the host's threads (PolicyStore)."""

from __future__ import annotations

import os
import threading
import time

import pytest

import mgrun

# A store pruned by a Lua strategy (oldest unpinned first), a pinned system
# prompt, a 1 ms timer that adds to the same store, and a second store the
# policy fills with what the host should know (its arguments, a child's pid).
POLICY = """
local args = { ... }
info = assert(mg.store { name = 'info' }) -- a global: shared stores stay referenced
info:add { role = 'args', content = table.concat(args, ',') }
local ctx = assert(mg.store { name = 'ctx', max_messages = 50, on_full = 'prune',
  strategy = function(view, need)
    local ids = {}
    for m in view:messages() do
      if #ids >= need.count then break end
      if not m.pinned then ids[#ids + 1] = m.id end
    end
    return ids
  end })
ctx:add { role = 'system', content = 'be brief', pinned = true }
ticks = 0
mg.every(1, function()
  ticks = ticks + 1
  assert(ctx:add { role = 'tool', content = 'tick ' .. ticks })
end)
"""


def write(tmp_path, code: str, name: str = "policy.lua") -> str:
    p = tmp_path / name
    p.write_text(code)
    return str(p)


def test_start_share_a_store_and_stop(tmp_path):
    rt = mgrun.Runtime(write(tmp_path, POLICY), args=["a", "b c"], log_level="error")
    assert not rt.running and rt.exit_code is None
    rt.start()
    assert rt.running
    info = rt.store("info")
    assert isinstance(info, mgrun.PolicyStore) and isinstance(info, mgrun.Store)
    assert info.get(1).text == "a,b c"
    ctx = rt.store("ctx")
    ctx.add("user", "hello from Python", group="turn-1")
    assert ctx.get(1).role == "system" and ctx.get(1).pinned
    rt.stop(3)
    assert rt.wait(10) == 3
    assert not rt.running and rt.exit_code == 3
    assert rt.callback_errors == 0
    rt.close()
    assert ctx.closed
    with pytest.raises(mgrun.StoreClosedError):
        len(ctx)
    with pytest.raises(mgrun.RuntimeStateError):
        rt.store("ctx")
    rt.close()  # idempotent


def test_four_threads_add_while_the_policy_runs_its_timers(tmp_path):
    with mgrun.Runtime(write(tmp_path, POLICY), log_level="error") as rt:
        ctx = rt.store("ctx")
        errors = []
        lengths = []

        def work(n):
            try:
                for i in range(400):
                    ctx.add("user", f"thread {n} message {i}", meta={"thread": str(n)})
                    lengths.append(len(ctx))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
            assert not t.is_alive(), "a host thread did not finish: deadlock?"
        assert errors == []
        assert max(lengths) <= 50
        st = ctx.stats()
        assert st.message_count == 50 and st.pinned_count == 1
        assert st.evicted_count >= 1600 - 49  # the Lua strategy made the room
        assert ctx.check()
        assert ctx.get(1).text == "be brief"
        assert rt.callback_errors == 0
        assert rt.running  # the policy's timer keeps it alive
    assert rt.exit_code == 0


def test_a_failing_lua_strategy_fails_the_host_add_cleanly(tmp_path):
    code = """
full = assert(mg.store { name = 'full', max_messages = 2, on_full = 'prune',
  strategy = function() while true do end end })
full:add { role = 'user', content = 'one' }
full:add { role = 'user', content = 'two' }
ok = assert(mg.store { name = 'ok' })
mg.every(5, function() ok:add { role = 'tick', content = 't' } end)
"""
    with mgrun.Runtime(write(tmp_path, code), cb_instructions=100_000, log_level="error") as rt:
        full = rt.store("full")
        before = [(m.id, m.text) for m in full]
        with pytest.raises(mgrun.BoundsExceededError) as e:
            full.add("user", "three")
        assert e.value.code == "ESTRATEGY"
        assert "strategy" in str(e.value)
        assert [(m.id, m.text) for m in full] == before
        assert rt.callback_errors == 1
        ok = rt.store("ok")
        n = len(ok)
        deadline = time.monotonic() + 10
        while len(ok) <= n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(ok) > n, "the policy's loop stopped after the failed strategy"


def test_what_the_host_may_not_change(tmp_path):
    with mgrun.Runtime(write(tmp_path, POLICY), log_level="error") as rt:
        ctx = rt.store("ctx")
        for call in (lambda: ctx.set_strategy("oldest"), lambda: ctx.set_on_full("error"),
                     lambda: ctx.make_room(count=1)):
            with pytest.raises(mgrun.StoreError) as e:
                call()
            assert e.value.code == "EPERM"
            assert "belongs to the policy" in str(e.value)
        # the changes it may make go through the policy's thread
        ctx.set_limits(max_messages=40)
        assert ctx.limits()["max_messages"] == 40
        for i in range(30):
            ctx.add("user", f"filler {i}")
        n = ctx.prune(10)
        assert n >= 20  # at least 31 were there; 10 and the pinned one are kept
        mid = ctx.add("user", "to be removed")
        ctx.remove(mid)
        assert ctx.get(mid) is None
        with pytest.raises(KeyError):
            ctx.remove(mid)
        assert ctx.clear() >= 1


def test_stores_the_policy_closes_or_drops(tmp_path):
    code = """
keep = assert(mg.store { name = 'keep' })
tmp = assert(mg.store { name = 'tmp' })
twin1 = assert(mg.store { name = 'twin' })
twin2 = assert(mg.store { name = 'twin' })
mg.after(50, function() tmp:close() end)
mg.after(60000, function() end)
"""
    with mgrun.Runtime(write(tmp_path, code), log_level="error") as rt:
        with pytest.raises(KeyError, match="no open store named 'nope'"):
            rt.store("nope")
        with pytest.raises(mgrun.StoreError) as e:
            rt.store("twin")
        assert e.value.code == "EEXIST" and "distinct names" in str(e.value)
        tmp = rt.store("tmp")
        tmp.add("user", "before")
        deadline = time.monotonic() + 10
        while not mgrun._lib.core().mg_store_closed(tmp._raw) and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(mgrun.StoreClosedError, match="store 'tmp' is closed"):
            tmp.add("user", "after")
        with pytest.raises(mgrun.StoreClosedError, match="closed by its policy"):
            len(tmp)
        with pytest.raises(KeyError):
            rt.store("tmp")
        keep = rt.store("keep")
        with keep:  # closing the host's handle leaves the policy's store open
            keep.add("user", "x")
        assert rt.store("keep").get(1).text == "x"
        with pytest.raises(TypeError):
            rt.store(3)  # type: ignore[arg-type]


def test_policy_errors(tmp_path):
    with pytest.raises(mgrun.PolicyError) as e:
        mgrun.Runtime(str(tmp_path / "missing.lua"), log_level="error").start()
    assert "missing.lua" in str(e.value)
    bad = write(tmp_path, "local x = \n", "syntax.lua")
    with pytest.raises(mgrun.PolicyError) as e:
        mgrun.Runtime(bad, log_level="error").start()
    assert "syntax.lua:" in str(e.value) and e.value.code == "EPARSE"
    top = write(tmp_path, "error('refused at the top level')\n", "top.lua")
    with pytest.raises(mgrun.PolicyError, match="refused at the top level"):
        mgrun.Runtime(top, log_level="error").start()
    rt = mgrun.Runtime(write(tmp_path, "mg.after(1, function() end)\n"), log_level="error")
    rt.start()
    with pytest.raises(mgrun.RuntimeStateError, match="started already"):
        rt.start()
    assert rt.wait(10) == 0  # ran out of work
    rt.close()
    with pytest.raises(mgrun.RuntimeStateError):
        mgrun.Runtime(write(tmp_path, ""), log_level="error").wait()


def test_mg_exit_from_the_policy(tmp_path):
    p = write(tmp_path, "mg.after(20, function() mg.exit(7) end)\n")
    with mgrun.Runtime(p, log_level="error") as rt:
        assert rt.wait(10) == 7
    p = write(tmp_path, "mg.exit(4)\n", "top.lua")
    with mgrun.Runtime(p, log_level="error") as rt:
        assert rt.wait(10) == 4


def test_bad_options_name_the_option(tmp_path):
    p = write(tmp_path, "")
    with pytest.raises(ValueError, match=r"invalid lua_mem '100K': at least 1M"):
        mgrun.Runtime(p, lua_mem="100K")
    with pytest.raises(ValueError, match=r"invalid log_level 'loud' \(accepted: debug, info, warn, error\)"):
        mgrun.Runtime(p, log_level="loud")
    with pytest.raises(ValueError, match="invalid log_format 'xml'"):
        mgrun.Runtime(p, log_format="xml")
    with pytest.raises(TypeError, match="cb_timeout_ms must be an int"):
        mgrun.Runtime(p, cb_timeout_ms="1000")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cb_timeout_ms must be 0 or more"):
        mgrun.Runtime(p, cb_timeout_ms=-1)
    with pytest.raises(ValueError, match="cb_timeout_ms: expected an integer from 0 to 604800000"):
        mgrun.Runtime(p, cb_timeout_ms=10**12)
    with pytest.raises(TypeError, match="sandbox must be a bool"):
        mgrun.Runtime(p, sandbox=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="args must be a sequence of str"):
        mgrun.Runtime(p, args="abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="allow_dirs must be a list of paths"):
        mgrun.Runtime(p, allow_dirs="/tmp")  # type: ignore[arg-type]
    with pytest.raises(mgrun.Error) as e:
        mgrun.Runtime(p, cgroup_parent="/nonexistent/mgrun-parent", log_level="error")
    assert e.value.code == "ENOENT" and "does not exist" in str(e.value)
    rt = mgrun.Runtime(p, lua_mem=32 << 20, log_level="error")
    rt.close()
    with pytest.raises(ValueError, match="code must be an int from 0 to 255"):
        mgrun.Runtime(p, log_level="error").stop(256)


def test_close_stops_the_policys_children(tmp_path):
    code = """
info = assert(mg.store { name = 'info' }) -- a global: shared stores stay referenced
local p = assert(mg.spawn { name = 'sleeper', cmd = { 'sleep', '60' }, enforce = 'none' })
info:add { role = 'pid', content = tostring(p.pid) }
"""
    rt = mgrun.Runtime(write(tmp_path, code), log_level="error")
    rt.start()
    pid = int(rt.store("info").get(1).text)
    os.kill(pid, 0)  # running
    t0 = time.monotonic()
    rt.close()
    assert time.monotonic() - t0 < 20
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_sandbox_options(tmp_path):
    code = """
info = assert(mg.store { name = 'info' }) -- a global: shared stores stay referenced
local p, err = mg.spawn { name = 'x', cmd = { '/bin/true' } }
info:add { role = 'spawn', content = tostring(err) }
local s = assert(mg.store { name = 's' })
local ok, e = s:save(%r)
info:add { role = 'save', content = tostring(ok) }
""" % str(tmp_path / "snap.bin")
    with mgrun.Runtime(write(tmp_path, code), sandbox=True, allow_dirs=[tmp_path], log_level="error") as rt:
        info = rt.store("info")
        assert "does not allow running '/bin/true'" in info.get(1).text
        assert info.get(2).text == "true"
    assert (tmp_path / "snap.bin").exists()
