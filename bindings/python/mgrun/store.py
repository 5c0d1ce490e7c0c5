"""The bounded context store: :class:`Store`.

A named, in-memory store of messages with exact, incremental size
accounting and hard limits (libmg's C core): atomic adds, strategies that
make room without splitting a group or touching a pinned message, an
archive and ``on_evict`` so that nothing is lost silently, once-per-crossing
warnings, crash-safe snapshots. The semantics are the Lua API's
(``docs/context-store.md``); this module is its Python face.

Thread safety: every method may be called from any thread. The GIL is
released during each call into C (so threads add concurrently, serialised
by the store's own lock), and callbacks into Python take it. Inside a
strategy, ``on_evict`` or the estimator the store is locked: reading it
works, changing it raises :class:`~mgrun.StoreBusyError`.
"""

from __future__ import annotations

import _thread
import ctypes
import logging
import math
import os
import threading
import weakref
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Mapping, Optional, Tuple, Union

from . import _lib
from ._log import get as _logger
from ._log import log as _log
from ._records import (
    EVICT_REASONS,
    LIMIT_NAMES,
    MSG_OVERHEAD,
    WARN_NAMES,
    Message,
    Need,
    Stats,
    StoreView,
    Units,
    copy_message,
    message_from_c,
    need_from_c,
    stats_from_c,
    store_ids,
)
from ._util import INT64_MAX, c_path, c_text, check_int, err_name, errbuf, text_of, type_name
from .errors import (
    BoundsExceededError,
    SnapshotError,
    StoreBusyError,
    StoreClosedError,
    StoreError,
)
from .sizes import SizeLike, size
from .strategies import Builtin, StrategyFn

__all__ = ["Store", "Message", "Stats", "Need", "StoreView", "Units", "MSG_OVERHEAD", "StrategyLike"]

StrategyLike = Union[str, Builtin, StrategyFn]
"""``"oldest"``, a built-in name such as ``"keep_last(200)"``, a
:class:`~mgrun.strategies.Builtin`, or a Python callable."""

_LOG = _logger("store")
_ON_FULL = {"error": 0, "prune": 1}
_ESTRATEGY = -4102  # MG_ESTRATEGY: what a failing Python callback returns
_PRUNE_DEFAULT = (1 << 64) - 1
_LIMIT_EVENTS = {1: "message_size_exceeded", 2: "message_count_exceeded", 3: "total_size_exceeded",
                 4: "token_count_exceeded"}
_WARN_EVENTS = {0: "approaching_message_limit", 1: "approaching_size_limit", 2: "approaching_token_limit"}
_INPUT_FIELDS = ("role", "content", "source", "group", "pinned", "priority", "tokens", "meta")

_tls = threading.local()


def _errstruct() -> "_lib.StoreError":
    """This thread's buffer for a store error."""
    try:
        return _tls.err  # type: ignore[no-any-return]
    except AttributeError:
        e = _tls.err = _lib.StoreError()
        return e


def _set_pending(e: BaseException) -> None:
    """Remember a callback's exception: the operation that called it fails
    and raises it as its cause."""
    _tls.pending = e


def _take_pending() -> Optional[BaseException]:
    e = getattr(_tls, "pending", None)
    _tls.pending = None
    return e


def _write_err(ptr: Optional[int], n: int, text: str) -> None:
    if not ptr or n == 0:
        return
    b = text.encode("utf-8", "replace")[: n - 1]
    ctypes.memmove(ptr, b + b"\0", len(b) + 1)


def _exc_text(e: BaseException) -> str:
    s = str(e)
    return f"{type(e).__name__}: {s}" if s else type(e).__name__


def _callback_failed(e: BaseException, err: Optional[int], err_len: int) -> int:
    """What a Python callback that raised returns to C: the exception is
    kept for the caller (chained as the cause), its text goes to `err`."""
    _set_pending(e)
    _write_err(err, err_len, _exc_text(e))
    return _ESTRATEGY


# ---------------------------------------------------------------- inputs

_ROLES: Dict[str, bytes] = {}


def _role(role: Any) -> bytes:
    b = _ROLES.get(role) if role.__class__ is str else None
    if b is None:
        b = c_text(role, "role")
        if b is None:
            raise TypeError("role must be a str, got None")
        if len(_ROLES) < 256 and len(b) <= 64:
            _ROLES[role] = b
    return b


def _content(content: Any) -> bytes:
    if content.__class__ is bytes:
        return content  # type: ignore[no-any-return]
    if isinstance(content, str):
        try:
            return content.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"content is not encodable as UTF-8: {e}") from None
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    raise TypeError(f"content must be str or bytes, got {type_name(content)}")


def _meta(meta: Any) -> Optional[bytes]:
    if meta is None:
        return None
    if not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a dict of str to str, got {type_name(meta)}")
    if not meta:
        return None
    parts: List[bytes] = []
    for k, v in meta.items():
        kb = c_text(k, "meta key") if isinstance(k, str) else None
        if kb is None:
            raise TypeError(f"meta keys must be str, got {type_name(k)}")
        if not isinstance(v, str):
            raise TypeError(f"meta value of {k!r} must be a str, got {type_name(v)}")
        vb = c_text(v, f"meta value of {k!r}")
        assert vb is not None
        parts.append(kb + b"\0" + vb + b"\0")
    return b"".join(parts)


def _priority(p: Any) -> int:
    if p.__class__ is int and -INT64_MAX - 1 <= p <= INT64_MAX:
        return p  # type: ignore[no-any-return]
    return check_int(p, "priority", -INT64_MAX - 1, INT64_MAX)


