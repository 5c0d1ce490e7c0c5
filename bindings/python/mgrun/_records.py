"""The store's value types — messages, stats, what a strategy must free,
its read-only view and units — and their conversion from C (not public:
the names are exported by :mod:`mgrun.store`)."""

from __future__ import annotations

import ctypes
import errno
import struct
import threading
import time as _time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

from . import _lib
from .errors import StoreError

LIMIT_NAMES = {0: "none", 1: "message_size", 2: "message_count", 3: "total_size", 4: "tokens"}
WARN_NAMES = {0: "message_count", 1: "total_size", 2: "tokens"}
EVICT_REASONS = {0: "strategy", 1: "prune"}

MSG_OVERHEAD = 256
"""Accounted bytes per message on top of what it holds."""


@dataclass(frozen=True)
class Message:
    """A copy of a stored message.

    ``size`` is its accounted size: ``len(content) + len(role) +
    len(source) + len(group)`` (in UTF-8 bytes) + the meta's keys and values
    with a NUL after each + 256 (``MSG_OVERHEAD``).
    """

    id: int
    """Assigned at insert, increasing, never reused."""
    role: str
    content: bytes
    """The bytes stored (a ``str`` given to ``add`` is stored as UTF-8;
    ``text`` decodes it)."""
    source: Optional[str]
    group: Optional[str]
    """Messages sharing a group are evicted together; None = none."""
    pinned: bool
    priority: int
    tokens: int
    time: float
    """Unix seconds at insert."""
    size: int
    meta: Dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """``content`` decoded as UTF-8 (raises UnicodeDecodeError on
        binary content)."""
        return self.content.decode("utf-8")


