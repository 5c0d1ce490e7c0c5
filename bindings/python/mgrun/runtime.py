"""A policy inside a Python agent host: :class:`Runtime`.

A :class:`Runtime` loads a Lua policy (the same files ``mgrun policy.lua``
runs) and runs its event loop on a background thread: its timers, signal
handlers, children under limits and stores live there, while the host goes
on with its own work. ``runtime.store(name)`` hands the host the policy's
store of that name as a :class:`PolicyStore`, so the host adds messages from
its own threads while the policy's Lua strategy prunes them.

Threads. The runtime has one owner thread at a time (the loop's, or the one
loading the policy) and only it enters the Lua state. A change the host
makes to a policy's store is queued for the owner, which runs it between
two callbacks — the store's Lua callbacks then run with their budgets, as
for the policy's own changes — and the calling thread waits for it with the
GIL released. Reads (``len``, ``get``, iteration, ``stats``) go straight to
the store, which has its own lock. The loop never waits for Python, so
nothing deadlocks.
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from typing import Any, Iterable, List, Optional, Sequence, Union

from . import _lib
from ._util import c_path, err_name, errbuf, text_of, type_name
from .errors import PolicyError, RuntimeStateError, StoreClosedError, StoreError
from .sizes import SizeLike, size
from .store import Store

__all__ = ["Runtime", "PolicyStore"]

PathLike = Union[str, "os.PathLike[str]"]


class _Mutator:
    """The changes of a policy's store, made through its runtime (the
    attribute names are those of the core functions they replace)."""

    def __init__(self, rt: int) -> None:
        lib = _lib.runtime()
        self._rt = rt
        self._remove = lib.mg_runtime_store_remove
        self._clear = lib.mg_runtime_store_clear
        self._prune = lib.mg_runtime_store_prune
        self._limits = lib.mg_runtime_store_set_limits

    def mg_store_remove(self, p: int, id: int, err: Any, n: int) -> int:
        return self._remove(self._rt, p, id, err, n)  # type: ignore[no-any-return]

    def mg_store_clear(self, p: int, out: Any) -> int:
        return self._clear(self._rt, p, out)  # type: ignore[no-any-return]

    def mg_store_prune(self, p: int, keep: int, out: Any, err: Any, n: int) -> int:
        return self._prune(self._rt, p, keep, out, err, n)  # type: ignore[no-any-return]

    def mg_store_set_limits(self, p: int, lim: Any, err: Any, n: int) -> int:
        return self._limits(self._rt, p, lim, err, n)  # type: ignore[no-any-return]


class PolicyStore(Store):
    """A store of a running policy, as the host sees it
    (:meth:`Runtime.store`). It is a :class:`~mgrun.Store`: ``add``,
    ``remove``, ``clear``, ``prune`` and ``set_limits`` run on the policy's
    thread (its Lua strategy, estimator, ``on_evict`` and ``on_warn`` run for
    them with their budgets); reads are direct. The strategy and
    ``on_full`` stay the policy's to set (``set_strategy``, ``set_on_full``
    and ``make_room`` raise :class:`~mgrun.StoreError` with code
    ``"EPERM"``). The store stays the policy's: once the policy closes it or
    drops it, every call raises :class:`~mgrun.StoreClosedError`.
    :meth:`close` (or the end of a ``with`` block) drops only the host's
    reference."""

    _runtime: "Runtime"

    @classmethod
    def _wrap(cls, runtime: "Runtime", ptr: int) -> "PolicyStore":
        self = cls.__new__(cls)
        self._blank()
        self._owned = False
        self._runtime = runtime  # keeps the runtime alive while the store is
        rt = runtime._rt
        self._mut = _Mutator(rt)
        add = _lib.runtime().mg_runtime_store_add_flat
        self._add_fn = lambda *a: add(rt, *a)
        self._adopt(ptr, _lib.core().mg_store_free)
        return self

    def _enter(self) -> int:
        p = super()._enter()
        if _lib.core().mg_store_closed(p):
            self._exit()
            raise StoreClosedError(f"store {self._name!r} was closed by its policy", "ECLOSED")
        return p

    def _policy_owns(self, what: str) -> StoreError:
        return StoreError(f"store {self._name!r} belongs to the policy: its {what} is set from Lua", "EPERM")

    def set_strategy(self, strategy: Any) -> None:
        """Refused: the policy sets its store's strategy (raises StoreError,
        code ``"EPERM"``)."""
        raise self._policy_owns("strategy")

    def set_on_full(self, on_full: str) -> None:
        """Refused: the policy sets its store's ``on_full`` (StoreError,
        ``"EPERM"``)."""
        raise self._policy_owns("on_full")

    def make_room(self, count: int = 0, bytes: int = 0, tokens: int = 0) -> int:
        """Refused: room is made by the policy's strategy when an add needs
        it (StoreError, ``"EPERM"``)."""
        raise self._policy_owns("strategy (make_room)")

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<mgrun.PolicyStore {self._name!r} ({state}) of {self._runtime!r}>"


def _option_text(key: str, value: Any) -> bytes:
    """A Runtime option as the C layer's text; TypeError for a wrong type."""
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if key in ("cb_timeout_ms", "cb_instructions", "setup_timeout_ms"):
        if not isinstance(value, int):
            raise TypeError(f"{key} must be an int, got {type_name(value)}")
        if value < 0:
            raise ValueError(f"{key} must be 0 or more, got {value}")
        return str(value).encode()
    if key == "lua_mem":
        if isinstance(value, str):
            return value.encode()
        return str(size(value)).encode()
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a str, got {type_name(value)}")
    return value.encode()


