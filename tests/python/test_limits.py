"""Limit validation (seed 1, its bugs fixed), rlimit support, set/get."""

import math
import subprocess
import sys

import pytest

import mgrun
from conftest import SANITIZED

GiB = 1 << 30
no_rlimits_here = pytest.mark.skipif(
    SANITIZED, reason="ASan build: python3 runs with libasan, whose shadow memory counts against RLIMIT_DATA/AS")


def test_validate_limit_messages_follow_the_seed():
    eff = 13 * GiB
    v = mgrun.validate_limit("20G", effective=eff)
    assert not v and v.ok is False
    assert v.message == "Requested limit 20.00 GiB exceeds total system memory 13.00 GiB"
    assert v.warning is None
    ok, msg, warn = mgrun.validate_limit(2 * GiB, effective=eff)
    assert ok and msg == "" and warn is None
    v = mgrun.validate_limit(-5, effective=eff)
    assert not v and v.message == "Memory limit must be positive, got -5 B"
    assert not mgrun.validate_limit(0, effective=eff)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_validate_limit_refuses_nan_and_inf(bad):
    v = mgrun.validate_limit(bad, effective=8 * GiB)
    assert not v
    assert "finite" in v.message


def test_validate_limit_warns_above_90_percent():
    v = mgrun.validate_limit("12.5G", effective=13 * GiB)
    assert v.ok and v.message == ""
    assert v.warning and "90" in v.warning


def test_validate_limit_bad_strings_are_invalid_not_raised():
    v = mgrun.validate_limit("lots", effective=8 * GiB)
    assert not v and 'invalid size "lots"' in v.message


@pytest.mark.parametrize("bad", [None, True, [1], b"1G"])
def test_validate_limit_wrong_types(bad):
    with pytest.raises(TypeError, match="size must be a number of bytes"):
        mgrun.validate_limit(bad, effective=GiB)