@dataclass(frozen=True)
class Stats:
    """Usage statistics of a store: the seed's ten fields first, then
    tokens, the byte split, pins, groups and counters since creation.
    Utilisations are plain ratios and may exceed 1.0 after a limit was
    lowered (they never raise); ``near_*`` is utilisation >= ``warn_at``."""

    message_count: int
    total_size_bytes: int
    largest_message_bytes: int
    max_messages: int
    max_message_size_bytes: int
    max_total_size_bytes: int
    message_count_utilization: float
    total_size_utilization: float
    near_message_limit: bool
    near_size_limit: bool
    total_tokens: int
    max_tokens: Optional[int]
    """None when the store has no token limit."""
    token_utilization: float
    near_token_limit: bool
    payload_bytes: int
    overhead_bytes: int
    pinned_count: int
    pinned_bytes: int
    group_count: int
    warn_at: float
    next_id: int
    evicted_count: int
    evicted_bytes: int
    archived_count: int
    removed_count: int
    replaced_count: int
    rejected_count: int

    def as_dict(self) -> Dict[str, Any]:
        """The fields as a dict."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


_BOOL_STATS = {"near_message_limit", "near_size_limit", "near_token_limit"}
_STAT_NAMES = [n for n, _ in _lib.STATS_FIELDS]


def stats_from_c(st: "_lib.StoreStats") -> Stats:
    kw: Dict[str, Any] = {}
    for n in _STAT_NAMES:
        v = getattr(st, n)
        kw[n] = bool(v) if n in _BOOL_STATS else v
    if not kw["max_tokens"]:
        kw["max_tokens"] = None
    return Stats(**kw)


@dataclass(frozen=True)
class Need:
    """What a strategy must free, at least, in each dimension (net of its
    replacement), and why."""

    count: int
    """Messages."""
    bytes: int
    """Accounted bytes."""
    tokens: int
    limit_type: str
    """The limit that made room necessary: ``"message_count"``,
    ``"total_size"``, ``"tokens"`` (``"none"`` for ``make_room``)."""
    group: Optional[str]
    """The group of the message being added: never evict it for its own
    member (the store refuses a plan that names it)."""
    adding: bool
    """True when making room for an add; False for ``make_room``."""
    incoming_bytes: int
    incoming_tokens: int


def need_from_c(n: "_lib.StoreNeed") -> Need:
    g = ctypes.string_at(n.group, n.group_len).decode("utf-8", "replace") if n.group and n.group_len else None
    return Need(count=n.count, bytes=n.bytes, tokens=n.tokens, limit_type=LIMIT_NAMES.get(n.limit_type, "none"),
                group=g, adding=bool(n.adding), incoming_bytes=n.incoming_bytes, incoming_tokens=n.incoming_tokens)


def _s(ptr: Optional[int], n: int) -> str:
    return ctypes.string_at(ptr, n).decode("utf-8", "replace") if n else ""


def message_from_c(m: "_lib.StoreMsg") -> Message:
    """A Message from a view (its pointers must still be valid)."""
    meta: Dict[str, str] = {}
    if m.meta_packed_len:
        parts = ctypes.string_at(m.meta_packed, m.meta_packed_len).split(b"\0")
        for i in range(0, len(parts) - 1, 2):
            meta[parts[i].decode("utf-8", "replace")] = parts[i + 1].decode("utf-8", "replace")
    return Message(
        id=m.id,
        role=_s(m.role, m.role_len),
        content=ctypes.string_at(m.content, m.content_len) if m.content_len else b"",
        source=_s(m.source, m.source_len) if m.source_len else None,
        group=_s(m.group, m.group_len) if m.group_len else None,
        pinned=bool(m.pinned),
        priority=m.priority,
        tokens=m.tokens,
        time=m.time,
        size=m.size_bytes,
        meta=meta,
    )


# ---------------------------------------------------------------- copies

_tls = threading.local()


def _copybuf(n: int) -> "ctypes.Array[ctypes.c_char]":
    buf = getattr(_tls, "buf", None)
    if buf is None or len(buf) < n:
        buf = ctypes.create_string_buffer(max(n, 4096))
        _tls.buf = buf
    return buf


def copy_message(ptr: int, key: int, by_pos: bool) -> Optional[Message]:
    """Copy message `key` (an id, or a position) under the store's lock;
    None when there is none."""
    lib = _lib.core()
    fn = lib.mg_store_copy_at if by_pos else lib.mg_store_copy
    m = _lib.StoreMsg()
    need = ctypes.c_size_t()
    buf = _copybuf(4096)
    while True:
        rc = fn(ptr, key, ctypes.byref(m), buf, len(buf), ctypes.byref(need))
        if rc == 0:
            return message_from_c(m)
        if rc == -errno.ENOBUFS:  # grow and try again (it may have grown meanwhile)
            buf = _copybuf(need.value + 1)
            continue
        return None


def store_ids(ptr: int) -> List[int]:
    """Every id, oldest first, in one consistent read."""
    lib = _lib.core()
    n = ctypes.c_size_t()
    cap = max(int(lib.mg_store_len(ptr)) + 16, 16)
    while True:
        arr = (ctypes.c_uint64 * cap)()
        rc = lib.mg_store_ids(ptr, arr, cap, ctypes.byref(n))
        if rc == 0:
            return arr[: n.value]
        cap = n.value + 16


# ---------------------------------------------------------------- units

_UNIT = struct.Struct("@QQQQQqdiPNPN")
assert _UNIT.size == ctypes.sizeof(_lib.StoreUnit) == 96, "mg_store_unit layout"
assert _lib.StoreUnit.pinned.offset == 56 and _lib.StoreUnit.group_len.offset == 88, "mg_store_unit layout"


class Units:
    """The store as eviction *units* — a message without a group, or a
    whole group (what evicting any member evicts) — in store order (by the
    oldest member), as parallel lists like the Lua ``view:units()``:

    ``id[k]`` (an id of the unit), ``first[k]`` (position of its oldest
    member, 0 = oldest), ``count[k]``, ``bytes[k]``, ``tokens[k]`` (what
    evicting it frees), ``pinned[k]`` (a member is pinned: never
    evictable), ``priority[k]`` (highest member), ``time[k]`` (newest
    member), ``role[k]`` (of the oldest member), ``group[k]`` (None when
    none); ``n`` units; ``of[pos]`` is the unit of the message at position
    ``pos``. ``role`` and ``group`` are read from the store when first
    used, so only while the strategy runs.
    """

    __slots__ = ("n", "id", "first", "count", "bytes", "tokens", "priority", "time", "pinned", "of", "_view",
                 "_strs", "_role", "_group")

    n: int
    id: List[int]
    first: List[int]
    count: List[int]
    bytes: List[int]
    tokens: List[int]
    priority: List[int]
    time: List[float]
    pinned: List[bool]
    of: List[int]

    def __init__(self, view_ptr: int, view: Optional["StoreView"] = None) -> None:
        lib = _lib.core()
        total = int(lib.mg_store_len(view_ptr))
        cap = max(total, 1)
        arr = (_lib.StoreUnit * cap)()
        of = (ctypes.c_uint64 * cap)()
        nu = ctypes.c_size_t()
        rc = lib.mg_store_units(view_ptr, arr, cap, of, cap, ctypes.byref(nu), None)
        if rc < 0:
            raise StoreError(f"cannot list the store's units: {lib.mg_strerror(rc).decode()}",
                             lib.mg_err_name(rc).decode())
        n = nu.value
        # every field is 8 bytes wide (pinned: an int and its padding), so
        # the columns are strided views of one buffer, read at C speed
        raw = memoryview(arr).cast("B")[: n * _UNIT.size]
        w = _UNIT.size // 8
        q, i64, f64, i32 = raw.cast("Q"), raw.cast("q"), raw.cast("d"), raw.cast("i")
        self.n = n
        self.id = q[0::w].tolist()
        self.first = q[1::w].tolist()
        self.count = q[2::w].tolist()
        self.bytes = q[3::w].tolist()
        self.tokens = q[4::w].tolist()
        self.priority = i64[5::w].tolist()
        self.time = f64[6::w].tolist()
        self.pinned = [p != 0 for p in i32[14 :: 2 * w].tolist()]
        rp, rl, gp, gl = q[8::w].tolist(), q[9::w].tolist(), q[10::w].tolist(), q[11::w].tolist()
        self.of = of[:total]
        self._view = view
        self._strs = (rp, rl, gp, gl)
        self._role: Optional[List[str]] = None
        self._group: Optional[List[Optional[str]]] = None

    def _read(self) -> None:
        if self._view is not None:
            self._view._p()  # raises once the strategy returned
        rp, rl, gp, gl = self._strs
        sa = ctypes.string_at
        cache: Dict[bytes, str] = {}
        roles = []
        for p, m in zip(rp, rl):
            b = sa(p, m) if m else b""
            r = cache.get(b)
            if r is None:
                r = cache[b] = b.decode("utf-8", "replace")
            roles.append(r)
        self._role = roles
        self._group = [sa(p, m).decode("utf-8", "replace") if m else None for p, m in zip(gp, gl)]

    @property
    def role(self) -> List[str]:
        """Role of each unit's oldest member."""
        if self._role is None:
            self._read()
        assert self._role is not None
        return self._role

    @property
    def group(self) -> List[Optional[str]]:
        """Group of each unit (None for a message without one)."""
        if self._group is None:
            self._read()
        assert self._group is not None
        return self._group

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"<mgrun.Units n={self.n}>"


