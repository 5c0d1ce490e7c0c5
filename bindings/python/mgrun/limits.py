"""Memory limits (seed 1): validation against effective memory, which
rlimit this kernel enforces, and setting and reading rlimits on this
process or another.

**RLIMIT_DATA is the default rlimit, RLIMIT_AS is opt-in.** RLIMIT_AS
counts address-space reservations: CUDA's ``cuInit`` alone reserves ~12 GiB,
PyTorch with a CUDA context ~17 GiB, llama.cpp maps the whole model file; an
AS limit of a few GiB makes such programs fail at start-up. RLIMIT_DATA
(Linux >= 4.7) counts private writable memory only.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from . import _lib
from ._log import get as _logger
from ._log import log as _log
from ._util import check_int, err_name, errbuf, text_of, type_name
from .errors import LimitError, ProcessNotFoundError, SizeError
from .probes import RlimitVerdicts, effective_memory
from .sizes import SIZE_MAX, SizeLike, _as_double, format_size

__all__ = [
    "Validation",
    "SetLimitResult",
    "Rlimit",
    "validate_limit",
    "validate_total",
    "rlimit_support",
    "set_limit",
    "get_limit",
    "LIMIT_WARN_PCT",
    "TOTAL_WARN_PCT",
]

LIMIT_WARN_PCT = 90.0
"""Percent of effective memory above which a single limit is valid with a
warning."""
TOTAL_WARN_PCT = 95.0
"""Percent of effective memory above which a total is valid with a
warning."""

_LOG = _logger("limits")


@dataclass(frozen=True)
class Validation:
    """The verdict of :func:`validate_limit` / :func:`validate_total`.

    True in a boolean context when valid, and unpacks as
    ``ok, message, warning``.
    """

    ok: bool
    message: str
    """Why it is invalid; ``""`` when valid."""
    warning: Optional[str]
    """Something to say about a valid limit (above 90 % / 95 % of effective
    memory); None when there is nothing to say."""

    def __bool__(self) -> bool:
        return self.ok

    def __iter__(self) -> Iterator[Any]:
        return iter((self.ok, self.message, self.warning))


@dataclass(frozen=True)
class SetLimitResult:
    """What :func:`set_limit` did. True in a boolean context when the limit
    was set."""

    ok: bool
    applied: Optional[int]
    """The soft limit now in force, in bytes (it may be lower than asked:
    clamped to a finite hard limit, see ``warning``)."""
    resource: Optional[str]
    """``"data"`` or ``"as"``: the rlimit that was set."""
    hard: Optional[int]
    """The hard limit after the call, in bytes; None = unlimited."""
    pid: int
    warning: Optional[str]
    """Above 90 % of effective memory, or clamped to the hard limit."""
    reason: str
    """Why it failed; ``""`` on success."""
    code: str
    """The failure's code (``"ELIMIT"``, ``"ENOTENFORCED"``, ``"EPERM"``,
    ``"ESRCH"``…); ``""`` on success."""

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class Rlimit:
    """A memory rlimit (:func:`get_limit`), in bytes; None = unlimited."""

    soft: Optional[int]
    hard: Optional[int]

    def __iter__(self) -> Iterator[Optional[int]]:
        return iter((self.soft, self.hard))


def _validation(v: "_lib.Validation") -> Validation:
    return Validation(ok=bool(v.ok), message="" if v.ok else text_of(v.message),
                      warning=text_of(v.warning) or None)


def _effective(effective: Optional[int]) -> int:
    if effective is None:
        return effective_memory()
    return check_int(effective, "effective", 0, SIZE_MAX)


def validate_limit(size: SizeLike, *, effective: Optional[int] = None) -> Validation:
    """Validate one memory limit against effective memory (or
    ``effective`` bytes).

    Invalid: not a finite number (the seed accepted NaN), not positive
    (``"Memory limit must be positive, got -5 B"``), above effective memory
    (``"Requested limit 20.00 GiB exceeds total system memory 13.00
    GiB"``); valid with a warning above 90 % of it. A string that is not a
    size is invalid with the parser's message; a value of another type
    raises TypeError.
    """
    v = _lib.Validation()
    try:
        b = _as_double(size, "size")
    except SizeError as e:
        return Validation(ok=False, message=str(e), warning=None)
    _lib.core().mg_validate_limit(b, _effective(effective), ctypes.byref(v))
    return _validation(v)


NamedSizes = Union[Mapping[str, SizeLike], Iterable[Union[SizeLike, Tuple[str, SizeLike], Mapping[str, Any]]]]


def _items(sizes: Any) -> List[Tuple[Optional[str], SizeLike]]:
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(
            "validate_total takes a list of sizes, of (name, size) pairs or {'name':, 'limit':} dicts, or a "
            f"mapping of names to sizes; got {type_name(sizes)}"
        )
    if isinstance(sizes, Mapping):
        return [(k, v) for k, v in sizes.items()]
    out: List[Tuple[Optional[str], SizeLike]] = []
    for i, item in enumerate(sizes, 1):
        if isinstance(item, Mapping):
            if "limit" not in item:
                raise ValueError(f"validate_total: item {i} has no 'limit'")
            unknown = set(item) - {"name", "limit"}
            if unknown:
                raise ValueError(f"validate_total: item {i} has unknown keys {sorted(unknown)} (accepted: name, limit)")
            out.append((item.get("name"), item["limit"]))
        elif isinstance(item, tuple):
            if len(item) != 2:
                raise ValueError(f"validate_total: item {i} must be a (name, size) pair, got {len(item)} values")
            out.append((item[0], item[1]))
        else:
            out.append((None, item))
    return out


def validate_total(sizes: NamedSizes, *, effective: Optional[int] = None) -> Validation:
    """Validate several allocations and their sum against effective memory
    (or ``effective`` bytes) — the admission control of matrix mode.

    ``sizes`` is a list of sizes, of ``(name, size)`` pairs or of
    ``{"name": ..., "limit": ...}`` dicts, or a mapping of names to sizes.
    An empty list is invalid; **every item is validated** (the seed
    accepted -5 and NaN items); a sum above effective memory is invalid and
    the message names each instance and its limit (``"Total allocation
    17.00 GiB exceeds total system memory 8.00 GiB: subject 2.00 GiB,
    observer 6.00 GiB, god 9.00 GiB"``); above 95 % it is valid with a
    warning.
    """
    items = _items(sizes)
    if len(items) > 4096:
        raise ValueError(f"validate_total: at most 4096 items, got {len(items)}")
    arr = (_lib.LimitItem * max(len(items), 1))()
    keep: List[bytes] = []
    for i, (name, value) in enumerate(items):
        what = f"item {i + 1}"
        if name is not None:
            if not isinstance(name, str):
                raise TypeError(f"validate_total: the name of item {i + 1} must be a str, got {type_name(name)}")
            if "\0" in name:
                raise ValueError(f"validate_total: the name of item {i + 1} holds a NUL character")
            nb = name.encode()
            keep.append(nb)
            arr[i].name = nb
            what = name
        try:
            arr[i].bytes = _as_double(value, what)
        except SizeError as e:
            return Validation(ok=False, message=str(e), warning=None)
    v = _lib.Validation()
    _lib.core().mg_validate_total(arr, len(items), _effective(effective), ctypes.byref(v))
    return _validation(v)


def rlimit_support() -> RlimitVerdicts:
    """Which memory rlimit this kernel really enforces, preferring
    RLIMIT_DATA: probed once per process in a short-lived child (set the
    limit a little above its use, allocate under it and past it), then
    cached. ``preferred`` is ``"data"``, ``"as"`` or None; the reasons say
    why each was accepted or rejected."""
    lib = _lib.core()
    s = _lib.RlimitSupport()
    lib.mg_rlimit_probe(ctypes.byref(s))
    r = ctypes.c_int()
    pref: Optional[str] = None
    if lib.mg_rlimit_preferred(ctypes.byref(s), ctypes.byref(r), None, 0) == 0:
        pref = "data" if r.value == 0 else "as"
    return RlimitVerdicts(preferred=pref, data_enforced=bool(s.data_enforced), data_reason=text_of(s.data_reason),
                          as_enforced=bool(s.as_enforced), as_reason=text_of(s.as_reason))


_RESOURCES = {"data": 0, "as": 1}


def _resource(resource: Any, what: str, auto: bool) -> Optional[int]:
    if not isinstance(resource, str):
        raise TypeError(f"{what} must be a str, got {type_name(resource)}")
    if auto and resource == "auto":
        return None
    if resource not in _RESOURCES:
        accepted = '"auto", "data" or "as"' if auto else '"data" or "as"'
        raise ValueError(f"{what} must be {accepted}, got {resource!r}")
    return _RESOURCES[resource]


def _pid(pid: Optional[int]) -> int:
    return 0 if pid is None else check_int(pid, "pid", 1, 0x7FFFFFFF)


def set_limit(
    size: SizeLike,
    strict: bool = True,
    resource: str = "auto",
    pid: Optional[int] = None,
    *,
    hard: bool = False,
    validate: bool = True,
) -> SetLimitResult:
    """Set a memory rlimit on this process or, with ``pid``, another one
    (prlimit).

    ``resource``: ``"auto"`` (the enforced one, RLIMIT_DATA first —
    :func:`rlimit_support`), ``"data"`` or ``"as"``. The limit is first
    validated against effective memory (``validate=False`` skips that, for
    limits that count more than resident memory: RLIMIT_AS of a CUDA
    process, any process built with AddressSanitizer). Only the soft limit
    is set unless ``hard=True`` (irreversible without CAP_SYS_RESOURCE);
    when the hard limit is finite and lower, the soft limit is clamped to
    it and ``warning`` says what was really applied.

    On failure, ``strict=True`` (the seed's default) raises LimitError with
    the reason and its ``code``; ``strict=False`` returns a result that is
    false, with ``reason`` and ``code``. Both are logged (``limit_set``,
    ``limit_warning``, ``limit_clamped``, ``limit_failed`` on the
    ``mgrun.limits`` logger).
    """
    return _set_limit(size, strict, resource, pid, hard, validate, True)


def _set_limit(size: SizeLike, strict: bool, resource: str, pid: Optional[int], hard: bool, validate: bool,
               log: bool) -> SetLimitResult:
    """set_limit; `log` False for a wrapper that logs its own lines
    (mgrun.memory_limit)."""
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be a bool, got {type_name(strict)}")
    res = _resource(resource, "resource", auto=True)
    p = _pid(pid)
    lib = _lib.core()
    me = p or os.getpid()

    def fail(code: str, msg: str) -> SetLimitResult:
        if log:
            _log(_LOG, logging.ERROR, "limit_failed", error=msg)
        if strict:
            raise LimitError(msg, code)
        return SetLimitResult(ok=False, applied=None, resource=None, hard=None, pid=me, warning=None, reason=msg,
                              code=code)

    try:
        b = _as_double(size, "size")
    except SizeError as e:
        return fail(e.code, str(e))
    v = _lib.Validation()
    if validate:
        lib.mg_validate_limit(b, effective_memory(), ctypes.byref(v))
    else:  # only what any rlimit needs: a positive finite number
        lib.mg_validate_limit(b, SIZE_MAX, ctypes.byref(v))
        v.warning = b""
    if not v.ok:
        return fail("ELIMIT", "Memory limit validation failed: " + text_of(v.message))
    err = errbuf()
    if res is None:
        s = _lib.RlimitSupport()
        lib.mg_rlimit_probe(ctypes.byref(s))
        r = ctypes.c_int()
        rc = lib.mg_rlimit_preferred(ctypes.byref(s), ctypes.byref(r), err, len(err))
        if rc < 0:
            return fail(err_name(rc), text_of(err))
        res = r.value
    applied = ctypes.c_uint64()
    warn = errbuf(512)
    want = int(b) if math.isfinite(b) else SIZE_MAX
    rc = lib.mg_rlimit_set(p, res, want, 1 if hard else 0, ctypes.byref(applied), warn, len(warn), err, len(err))
    if rc < 0:
        return fail(err_name(rc), text_of(err))
    hv = ctypes.c_uint64(2**64 - 1)
    lib.mg_rlimit_get(p, res, None, ctypes.byref(hv), None, 0)
    hard_now = None if hv.value == 2**64 - 1 else hv.value
    rname = "data" if res == 0 else "as"
    w1 = text_of(v.warning) or None
    w2 = text_of(warn) or None
    warning = "; ".join(w for w in (w1, w2) if w) or None
    if not log:
        return SetLimitResult(ok=True, applied=applied.value, resource=rname, hard=hard_now, pid=me,
                              warning=warning, reason="", code="")
    _log(_LOG, logging.INFO, "limit_set", limit=format_size(applied.value), bytes=applied.value,
         resource="RLIMIT_DATA" if res == 0 else "RLIMIT_AS",
         hard="unlimited" if hard_now is None else format_size(hard_now), pid=me)
    if w1:
        _log(_LOG, logging.WARNING, "limit_warning", warning=w1)
    if w2:
        _log(_LOG, logging.WARNING, "limit_clamped", warning=w2)
    return SetLimitResult(ok=True, applied=applied.value, resource=rname, hard=hard_now, pid=me, warning=warning,
                          reason="", code="")


def get_limit(resource: str, pid: Optional[int] = None) -> Rlimit:
    """The soft and hard limit of ``resource`` (``"data"`` or ``"as"``) of
    this process or ``pid``; None = unlimited. Raises
    ProcessNotFoundError when there is no such process, LimitError when it
    cannot be read (``"EPERM"``)."""
    res = _resource(resource, "resource", auto=False)
    p = _pid(pid)
    soft = ctypes.c_uint64()
    hard = ctypes.c_uint64()
    err = errbuf()
    rc = _lib.core().mg_rlimit_get(p, res, ctypes.byref(soft), ctypes.byref(hard), err, len(err))
    if rc < 0:
        name = err_name(rc)
        if name == "ESRCH":
            raise ProcessNotFoundError(text_of(err), name)
        raise LimitError(text_of(err), name)
    unl = 2**64 - 1
    return Rlimit(soft=None if soft.value == unl else soft.value, hard=None if hard.value == unl else hard.value)