class Runtime:
    """A Lua policy with its event loop on a background thread.

    Args:
        policy: the policy file (``policy.lua``), loaded by :meth:`start`.
        args: the policy's arguments (``arg[1]…`` and ``...``), strings.
        sandbox: no ``io``, ``os.execute``, ``debug``, bytecode or C modules;
            only the programs of ``allow_spawn`` and the directories of
            ``allow_dirs`` (``mgrun --sandbox``).
        cb_timeout_ms, cb_instructions: the budget of each callback (wall
            clock, Lua instructions; 0 = none).
        lua_mem: the Lua state's memory cap (a size, ``"64M"``, ``"5%"``;
            0 = none, else at least 1M).
        setup_timeout_ms: the budget of the policy's top level (0 = none).
        allow_spawn, allow_dirs: with ``sandbox``, what the policy may run
            and where it may read and write.
        cgroup_parent: where the children's cgroups go (default: this
            process's own cgroup).
        log_level, log_format: the runtime's log lines on stderr
            (``"debug"``…``"error"``; ``"text"`` or ``"json"``).
        handle_signals: let the runtime take SIGINT/SIGTERM (as mgrun
            does); off by default: the host owns its signals.

    Raises:
        TypeError, ValueError: an option of the wrong type or value (the
            message names it and says what is accepted).
        mgrun.Error: the runtime cannot be created (a ``cgroup_parent`` that
            does not exist: code ``"ENOENT"``…).

    Use it as a context manager (started on entry, stopped and freed on
    exit) or call :meth:`start`, :meth:`stop`, :meth:`wait` and
    :meth:`close`.
    """

    def __init__(
        self,
        policy: PathLike,
        args: Sequence[str] = (),
        *,
        sandbox: bool = False,
        cb_timeout_ms: int = 1000,
        cb_instructions: int = 1_000_000_000,
        lua_mem: SizeLike = "64M",
        setup_timeout_ms: int = 0,
        allow_spawn: Iterable[PathLike] = (),
        allow_dirs: Iterable[PathLike] = (),
        cgroup_parent: Optional[PathLike] = None,
        log_level: str = "info",
        log_format: str = "text",
        handle_signals: bool = False,
    ) -> None:
        self._rt: int = 0
        self._opts: Optional[int] = None
        self._thread: Optional[threading.Thread] = None
        self._started = False
        self._closed = False
        self._run_rc: Optional[int] = None
        self._final_code: Optional[int] = None  # kept by close()
        self._stores: "weakref.WeakSet[PolicyStore]" = weakref.WeakSet()
        self._lock = threading.Lock()
        self._policy = c_path(policy, "policy")
        self._policy_name = os.fsdecode(self._policy)
        if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
            raise TypeError(f"args must be a sequence of str, got {type_name(args)}")
        for a in args:
            if not isinstance(a, str):
                raise TypeError(f"args must hold str, got {type_name(a)}")
            if "\0" in a:
                raise ValueError(f"an argument holds a NUL character: {a!r}")
        self._args = [a.encode() for a in args]
        for name, flag in (("sandbox", sandbox), ("handle_signals", handle_signals)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {type_name(flag)}")
        settings: List[tuple] = [
            ("sandbox", sandbox),
            ("cb_timeout_ms", cb_timeout_ms),
            ("cb_instructions", cb_instructions),
            ("lua_mem", lua_mem),
            ("setup_timeout_ms", setup_timeout_ms),
            ("handle_signals", handle_signals),
            ("log_level", log_level),
            ("log_format", log_format),
        ]
        if cgroup_parent is not None:
            settings.append(("cgroup_parent", os.fsdecode(c_path(cgroup_parent, "cgroup_parent"))))
        for what, key, paths in (("allow_spawn", "allow_spawn", allow_spawn), ("allow_dirs", "allow_dir", allow_dirs)):
            if isinstance(paths, (str, bytes)):
                raise TypeError(f"{what} must be a list of paths, got a single {type_name(paths)}")
            for path in paths:
                settings.append((key, os.fsdecode(c_path(path, what))))
        lib = _lib.runtime()
        opts = lib.mg_runtime_opts_new()
        if not opts:
            raise MemoryError("mgrun: out of memory creating the runtime's options")
        self._opts = opts
        err = errbuf()
        for key, value in settings:
            text = _option_text(key, value)
            if lib.mg_runtime_opts_set(opts, key.encode(), text, err, len(err)) < 0:
                self._free()
                raise ValueError(text_of(err))
        out = ctypes.c_void_p()
        rc = lib.mg_runtime_new(opts, ctypes.byref(out), err, len(err))
        if rc < 0:
            self._free()
            from .errors import Error

            raise Error(f"mgrun: cannot create the runtime: {text_of(err)}", err_name(rc))
        self._rt = out.value or 0

    # ------------------------------------------------------------ running

    def start(self) -> "Runtime":
        """Load the policy (its top level runs now, on this thread) and start
        its loop on a background thread. Returns self.

        Raises:
            PolicyError: the file is missing or does not load, or its top
                level failed (the message is Lua's, with a traceback).
            RuntimeStateError: started before, or closed.
        """
        with self._lock:
            self._usable()
            if self._started:
                raise RuntimeStateError("the runtime was started already", "EALREADY")
            self._started = True
        lib = _lib.runtime()
        err = errbuf(8192)
        argv = (ctypes.c_char_p * (len(self._args) + 1))(*self._args, None)
        rc = lib.mg_runtime_load(self._rt, self._policy, len(self._args), argv, err, len(err))
        if rc < 0:
            raise PolicyError(text_of(err), err_name(rc))
        self._thread = threading.Thread(target=self._run, name=f"mgrun policy {self._policy_name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        self._run_rc = _lib.runtime().mg_runtime_run(self._rt)

    def stop(self, code: int = 0) -> None:
        """Ask for the graceful shutdown ``mg.exit(code)`` makes: the
        policy's handles close, its children get SIGTERM, their grace period,
        then SIGKILL, and are reaped; then the loop ends (see :meth:`wait`).
        Returns at once. A no-op once the runtime is done."""
        if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 255:
            raise ValueError(f"code must be an int from 0 to 255, got {code!r}")
        with self._lock:
            if self._closed or not self._rt:
                return
            _lib.runtime().mg_runtime_request_shutdown(self._rt, code)

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Wait for the loop to end (the policy ran out of work, called
        ``mg.exit``, or :meth:`stop`); return :attr:`exit_code`, or None when
        `timeout` seconds passed first."""
        t = self._thread
        if t is None:
            if not self._started:
                raise RuntimeStateError("the runtime was not started", "EINVAL")
            return self.exit_code
        t.join(timeout)
        if t.is_alive():
            return None
        return self.exit_code

    @property
    def running(self) -> bool:
        """Whether the policy's loop is running."""
        t = self._thread
        return t is not None and t.is_alive()

    @property
    def exit_code(self) -> Optional[int]:
        """The status the policy ended with (``mg.exit(n)``: n; 0 when it ran
        out of work or was stopped by :meth:`close`), or None while its loop
        runs (or before it started)."""
        if not self._rt:
            return self._final_code
        if self.running:
            return None
        if self._thread is None and not _lib.runtime().mg_runtime_exit_requested(self._rt):
            return None
        return int(_lib.runtime().mg_runtime_exit_code(self._rt))

    @property
    def callback_errors(self) -> int:
        """How many of the policy's callbacks failed so far (errors,
        budgets, the memory cap)."""
        self._usable()
        return int(_lib.runtime().mg_runtime_callback_errors(self._rt))

    @property
    def lua_mem(self) -> int:
        """Bytes the policy's Lua state holds now."""
        self._usable()
        return int(_lib.runtime().mg_runtime_lua_mem(self._rt, None))

    # ------------------------------------------------------------ stores

    def store(self, name: str) -> PolicyStore:
        """The policy's open store named `name` (``mg.store{name = …}``).

        Raises:
            KeyError: the policy has no open store of that name.
            StoreError: several open stores have that name (code
                ``"EEXIST"``: the policy should name them apart).
            RuntimeStateError: the runtime is closed.
        """
        if not isinstance(name, str):
            raise TypeError(f"a store name is a str, got {type_name(name)}")
        if "\0" in name:
            raise ValueError(f"a store name holds no NUL character: {name!r}")
        self._usable()
        out = ctypes.c_void_p()
        err = errbuf()
        rc = _lib.runtime().mg_runtime_store(self._rt, name.encode(), ctypes.byref(out), err, len(err))
        if rc < 0:
            code = err_name(rc)
            if code == "ENOENT":
                raise KeyError(text_of(err))
            if code == "ESHUTDOWN":
                raise RuntimeStateError(text_of(err), code)
            raise StoreError(text_of(err), code)
        st = PolicyStore._wrap(self, out.value or 0)
        self._stores.add(st)
        return st

    # ------------------------------------------------------------ lifetime

    def _usable(self) -> None:
        if self._closed or not self._rt:
            raise RuntimeStateError("the runtime is closed", "ECLOSED")

    def close(self) -> None:
        """Stop the policy (as :meth:`stop`) if it runs, wait for its loop to
        end, release every :class:`PolicyStore` taken from it and free the
        runtime (children stopped and reaped, cgroups removed). Idempotent;
        its stores raise StoreClosedError afterwards."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._rt and self.running:
            _lib.runtime().mg_runtime_request_shutdown(self._rt, 0)
        if self._thread is not None:
            self._thread.join()
        for st in list(self._stores):
            st.close()
        if self._rt and (self._thread is not None or _lib.runtime().mg_runtime_exit_requested(self._rt)):
            self._final_code = int(_lib.runtime().mg_runtime_exit_code(self._rt))
        self._free()

    def _free(self) -> None:
        lib = _lib.runtime()
        if self._rt:
            lib.mg_runtime_free(self._rt)
            self._rt = 0
        if self._opts:
            lib.mg_runtime_opts_free(self._opts)
            self._opts = None

    def __enter__(self) -> "Runtime":
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not getattr(self, "_closed", True):
                self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self.running else "idle")
        return f"<mgrun.Runtime {self._policy_name!r} ({state})>"
