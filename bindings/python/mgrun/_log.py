"""Structured log lines through Python's logging (not public).

mgrun's C library never logs by itself; the Python package logs its events
— the same event names as mgrun's own log (``limit_set``,
``approaching_message_limit``, ``messages_pruned``…) — to loggers under
``"mgrun"``. Each record's message is ``"<event> key=value …"`` (keys
sorted, as mgrun's text lines), and the record carries ``event`` and
``fields`` attributes for handlers that want them structured.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["log", "get"]


def get(name: str) -> logging.Logger:
    """The logger ``mgrun.<name>``."""
    return logging.getLogger("mgrun." + name if name else "mgrun")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    s = str(v)
    return repr(s) if (" " in s or not s) else s


def log(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log `event` with `fields` at `level` (cheap when the level is off)."""
    if not logger.isEnabledFor(level):
        return
    text = " ".join([event] + [f"{k}={_fmt(fields[k])}" for k in sorted(fields)])
    logger.log(level, "%s", text, extra={"event": event, "fields": fields}, stacklevel=3)