def test_validate_limit_live_uses_effective_memory():
    eff = mgrun.effective_memory()
    assert mgrun.validate_limit(eff // 2)
    assert not mgrun.validate_limit(eff * 2)


def test_validate_total_matrix_mode():
    eff = 8 * GiB
    v = mgrun.validate_total({"subject": "2G", "observer": "6G", "god": "9G"}, effective=eff)
    assert not v
    assert v.message == ("Total allocation 17.00 GiB exceeds total system memory 8.00 GiB: subject 2.00 GiB, "
                         "observer 6.00 GiB, god 9.00 GiB (god alone exceeds it)")
    v = mgrun.validate_total({"subject": "2G", "observer": "6G", "god": "9G"}, effective=16 * GiB)
    assert v.message == ("Total allocation 17.00 GiB exceeds total system memory 16.00 GiB: subject 2.00 GiB, "
                         "observer 6.00 GiB, god 9.00 GiB")
    v = mgrun.validate_total([("subject", "1G"), {"name": "observer", "limit": 2 * GiB}, "1G"], effective=eff)
    assert v.ok and v.warning is None


def test_validate_total_validates_every_item():
    eff = 64 * GiB
    v = mgrun.validate_total([GiB, -5, GiB], effective=eff)
    assert not v and "-5" in v.message
    v = mgrun.validate_total([GiB, math.nan], effective=eff)
    assert not v and "finite" in v.message
    v = mgrun.validate_total({"god": "nine"}, effective=eff)
    assert not v and "god" in v.message
    v = mgrun.validate_total([], effective=eff)
    assert not v and v.message == "No allocations given"


def test_validate_total_warns_above_95_percent():
    v = mgrun.validate_total(["4G", "3.9G"], effective=8 * GiB)
    assert v.ok and v.warning and "95" in v.warning


def test_validate_total_misuse():
    with pytest.raises(TypeError):
        mgrun.validate_total("2G")
    with pytest.raises(TypeError):
        mgrun.validate_total(5)
    with pytest.raises(ValueError, match="no 'limit'"):
        mgrun.validate_total([{"name": "x"}])
    with pytest.raises(ValueError, match="unknown keys"):
        mgrun.validate_total([{"name": "x", "limit": 1, "size": 2}])
    with pytest.raises(TypeError, match="name of item 1"):
        mgrun.validate_total([(3, "1G")])
    with pytest.raises(ValueError, match="at most 4096"):
        mgrun.validate_total([1] * 4097)


def test_rlimit_support_is_probed_and_cached():
    a = mgrun.rlimit_support()
    b = mgrun.rlimit_support()
    assert a == b
    assert a.preferred in ("data", "as", None)
    assert a.data_reason and a.as_reason
    assert a.description.startswith("RLIMIT_DATA ")
    if a.data_enforced:
        assert a.preferred == "data"  # RLIMIT_DATA first


def test_get_limit_self():
    r = mgrun.get_limit("data")
    soft, hard = r
    assert soft is None or soft > 0
    assert r == mgrun.get_limit("data", None)


def test_get_limit_errors():
    with pytest.raises(ValueError, match='"data" or "as"'):
        mgrun.get_limit("heap")
    with pytest.raises(ValueError, match='"data" or "as"'):
        mgrun.get_limit("auto")
    with pytest.raises(mgrun.ProcessNotFoundError):
        mgrun.get_limit("data", 2**31 - 2)
    with pytest.raises(ValueError, match="pid"):
        mgrun.get_limit("data", 0)


def test_set_limit_misuse_raises_even_when_not_strict():
    with pytest.raises(ValueError, match='resource must be "auto", "data" or "as"'):
        mgrun.set_limit("1G", strict=False, resource="heap")
    with pytest.raises(TypeError, match="strict"):
        mgrun.set_limit("1G", strict="no")
    with pytest.raises(ValueError, match="pid"):
        mgrun.set_limit("1G", pid=-3)


def test_set_limit_failures_strict_and_not():
    huge = mgrun.effective_memory() * 4
    r = mgrun.set_limit(huge, strict=False)
    assert not r and r.code == "ELIMIT"
    assert r.reason.startswith("Memory limit validation failed: Requested limit")
    with pytest.raises(mgrun.LimitError) as ei:
        mgrun.set_limit(huge)
    assert ei.value.code == "ELIMIT"
    r = mgrun.set_limit("oops", strict=False)
    assert not r and r.code == "EPARSE"
    r = mgrun.set_limit(math.nan, strict=False)
    assert not r and "finite" in r.reason
    r = mgrun.set_limit("1G", strict=False, pid=2**31 - 2)
    assert not r and r.code == "ESRCH"


@no_rlimits_here
def test_set_limit_on_this_process_is_enforced(py):
    out = py("""
        import mgrun
        r = mgrun.set_limit("256M")
        assert r and r.resource == "data" and r.applied == 256 << 20, r
        assert mgrun.get_limit("data").soft == 256 << 20
        try:
            b = bytearray(512 << 20)
        except MemoryError:
            print("refused")
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "refused"


@no_rlimits_here
def test_set_limit_as_and_clamping(py):
    out = py("""
        import resource, mgrun
        r = mgrun.set_limit("64T", resource="as", validate=False)
        assert r and r.resource == "as", r
        resource.setrlimit(resource.RLIMIT_DATA, (1 << 30, 1 << 30))
        r = mgrun.set_limit("2G", resource="data", strict=False)
        assert r.ok and r.applied == 1 << 30 and r.hard == 1 << 30, r
        print(r.warning)
    """)
    assert out.returncode == 0, out.stderr
    assert "1.00 GiB" in out.stdout


@no_rlimits_here
def test_set_limit_on_another_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        r = mgrun.set_limit("300M", pid=child.pid)
        assert r and r.pid == child.pid
        assert mgrun.get_limit("data", child.pid).soft == 300 << 20
        assert mgrun.get_limit("data").soft != 300 << 20  # not this one
    finally:
        child.kill()
        child.wait()