# ---------------------------------------------------------------- views


class StoreView:
    """The read-only view of a store that a strategy gets. Valid only during
    the strategy's call (the store is locked meanwhile): a view kept and
    used later raises StoreError. Positions are 0-based (``view[0]`` is the
    oldest message; negative positions count from the newest)."""

    __slots__ = ("_ptr", "_valid", "_name")

    def __init__(self, ptr: int, name: str) -> None:
        self._ptr = ptr
        self._valid = True
        self._name = name

    def _p(self) -> int:
        if not self._valid:
            raise StoreError("store view used after its strategy returned: a view is valid only during the call "
                             "(copy what you need)")
        return self._ptr

    @property
    def name(self) -> str:
        """The store's name."""
        self._p()
        return self._name

    def __len__(self) -> int:
        return int(_lib.core().mg_store_len(self._p()))

    def len(self) -> int:
        """Number of messages (as ``len(view)``)."""
        return len(self)

    def _at(self, pos: int) -> "_lib.StoreMsg":
        p = self._p()
        n = int(_lib.core().mg_store_len(p))
        if not isinstance(pos, int) or isinstance(pos, bool):
            raise TypeError(f"a position must be an int, got {type(pos).__name__}")
        if pos < 0:
            pos += n
        if not 0 <= pos < n:
            raise IndexError(f"position {pos} is out of range (the store holds {n} message{'s' if n != 1 else ''})")
        m = _lib.StoreMsg()
        _lib.core().mg_store_at(p, pos, ctypes.byref(m))
        return m

    def __getitem__(self, pos: int) -> Message:
        return message_from_c(self._at(pos))

    def at(self, pos: int) -> Message:
        """The message at position `pos` (0 = oldest)."""
        return self[pos]

    def info(self, pos: int) -> Tuple[int, int, int, int, bool, float, Optional[str], str]:
        """``(id, size, tokens, priority, pinned, time, group, role)`` of the
        message at `pos`, without copying its content."""
        m = self._at(pos)
        return (m.id, m.size_bytes, m.tokens, m.priority, bool(m.pinned), m.time,
                _s(m.group, m.group_len) if m.group_len else None, _s(m.role, m.role_len))

    def get(self, id: int) -> Optional[Message]:
        """The message with this id, or None."""
        p = self._p()
        if not isinstance(id, int) or isinstance(id, bool) or id <= 0 or id >= 1 << 64:
            return None
        m = _lib.StoreMsg()
        if _lib.core().mg_store_get(p, id, ctypes.byref(m)) < 0:
            return None
        return message_from_c(m)

    def __iter__(self) -> Iterator[Message]:
        for i in range(len(self)):
            yield self[i]

    def messages(self) -> List[Message]:
        """Every message, oldest first."""
        return list(self)

    def units(self) -> Units:
        """The store as eviction units (see :class:`Units`), built in C."""
        return Units(self._p(), self)

    def stats(self) -> Stats:
        """The store's stats."""
        st = _lib.StoreStats()
        _lib.core().mg_store_get_stats(self._p(), ctypes.byref(st))
        return stats_from_c(st)

    def now(self) -> float:
        """Unix seconds: the clock of message times."""
        self._p()
        return _time.time()

    def __repr__(self) -> str:
        if not self._valid:
            return "<mgrun.StoreView (expired)>"
        return f"<mgrun.StoreView {self._name!r} ({len(self)} messages)>"
