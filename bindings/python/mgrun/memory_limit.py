"""Drop-in replacement for the seed's ``memory_limit.py`` (brain-in-jar's
``src/utils/memory_limit.py``): change the import, keep the calls.

.. code-block:: python

    from mgrun.memory_limit import set_memory_limit, validate_memory_limit

The seed's signatures, return values and message shapes (sizes in "GB",
which are GiB: 2 GB = 2 * 1024**3 bytes, as in the seed), on mgrun's C core,
without the seed's bugs:

- ``get_system_memory_gb()`` is the **effective** memory: inside a container
  the cgroup's limit, not the host's MemTotal (the seed read MemTotal).
- ``validate_memory_limit`` refuses NaN and inf (the seed accepted NaN).
- ``validate_total_allocations`` validates **every** item (the seed accepted
  -5 and NaN items) and names each instance.
- ``set_memory_limit`` sets **RLIMIT_DATA** by default, the rlimit that is
  probed as enforced (the seed used RLIMIT_AS first, which CUDA, PyTorch and
  llama.cpp's address-space reservations break); ``resource="as"`` opts into
  RLIMIT_AS.

Log lines go to the ``mgrun.memory_limit`` logger with the seed's texts
("Memory limit set to 2.00 GB (2147483648 bytes) using RLIMIT_DATA (data
segment). Hard limit: unlimited").
"""

from __future__ import annotations

import ctypes
import logging
import math
import platform
import resource as _resource
from typing import Optional, Tuple

from . import _lib
from .errors import Error, LimitError
from .limits import LIMIT_WARN_PCT, TOTAL_WARN_PCT, _set_limit, rlimit_support
from .probes import effective_memory

__all__ = [
    "get_system_memory_gb",
    "validate_memory_limit",
    "validate_total_allocations",
    "set_memory_limit",
    "GB",
]

logger = logging.getLogger("mgrun.memory_limit")

GB = 1024**3
"""Bytes in one of the seed's "GB" (a GiB)."""

_RES_TEXT = {"data": "RLIMIT_DATA (data segment)", "as": "RLIMIT_AS (virtual memory)"}


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of GB, got {type(value).__name__}")
    return float(value)


def get_system_memory_gb() -> float:
    """The memory this process really has, in GB (GiB): min(MemTotal, the
    memory limit of its cgroup). Returns 0.0, with a warning logged, when it
    cannot be determined."""
    try:
        return effective_memory() / GB
    except Error as e:
        logger.warning("Could not determine system memory: %s", e)
        return 0.0


def validate_memory_limit(limit_gb: float) -> Tuple[bool, str]:
    """Validate that a memory limit is reasonable for this system.

    Returns ``(True, "")`` when it is, else ``(False, message)``: not a
    finite number, not positive, or above the (effective) system memory
    ("Requested limit 20.00 GB exceeds total system memory 13.00 GB"). Above
    90 % of it the limit is valid and a warning is logged."""
    v = _number(limit_gb, "limit_gb")
    if not math.isfinite(v):
        return False, f"Memory limit must be a finite number, got {limit_gb}"
    if v <= 0:
        return False, f"Memory limit must be positive, got {limit_gb}"
    total = get_system_memory_gb()
    if total <= 0:
        logger.warning("Cannot verify memory limit %.2f GB: system memory unknown", v)
        return True, ""
    c = _lib.Validation()
    _lib.core().mg_validate_limit(v * GB, int(total * GB), ctypes.byref(c))
    if not c.ok:
        return False, f"Requested limit {v:.2f} GB exceeds total system memory {total:.2f} GB"
    if c.warning:
        logger.warning("Memory limit %.2f GB is %.1f%% of system memory %.2f GB (above %.0f%%)", v, v / total * 100,
                       total, LIMIT_WARN_PCT)
    return True, ""