def _tokens(t: Any) -> int:
    if t is None:
        return -1
    if t.__class__ is int and 0 <= t <= INT64_MAX:
        return t  # type: ignore[no-any-return]
    return check_int(t, "tokens", 0, INT64_MAX)


def _pinned(p: Any) -> int:
    if p is False:
        return 0
    if p is True:
        return 1
    raise TypeError(f"pinned must be a bool, got {type_name(p)}")


def _estimated(n: Any) -> int:
    """An estimator's answer: a number of tokens from 0 to 2**63 - 1 (a
    fraction rounds up)."""
    if not isinstance(n, bool) and isinstance(n, int) and 0 <= n <= INT64_MAX:
        return n
    if isinstance(n, float) and math.isfinite(n) and 0 <= n <= INT64_MAX:
        return min(math.ceil(n), INT64_MAX)
    raise ValueError(f"the estimator must return a non-negative number of tokens (at most 2^63-1), got {n!r}")


def _input(m: Mapping[str, Any], what: str) -> Tuple["_lib.StoreInput", List[Any]]:
    """A C input from a dict of add's fields (and what keeps it alive)."""
    if not isinstance(m, Mapping):
        raise TypeError(f"{what} must be a dict of message fields, got {type_name(m)}")
    unknown = [k for k in m if k not in _INPUT_FIELDS]
    if unknown:
        raise ValueError(f"{what} has unknown field {unknown[0]!r} (accepted: {', '.join(_INPUT_FIELDS)})")
    inp = _lib.StoreInput()
    keep: List[Any] = []
    inp.role = _role(m.get("role", ""))
    content = _content(m.get("content", b""))
    cbuf = ctypes.create_string_buffer(content, len(content) + 1)
    keep.append(cbuf)
    inp.content = ctypes.cast(cbuf, ctypes.c_void_p)
    inp.content_len = len(content)
    inp.source = c_text(m.get("source"), "source")
    inp.group = c_text(m.get("group"), "group")
    inp.pinned = _pinned(m.get("pinned", False))
    inp.priority = _priority(m.get("priority", 0))
    t = _tokens(m.get("tokens"))
    inp.has_tokens = 1 if t >= 0 else 0
    inp.tokens = max(t, 0)
    packed = _meta(m.get("meta"))
    if packed:
        items = packed.split(b"\0")
        n = (len(items) - 1) // 2
        arr = (_lib.StoreMeta * n)()
        for i in range(n):
            arr[i].key = items[2 * i]
            arr[i].value = items[2 * i + 1]
        keep.append(arr)
        inp.meta = ctypes.cast(arr, ctypes.c_void_p)
        inp.meta_count = n
    keep.append(inp)
    return inp, keep


# ---------------------------------------------------------------- options


def _count_limit(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{what} must be an int, got {type_name(v)}")
    if v < 0:
        raise ValueError(f"{what} {v} is below the minimum {1 if what == 'max_messages' else 0}")
    if v > INT64_MAX:
        raise ValueError(f"{what} {v} is above the maximum {INT64_MAX}")
    return v


def _limits_from(lim: "_lib.StoreLimits", given: Mapping[str, Any]) -> None:
    """Set the fields of `lim` that `given` names (the others stay)."""
    for k, v in given.items():
        if k == "max_messages":
            lim.max_messages = _count_limit(v, k)
        elif k == "max_message_size":
            lim.max_message_size_bytes = size(v, what=k)
        elif k == "max_total_size":
            lim.max_total_size_bytes = size(v, what=k)
        elif k == "max_tokens":
            lim.max_tokens = 0 if v is None or v is False else _count_limit(v, k)
        elif k == "warn_at":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"warn_at must be a number (0 < warn_at <= 1), got {type_name(v)}")
            lim.warn_at = float(v)
        else:  # pragma: no cover - callers pass only the five names
            raise ValueError(f"unknown limit {k!r}")


_LIMIT_KEYS = ("max_messages", "max_message_size", "max_total_size", "max_tokens", "warn_at")


def _change_error(code: str) -> type:
    """The exception class for a refused change with errno name `code`."""
    if code == "EBUSY":
        return StoreBusyError
    if code == "ECLOSED":
        return StoreClosedError
    return StoreError


def _check_callable(v: Any, what: str) -> None:
    if v is not None and not callable(v):
        raise TypeError(f"{what} must be callable or None, got {type_name(v)}")


def _strategy_name(fn: Any) -> str:
    n = getattr(fn, "__name__", "")
    return n if isinstance(n, str) and n.isidentifier() and len(n) < 60 else "custom"


