"""Drop-in replacement for the seed's bounded ``ExecutionContext``
(tinyllm's ``tinyllm.core.context``): change the import, keep the calls.

.. code-block:: python

    from mgrun.context import ExecutionContext, BoundsExceededError

The seed's constructor arguments, minimums (``max_messages`` >= 1,
``max_message_size_bytes`` >= 1024, ``max_total_size_bytes`` >= 1024),
methods, ten-field :class:`MemoryUsageStats` and log event names, on
mgrun's bounded store (:class:`mgrun.Store`), without the seed's bugs:

- ``add_message`` is **atomic**: a message that does not fit is refused
  before anything changes (the seed appended, then checked the total and
  removed it again);
- sizes are **exact**: a message's size is the bytes stored — the JSON dump
  of a model (``model_dump_json()``) or dict, the UTF-8 of a str, the bytes
  themselves — plus role, source and mgrun's fixed per-message overhead of
  256 bytes (``mgrun.MSG_OVERHEAD``), the same accounting as every mgrun
  store (the seed measured ``sys.getsizeof`` of a dump, and fell back to
  1024 on error). ``max_message_size_bytes`` is compared with that size;
- ``prune_old_messages(0)`` returns the number really removed (the seed
  reported every message), and never removes a pinned message;
- utilisation above 100 % (after a limit was lowered) is reported, never
  raised;
- it is thread-safe.

Messages may be a ``str``, ``bytes``, a ``dict`` (stored as its JSON dump),
or an object shaped like the seed's ``Message`` (``trace_id``,
``source_node``, ``payload.content``, ``model_dump_json()``). ``messages``
gives them back rebuilt from what is stored (models through their class's
``model_validate_json`` when it has one, else as dicts).

Log events, on the ``mgrun.context`` logger, with ``trace_id`` and
``graph_id``: ``message_size_exceeded``, ``message_count_exceeded``,
``total_size_exceeded`` (errors), ``bounds_check_failed_<limit type>``,
``approaching_message_limit``, ``approaching_size_limit`` (warnings, once
per crossing of 80 %), ``messages_pruned``, ``memory_after_pruning``
(info), ``message_added``, ``memory_usage_calculated``,
``bounds_check_passed`` (debug).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Optional, Tuple

from ._log import log as _log
from .errors import BoundsExceededError
from .store import Message, Stats, Store

__all__ = ["ExecutionContext", "MemoryUsageStats", "BoundsExceededError"]

logger = logging.getLogger("mgrun.context")

_MINIMUMS = {"max_messages": 1, "max_message_size_bytes": 1024, "max_total_size_bytes": 1024}


@dataclass(frozen=True)
class MemoryUsageStats:
    """The seed's memory usage statistics of a context (its ten fields).

    Utilisations are plain ratios: above 1.0 after a limit was lowered
    below the use (the seed's model raised there)."""

    message_count: int
    total_size_bytes: int
    largest_message_bytes: int
    max_messages: int
    max_message_size_bytes: int
    max_total_size_bytes: int
    message_count_utilization: float
    total_size_utilization: float
    near_message_limit: bool
    """Utilisation >= the warning threshold (80 %)."""
    near_size_limit: bool

    def model_dump(self) -> Dict[str, Any]:
        """The fields as a dict (as the seed's pydantic model)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    dict = model_dump


def _store_name(graph_id: Any) -> str:
    """A store name (mgrun's name rule) from the graph id."""
    text = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in str(graph_id))[:64]
    return text if text.strip("_") and text not in (".", "..") else "context"


def _check_min(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < _MINIMUMS[name]:
        raise ValueError(f"{name} {value} is below the minimum {_MINIMUMS[name]}")
    return value


class ExecutionContext:
    """The execution context of one graph run, bounded in memory (seed 2).

    Args:
        trace_id, graph_id: identify the run (in every log line and error).
        max_messages: at most this many messages (>= 1).
        max_message_size_bytes: each message's size at most this (>= 1024).
        max_total_size_bytes: all messages together at most this (>= 1024).
        config: the seed's configuration object, kept as ``config``.
        warn_at: the fraction of a limit at which ``approaching_*`` is
            logged (the seed's fixed 80 %).
        on_full: ``"error"`` (the seed's behaviour) or ``"prune"`` (make room
            with ``strategy`` instead of refusing; see :class:`mgrun.Store`).
        strategy: the store's strategy for ``on_full="prune"``.
        **fields: the seed's other fields (``variables``, ``metadata``…),
            kept as attributes.

    Raises:
        ValueError: a limit below its minimum; TypeError: a limit that is
            not an int.
    """

    def __init__(
        self,
        trace_id: str,
        graph_id: str,
        max_messages: int = 1000,
        max_message_size_bytes: int = 1_048_576,
        max_total_size_bytes: int = 104_857_600,
        *,
        config: Any = None,
        warn_at: float = 0.8,
        on_full: str = "error",
        strategy: Any = "oldest",
        **fields: Any,
    ) -> None:
        for name, v in (("max_messages", max_messages), ("max_message_size_bytes", max_message_size_bytes),
                        ("max_total_size_bytes", max_total_size_bytes)):
            _check_min(name, v)
        reserved = {"messages", "store"} & set(fields)
        if reserved:
            raise TypeError(f"ExecutionContext: {sorted(reserved)[0]!r} cannot be given (it is the context's own)")
        self.trace_id = trace_id
        self.graph_id = graph_id
        self.config = config
        for k, v in fields.items():
            setattr(self, k, v)
        self._kinds: Dict[int, Any] = {}
        self._kinds_lock = threading.Lock()
        self._store = Store(
            name=_store_name(graph_id),
            max_messages=max_messages,
            max_message_size=max_message_size_bytes,
            max_total_size=max_total_size_bytes,
            warn_at=warn_at,
            on_full=on_full,
            strategy=strategy,
            on_warn=self._on_warn,
        )
        self._store._log_events = False  # this module logs them, with the trace

    # ------------------------------------------------------------ limits

    def _limit(self, key: str) -> int:
        return int(self._store.limits()[key])

    @property
    def max_messages(self) -> int:
        """The message count limit (assignable: lowering it below the use
        evicts nothing; ``check_bounds`` then raises)."""
        return self._limit("max_messages")

    @max_messages.setter
    def max_messages(self, v: int) -> None:
        self._store.set_limits(max_messages=_check_min("max_messages", v))

    @property
    def max_message_size_bytes(self) -> int:
        """The limit of each message's size (assignable)."""
        return self._limit("max_message_size")

    @max_message_size_bytes.setter
    def max_message_size_bytes(self, v: int) -> None:
        self._store.set_limits(max_message_size=_check_min("max_message_size_bytes", v))

    @property
    def max_total_size_bytes(self) -> int:
        """The limit of the total size (assignable)."""
        return self._limit("max_total_size")

    @max_total_size_bytes.setter
    def max_total_size_bytes(self, v: int) -> None:
        self._store.set_limits(max_total_size=_check_min("max_total_size_bytes", v))

    @property
    def store(self) -> Store:
        """The :class:`mgrun.Store` that holds the messages."""
        return self._store

    # ------------------------------------------------------------ messages

    def _fields(self) -> Dict[str, Any]:
        return {"trace_id": self.trace_id, "graph_id": self.graph_id}

    @staticmethod
    def _encode(message: Any) -> Tuple[Any, Any, Optional[str], str]:
        """(content, kind, source, role) of a message."""
        if isinstance(message, str):
            return message, "str", None, ""
        if isinstance(message, (bytes, bytearray, memoryview)):
            return bytes(message), "bytes", None, ""
        if isinstance(message, dict):
            try:
                dump = json.dumps(message, ensure_ascii=False, default=str)
            except (TypeError, ValueError) as e:
                raise TypeError(f"add_message: the dict cannot be written as JSON: {e}") from None
            src = message.get("source_node", message.get("source"))
            role = message.get("role")
            return dump, "dict", src if isinstance(src, str) else None, role if isinstance(role, str) else ""
        dump_fn = getattr(message, "model_dump_json", None)
        if callable(dump_fn):
            dump = dump_fn()
            if not isinstance(dump, (str, bytes)):
                raise TypeError(f"add_message: {type(message).__name__}.model_dump_json() returned "
                                f"{type(dump).__name__}, not str")
            src = getattr(message, "source_node", None)
            role = getattr(message, "role", None)
            return dump, type(message), src if isinstance(src, str) else None, role if isinstance(role, str) else ""
        raise TypeError("add_message takes a str, bytes, a dict or a message model with model_dump_json(), got "
                        f"{type(message).__name__}")

    def add_message(
        self,
        message: Any,
        *,
        pinned: bool = False,
        group: Optional[str] = None,
        priority: int = 0,
        tokens: Optional[int] = None,
    ) -> int:
        """Add a message after checking every bound; returns its id in the
        store. Nothing changes when it does not fit.

        Raises:
            BoundsExceededError: the message is larger than
                ``max_message_size_bytes``, or would pass ``max_messages``
                or ``max_total_size_bytes`` (``details`` holds ``trace_id``
                and ``graph_id``).
            TypeError: not a message this context can store.
        """
        content, kind, source, role = self._encode(message)
        try:
            mid = self._store.add(role, content, source=source, group=group, pinned=pinned, priority=priority,
                                  tokens=tokens)
        except BoundsExceededError as e:
            e.details.update(self._fields())
            _log(logger, logging.ERROR, f"{e.limit_type}_exceeded" if e.limit_type != "tokens"
                 else "token_count_exceeded", limit_type=e.limit_type, current=e.current_value,
                 limit=e.limit_value, error=str(e), **self._fields())
            raise
        if kind != "str":
            with self._kinds_lock:
                self._kinds[mid] = kind
                if len(self._kinds) > 2 * self.max_messages + 64:
                    live = set(self._store.ids())
                    self._kinds = {k: v for k, v in self._kinds.items() if k in live}
        if logger.isEnabledFor(logging.DEBUG):
            st = self._store.stats()
            _log(logger, logging.DEBUG, "message_added", message_id=mid, message_count=st.message_count,
                 total_size_bytes=st.total_size_bytes, max_messages=st.max_messages,
                 max_total_size_bytes=st.max_total_size_bytes, **self._fields())
        return mid

    def _decode(self, m: Message) -> Any:
        kind = self._kinds.get(m.id, "str")
        if kind == "str":
            return m.content.decode("utf-8", "replace")
        if kind == "bytes":
            return m.content
        if kind == "dict":
            return json.loads(m.content)
        rebuild = getattr(kind, "model_validate_json", None)
        if callable(rebuild):
            return rebuild(m.content)
        return json.loads(m.content)

    @property
    def messages(self) -> List[Any]:
        """The messages, oldest first, rebuilt from what is stored."""
        return [self._decode(m) for m in self._store]

    def __len__(self) -> int:
        return len(self._store)

    # ------------------------------------------------------------ bounds

    def _on_warn(self, store: Store, kind: str, st: Stats) -> None:
        if kind == "message_count":
            _log(logger, logging.WARNING, "approaching_message_limit", message_count=st.message_count,
                 max_messages=st.max_messages, utilization=st.message_count_utilization, **self._fields())
        elif kind == "total_size":
            _log(logger, logging.WARNING, "approaching_size_limit", total_size_bytes=st.total_size_bytes,
                 max_total_size_bytes=st.max_total_size_bytes, utilization=st.total_size_utilization,
                 **self._fields())

    def check_bounds(self) -> None:
        """Verify the context is within its bounds (it always is, unless a
        limit was lowered below the use since) and that the store is
        consistent. Raises BoundsExceededError naming the first limit
        exceeded."""
        self._store.check()
        st = self._store.stats()
        for limit_type, cur, lim, text in (
            ("message_count", st.message_count, st.max_messages, "Message count"),
            ("total_size", st.total_size_bytes, st.max_total_size_bytes, "Total size"),
            ("message_size", st.largest_message_bytes, st.max_message_size_bytes, "Message size"),
        ):
            if cur > lim:
                msg = f"{text} {cur} exceeds limit of {lim}"
                _log(logger, logging.ERROR, f"bounds_check_failed_{limit_type}", current=cur, limit=lim,
                     **self._fields())
                raise BoundsExceededError(msg, limit_type, cur, lim, self._fields())
        _log(logger, logging.DEBUG, "bounds_check_passed", message_count=st.message_count,
             total_size_bytes=st.total_size_bytes, **self._fields())

    def get_memory_usage(self) -> MemoryUsageStats:
        """The context's memory usage and utilisation (never raises, also
        above 100 %)."""
        st = self._store.stats()
        out = MemoryUsageStats(
            message_count=st.message_count,
            total_size_bytes=st.total_size_bytes,
            largest_message_bytes=st.largest_message_bytes,
            max_messages=st.max_messages,
            max_message_size_bytes=st.max_message_size_bytes,
            max_total_size_bytes=st.max_total_size_bytes,
            message_count_utilization=st.message_count_utilization,
            total_size_utilization=st.total_size_utilization,
            near_message_limit=st.near_message_limit,
            near_size_limit=st.near_size_limit,
        )
        _log(logger, logging.DEBUG, "memory_usage_calculated", **out.model_dump(), **self._fields())
        return out

    def prune_old_messages(self, keep_count: Optional[int] = None) -> int:
        """Remove the oldest messages, keeping the newest `keep_count`
        (default ``max_messages // 2``) and every pinned message; returns
        the number really removed. Raises ValueError for a negative or
        non-integral `keep_count`."""
        if keep_count is not None and (isinstance(keep_count, bool) or not isinstance(keep_count, (int, float))):
            raise ValueError(f"keep_count must be a non-negative integer, got {keep_count!r}")
        before = self._store.stats()
        removed = self._store.prune(keep_count)
        after = self._store.stats()
        _log(logger, logging.INFO, "messages_pruned", removed=removed,
             kept=after.message_count, keep_count=before.max_messages // 2 if keep_count is None else keep_count,
             bytes_freed=before.total_size_bytes - after.total_size_bytes, **self._fields())
        _log(logger, logging.INFO, "memory_after_pruning", message_count=after.message_count,
             total_size_bytes=after.total_size_bytes, message_count_utilization=after.message_count_utilization,
             total_size_utilization=after.total_size_utilization, **self._fields())
        if removed:
            with self._kinds_lock:
                live = set(self._store.ids())
                self._kinds = {k: v for k, v in self._kinds.items() if k in live}
        return removed

    def __repr__(self) -> str:
        return f"<mgrun.context.ExecutionContext trace_id={self.trace_id!r} graph_id={self.graph_id!r} " \
               f"({len(self)} messages)>"
