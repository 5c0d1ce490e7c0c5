"""mgrun.memory_limit: the seed's memory_limit.py API, its documented
examples run unchanged (but for the import), and its bugs fixed."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mgrun
from conftest import SANITIZED
from mgrun import memory_limit as ml

EXAMPLES = Path(__file__).resolve().parent / "seed_examples"
GiB = 1 << 30
no_rlimits_here = pytest.mark.skipif(
    SANITIZED, reason="ASan build: python3 runs with libasan, whose shadow memory counts against RLIMIT_DATA/AS")


def run_example(name, *args):
    out = subprocess.run([sys.executable, str(EXAMPLES / "run_example.py"), name, *args], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    return out.stdout, out.stderr


@pytest.fixture
def fake_memory(monkeypatch):
    def set_gib(gib):
        monkeypatch.setattr(ml, "effective_memory", lambda: int(gib * GiB))

    return set_gib


# ---------------------------------------------------------------- API


def test_system_memory_is_the_effective_memory():
    assert ml.get_system_memory_gb() == pytest.approx(mgrun.effective_memory() / GiB)


def test_system_memory_inside_a_container_is_the_cgroup_limit(fixtures, monkeypatch):
    root = fixtures / "probe" / "limited"
    real = mgrun.effective_memory
    monkeypatch.setattr(ml, "effective_memory", lambda: real(proc_root=root / "proc", fs_root=root / "fs"))
    m = mgrun.memory(proc_root=root / "proc", fs_root=root / "fs")
    assert ml.get_system_memory_gb() == m.cgroup_limit / GiB
    assert ml.get_system_memory_gb() < m.total / GiB  # not the host's MemTotal (the seed's bug)


def test_system_memory_unknown_is_zero_with_a_warning(monkeypatch, caplog):
    def broken():
        raise mgrun.ProbeError("/proc/meminfo: no such file", "ENOENT")

    monkeypatch.setattr(ml, "effective_memory", broken)
    assert ml.get_system_memory_gb() == 0.0
    assert "Could not determine system memory" in caplog.text
    assert ml.validate_memory_limit(2.0) == (True, "")  # cannot verify: allowed, warned


def test_validate_memory_limit_seed_messages(fake_memory, caplog):
    fake_memory(13)
    assert ml.validate_memory_limit(2.0) == (True, "")
    assert ml.validate_memory_limit(20.0) == (False, "Requested limit 20.00 GB exceeds total system memory 13.00 GB")
    assert ml.validate_memory_limit(-5) == (False, "Memory limit must be positive, got -5")
    assert ml.validate_memory_limit(0) == (False, "Memory limit must be positive, got 0")
    ok, msg = ml.validate_memory_limit(12.5)
    assert ok and msg == "" and "above 90%" in caplog.text


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_validate_memory_limit_refuses_nan(bad, fake_memory):
    fake_memory(13)
    ok, msg = ml.validate_memory_limit(bad)
    assert not ok and "finite" in msg  # the seed accepted NaN


def test_validate_memory_limit_types():
    with pytest.raises(TypeError, match="limit_gb must be a number of GB"):
        ml.validate_memory_limit("2")
    with pytest.raises(TypeError):
        ml.validate_memory_limit(None)


def test_validate_total_allocations(fake_memory, caplog):
    fake_memory(8)
    assert ml.validate_total_allocations(2.0, 3.0) == (True, "")
    ok, msg = ml.validate_total_allocations(2.0, 6.0, 9.0)
    assert not ok
    assert msg == ("Total allocation 17.00 GB exceeds total system memory 8.00 GB: instance 1 2.00 GB, "
                   "instance 2 6.00 GB, instance 3 9.00 GB")
    assert ml.validate_total_allocations() == (False, "No memory limits provided")
    ok, msg = ml.validate_total_allocations(4.0, 3.9)
    assert ok and "above 95%" in caplog.text


@pytest.mark.parametrize("items, which", [((2.0, -5), 2), ((math.nan, 1.0), 1), ((1.0, 1.0, math.inf), 3)])
def test_validate_total_allocations_checks_every_item(items, which, fake_memory):
    fake_memory(64)
    ok, msg = ml.validate_total_allocations(*items)
    assert not ok and msg.startswith(f"Invalid limit for instance {which}: ")  # the seed accepted them


def test_set_memory_limit_failure_strict_and_not(fake_memory, caplog):
    fake_memory(4)
    with pytest.raises(mgrun.LimitError) as ei:
        ml.set_memory_limit(100.0)
    assert isinstance(ei.value, ValueError)
    assert str(ei.value) == ("Memory limit validation failed: Requested limit 100.00 GB exceeds total system memory "
                             "4.00 GB")
    assert ml.set_memory_limit(100.0, strict=False) is False
    assert "Memory limit validation failed" in caplog.text
    with pytest.raises(TypeError):
        ml.set_memory_limit(1.0, strict="yes")


def test_rlimit_support_prefers_data():
    import resource

    res, why = ml._test_rlimit_support()
    v = mgrun.rlimit_support()
    if v.data_enforced:
        assert res == resource.RLIMIT_DATA and why.startswith("RLIMIT_DATA enforced")
    elif v.as_enforced:
        assert res == resource.RLIMIT_AS
    else:
        assert res is None and "Platform does not support memory limits" in why


@no_rlimits_here
def test_set_memory_limit_sets_rlimit_data_and_logs_the_seed_line(py):
    out = py("""
        import logging, resource, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
        from mgrun.memory_limit import set_memory_limit
        assert set_memory_limit(1.5) is True
        print(resource.getrlimit(resource.RLIMIT_DATA)[0], resource.getrlimit(resource.RLIMIT_AS)[0])
        assert set_memory_limit(64.0 * 1024, resource="as", strict=False) is False  # validated first
    """)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == ("Memory limit set to 1.50 GB (1610612736 bytes) using RLIMIT_DATA (data segment). "
                        "Hard limit: unlimited")  # the seed's line, and only that one
    assert lines[1] == f"1610612736 {-1}"  # RLIMIT_AS left alone


# ---------------------------------------------------------------- examples


@no_rlimits_here
@pytest.mark.parametrize("name", ["memory_limit_basic.py", "memory_limit_validate_first.py",
                                  "memory_limit_migrate_validate.py"])
def test_examples_that_set_a_limit(name):
    out, err = run_example(name)
    assert "RLIMIT_DATA=2147483648" in out
    assert "Memory limit set to 2.00 GB (2147483648 bytes) using RLIMIT_DATA (data segment)" in err


@no_rlimits_here
@pytest.mark.parametrize("name", ["memory_limit_non_strict.py", "memory_limit_migrate_ignore.py"])
def test_non_strict_examples(name):
    out, err = run_example(name)
    assert "RLIMIT_DATA=2147483648" in out
    if name == "memory_limit_non_strict.py":
        assert "Memory limit set successfully" in out


def test_non_strict_example_when_it_cannot():
    out, err = run_example("memory_limit_non_strict.py", "--fake-gib", "1")
    assert "Failed to set memory limit, continuing anyway..." in out
    assert "RLIMIT_DATA=unlimited" in out or "RLIMIT_DATA=" in out


def test_validate_first_example_refuses_on_a_small_machine():
    out, _ = run_example("memory_limit_validate_first.py", "--fake-gib", "1")
    assert "Invalid limit: Requested limit 2.00 GB exceeds total system memory 1.00 GB" in out


def test_matrix_example_both_ways():
    out, _ = run_example("memory_limit_matrix.py", "--function", "start_matrix", "--fake-gib", "32")
    assert "Cannot start" not in out
    out, _ = run_example("memory_limit_matrix.py", "--function", "start_matrix", "--fake-gib", "8")
    assert ("Cannot start matrix mode: Total allocation 17.00 GB exceeds total system memory 8.00 GB: "
            "instance 1 2.00 GB, instance 2 6.00 GB, instance 3 9.00 GB") in out


def test_system_memory_example():
    out, _ = run_example("memory_limit_system.py", "--fake-gib", "13")
    assert "System has 13.00 GB RAM" in out and "Recommended max limit: 10.40 GB" in out


def test_instances_example():
    out, _ = run_example("memory_limit_migrate_instances.py", "--fake-gib", "8")
    assert "Total allocation too high: Total allocation 15.00 GB exceeds total system memory 8.00 GB" in out
    assert "EXIT 1" in out
    out, _ = run_example("memory_limit_migrate_instances.py", "--fake-gib", "64")
    assert "EXIT" not in out


def test_migrate_validate_example_exits_on_a_small_machine():
    out, _ = run_example("memory_limit_migrate_validate.py", "--fake-gib", "1")
    assert "Invalid RAM limit: Requested limit 2.00 GB exceeds total system memory 1.00 GB" in out
    assert "EXIT 1" in out