class Store:
    """A bounded context store (see the module docstring).

    Args:
        name: the store's name for messages, logs, archive lines and
            snapshots: 1 to 64 characters from ``A-Z a-z 0-9 . _ -`` (not
            ``"."`` or ``".."``); default ``"store"``.
        max_messages: at most this many messages (>= 1).
        max_message_size: each message's accounted size at most this (a
            size: bytes or ``"64K"``; >= 1024).
        max_total_size: the sum of accounted sizes at most this (>= 1024).
        max_tokens: at most this many tokens in all; None (or 0) = no limit.
        warn_at: the fraction of each limit (0 < warn_at <= 1) at which a
            warning fires, once per upward crossing.
        on_full: ``"error"`` (the seed's behaviour: refuse the add) or
            ``"prune"`` (run the strategy to make room, then add; all or
            nothing).
        strategy: ``"oldest"`` (default), a built-in name such as
            ``"keep_last(200)"``, a :class:`~mgrun.strategies.Builtin`, or a
            Python callable ``(view, need) -> ids | (ids, replacement)``
            (see :mod:`mgrun.strategies`).
        on_warn: ``on_warn(store, kind, stats)`` when a dimension
            (``"message_count"``, ``"total_size"``, ``"tokens"``) crosses
            ``warn_at``; runs after the change, may do anything; an
            exception in it is logged (``callback_failed``) and does not
            affect the add.
        on_evict: ``on_evict(store, messages, reason)`` with copies of the
            messages a strategy or prune evicts (``reason``:
            ``"strategy"`` / ``"prune"``), before they are freed; raising
            or returning False refuses the eviction (and the add or prune
            fails, the store unchanged).
        archive: a path: every evicted message is appended to it as one
            JSON line before it is freed; if it cannot be written, the
            eviction fails.
        estimator: ``estimator(content: bytes) -> int`` tokens of a message
            given without ``tokens``, called once at insert (default:
            ``ceil(len(content) / 4)``); a fraction rounds up.
        archive_fsync: fsync the archive after each batch.

    Raises:
        ValueError: an option out of range (naming the field, the value and
            the minimum) or an unknown option value; TypeError: an option of
            the wrong type.
    """

    # ------------------------------------------------------------ creation

    def __init__(
        self,
        name: Optional[str] = None,
        max_messages: int = 1000,
        max_message_size: SizeLike = "1M",
        max_total_size: SizeLike = "100M",
        max_tokens: Optional[int] = None,
        warn_at: float = 0.8,
        on_full: str = "error",
        strategy: StrategyLike = "oldest",
        on_warn: Optional[Callable[["Store", str, Stats], Any]] = None,
        on_evict: Optional[Callable[["Store", List[Message], str], Any]] = None,
        archive: Optional[Union[str, "os.PathLike[str]"]] = None,
        estimator: Optional[Callable[[bytes], Union[int, float]]] = None,
        *,
        archive_fsync: bool = False,
    ) -> None:
        self._blank()
        opts = self._options(name, on_full, strategy, on_warn, on_evict, archive, archive_fsync, estimator)
        _limits_from(opts.limits, {"max_messages": max_messages, "max_message_size": max_message_size,
                                   "max_total_size": max_total_size, "max_tokens": max_tokens, "warn_at": warn_at})
        lib = _lib.core()
        out = ctypes.c_void_p()
        err = errbuf()
        rc = lib.mg_store_new(ctypes.byref(opts), ctypes.byref(out), err, len(err))
        if rc < 0:
            self._raise_setup(rc, text_of(err))
        self._adopt(out.value, lib.mg_store_free)

    def _blank(self) -> None:
        """A closed, consistent object (so close / __del__ always work)."""
        self._ptr: Optional[int] = None
        self._raw: Optional[int] = None
        self._release_fn: Optional[Callable[[int], None]] = None
        self._lock: Optional[ContextManager[Any]] = None
        self._inflight: List[None] = []
        self._free_lock = threading.Lock()
        self._name = "store"
        self._strategy_label = "oldest"
        self._keep: Dict[str, Any] = {}
        self._owned = True
        self._log_events = True  # False: a wrapper (mgrun.context) logs them itself
        # Who makes the changes: None = the core, directly; a policy's store
        # (mgrun.runtime) routes them through its runtime instead.
        self._mut: Any = None
        self._add_fn: Optional[Callable[..., int]] = None

    def _adopt(self, ptr: int, release: Optional[Callable[[int], None]]) -> None:
        self._raw = ptr
        self._release_fn = release
        self._name = _lib.core().mg_store_name(ptr).decode()
        self._ptr = ptr

    @classmethod
    def _from_pointer(
        cls,
        ptr: int,
        *,
        lock: Optional[ContextManager[Any]] = None,
        release: Optional[Callable[[int], None]] = None,
    ) -> "Store":
        """Wrap an ``mg_store*`` this package did not create (a runtime's
        store). ``lock`` (reentrant: callbacks may read the store on the same
        thread) is held around each call into C; ``release(ptr)`` is called
        once by :meth:`close` (None: the pointer is borrowed and never
        released here). Its callbacks and strategy stay whatever its creator
        set; :meth:`set_strategy` accepts only ``"oldest"`` on it."""
        if not isinstance(ptr, int) or ptr <= 0:
            raise ValueError(f"_from_pointer needs a non-NULL mg_store pointer, got {ptr!r}")
        self = cls.__new__(cls)
        self._blank()
        self._owned = False
        self._lock = lock
        self._adopt(ptr, release)
        return self

    def _options(
        self,
        name: Optional[str],
        on_full: str,
        strategy: StrategyLike,
        on_warn: Any,
        on_evict: Any,
        archive: Any,
        archive_fsync: bool,
        estimator: Any,
    ) -> "_lib.StoreOptions":
        """mg_store_options from the arguments; the C objects they point to
        are kept in self._keep for the store's life."""
        lib = _lib.core()
        opts = _lib.StoreOptions()
        lib.mg_store_options_init(ctypes.byref(opts))
        if name is not None:
            nb = c_text(name, "name")
            assert nb is not None
            err = errbuf()
            if lib.mg_name_check(b"store name", nb, len(nb), err, len(err)) < 0:
                raise ValueError(text_of(err))
            self._keep["name"] = nb
            opts.name = nb
            self._name = name
        if not isinstance(on_full, str):
            raise TypeError(f"on_full must be \"error\" or \"prune\", got {type_name(on_full)}")
        if on_full not in _ON_FULL:
            raise ValueError(f"on_full must be \"error\" or \"prune\", got {on_full!r}")
        opts.on_full = _ON_FULL[on_full]
        self._set_strategy_opts(opts, strategy)
        _check_callable(on_warn, "on_warn")
        _check_callable(on_evict, "on_evict")
        _check_callable(estimator, "estimator")
        warn_cb = _lib.WARN_FN(self._warn_trampoline(on_warn))
        self._keep["on_warn"] = warn_cb
        opts.on_warn = ctypes.cast(warn_cb, ctypes.c_void_p)
        if on_evict is not None:
            ev = _lib.EVICT_FN(self._evict_trampoline(on_evict))
            self._keep["on_evict"] = ev
            opts.on_evict = ctypes.cast(ev, ctypes.c_void_p)
        if estimator is not None:
            es = _lib.ESTIMATE_FN(self._estimate_trampoline(estimator))
            self._keep["estimator"] = es
            opts.estimate_tokens = ctypes.cast(es, ctypes.c_void_p)
        if archive is not None:
            ap = c_path(archive, "archive")
            self._keep["archive"] = ap
            opts.archive_path = ap
        if not isinstance(archive_fsync, bool):
            raise TypeError(f"archive_fsync must be a bool, got {type_name(archive_fsync)}")
        opts.archive_fsync = 1 if archive_fsync else 0
        return opts

    def _resolve_strategy(self, strategy: StrategyLike) -> Tuple[Optional[Any], Optional["_lib.StoreBuiltin"], str]:
        """(callback or None, builtin struct or None, name) of a strategy
        argument."""
        if isinstance(strategy, str):
            strategy = Builtin(strategy)
        if isinstance(strategy, Builtin):
            b = strategy._parse()
            if b.kind == 0:  # oldest: the store's fast path
                return None, None, "oldest"
            return None, b, b.name.decode()
        if callable(strategy):
            return _lib.STRATEGY_FN(self._strategy_trampoline(strategy)), None, _strategy_name(strategy)
        raise TypeError(f"strategy must be \"oldest\", a built-in strategy name such as \"keep_last(200)\", a "
                        f"mgrun.strategies.Builtin or a callable(view, need); got {type_name(strategy)}")

    def _set_strategy_opts(self, opts: "_lib.StoreOptions", strategy: StrategyLike) -> None:
        cb, b, label = self._resolve_strategy(strategy)
        self._strategy_label = label
        if b is not None:
            self._keep["strategy"] = b
            _lib.core().mg_store_builtin_options(ctypes.byref(b), ctypes.byref(opts))
        elif cb is not None:
            nb = label.encode()
            self._keep["strategy"] = cb
            self._keep["strategy_name"] = nb
            opts.strategy = ctypes.cast(cb, ctypes.c_void_p)
            opts.strategy_name = nb

    def _raise_setup(self, rc: int, msg: str) -> None:
        code = err_name(rc)
        cause = _take_pending()
        if cause is not None and not isinstance(cause, Exception):
            raise cause
        if code == "EINVAL":
            raise ValueError(msg) from cause
        raise StoreError(msg, code) from cause

    # ------------------------------------------------------------ callbacks

    def _strategy_trampoline(self, fn: StrategyFn) -> Callable[..., int]:
        name = self._name

        def strategy(ud: Any, view: int, need: Any, plan: int, err: int, err_len: int) -> int:
            v = StoreView(view, name)
            try:
                _apply_plan(plan, fn(v, need_from_c(need.contents)))
                return 0
            except BaseException as e:  # noqa: B902 - it must not unwind through C
                return _callback_failed(e, err, err_len)
            finally:
                v._valid = False

        return strategy

    def _estimate_trampoline(self, fn: Callable[[bytes], Any]) -> Callable[..., int]:
        def estimate(ud: Any, inp: Any, tokens: Any, err: int, err_len: int) -> int:
            try:
                i = inp.contents
                content = ctypes.string_at(i.content, i.content_len) if i.content_len else b""
                tokens[0] = _estimated(fn(content))
                return 0
            except BaseException as e:  # noqa: B902
                return _callback_failed(e, err, err_len)

        return estimate

    def _evict_trampoline(self, fn: Callable[..., Any]) -> Callable[..., int]:
        wself = weakref.ref(self)

        def on_evict(ud: Any, view: int, batch: int, reason: int, err: int, err_len: int) -> int:
            try:
                lib = _lib.core()
                m = _lib.StoreMsg()
                msgs = []
                for i in range(lib.mg_store_batch_len(batch)):
                    lib.mg_store_batch_at(batch, i, ctypes.byref(m))
                    msgs.append(message_from_c(m))
                if fn(wself(), msgs, EVICT_REASONS.get(reason, "strategy")) is False:
                    _write_err(err, err_len, "on_evict returned False")
                    return _ESTRATEGY
                return 0
            except BaseException as e:  # noqa: B902
                return _callback_failed(e, err, err_len)

        return on_evict

    def _warn_trampoline(self, fn: Optional[Callable[..., Any]]) -> Callable[..., None]:
        wself = weakref.ref(self)

        def on_warn(ud: Any, store: int, kind: int, stats: Any) -> None:
            try:
                st = stats_from_c(stats.contents)
                me = wself()
                name = me._name if me is not None else ""
                if me is not None and me._log_events and _LOG.isEnabledFor(logging.WARNING):
                    cur, lim, util = {
                        0: (st.message_count, st.max_messages, st.message_count_utilization),
                        1: (st.total_size_bytes, st.max_total_size_bytes, st.total_size_utilization),
                    }.get(kind, (st.total_tokens, st.max_tokens or 0, st.token_utilization))
                    _log(_LOG, logging.WARNING, _WARN_EVENTS.get(kind, "approaching_token_limit"), store=name,
                         current=cur, limit=lim, utilization=util, warn_at=st.warn_at)
                if fn is not None:
                    fn(me, WARN_NAMES.get(kind, "tokens"), st)
            except BaseException as e:  # noqa: B902 - logged, the add stands
                _LOG.error("callback_failed store=%s callback=on_warn error=%s", self_name(wself), _exc_text(e),
                           exc_info=e, extra={"event": "callback_failed",
                                              "fields": {"callback": "on_warn", "error": _exc_text(e)}})
                if isinstance(e, KeyboardInterrupt):
                    _thread.interrupt_main()

        return on_warn

    # ------------------------------------------------------------ lifetime

    def _enter(self) -> int:
        self._inflight.append(None)
        p = self._ptr
        if p is None:
            self._exit()
            raise StoreClosedError(f"store {self._name!r} is closed", "ECLOSED")
        return p

    def _exit(self) -> None:
        self._inflight.pop()
        if self._ptr is None and not self._inflight:
            self._release()

    def _release(self) -> None:
        with self._free_lock:
            raw, self._raw = self._raw, None
        if raw is not None and self._release_fn is not None:
            self._release_fn(raw)

    def _locked(self) -> ContextManager[Any]:
        return self._lock if self._lock is not None else nullcontext()

    def close(self) -> None:
        """Free the store and every message (no archive, no callbacks).
        Idempotent. Called from inside one of the store's callbacks, or
        while another thread is in a call, it takes effect when the last
        call into the store returns. Methods of a closed store raise
        StoreClosedError; ``name`` still works."""
        self._ptr = None
        if not self._inflight:
            self._release()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._ptr is None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_raw", None) is not None and not self._inflight:
                self._ptr = None
                self._release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # ------------------------------------------------------------ adding

    def add(
        self,
        role: str,
        content: Union[str, bytes],
        *,
        source: Optional[str] = None,
        group: Optional[str] = None,
        pinned: bool = False,
        priority: int = 0,
        tokens: Optional[int] = None,
        meta: Optional[Mapping[str, str]] = None,
    ) -> int:
        """Add a copy of a message and return its id.

        ``content`` is ``str`` (stored as UTF-8) or ``bytes`` (any bytes);
        ``role``, ``source``, ``group`` and ``meta`` (at most 32 str -> str
        entries) are text without NUL characters. ``group``: messages
        sharing it are evicted together, never split. ``pinned``: never
        evicted by a strategy or prune. ``tokens``: given, or estimated once
        now by the store's estimator.

        Atomic: a refused add leaves the store unchanged (messages, totals,
        counters but ``rejected_count``, even the next id).

        Raises:
            BoundsExceededError: a limit would be crossed (``on_full=
                "error"``) or room could not be made (``code`` says why:
                ``"ESTRATEGY"``, ``"EPINNED"``…; a Python strategy's or
                ``on_evict``'s exception is the cause).
            StoreBusyError: called from inside one of the store's callbacks.
            StoreError: the estimator failed (its exception is the cause),
                the token total or the ids would pass 2**63 - 1.
            TypeError, ValueError: a field of the wrong type or value.
        """
        inflight = self._inflight
        inflight.append(None)
        try:
            p = self._ptr
            if p is None:
                raise StoreClosedError(f"store {self._name!r} is closed", "ECLOSED")
            r = _ROLES.get(role) if role.__class__ is str else None
            if r is None:
                r = _role(role)
            c = content if content.__class__ is bytes else _content(content)
            s = None if source is None else c_text(source, "source")
            g = None if group is None else c_text(group, "group")
            pn = 0 if pinned is False else _pinned(pinned)
            pr = priority if priority.__class__ is int and -INT64_MAX - 1 <= priority <= INT64_MAX \
                else _priority(priority)
            tk = -1 if tokens is None else _tokens(tokens)
            if meta is None:
                mp = None
                ml = 0
            else:
                mp = _meta(meta)
                ml = len(mp) if mp else 0
            try:
                err = _tls.err
            except AttributeError:
                err = _errstruct()
            lock = self._lock
            fn = self._add_fn or _add_flat
            if lock is None:
                rc = fn(p, r, c, len(c), s, g, pn, pr, tk, mp, ml, err)
            else:
                with lock:
                    rc = fn(p, r, c, len(c), s, g, pn, pr, tk, mp, ml, err)
            if rc > 0:
                return rc  # type: ignore[no-any-return]
            raise self._add_error(int(rc), err)
        finally:
            inflight.pop()
            if self._ptr is None and not inflight:
                self._release()

    def _add_error(self, rc: int, err: "_lib.StoreError") -> BaseException:
        """The exception for a failed add (or make_room), chained to a
        callback's exception; logs the seed's event."""
        code = err_name(rc)
        msg = text_of(err.message) or f"store {self._name!r}: {_lib.core().mg_strerror(rc).decode()}"
        cause = _take_pending()
        if cause is not None and not isinstance(cause, Exception):
            return cause  # KeyboardInterrupt, SystemExit: as they are
        lt = err.limit_type
        exc: BaseException
        quiet = not self._log_events
        if lt and code != "EBUSY":
            exc = BoundsExceededError(msg, LIMIT_NAMES.get(lt, "none"), err.current, err.limit,
                                      {"store": self._name, "state": text_of(err.details)}, code)
            if not quiet:
                _log(_LOG, logging.ERROR, _LIMIT_EVENTS.get(lt, "store_add_failed"), store=self._name,
                     limit_type=LIMIT_NAMES.get(lt, "none"), current=err.current, limit=err.limit, error=msg)
            if code != "ELIMIT" and not quiet:
                _log(_LOG, logging.ERROR, "store_eviction_failed", store=self._name,
                     strategy=self._strategy_label, error=msg)
        elif code == "EBUSY":
            exc = StoreBusyError(msg, code)
        elif code == "ECLOSED":
            exc = StoreClosedError(msg, code)
        elif code == "EINVAL" and cause is None:
            exc = ValueError(msg)
        else:
            exc = StoreError(msg, code)
            if not quiet:
                _log(_LOG, logging.ERROR, "store_add_failed", store=self._name, code=code, error=msg)
        exc.__cause__ = cause
        return exc

    def make_room(self, count: int = 0, bytes: int = 0, tokens: int = 0) -> int:
        """Run the store's strategy to free at least `count` messages,
        `bytes` accounted bytes and `tokens` tokens, as ``on_full="prune"``
        does before an add; all or nothing. Returns the number of messages
        evicted. Raises StoreError (``code`` ``"ESTRATEGY"``, ``"EPINNED"``…)
        when it cannot."""
        need = _lib.StoreNeed()
        need.count = check_int(count, "count", 0, INT64_MAX)
        need.bytes = check_int(bytes, "bytes", 0, INT64_MAX)
        need.tokens = check_int(tokens, "tokens", 0, INT64_MAX)
        need.limit_type = 0
        out = ctypes.c_uint64()
        err = _errstruct()
        p = self._enter()
        try:
            with self._locked():
                rc = _lib.core().mg_store_make_room(p, ctypes.byref(need), ctypes.byref(out), err)
        finally:
            self._exit()
        if rc < 0:
            code = err_name(rc)
            cause = _take_pending()
            if cause is not None and not isinstance(cause, Exception):
                raise cause
            cls = StoreBusyError if code == "EBUSY" else StoreError
            raise cls(text_of(err.message), code) from cause
        return out.value

    # ------------------------------------------------------------ reading

    @property
    def name(self) -> str:
        """The store's name (also after close)."""
        return self._name

    @property
    def strategy(self) -> str:
        """The strategy's name: ``"oldest"``, ``"keep_last(200)"``, a
        callable's ``__name__``…"""
        return self._strategy_label

    def __len__(self) -> int:
        p = self._enter()
        try:
            with self._locked():
                return int(_lib.core().mg_store_len(p))
        finally:
            self._exit()

    def len(self) -> int:
        """Number of messages (as ``len(store)``)."""
        return len(self)

    def get(self, id: int) -> Optional[Message]:
        """A copy of message `id`, or None when there is none."""
        if isinstance(id, bool) or not isinstance(id, int):
            raise TypeError(f"a message id is an int, got {type_name(id)}")
        if id <= 0 or id >= 1 << 64:
            return None
        p = self._enter()
        try:
            with self._locked():
                return copy_message(p, id, False)
        finally:
            self._exit()

    def __contains__(self, id: object) -> bool:
        return isinstance(id, int) and not isinstance(id, bool) and self.get(id) is not None

    def __iter__(self) -> Iterator[Message]:
        """The messages present when iteration starts, oldest first (copies;
        those removed meanwhile are skipped, those added meanwhile are not
        visited: changing the store inside the loop is safe; closing it
        raises StoreClosedError at the next step)."""
        p = self._enter()
        try:
            with self._locked():
                ids = store_ids(p)
        finally:
            self._exit()
        for i in ids:
            m = self._get_quiet(i)
            if m is not None:
                yield m

    def _get_quiet(self, id: int) -> Optional[Message]:
        p = self._enter()  # a store closed during the loop raises
        try:
            with self._locked():
                return copy_message(p, id, False)
        finally:
            self._exit()

    def messages(self) -> List[Message]:
        """Copies of every message, oldest first."""
        return list(self)

    def ids(self) -> List[int]:
        """Every id, oldest first."""
        p = self._enter()
        try:
            with self._locked():
                return store_ids(p)
        finally:
            self._exit()

    def stats(self) -> Stats:
        """Usage statistics (:class:`Stats`): the seed's ten fields, tokens,
        the byte split, pins, groups and counters. Never raises for
        utilisation above 100 %."""
        st = _lib.StoreStats()
        p = self._enter()
        try:
            with self._locked():
                _lib.core().mg_store_get_stats(p, ctypes.byref(st))
        finally:
            self._exit()
        return stats_from_c(st)

    def limits(self) -> Dict[str, Any]:
        """The limits in force: ``max_messages``, ``max_message_size``,
        ``max_total_size`` (bytes), ``max_tokens`` (None = none),
        ``warn_at``."""
        lim = _lib.StoreLimits()
        p = self._enter()
        try:
            with self._locked():
                _lib.core().mg_store_get_limits(p, ctypes.byref(lim))
        finally:
            self._exit()
        return {"max_messages": lim.max_messages, "max_message_size": lim.max_message_size_bytes,
                "max_total_size": lim.max_total_size_bytes, "max_tokens": lim.max_tokens or None,
                "warn_at": lim.warn_at}

    def check(self) -> bool:
        """Verify every invariant of the store (order list, indexes, group
        rings, totals equal to the sums, limits). Returns True; raises
        StoreError (code ``"ECORRUPT"``) with a description otherwise."""
        err = errbuf()
        p = self._enter()
        try:
            with self._locked():
                rc = _lib.core().mg_store_check(p, err, len(err))
        finally:
            self._exit()
        if rc < 0:
            raise StoreError(f"store {self._name!r} is inconsistent: {text_of(err)}", err_name(rc))
        return True

    # ------------------------------------------------------------ removing

    def _simple(self, fn: Callable[[int, Any], int]) -> Tuple[int, str]:
        err = errbuf()
        p = self._enter()
        try:
            with self._locked():
                rc = fn(p, err)
        finally:
            self._exit()
        return rc, text_of(err)

    def remove(self, id: int) -> None:
        """Remove message `id` only (not its group: an explicit request);
        not archived. Raises KeyError when there is no such message."""
        if isinstance(id, bool) or not isinstance(id, int):
            raise TypeError(f"a message id is an int, got {type_name(id)}")
        if id <= 0 or id >= 1 << 64:
            raise KeyError(id)
        lib = _lib.core()
        mut = self._mut or lib
        rc, msg = self._simple(lambda p, err: mut.mg_store_remove(p, id, err, len(err)))
        if rc < 0:
            code = err_name(rc)
            if code == "ENOENT":
                raise KeyError(id)
            raise _change_error(code)(msg, code)

    def clear(self) -> int:
        """Remove every message, pinned ones too (not archived; ids are not
        reused). Returns the number removed."""
        out = ctypes.c_uint64()
        p = self._enter()
        try:
            with self._locked():
                rc = (self._mut or _lib.core()).mg_store_clear(p, ctypes.byref(out))
        finally:
            self._exit()
        if rc < 0:
            code = err_name(rc)
            if code == "ECLOSED":
                raise StoreClosedError(f"store {self._name!r} is closed", code)
            raise StoreBusyError(f"store {self._name!r} is busy: no change from inside its own callback", code)
        return out.value

    def prune(self, keep_count: Optional[int] = None) -> int:
        """Keep the newest `keep_count` messages (default ``max_messages //
        2``, as the seed) plus every pinned message plus every group with a
        member among those kept (a group straddling the boundary is kept
        whole); evict the rest through ``on_evict`` and the archive.
        Returns the true number removed (0 when nothing was). Raises
        ValueError for a negative or non-integral `keep_count`, StoreError
        when ``on_evict`` or the archive refuses (the store unchanged)."""
        if keep_count is None:
            keep = _PRUNE_DEFAULT
        elif keep_count.__class__ is int and 0 <= keep_count <= INT64_MAX:
            keep = keep_count
        else:
            if isinstance(keep_count, bool) or not isinstance(keep_count, (int, float)):
                raise TypeError(f"keep_count must be a non-negative integer or None, got {type_name(keep_count)}")
            if keep_count != keep_count or keep_count < 0 or keep_count != int(keep_count) or \
                    keep_count > INT64_MAX:
                raise ValueError(f"keep_count must be a non-negative integer, got {keep_count!r}")
            keep = int(keep_count)
        out = ctypes.c_uint64()
        err = errbuf()
        p = self._enter()
        try:
            with self._locked():
                rc = (self._mut or _lib.core()).mg_store_prune(p, keep, ctypes.byref(out), err, len(err))
                left = int(_lib.core().mg_store_len(p)) if rc == 0 and self._log_events and \
                    _LOG.isEnabledFor(logging.INFO) else -1
        finally:
            self._exit()
        if rc < 0:
            code = err_name(rc)
            cause = _take_pending()
            if cause is not None and not isinstance(cause, Exception):
                raise cause
            raise _change_error(code)(text_of(err), code) from cause
        if left >= 0:
            _log(_LOG, logging.INFO, "messages_pruned", store=self._name, removed=out.value, kept=left)
        return out.value

    # ------------------------------------------------------------ settings

    def set_limits(
        self,
        *,
        max_messages: Optional[int] = None,
        max_message_size: Optional[SizeLike] = None,
        max_total_size: Optional[SizeLike] = None,
        max_tokens: Optional[Union[int, bool]] = None,
        warn_at: Optional[float] = None,
    ) -> None:
        """Change limits (those not given keep their value; ``max_tokens=0``
        or False removes the token limit). Lowering one below the current
        use evicts nothing: stats report utilisation above 1.0 and later
        adds must make room first. Raises ValueError as the constructor."""
        given = {k: v for k, v in (("max_messages", max_messages), ("max_message_size", max_message_size),
                                   ("max_total_size", max_total_size), ("max_tokens", max_tokens),
                                   ("warn_at", warn_at)) if v is not None}
        lib = _lib.core()
        lim = _lib.StoreLimits()
        err = errbuf()
        p = self._enter()
        try:
            with self._locked():
                lib.mg_store_get_limits(p, ctypes.byref(lim))
                _limits_from(lim, given)
                rc = (self._mut or lib).mg_store_set_limits(p, ctypes.byref(lim), err, len(err))
        finally:
            self._exit()
        if rc < 0:
            code = err_name(rc)
            if code == "EINVAL":
                raise ValueError(text_of(err))
            raise _change_error(code)(text_of(err), code)

    def set_strategy(self, strategy: StrategyLike) -> None:
        """Replace the strategy (as the constructor's ``strategy``)."""
        if not self._owned and strategy not in ("oldest",) and not (isinstance(strategy, Builtin) and
                                                                     strategy.name == "oldest"):
            raise StoreError(f"store {self._name!r} belongs to its creator: its strategy can only be set to "
                             "\"oldest\" from here", "EPERM")
        cb, b, label = self._resolve_strategy(strategy)
        lib = _lib.core()
        p = self._enter()
        try:
            with self._locked():
                if b is not None:
                    rc = lib.mg_store_builtin_set(p, ctypes.byref(b))
                else:
                    nb = label.encode()
                    rc = lib.mg_store_set_strategy(p, ctypes.cast(cb, ctypes.c_void_p) if cb else None, None, nb)
                if rc == 0:  # the old strategy's C objects may go now
                    self._keep["strategy"] = b if b is not None else cb
                    self._strategy_label = label
        finally:
            self._exit()
        if rc < 0:
            raise StoreBusyError(f"store {self._name!r} is busy: no change from inside its own callback",
                                 err_name(rc))

    def set_on_full(self, on_full: str) -> None:
        """Change ``on_full`` (``"error"`` or ``"prune"``)."""
        if not isinstance(on_full, str) or on_full not in _ON_FULL:
            raise ValueError(f"on_full must be \"error\" or \"prune\", got {on_full!r}")
        p = self._enter()
        try:
            with self._locked():
                rc = _lib.core().mg_store_set_on_full(p, _ON_FULL[on_full])
        finally:
            self._exit()
        if rc < 0:
            raise StoreBusyError(f"store {self._name!r} is busy: no change from inside its own callback",
                                 err_name(rc))

    # ------------------------------------------------------------ snapshots

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Write a snapshot crash-safely (a temp file, fsync, rename, fsync
        of the directory): a crash leaves the old file or the new one.
        Raises StoreError with the errno's name as ``code``."""
        pb = c_path(path, "path")
        lib = _lib.core()
        rc, msg = self._simple(lambda p, err: lib.mg_store_save(p, pb, err, len(err)))
        if rc < 0:
            raise StoreError(msg, err_name(rc))

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"], **overrides: Any) -> "Store":
        """Restore a snapshot: name, limits, next id and messages (binary
        content included). ``overrides`` are the constructor's options:
        callbacks, strategy, archive, ``on_full``, ``name``; limits given
        here replace the file's. Raises SnapshotError (``code``
        ``"ECORRUPT"``, ``"EVERSION"`` or the errno's name) naming the file
        when it is not a readable snapshot; ValueError / TypeError for a bad
        option."""
        accepted = ("name", "on_full", "strategy", "on_warn", "on_evict", "archive", "archive_fsync", "estimator",
                    *_LIMIT_KEYS)
        for k in overrides:
            if k not in accepted:
                raise TypeError(f"Store.load() got an unexpected option {k!r} (accepted: {', '.join(accepted)})")
        pb = c_path(path, "path")
        self = cls.__new__(cls)
        self._blank()
        opts = self._options(overrides.get("name"), overrides.get("on_full", "error"),
                             overrides.get("strategy", "oldest"), overrides.get("on_warn"),
                             overrides.get("on_evict"), overrides.get("archive"),
                             overrides.get("archive_fsync", False), overrides.get("estimator"))
        limits = {k: overrides[k] for k in _LIMIT_KEYS if k in overrides}
        check = _lib.StoreLimits()
        _limits_from(check, limits)  # type errors before the file is read
        lib = _lib.core()
        out = ctypes.c_void_p()
        err = errbuf()
        rc = lib.mg_store_load(pb, ctypes.byref(opts), ctypes.byref(out), err, len(err))
        if rc < 0:
            code = err_name(rc)
            cause = _take_pending()
            if cause is not None and not isinstance(cause, Exception):
                raise cause
            if code == "EINVAL":
                raise ValueError(text_of(err)) from cause
            raise SnapshotError(text_of(err), code) from cause
        self._adopt(out.value, lib.mg_store_free)
        if limits:
            try:
                self.set_limits(**limits)
            except BaseException:
                self.close()
                raise
        return self

    def __repr__(self) -> str:
        if self._ptr is None:
            return f"<mgrun.Store {self._name!r} (closed)>"
        return f"<mgrun.Store {self._name!r} ({len(self)} messages, strategy {self._strategy_label!r})>"


