"""mgrun — the memory governor for agent hosts, from Python.

Pure Python over mgrun's shared libraries ``libmg.so.0`` and
``libmg-runtime.so.0`` (ctypes; no compile step): the bounded context
store, the probes and the limits of mgrun's C core; :class:`Runtime`, a Lua
policy on a background thread whose stores the host shares
(:class:`PolicyStore`); and two modules that the seeds' users switch to by
changing an import (:mod:`mgrun.memory_limit`, :mod:`mgrun.context`).

>>> import mgrun
>>> with mgrun.Store("ctx", max_messages=200, on_full="prune") as ctx:
...     ctx.add("system", "You are terse.", pinned=True)
1
>>> mgrun.size("1.5G")
1610612736

The library is found next to the package, at the place recorded when it was
installed, or through ``MGRUN_LIB`` (see :mod:`mgrun._lib`). It is loaded
at the first call that needs it, not at import.
"""

from __future__ import annotations

import logging as _logging

__version__ = "0.1.0"

from . import errors as _errors  # noqa: E402
from .errors import (  # noqa: E402
    BoundsExceededError,
    Error,
    LimitError,
    NotSupportedError,
    PolicyError,
    ProbeError,
    ProcessNotFoundError,
    RuntimeStateError,
    SizeError,
    SnapshotError,
    StoreBusyError,
    StoreClosedError,
    StoreError,
)
from .limits import (  # noqa: E402
    Rlimit,
    SetLimitResult,
    Validation,
    get_limit,
    rlimit_support,
    set_limit,
    validate_limit,
    validate_total,
)
from .probes import (  # noqa: E402
    CgroupInfo,
    Memory,
    Pressure,
    PressureLine,
    Probe,
    ProcessMemory,
    RlimitVerdicts,
    effective_memory,
    memory,
    pressure,
    probe,
    process,
)
from .sizes import SIZE_MAX, format_size, size  # noqa: E402
from .store import MSG_OVERHEAD, Message, Need, Stats, Store, StoreView, Units  # noqa: E402
from .runtime import PolicyStore, Runtime  # noqa: E402
from . import strategies  # noqa: E402

# A library does not print: its log records reach the application's
# handlers, or nobody (not Python's last-resort handler on stderr).
_logging.getLogger("mgrun").addHandler(_logging.NullHandler())


def library_path() -> str:
    """The path ``libmg.so.0`` was loaded from (loading it if needed)."""
    from ._lib import library_path as _lp

    return _lp()


__all__ = [
    "__version__",
    # store
    "Store",
    "Message",
    "Stats",
    "Need",
    "StoreView",
    "Units",
    "MSG_OVERHEAD",
    "strategies",
    # probes
    "memory",
    "process",
    "pressure",
    "probe",
    "effective_memory",
    "Memory",
    "ProcessMemory",
    "Pressure",
    "PressureLine",
    "Probe",
    "CgroupInfo",
    "RlimitVerdicts",
    # sizes and limits
    "size",
    "format_size",
    "SIZE_MAX",
    "validate_limit",
    "validate_total",
    "rlimit_support",
    "set_limit",
    "get_limit",
    "Validation",
    "SetLimitResult",
    "Rlimit",
    # errors: every class of mgrun.errors
    *_errors.__all__,
    # a policy on a background thread
    "Runtime",
    "PolicyStore",
    "library_path",
]