def validate_total_allocations(*limits_gb: float) -> Tuple[bool, str]:
    """Validate the total memory of several instances (matrix mode).

    Every limit is validated (not finite or not positive is invalid, naming
    the instance), then the sum against the (effective) system memory: above
    it is invalid ("Total allocation 17.00 GB exceeds total system memory
    8.00 GB: instance 1 2.00 GB, instance 2 6.00 GB, instance 3 9.00 GB");
    above 95 % of it valid with a warning logged. No limits at all is
    invalid."""
    if not limits_gb:
        return False, "No memory limits provided"
    values = []
    for i, x in enumerate(limits_gb, 1):
        v = _number(x, f"limit {i}")
        if not math.isfinite(v):
            return False, f"Invalid limit for instance {i}: must be a finite number, got {x}"
        if v <= 0:
            return False, f"Invalid limit for instance {i}: must be positive, got {x}"
        values.append(v)
    total = get_system_memory_gb()
    s = sum(values)
    if total <= 0:
        logger.warning("Cannot verify total allocation %.2f GB: system memory unknown", s)
        return True, ""
    items = (_lib.LimitItem * len(values))()
    for i, v in enumerate(values):
        items[i].name = None
        items[i].bytes = v * GB
    c = _lib.Validation()
    _lib.core().mg_validate_total(items, len(values), int(total * GB), ctypes.byref(c))
    detail = ", ".join(f"instance {i} {v:.2f} GB" for i, v in enumerate(values, 1))
    if not c.ok:
        return False, f"Total allocation {s:.2f} GB exceeds total system memory {total:.2f} GB: {detail}"
    if c.warning:
        logger.warning("Total allocation %.2f GB is %.1f%% of system memory %.2f GB (above %.0f%%): %s", s,
                       s / total * 100, total, TOTAL_WARN_PCT, detail)
    return True, ""


def _test_rlimit_support() -> Tuple[Optional[int], str]:
    """Which rlimit works here: ``(resource.RLIMIT_DATA or
    resource.RLIMIT_AS or None, description)`` — probed for enforcement (an
    allocation past the limit must fail), RLIMIT_DATA first; cached."""
    v = rlimit_support()
    arch = platform.machine()
    if v.preferred == "data":
        return _resource.RLIMIT_DATA, f"RLIMIT_DATA enforced on {arch}: {v.data_reason}"
    if v.preferred == "as":
        return _resource.RLIMIT_AS, f"RLIMIT_AS enforced on {arch} (RLIMIT_DATA {v.data_reason})"
    return None, (f"Platform does not support memory limits (tested RLIMIT_DATA and RLIMIT_AS). "
                  f"Architecture: {arch}, OS: {platform.system()}. {v.description}")


def set_memory_limit(limit_gb: float, strict: bool = True, *, resource: str = "auto") -> bool:
    """Limit this process's memory to `limit_gb` GB (GiB).

    Validates the limit first (:func:`validate_memory_limit`), then sets the
    enforced rlimit — RLIMIT_DATA unless only RLIMIT_AS is enforced, or
    ``resource="as"`` asks for it. Returns True on success. On failure,
    ``strict=True`` (the default, as the seed) raises :class:`mgrun.
    LimitError` (a ValueError) with the reason; ``strict=False`` logs it and
    returns False.
    """
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be a bool, got {type(strict).__name__}")
    ok, msg = validate_memory_limit(limit_gb)
    if not ok:
        logger.error("Memory limit validation failed: %s", msg)
        if strict:
            raise LimitError(f"Memory limit validation failed: {msg}", "ELIMIT")
        return False
    if resource == "auto":
        res, why = _test_rlimit_support()
        if res is None:
            logger.error("%s", why)
            if strict:
                raise LimitError(why, "ENOTENFORCED")
            return False
    r = _set_limit(float(limit_gb) * GB, False, resource, None, False, False, False)
    if not r.ok:
        logger.error("Failed to set memory limit %.2f GB: %s", float(limit_gb), r.reason)
        if strict:
            raise LimitError(f"Failed to set memory limit {float(limit_gb):.2f} GB: {r.reason}", r.code)
        return False
    assert r.applied is not None and r.resource is not None
    hard = "unlimited" if r.hard is None else f"{r.hard / GB:.2f} GB"
    logger.info("Memory limit set to %.2f GB (%d bytes) using %s. Hard limit: %s", r.applied / GB, r.applied,
                _RES_TEXT[r.resource], hard)
    if r.warning:
        logger.warning("%s", r.warning)
    return True
