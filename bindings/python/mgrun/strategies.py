"""Pruning strategies for :class:`mgrun.Store`.

A store with ``on_full="prune"`` runs its strategy when an add would cross
a limit (and on ``make_room``). What a Python store accepts as
``strategy=``:

- a **built-in strategy in C**, by name or from this module — the same
  strategies as the Lua library ``mg.strategies``, choosing exactly the same
  messages, at C speed and without taking the GIL:

  ============================== ==============================================
  ``"oldest"`` / ``oldest``       oldest first until the need is met (the
                                  store's own fast path; the default)
  ``"keep_last(N)"`` /            everything but the newest N unpinned
  ``keep_last(n)``                messages, at once, and more if need asks
  ``"lowest_priority_first"``     lowest priority first (a group counts with
                                  its highest member), oldest first among
                                  equals
  ``"older_than(S)"`` /           every unit whose newest message is older
  ``older_than(s, strict=False)`` than S seconds, then oldest first — unless
                                  strict
  ``"token_budget(N)"`` /         oldest first until the store holds at most N
  ``token_budget(n)``             tokens (before the new message)
  ``"user_turn_start"``           oldest first, then on until the kept
                                  history starts on a ``"user"`` turn
  ============================== ==============================================

- a **Python callable** ``strategy(view, need)`` that returns the ids to
  evict, or ``(ids, replacement)`` with one replacement message (a dict of
  :meth:`Store.add`'s fields, e.g. a summary). ``view`` is a read-only
  :class:`~mgrun.store.StoreView`, ``need`` a :class:`~mgrun.store.Need`.
  :func:`summarize` builds one.

Strategies written in Lua (``require("mg.strategies")``, a policy's own
functions) run only inside mgrun's Lua runtime, not in a Python store.

Whatever the strategy, C validates and applies its answer atomically: it
evicts each chosen message's whole group, refuses pinned messages, unknown
ids and the group of the message being added, and checks that enough was
freed; otherwise the add fails and the store is unchanged.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from . import _lib
from ._records import MSG_OVERHEAD, Message, Need, StoreView, Units
from ._util import check_int, errbuf, text_of, type_name

__all__ = [
    "Builtin",
    "BUILTIN_NAMES",
    "oldest",
    "keep_last",
    "lowest_priority_first",
    "older_than",
    "token_budget",
    "user_turn_start",
    "summarize",
    "units",
    "evictable",
    "enough",
    "Accumulator",
    "StrategyFn",
]

StrategyFn = Callable[[StoreView, Need], Any]
"""A Python strategy: ``(view, need) -> ids | (ids, replacement)``."""

BUILTIN_NAMES = ("oldest", "keep_last", "lowest_priority_first", "older_than", "token_budget", "user_turn_start")


class Builtin:
    """A built-in strategy in C (see the module docstring), parsed and
    checked when it is made: ``Builtin("keep_last(200)")``. A store copies
    it, so one Builtin can serve many stores."""

    __slots__ = ("spec", "name", "now")

    spec: str
    name: str
    """The canonical name, as messages quote it: ``"keep_last(200)"``."""
    now: Optional[float]
    """``older_than`` only: a fixed clock (unix seconds) instead of the real
    time, for tests."""

    def __init__(self, spec: str, *, now: Optional[float] = None, _trusted: bool = False) -> None:
        if not isinstance(spec, str):
            raise TypeError(f"a built-in strategy is a str such as \"keep_last(200)\", got {type_name(spec)}")
        self.spec = spec
        self.now = now
        # the module's own constants are known good: importing the package
        # must not load the library
        self.name = spec if _trusted else self._parse().name.decode()

    def _parse(self) -> "_lib.StoreBuiltin":
        """A fresh C struct for a store (which must keep it alive)."""
        b = _lib.StoreBuiltin()
        err = errbuf(512)
        if "\0" in self.spec or _lib.core().mg_store_builtin_parse(self.spec.encode(), ctypes.byref(b), err,
                                                                     len(err)) < 0:
            msg = text_of(err) or f"strategy {self.spec!r}: it holds a NUL character"
            raise ValueError(msg)
        if self.now is not None:
            b.now = float(self.now)
        return b

    def __repr__(self) -> str:
        return f"mgrun.strategies.Builtin({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Builtin) and (self.name, self.now) == (other.name, other.now)

    def __hash__(self) -> int:
        return hash((self.name, self.now))


oldest = Builtin("oldest", _trusted=True)
"""Oldest first until the need is met (the store's C fast path)."""
lowest_priority_first = Builtin("lowest_priority_first", _trusted=True)
"""Lowest priority first (a group counts with its highest member), oldest
first among equals."""
user_turn_start = Builtin("user_turn_start", _trusted=True)
"""Oldest first until the need is met, then on until the kept history
(after the pinned messages) starts on a ``"user"`` turn: chat APIs reject a
history that starts with an assistant or tool message."""


def keep_last(n: int) -> Builtin:
    """Keep only the newest `n` messages besides pinned ones (evicting down
    to `n` at once, so the strategy does not run at every add), and more if
    the need asks for more."""
    n = check_int(n, "keep_last: n", 0, (1 << 63) - 1)
    return Builtin(f"keep_last({n})")


def token_budget(max_tokens: int) -> Builtin:
    """Oldest first until the store holds at most `max_tokens` tokens
    (before the new message) and the need is met."""
    max_tokens = check_int(max_tokens, "token_budget: max_tokens", 0, (1 << 63) - 1)
    return Builtin(f"token_budget({max_tokens})")


def older_than(seconds: float, strict: bool = False, *, now: Optional[float] = None) -> Builtin:
    """Evict every unit whose newest message is older than `seconds`; when
    that frees too little, go on oldest first — unless `strict`, then the
    add fails. ``now`` fixes the clock (unix seconds; tests)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
            or seconds < 0:
        raise ValueError(f"older_than: seconds must be a non-negative number, got {seconds!r}")
    if not isinstance(strict, bool):
        raise TypeError(f"older_than: strict must be a bool, got {type_name(strict)}")
    if now is not None and (isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now)
                            or now <= 0):
        raise ValueError(f"older_than: now must be a positive number of unix seconds, got {now!r}")
    text = f"{float(seconds):.9f}".rstrip("0").rstrip(".") or "0"
    return Builtin(f"older_than({text}{', strict' if strict else ''})", now=now)


# ---------------------------------------------------------------- helpers


def units(view: StoreView) -> Units:
    """The store as eviction units (``view.units()``)."""
    return view.units()


class Accumulator:
    """Units chosen so far and what they free (for :func:`enough`)."""

    __slots__ = ("ids", "count", "bytes", "tokens")

    def __init__(self) -> None:
        self.ids: List[int] = []
        self.count = 0
        self.bytes = 0
        self.tokens = 0

    def take(self, u: Units, k: int) -> None:
        """Choose unit `k`."""
        self.ids.append(u.id[k])
        self.count += u.count[k]
        self.bytes += u.bytes[k]
        self.tokens += u.tokens[k]


def evictable(u: Units, k: int, need: Need) -> bool:
    """Whether unit `k` may be chosen: no pinned member, and not the group
    of the message being added."""
    return not u.pinned[k] and (need.group is None or u.group[k] != need.group)


def enough(acc: Union[Accumulator, Mapping[str, int]], need: Union[Need, Mapping[str, int]]) -> bool:
    """Whether `acc` frees at least `need` in every dimension (count,
    bytes, tokens)."""

    def g(o: Any, k: str) -> int:
        return o[k] if isinstance(o, Mapping) else getattr(o, k)

    return g(acc, "count") >= g(need, "count") and g(acc, "bytes") >= g(need, "bytes") and \
        g(acc, "tokens") >= g(need, "tokens")


def _msg_size(m: Mapping[str, Any]) -> int:
    def n(v: Any) -> int:
        if v is None:
            return 0
        return len(v.encode() if isinstance(v, str) else v)

    total = n(m.get("content")) + n(m.get("role")) + n(m.get("source")) + n(m.get("group"))
    for k, v in (m.get("meta") or {}).items():
        total += n(k) + n(v) + 2
    return total + MSG_OVERHEAD


def summarize(
    summarizer: Callable[[List[Message], Need], Union[str, Mapping[str, Any]]],
    fraction: float = 0.5,
    *,
    role: str = "system",
    source: str = "summary",
) -> StrategyFn:
    """Summarize-and-replace (a Python strategy, the twin of the Lua
    ``S.summarize``): choose the oldest units — at least `fraction` of the
    evictable ones (default half) and at least what the need asks for plus
    room for the summary —, call ``summarizer(messages, need)`` with copies
    of the chosen messages (oldest first), and replace them with one
    message: the summary takes the place of the oldest of them. The
    summarizer returns a ``str`` (the content; role `role`, source
    `source`) or a dict of :meth:`Store.add`'s fields. When the summary is
    too big for what was chosen, more is chosen and the summarizer runs
    again. A summarizer that raises fails the add; the store is
    unchanged."""
    if not callable(summarizer):
        raise TypeError(f"summarize: summarizer must be callable, got {type_name(summarizer)}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"summarize: fraction must be > 0 and <= 1, got {fraction!r}")
    for what, v in (("role", role), ("source", source)):
        if not isinstance(v, str):
            raise TypeError(f"summarize: {what} must be a str, got {type_name(v)}")

    def strategy(view: StoreView, need: Need) -> Tuple[List[int], Dict[str, Any]]:
        u = view.units()
        cands = [k for k in range(u.n) if evictable(u, k, need)]
        acc = Accumulator()
        chosen = set()
        i = 0
        want = {"count": need.count + 1, "bytes": need.bytes, "tokens": need.tokens}
        target = math.ceil(len(cands) * fraction)

        def grow() -> None:
            nonlocal i
            while i < len(cands) and (i < target or not enough(acc, want)):
                acc.take(u, cands[i])
                chosen.add(cands[i])
                i += 1

        grow()
        while True:
            msgs = [view[pos] for pos in range(len(u.of)) if u.of[pos] in chosen]
            out = summarizer(msgs, need)
            if isinstance(out, str):
                repl: Dict[str, Any] = {"role": role, "content": out, "source": source}
            elif isinstance(out, Mapping):
                repl = dict(out)
            else:
                raise TypeError(f"summarizer must return a str or a dict of message fields, got {type_name(out)}")
            content = repl.get("content")
            clen = len(content.encode() if isinstance(content, str) else (content or b""))
            rtokens = repl.get("tokens")
            if rtokens is None:
                rtokens = (clen + 3) // 4
            want = {"count": need.count + 1, "bytes": need.bytes + _msg_size(repl),
                    "tokens": need.tokens + rtokens}
            if enough(acc, want) or i >= len(cands):
                return acc.ids, repl
            target = i + 1
            grow()

    strategy.__name__ = "summarize"
    strategy.__qualname__ = "summarize"
    return strategy