def self_name(wself: "weakref.ReferenceType[Store]") -> str:
    s = wself()
    return s._name if s is not None else ""


def _apply_plan(plan: int, result: Any) -> None:
    """Hand a Python strategy's answer to the plan (errors in the ids —
    unknown, pinned, the incoming group — poison the plan and C reports
    them)."""
    if result is None:
        raise TypeError("the strategy returned None: it must return the ids to evict (an iterable of ints), or "
                        "(ids, replacement)")
    repl = None
    if isinstance(result, tuple) and len(result) == 2 and not isinstance(result[0], int) and \
            (result[1] is None or isinstance(result[1], Mapping)):
        result, repl = result
    if isinstance(result, (str, bytes, Mapping)) or not hasattr(result, "__iter__"):
        raise TypeError(f"the strategy must return the ids to evict (an iterable of ints), or (ids, replacement); "
                        f"got {type_name(result)}")
    lib = _lib.core()
    for i in result:
        if i.__class__ is not int or i <= 0 or i >= 1 << 64:
            raise TypeError(f"the strategy returned {i!r}, which is not a message id (a positive int)")
        lib.mg_store_plan_evict(plan, i)
    if repl is not None:
        inp, keep = _input(repl, "the strategy's replacement")
        lib.mg_store_plan_replace(plan, ctypes.byref(inp))
        del keep


def _bind() -> Callable[..., int]:
    return _lib.core().mg_store_add_flat  # type: ignore[no-any-return]


class _LazyAdd:
    """mg_store_add_flat, looked up at the first add (importing the package
    does not load the library)."""

    def __call__(self, *a: Any) -> int:
        global _add_flat
        _add_flat = _bind()
        return _add_flat(*a)


_add_flat: Callable[..., int] = _LazyAdd()
