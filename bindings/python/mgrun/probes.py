"""What this machine offers: system memory, effective memory, a process's
memory, memory pressure, and the whole probe document.

Effective memory is min(MemTotal, the memory limit of the cgroup this
process runs in, walking up its ancestors): inside a container the host's
MemTotal is not what the container has. The cgroup position of this process
is detected once per set of roots and cached. Every function takes the
roots to read (``proc_root``: ``/proc``; ``fs_root``: where the cgroup mount
points are), so tests can feed fixture trees.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple, Union

from . import _lib
from ._util import check_int, err_name, errbuf, optional_root, text_of
from .errors import NotSupportedError, ProbeError, ProcessNotFoundError

__all__ = [
    "Memory",
    "ProcessMemory",
    "PressureLine",
    "Pressure",
    "CgroupInfo",
    "RlimitVerdicts",
    "Probe",
    "memory",
    "process",
    "pressure",
    "probe",
    "effective_memory",
]

PathArg = Optional[Union[str, "os.PathLike[str]"]]


@dataclass(frozen=True)
class Memory:
    """System and effective memory, in bytes (``mgrun.memory()``)."""

    total: int
    """MemTotal."""
    available: int
    """MemAvailable (estimated on kernels before 3.14)."""
    free: int
    buffers: int
    cached: int
    swap_total: int
    swap_free: int
    cgroup_limit: Optional[int]
    """The tightest memory limit of this process's cgroup and its
    ancestors; None when none is set."""
    effective_total: int
    """min(total, cgroup_limit): what this process really has."""
    effective_available: int
    """min(available, cgroup_limit - the cgroup's usage)."""
    effective_source: str
    """``"meminfo"`` or ``"cgroup v1 <dir>"`` / ``"cgroup v2 <dir>"``."""


@dataclass(frozen=True)
class ProcessMemory:
    """One process's memory, in bytes, from ``/proc/PID/status``
    (``mgrun.process()``)."""

    pid: int
    name: str
    rss: int
    """VmRSS."""
    hwm: int
    """VmHWM, the peak of rss."""
    vsize: int
    """VmSize."""
    data: int
    """VmData: what RLIMIT_DATA counts."""
    anon: int
    file: int
    shmem: int
    swap: int
    pss: Optional[int] = None
    """Pss from ``smaps_rollup``, when asked for (``pss=True``)."""


@dataclass(frozen=True)
class PressureLine:
    """One line of ``/proc/pressure/memory``: percentages of wall time
    stalled over 10, 60 and 300 s, and the total stall in microseconds."""

    avg10: float
    avg60: float
    avg300: float
    total: int


@dataclass(frozen=True)
class Pressure:
    """Memory pressure (``mgrun.pressure()``): ``some`` (at least one task
    stalled) and ``full`` (all stalled; None on kernels that lack it)."""

    some: PressureLine
    full: Optional[PressureLine]


@dataclass(frozen=True)
class CgroupInfo:
    """Where this process sits in the cgroup memory hierarchy, and whether
    mgrun may create child groups there (``Probe.cgroup``)."""

    version: str
    """``"v1"``, ``"v2"`` or ``"none"``."""
    v2_mounted: Optional[bool]
    mount: Optional[str]
    path: Optional[str]
    dir: Optional[str]
    limit: Optional[int]
    limit_dir: Optional[str]
    writable: Optional[bool]
    """Tested for real (a child group created and removed); None when not
    tested."""
    writable_reason: Optional[str]


@dataclass(frozen=True)
class RlimitVerdicts:
    """Which memory rlimit this kernel really enforces, probed in a
    short-lived child (``mgrun.rlimit_support()``, ``Probe.rlimit``)."""

    preferred: Optional[str]
    """``"data"``, ``"as"`` or None when neither is enforced."""
    data_enforced: Optional[bool]
    data_reason: str
    as_enforced: Optional[bool]
    as_reason: str

    @property
    def description(self) -> str:
        """Both verdicts and their reasons in one line."""
        return f"RLIMIT_DATA {self.data_reason}; RLIMIT_AS {self.as_reason}"


@dataclass(frozen=True)
class Probe:
    """Everything this machine offers (``mgrun.probe()``): the document
    ``mgrun --probe --json`` prints, with typed parts. ``document`` is the
    whole JSON document as a dict."""

    version: str
    kernel: Optional[str]
    arch: Optional[str]
    memory: Memory
    cgroup: CgroupInfo
    rlimit: RlimitVerdicts
    pressure: Optional[Pressure]
    pressure_reason: Optional[str]
    document: Dict[str, Any]


# ---------------------------------------------------------------- cgroup cache

_cg_lock = threading.Lock()
_cg_cache: Dict[Tuple[Optional[bytes], Optional[bytes]], "_lib.CgroupInfo"] = {}


def _paths(proc_root: PathArg, fs_root: PathArg) -> Tuple["_lib.Paths", Tuple[Optional[bytes], Optional[bytes]]]:
    pr = optional_root(proc_root, "proc_root")
    fr = optional_root(fs_root, "fs_root")
    return _lib.Paths(pr, fr), (pr, fr)


def _cgroup(paths: "_lib.Paths", key: Tuple[Optional[bytes], Optional[bytes]]) -> "_lib.CgroupInfo":
    with _cg_lock:
        cg = _cg_cache.get(key)
        if cg is None:
            cg = _lib.CgroupInfo()
            if _lib.core().mg_cgroup_detect(ctypes.byref(paths), ctypes.byref(cg), None, 0) < 0:
                ctypes.memset(ctypes.byref(cg), 0, ctypes.sizeof(cg))
            _cg_cache[key] = cg
        return cg


def _read(proc_root: PathArg, fs_root: PathArg) -> Tuple["_lib.Meminfo", "_lib.CgroupInfo", "_lib.Effmem"]:
    lib = _lib.core()
    paths, key = _paths(proc_root, fs_root)
    mi = _lib.Meminfo()
    err = errbuf()
    rc = lib.mg_meminfo_read(paths.proc_root, ctypes.byref(mi), err, len(err))
    if rc < 0:
        raise ProbeError(text_of(err), err_name(rc))
    cg = _cgroup(paths, key)
    eff = _lib.Effmem()
    rc = lib.mg_effective_memory(ctypes.byref(paths), ctypes.byref(mi), ctypes.byref(cg), ctypes.byref(eff), err,
                                 len(err))
    if rc < 0:
        raise ProbeError(text_of(err), err_name(rc))
    return mi, cg, eff


def effective_memory(*, proc_root: PathArg = None, fs_root: PathArg = None) -> int:
    """Effective memory in bytes: min(MemTotal, this process's cgroup
    limit). What sizes in percent and limit validation are measured
    against. Raises ProbeError when /proc/meminfo cannot be read."""
    return _read(proc_root, fs_root)[2].total_bytes


def memory(*, proc_root: PathArg = None, fs_root: PathArg = None) -> Memory:
    """System memory from ``/proc/meminfo`` and the effective memory this
    process has (see the module docstring). Raises ProbeError when
    ``/proc/meminfo`` cannot be read."""
    mi, cg, eff = _read(proc_root, fs_root)
    return Memory(
        total=mi.total_bytes,
        available=mi.available_bytes,
        free=mi.free_bytes,
        buffers=mi.buffers_bytes,
        cached=mi.cached_bytes,
        swap_total=mi.swap_total_bytes,
        swap_free=mi.swap_free_bytes,
        cgroup_limit=cg.limit_bytes if cg.has_limit else None,
        effective_total=eff.total_bytes,
        effective_available=eff.available_bytes,
        effective_source=text_of(eff.source),
    )


def process(pid: Optional[int] = None, *, pss: bool = False, proc_root: PathArg = None) -> ProcessMemory:
    """Memory of process `pid` (default: this process) from
    ``/proc/PID/status``; with ``pss=True`` also its PSS from
    ``smaps_rollup``. Raises ProcessNotFoundError (code ``"ESRCH"``) when
    there is no such process, NotSupportedError when PSS is asked for and
    the kernel has no ``smaps_rollup``."""
    if pid is None:
        pid = os.getpid()
    pid = check_int(pid, "pid", 1, 0x7FFFFFFF)
    if not isinstance(pss, bool):
        raise TypeError(f"pss must be a bool, got {type(pss).__name__}")
    lib = _lib.core()
    root = optional_root(proc_root, "proc_root")
    st = _lib.ProcStatus()
    err = errbuf()
    rc = lib.mg_proc_status_read(root, pid, ctypes.byref(st), err, len(err))
    if rc < 0:
        name = err_name(rc)
        cls = ProcessNotFoundError if name == "ESRCH" else ProbeError
        raise cls(text_of(err), name)
    pss_bytes: Optional[int] = None
    if pss:
        v = ctypes.c_uint64()
        rc = lib.mg_proc_pss_read(root, pid, ctypes.byref(v), err, len(err))
        if rc < 0:
            name = err_name(rc)
            cls2 = {"ESRCH": ProcessNotFoundError, "ENOTSUP": NotSupportedError}.get(name, ProbeError)
            raise cls2(text_of(err), name)
        pss_bytes = v.value
    return ProcessMemory(
        pid=st.pid or pid,
        name=text_of(st.name),
        rss=st.rss_bytes,
        hwm=st.hwm_bytes,
        vsize=st.vsize_bytes,
        data=st.data_bytes,
        anon=st.anon_bytes,
        file=st.file_bytes,
        shmem=st.shmem_bytes,
        swap=st.swap_bytes,
        pss=pss_bytes,
    )


def _line(p: "_lib.PsiLine") -> PressureLine:
    return PressureLine(avg10=p.avg10, avg60=p.avg60, avg300=p.avg300, total=p.total_us)


def pressure(*, strict: bool = False, proc_root: PathArg = None) -> Optional[Pressure]:
    """Memory pressure from ``/proc/pressure/memory``. On a kernel without
    PSI it returns None — or, with ``strict=True``, raises
    NotSupportedError with the reason. A malformed file raises
    ProbeError."""
    lib = _lib.core()
    psi = _lib.Psi()
    err = errbuf()
    rc = lib.mg_psi_read(optional_root(proc_root, "proc_root"), ctypes.byref(psi), err, len(err))
    if rc < 0:
        name = err_name(rc)
        if name == "ENOTSUP" or name == "ENOENT":
            if strict:
                raise NotSupportedError(text_of(err), "ENOTSUP")
            return None
        raise ProbeError(text_of(err), name)
    return Pressure(some=_line(psi.some), full=_line(psi.full) if psi.has_full else None)


def _pline(d: Optional[Dict[str, Any]]) -> Optional[PressureLine]:
    if not d:
        return None
    return PressureLine(avg10=d["avg10"], avg60=d["avg60"], avg300=d["avg300"], total=d["total"])


def probe(
    *,
    check_writable: bool = True,
    check_rlimit: bool = True,
    cgroup_parent: PathArg = None,
    proc_root: PathArg = None,
    fs_root: PathArg = None,
) -> Probe:
    """Everything this machine offers, as ``mgrun --probe --json`` prints
    it: memory and effective memory, the cgroup hierarchy and whether it is
    writable (tested for real under this process's cgroup, or
    ``cgroup_parent``), which rlimit is enforced (probed in a short-lived
    child), and pressure. ``check_writable=False`` / ``check_rlimit=False``
    skip those two tests (their fields are then None). Raises ProbeError
    when the probe fails."""
    lib = _lib.core()
    paths, _ = _paths(proc_root, fs_root)
    opts = _lib.ProbeOpts()
    opts.paths = paths
    opts.skip_writable = 0 if check_writable else 1
    opts.skip_rlimit = 0 if check_rlimit else 1
    opts.cgroup_parent = optional_root(cgroup_parent, "cgroup_parent")
    out = ctypes.c_void_p()
    n = ctypes.c_size_t()
    err = errbuf()
    rc = lib.mg_probe_json_text(ctypes.byref(opts), ctypes.byref(out), ctypes.byref(n), err, len(err))
    if rc < 0:
        raise ProbeError(text_of(err), err_name(rc))
    try:
        doc = json.loads(ctypes.string_at(out.value, n.value).decode())
    finally:
        lib.mg_ffi_free(out)
    m = doc.get("memory") or {}
    c = doc.get("cgroup") or {}
    r = doc.get("rlimit") or {}
    rd = r.get("data") or {}
    ra = r.get("as") or {}
    p = doc.get("pressure")
    return Probe(
        version=doc.get("version", ""),
        kernel=doc.get("kernel"),
        arch=doc.get("arch"),
        memory=Memory(
            total=m.get("total", 0),
            available=m.get("available", 0),
            free=m.get("free", 0),
            buffers=m.get("buffers", 0),
            cached=m.get("cached", 0),
            swap_total=m.get("swap_total", 0),
            swap_free=m.get("swap_free", 0),
            cgroup_limit=m.get("cgroup_limit"),
            effective_total=m.get("effective_total", 0),
            effective_available=m.get("effective_available", 0),
            effective_source=m.get("effective_source") or "",
        ),
        cgroup=CgroupInfo(
            version=c.get("version") or "none",
            v2_mounted=c.get("v2_mounted"),
            mount=c.get("mount"),
            path=c.get("path"),
            dir=c.get("dir"),
            limit=c.get("limit"),
            limit_dir=c.get("limit_dir"),
            writable=c.get("writable"),
            writable_reason=c.get("writable_reason"),
        ),
        rlimit=RlimitVerdicts(
            preferred=r.get("preferred"),
            data_enforced=rd.get("enforced"),
            data_reason=rd.get("reason") or "",
            as_enforced=ra.get("enforced"),
            as_reason=ra.get("reason") or "",
        ),
        pressure=Pressure(some=_pline(p.get("some")), full=_pline(p.get("full"))) if p else None,  # type: ignore[arg-type]
        pressure_reason=doc.get("pressure_reason"),
        document=doc,
    )
