"""The exceptions of mgrun.

Every error the package raises for a failure of libmg is an
:class:`Error` carrying ``code``: the short stable name a program can act on
(``"ENOENT"``, ``"ELIMIT"``, ``"ECORRUPT"``, a store's limit type…, the same
codes as the Lua API's third return value). Misuse — a wrong type, an
unknown option — raises :class:`TypeError` or :class:`ValueError` naming the
argument, as Python does.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

__all__ = [
    "Error",
    "SizeError",
    "LimitError",
    "ProbeError",
    "NotSupportedError",
    "ProcessNotFoundError",
    "StoreError",
    "StoreClosedError",
    "StoreBusyError",
    "BoundsExceededError",
    "SnapshotError",
    "PolicyError",
    "RuntimeStateError",
]


class Error(Exception):
    """Base class of mgrun's errors.

    Attributes:
        code: a short stable name for the failure (``"ENOENT"``,
            ``"EPARSE"``, ``"ELIMIT"``…), or ``""`` when none applies.
    """

    code: str

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class SizeError(Error, ValueError):
    """A size that does not parse or is out of range (``mgrun.size``). The
    message quotes the input and says what is accepted."""


class LimitError(Error, ValueError):
    """A memory limit that was refused: invalid, above effective memory, not
    enforced by this kernel, or refused by the kernel (``code`` says which:
    ``"ELIMIT"``, ``"ENOTENFORCED"``, ``"EPERM"``, ``"ESRCH"``…)."""


class ProbeError(Error, OSError):
    """A probe could not read what it needs (``/proc/meminfo``,
    ``/proc/PID/status``…)."""


class NotSupportedError(ProbeError):
    """What was asked for does not exist on this system (PSI on a kernel
    without it; ``smaps_rollup`` before Linux 4.14)."""


class ProcessNotFoundError(ProbeError, ProcessLookupError):
    """No process with that pid (code ``"ESRCH"``)."""


class StoreError(Error):
    """A context store operation failed; the store is unchanged."""


class StoreClosedError(StoreError):
    """The store was closed."""


class StoreBusyError(StoreError):
    """A store was changed from inside one of its own callbacks (code
    ``"EBUSY"``): inside a strategy or ``on_evict`` the store can only be
    read."""


class SnapshotError(StoreError):
    """A file that is not a readable snapshot: truncated, corrupt, foreign,
    or of another version (code ``"ECORRUPT"`` / ``"EVERSION"``, or the
    errno name when it cannot be opened)."""


class BoundsExceededError(StoreError):
    """A message that does not fit a limit of the store (seed-compatible).

    Raised by :meth:`mgrun.Store.add` and
    :meth:`mgrun.context.ExecutionContext.add_message` when a limit would
    be crossed, and by ``check_bounds()``; the store is unchanged.

    Attributes:
        limit_type: ``"message_size"``, ``"message_count"``, ``"total_size"``
            or ``"tokens"``.
        current_value: the use that would cross the limit (for a count: the
            messages held; for sizes: the size reached with the message).
        limit_value: the limit.
        details: more context (``store``, ``state``: the store's use when it
            happened; the context module adds ``trace_id`` and ``graph_id``).
        code: ``"ELIMIT"`` when the store refused (``on_full="error"``),
            else why room could not be made (``"ESTRATEGY"``,
            ``"EPINNED"``…). When a Python strategy, ``on_evict`` or the
            estimator raised, that exception is ``__cause__``.
    """

    limit_type: str
    current_value: int
    limit_value: int
    details: Dict[str, Any]

    def __init__(
        self,
        message: str,
        limit_type: str,
        current_value: int,
        limit_value: int,
        details: Optional[Dict[str, Any]] = None,
        code: str = "ELIMIT",
    ) -> None:
        super().__init__(message, code)
        self.limit_type = limit_type
        self.current_value = current_value
        self.limit_value = limit_value
        self.details = dict(details) if details else {}

    def __reduce__(self) -> Any:
        return (
            type(self),
            (str(self), self.limit_type, self.current_value, self.limit_value, self.details, self.code),
        )


class PolicyError(Error):
    """A policy that could not be loaded: a missing file, a syntax error, an
    error or an exhausted budget in its top-level code. The message is
    Lua's (``policy.lua:3: …``) with a traceback; ``code`` is ``"EPARSE"``
    (or the errno name of a file that cannot be read)."""


class RuntimeStateError(Error):
    """A :class:`~mgrun.Runtime` used out of order: started twice, used
    after :meth:`~mgrun.Runtime.close`, or (``code`` ``"ESHUTDOWN"``) while
    it is being freed."""
