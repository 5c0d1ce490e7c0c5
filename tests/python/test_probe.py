"""mgrun.memory / process / pressure / probe, on fixture trees and live."""

import os

import pytest

import mgrun


def test_memory_inside_a_limited_cgroup(fixtures):
    root = fixtures / "probe" / "limited"
    m = mgrun.memory(proc_root=root / "proc", fs_root=root / "fs")
    assert isinstance(m, mgrun.Memory)
    assert m.total == 16777216 * 1024  # MemTotal of the host
    assert m.cgroup_limit is not None and m.cgroup_limit < m.total
    assert m.effective_total == m.cgroup_limit  # not the host's MemTotal
    assert m.effective_source.startswith("cgroup v1 ")
    assert m.effective_available <= m.effective_total
    assert mgrun.effective_memory(proc_root=root / "proc", fs_root=root / "fs") == m.cgroup_limit


def test_memory_live():
    m = mgrun.memory()
    assert m.total > 0 and 0 < m.effective_total <= m.total
    assert m.available <= m.total


def test_memory_missing_meminfo_is_a_probe_error(tmp_path):
    with pytest.raises(mgrun.ProbeError) as ei:
        mgrun.memory(proc_root=tmp_path)
    assert ei.value.code == "ENOENT"
    assert "meminfo" in str(ei.value)


def test_process_self_and_fixture(fixtures):
    me = mgrun.process()
    assert me.pid == os.getpid() and me.rss > 0 and me.vsize >= me.rss
    assert me.name
    p = mgrun.process(1234, proc_root=fixtures / "proc", pss=True)
    assert p.pid == 1234 and p.rss > 0 and p.pss is not None and p.pss > 0


def test_process_malformed_status(fixtures):
    with pytest.raises(mgrun.ProbeError, match="malformed line"):
        mgrun.process(5555, proc_root=fixtures / "proc")


def test_process_gone(fixtures):
    with pytest.raises(mgrun.ProcessNotFoundError) as ei:
        mgrun.process(999999, proc_root=fixtures / "proc")
    assert ei.value.code == "ESRCH"
    assert isinstance(ei.value, ProcessLookupError)
    assert "999999" in str(ei.value)


def test_process_pss_without_smaps_rollup(fixtures):
    with pytest.raises(mgrun.NotSupportedError):
        mgrun.process(3000, proc_root=fixtures / "proc", pss=True)


@pytest.mark.parametrize("bad", [0, -1, 1 << 31, "12", 1.5, True])
def test_process_bad_pid(bad):
    with pytest.raises((TypeError, ValueError), match="pid"):
        mgrun.process(bad)


def test_pressure_fixture(fixtures):
    p = mgrun.pressure(proc_root=fixtures / "psi" / "normal")
    assert isinstance(p, mgrun.Pressure)
    assert p.some.avg10 >= 0 and p.some.total > 0
    assert p.full is not None
    only = mgrun.pressure(proc_root=fixtures / "psi" / "some_only")
    assert only is not None and only.full is None


def test_pressure_without_psi_is_none_or_raises(fixtures):
    root = fixtures / "psi" / "missing"
    assert mgrun.pressure(proc_root=root) is None
    with pytest.raises(mgrun.NotSupportedError):
        mgrun.pressure(proc_root=root, strict=True)


def test_pressure_malformed(fixtures):
    with pytest.raises(mgrun.ProbeError):
        mgrun.pressure(proc_root=fixtures / "psi" / "malformed")


def test_probe_on_fixtures(fixtures):
    root = fixtures / "probe" / "limited"
    p = mgrun.probe(proc_root=root / "proc", fs_root=root / "fs", check_writable=False, check_rlimit=False)
    assert isinstance(p, mgrun.Probe)
    assert p.version == mgrun.__version__
    assert p.memory.effective_total == p.memory.cgroup_limit
    assert p.cgroup.version == "v1"
    assert p.cgroup.writable is None  # not tested
    assert p.document["memory"]["total"] == p.memory.total
    assert p.pressure is not None


def test_probe_live_rlimit():
    p = mgrun.probe(check_writable=False)
    assert p.rlimit.preferred in ("data", "as", None)
    assert p.rlimit.data_reason
    assert p.kernel and p.arch


def test_probe_bad_root(tmp_path):
    with pytest.raises(mgrun.ProbeError):
        mgrun.probe(proc_root=tmp_path, check_writable=False, check_rlimit=False)


def test_roots_must_be_paths():
    with pytest.raises(TypeError, match="proc_root"):
        mgrun.memory(proc_root=42)
