"""Loading mgrun's shared libraries and declaring their C API for ctypes.

This is the only module that knows where the libraries are and what their
functions and structures look like. Everything else in the package calls
``core()`` (libmg.so.0: sizes, probes, limits, the context store) — and,
later, ``runtime()`` (libmg-runtime.so.0: the Lua runtime host).

Where the libraries are looked for, first match wins:

1. ``MGRUN_LIB``: the path of ``libmg.so.0``, or a directory holding it. When
   it is set and does not work, that is an error (no silent fallback).
2. The library directory recorded at install time (``_install.py``, written
   by ``cmake --install`` next to this file, relative to it).
3. Next to the package: the ``mgrun`` directory itself, then its parent.
4. A source tree's build: ``<tree>/build/libmg.so.0`` when this package is
   ``<tree>/bindings/python/mgrun``.
5. The system's dynamic loader (``LD_LIBRARY_PATH``, ``ldconfig``).

``libmg-runtime.so.0`` is looked for in the directory where libmg was found
first, then in the same places.

At load the layout of every structure declared here is compared with the
library's own (``mg_ffi_sizeof``): a library of another version fails the
import with a message that says so, instead of corrupting memory later.
"""

from __future__ import annotations

import ctypes
import os
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char,
    c_char_p,
    c_double,
    c_int,
    c_int64,
    c_size_t,
    c_uint64,
    c_void_p,
)
from typing import List, Optional

__all__ = ["core", "runtime", "library_path", "PATH_MAX", "LibraryError"]

CORE_NAME = "libmg.so.0"
RUNTIME_NAME = "libmg-runtime.so.0"
PATH_MAX = 4096


class LibraryError(ImportError):
    """libmg could not be found or loaded, or does not match this package."""


# ---------------------------------------------------------------- structures


class StoreLimits(Structure):
    _fields_ = [
        ("max_messages", c_uint64),
        ("max_message_size_bytes", c_uint64),
        ("max_total_size_bytes", c_uint64),
        ("max_tokens", c_uint64),
        ("warn_at", c_double),
    ]


class StoreOptions(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("limits", StoreLimits),
        ("on_full", c_int),
        ("strategy", c_void_p),
        ("strategy_ud", c_void_p),
        ("strategy_name", c_char_p),
        ("on_evict", c_void_p),
        ("on_evict_ud", c_void_p),
        ("on_warn", c_void_p),
        ("on_warn_ud", c_void_p),
        ("archive_path", c_char_p),
        ("archive_fsync", c_int),
        ("estimate_tokens", c_void_p),
        ("estimate_ud", c_void_p),
        ("clock", c_void_p),
        ("clock_ud", c_void_p),
        ("alloc", c_void_p),
        ("logger", c_void_p),
    ]


class StoreMeta(Structure):
    _fields_ = [("key", c_char_p), ("value", c_char_p)]


class StoreInput(Structure):
    _fields_ = [
        ("role", c_char_p),
        ("content", c_void_p),
        ("content_len", c_size_t),
        ("source", c_char_p),
        ("group", c_char_p),
        ("pinned", c_int),
        ("priority", c_int64),
        ("has_tokens", c_int),
        ("tokens", c_uint64),
        ("meta", c_void_p),
        ("meta_count", c_size_t),
    ]


class StoreMsg(Structure):
    _fields_ = [
        ("id", c_uint64),
        ("role", c_void_p),
        ("role_len", c_size_t),
        ("content", c_void_p),
        ("content_len", c_size_t),
        ("source", c_void_p),
        ("source_len", c_size_t),
        ("group", c_void_p),
        ("group_len", c_size_t),
        ("pinned", c_int),
        ("priority", c_int64),
        ("tokens", c_uint64),
        ("time", c_double),
        ("size_bytes", c_uint64),
        ("meta_count", c_size_t),
        ("meta_packed", c_void_p),
        ("meta_packed_len", c_size_t),
    ]


STATS_FIELDS = [
    ("message_count", c_uint64),
    ("total_size_bytes", c_uint64),
    ("largest_message_bytes", c_uint64),
    ("max_messages", c_uint64),
    ("max_message_size_bytes", c_uint64),
    ("max_total_size_bytes", c_uint64),
    ("message_count_utilization", c_double),
    ("total_size_utilization", c_double),
    ("near_message_limit", c_int),
    ("near_size_limit", c_int),
    ("total_tokens", c_uint64),
    ("max_tokens", c_uint64),
    ("token_utilization", c_double),
    ("near_token_limit", c_int),
    ("payload_bytes", c_uint64),
    ("overhead_bytes", c_uint64),
    ("pinned_count", c_uint64),
    ("pinned_bytes", c_uint64),
    ("group_count", c_uint64),
    ("warn_at", c_double),
    ("next_id", c_uint64),
    ("evicted_count", c_uint64),
    ("evicted_bytes", c_uint64),
    ("archived_count", c_uint64),
    ("removed_count", c_uint64),
    ("replaced_count", c_uint64),
    ("rejected_count", c_uint64),
]


class StoreStats(Structure):
    _fields_ = STATS_FIELDS


class StoreNeed(Structure):
    _fields_ = [
        ("bytes", c_uint64),
        ("count", c_uint64),
        ("tokens", c_uint64),
        ("limit_type", c_int),
        ("group", c_void_p),
        ("group_len", c_size_t),
        ("adding", c_int),
        ("incoming_bytes", c_uint64),
        ("incoming_tokens", c_uint64),
    ]


class StoreError(Structure):
    _fields_ = [
        ("code", c_int),
        ("limit_type", c_int),
        ("current", c_uint64),
        ("limit", c_uint64),
        ("message", c_char * 512),
        ("details", c_char * 512),
    ]


class StoreUnit(Structure):
    _fields_ = [
        ("id", c_uint64),
        ("first", c_uint64),
        ("count", c_uint64),
        ("bytes", c_uint64),
        ("tokens", c_uint64),
        ("priority", c_int64),
        ("time", c_double),
        ("pinned", c_int),
        ("role", c_void_p),
        ("role_len", c_size_t),
        ("group", c_void_p),
        ("group_len", c_size_t),
    ]


class StoreBuiltin(Structure):
    _fields_ = [
        ("kind", c_int),
        ("n", c_uint64),
        ("seconds", c_double),
        ("strict", c_int),
        ("now", c_double),
        ("name", c_char * 64),
    ]


class Meminfo(Structure):
    _fields_ = [
        ("total_bytes", c_uint64),
        ("free_bytes", c_uint64),
        ("available_bytes", c_uint64),
        ("buffers_bytes", c_uint64),
        ("cached_bytes", c_uint64),
        ("shmem_bytes", c_uint64),
        ("sreclaimable_bytes", c_uint64),
        ("swap_total_bytes", c_uint64),
        ("swap_free_bytes", c_uint64),
        ("available_estimated", c_int),
    ]


class ProcStatus(Structure):
    _fields_ = [
        ("pid", c_int),
        ("name", c_char * 64),
        ("rss_bytes", c_uint64),
        ("hwm_bytes", c_uint64),
        ("vsize_bytes", c_uint64),
        ("data_bytes", c_uint64),
        ("anon_bytes", c_uint64),
        ("file_bytes", c_uint64),
        ("shmem_bytes", c_uint64),
        ("swap_bytes", c_uint64),
        ("is_kernel_thread", c_int),
    ]


class PsiLine(Structure):
    _fields_ = [
        ("avg10", c_double),
        ("avg60", c_double),
        ("avg300", c_double),
        ("total_us", c_uint64),
    ]


class Psi(Structure):
    _fields_ = [("some", PsiLine), ("full", PsiLine), ("has_full", c_int)]


class Effmem(Structure):
    _fields_ = [
        ("total_bytes", c_uint64),
        ("available_bytes", c_uint64),
        ("from_cgroup", c_int),
        ("source", c_char * (PATH_MAX + 64)),
    ]


class Paths(Structure):
    _fields_ = [("proc_root", c_char_p), ("fs_root", c_char_p)]


class CgroupInfo(Structure):
    _fields_ = [
        ("version", c_int),
        ("v2_mounted", c_int),
        ("mount", c_char * PATH_MAX),
        ("path", c_char * PATH_MAX),
        ("dir", c_char * PATH_MAX),
        ("has_limit", c_int),
        ("limit_bytes", c_uint64),
        ("limit_dir", c_char * PATH_MAX),
    ]


class ProbeOpts(Structure):
    _fields_ = [
        ("paths", Paths),
        ("skip_writable", c_int),
        ("skip_rlimit", c_int),
        ("cgroup_parent", c_char_p),
    ]


class Validation(Structure):
    _fields_ = [("ok", c_int), ("message", c_char * 1024), ("warning", c_char * 512)]


class LimitItem(Structure):
    _fields_ = [("name", c_char_p), ("bytes", c_double)]


class RlimitSupport(Structure):
    _fields_ = [
        ("data_enforced", c_int),
        ("as_enforced", c_int),
        ("data_reason", c_char * 256),
        ("as_reason", c_char * 256),
    ]


#: C name of each structure, for the layout check.
STRUCTS = {
    "mg_store_limits": StoreLimits,
    "mg_store_options": StoreOptions,
    "mg_store_meta": StoreMeta,
    "mg_store_input": StoreInput,
    "mg_store_msg": StoreMsg,
    "mg_store_stats": StoreStats,
    "mg_store_need": StoreNeed,
    "mg_store_error": StoreError,
    "mg_store_unit": StoreUnit,
    "mg_store_builtin": StoreBuiltin,
    "mg_meminfo": Meminfo,
    "mg_proc_status": ProcStatus,
    "mg_psi_line": PsiLine,
    "mg_psi": Psi,
    "mg_effmem": Effmem,
    "mg_paths": Paths,
    "mg_cgroup_info": CgroupInfo,
    "mg_probe_opts": ProbeOpts,
    "mg_validation": Validation,
    "mg_limit_item": LimitItem,
    "mg_rlimit_support": RlimitSupport,
}

# ---------------------------------------------------------------- callbacks

#: int (*)(void *ud, const mg_store *view, const mg_store_need *need,
#:         mg_store_plan *plan, char *err, size_t err_len)
STRATEGY_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, POINTER(StoreNeed), c_void_p, c_void_p, c_size_t)
#: int (*)(void *ud, const mg_store *view, const mg_store_batch *batch,
#:         mg_store_evict_reason reason, char *err, size_t err_len)
EVICT_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_void_p, c_int, c_void_p, c_size_t)
#: void (*)(void *ud, mg_store *store, mg_store_warn_kind kind,
#:          const mg_store_stats *stats)
WARN_FN = CFUNCTYPE(None, c_void_p, c_void_p, c_int, POINTER(StoreStats))
#: int (*)(void *ud, const mg_store_input *in, uint64_t *tokens, char *err,
#:         size_t err_len)
ESTIMATE_FN = CFUNCTYPE(c_int, c_void_p, POINTER(StoreInput), POINTER(c_uint64), c_void_p, c_size_t)

# ---------------------------------------------------------------- functions

_P = c_void_p
_ERRBUF = c_char_p  # a caller-owned char buffer (create_string_buffer)

#: name: (restype, argtypes)
CORE_FUNCTIONS = {
    # mg_error.h
    "mg_strerror": (c_char_p, [c_int]),
    "mg_err_name": (c_char_p, [c_int]),
    # mg_size.h
    "mg_size_parse": (c_int, [c_char_p, c_uint64, POINTER(c_uint64), _ERRBUF, c_size_t]),
    "mg_size_from_double": (c_int, [c_double, POINTER(c_uint64), _ERRBUF, c_size_t]),
    "mg_size_format": (c_char_p, [c_uint64, _ERRBUF, c_size_t]),
    # mg_meminfo.h, mg_proc.h, mg_psi.h, mg_cgroup.h, mg_probe.h
    "mg_meminfo_read": (c_int, [c_char_p, POINTER(Meminfo), _ERRBUF, c_size_t]),
    "mg_proc_status_read": (c_int, [c_char_p, c_int, POINTER(ProcStatus), _ERRBUF, c_size_t]),
    "mg_proc_pss_read": (c_int, [c_char_p, c_int, POINTER(c_uint64), _ERRBUF, c_size_t]),
    "mg_psi_read": (c_int, [c_char_p, POINTER(Psi), _ERRBUF, c_size_t]),
    "mg_cgroup_detect": (c_int, [POINTER(Paths), POINTER(CgroupInfo), _ERRBUF, c_size_t]),
    "mg_effective_memory": (
        c_int,
        [POINTER(Paths), POINTER(Meminfo), POINTER(CgroupInfo), POINTER(Effmem), _ERRBUF, c_size_t],
    ),
    "mg_probe_json_text": (c_int, [POINTER(ProbeOpts), POINTER(c_void_p), POINTER(c_size_t), _ERRBUF, c_size_t]),
    "mg_ffi_free": (None, [c_void_p]),
    "mg_ffi_version": (c_char_p, []),
    "mg_ffi_sizeof": (c_size_t, [c_char_p]),
    # mg_limits.h, mg_rlimit.h
    "mg_validate_limit": (c_int, [c_double, c_uint64, POINTER(Validation)]),
    "mg_validate_total": (c_int, [POINTER(LimitItem), c_size_t, c_uint64, POINTER(Validation)]),
    "mg_rlimit_probe": (c_int, [POINTER(RlimitSupport)]),
    "mg_rlimit_preferred": (c_int, [POINTER(RlimitSupport), POINTER(c_int), _ERRBUF, c_size_t]),
    "mg_rlimit_from_name": (c_int, [c_char_p, POINTER(c_int), _ERRBUF, c_size_t]),
    "mg_rlimit_get": (c_int, [c_int, c_int, POINTER(c_uint64), POINTER(c_uint64), _ERRBUF, c_size_t]),
    "mg_rlimit_set": (
        c_int,
        [c_int, c_int, c_uint64, c_int, POINTER(c_uint64), _ERRBUF, c_size_t, _ERRBUF, c_size_t],
    ),
    # mg_name.h
    "mg_name_check": (c_int, [c_char_p, c_char_p, c_size_t, _ERRBUF, c_size_t]),
    # mg_store.h
    "mg_store_options_init": (None, [POINTER(StoreOptions)]),
    "mg_store_new": (c_int, [POINTER(StoreOptions), POINTER(c_void_p), _ERRBUF, c_size_t]),
    "mg_store_free": (None, [_P]),
    "mg_store_retain": (_P, [_P]),
    "mg_store_close": (c_int, [_P]),
    "mg_store_closed": (c_int, [_P]),
    "mg_store_name": (c_char_p, [_P]),
    "mg_store_add": (c_int, [_P, POINTER(StoreInput), POINTER(c_uint64), POINTER(StoreError)]),
    "mg_store_remove": (c_int, [_P, c_uint64, _ERRBUF, c_size_t]),
    "mg_store_clear": (c_int, [_P, POINTER(c_uint64)]),
    "mg_store_prune": (c_int, [_P, c_uint64, POINTER(c_uint64), _ERRBUF, c_size_t]),
    "mg_store_make_room": (c_int, [_P, POINTER(StoreNeed), POINTER(c_uint64), POINTER(StoreError)]),
    "mg_store_set_limits": (c_int, [_P, POINTER(StoreLimits), _ERRBUF, c_size_t]),
    "mg_store_set_strategy": (c_int, [_P, c_void_p, c_void_p, c_char_p]),
    "mg_store_set_on_full": (c_int, [_P, c_int]),
    "mg_store_len": (c_uint64, [_P]),
    "mg_store_get_limits": (None, [_P, POINTER(StoreLimits)]),
    "mg_store_get_stats": (None, [_P, POINTER(StoreStats)]),
    "mg_store_get": (c_int, [_P, c_uint64, POINTER(StoreMsg)]),
    "mg_store_at": (c_int, [_P, c_uint64, POINTER(StoreMsg)]),
    "mg_store_check": (c_int, [_P, _ERRBUF, c_size_t]),
    "mg_store_plan_evict": (c_int, [_P, c_uint64]),
    "mg_store_plan_replace": (c_int, [_P, POINTER(StoreInput)]),
    "mg_store_batch_len": (c_size_t, [_P]),
    "mg_store_batch_at": (c_int, [_P, c_size_t, POINTER(StoreMsg)]),
    "mg_store_save": (c_int, [_P, c_char_p, _ERRBUF, c_size_t]),
    "mg_store_load": (c_int, [c_char_p, POINTER(StoreOptions), POINTER(c_void_p), _ERRBUF, c_size_t]),
    "mg_store_limits_validate": (c_int, [POINTER(StoreLimits), _ERRBUF, c_size_t]),
    # mg_ffi.h
    "mg_store_add_flat": (
        c_int64,
        [_P, c_char_p, c_char_p, c_size_t, c_char_p, c_char_p, c_int, c_int64, c_int64, c_char_p, c_size_t,
         POINTER(StoreError)],
    ),
    "mg_store_copy": (c_int, [_P, c_uint64, POINTER(StoreMsg), c_void_p, c_size_t, POINTER(c_size_t)]),
    "mg_store_copy_at": (c_int, [_P, c_uint64, POINTER(StoreMsg), c_void_p, c_size_t, POINTER(c_size_t)]),
    "mg_store_ids": (c_int, [_P, c_void_p, c_size_t, POINTER(c_size_t)]),
    "mg_store_units": (
        c_int,
        [_P, c_void_p, c_size_t, c_void_p, c_size_t, POINTER(c_size_t), POINTER(c_uint64)],
    ),
    # mg_store_builtin.h
    "mg_store_builtin_parse": (c_int, [c_char_p, POINTER(StoreBuiltin), _ERRBUF, c_size_t]),
    "mg_store_builtin_options": (None, [POINTER(StoreBuiltin), POINTER(StoreOptions)]),
    "mg_store_builtin_set": (c_int, [_P, POINTER(StoreBuiltin)]),
}

#: The runtime library's functions (mg/mg_runtime.h) mgrun.Runtime uses.
#: mg_runtime_opts is opaque here: made by mg_runtime_opts_new, set by name.
RUNTIME_FUNCTIONS = {
    "mg_runtime_opts_new": (c_void_p, []),
    "mg_runtime_opts_free": (None, [c_void_p]),
    "mg_runtime_opts_set": (c_int, [c_void_p, c_char_p, c_char_p, _ERRBUF, c_size_t]),
    "mg_runtime_new": (c_int, [c_void_p, POINTER(c_void_p), _ERRBUF, c_size_t]),
    "mg_runtime_load": (c_int, [c_void_p, c_char_p, c_int, POINTER(c_char_p), _ERRBUF, c_size_t]),
    "mg_runtime_load_string": (c_int, [c_void_p, c_char_p, c_char_p, _ERRBUF, c_size_t]),
    "mg_runtime_run": (c_int, [c_void_p]),
    "mg_runtime_request_shutdown": (c_int, [c_void_p, c_int]),
    "mg_runtime_exit_requested": (c_int, [c_void_p]),
    "mg_runtime_exit_code": (c_int, [c_void_p]),
    "mg_runtime_callback_errors": (ctypes.c_ulong, [c_void_p]),
    "mg_runtime_lua_mem": (c_size_t, [c_void_p, POINTER(c_size_t)]),
    "mg_runtime_free": (None, [c_void_p]),
    "mg_runtime_store": (c_int, [c_void_p, c_char_p, POINTER(c_void_p), _ERRBUF, c_size_t]),
    "mg_runtime_store_add_flat": (
        c_int64,
        [c_void_p, _P, c_char_p, c_char_p, c_size_t, c_char_p, c_char_p, c_int, c_int64, c_int64, c_char_p,
         c_size_t, POINTER(StoreError)],
    ),
    "mg_runtime_store_remove": (c_int, [c_void_p, _P, c_uint64, _ERRBUF, c_size_t]),
    "mg_runtime_store_clear": (c_int, [c_void_p, _P, POINTER(c_uint64)]),
    "mg_runtime_store_prune": (c_int, [c_void_p, _P, c_uint64, POINTER(c_uint64), _ERRBUF, c_size_t]),
    "mg_runtime_store_set_limits": (c_int, [c_void_p, _P, POINTER(StoreLimits), _ERRBUF, c_size_t]),
}

# ---------------------------------------------------------------- loading

_lock = threading.Lock()
_core: Optional[ctypes.CDLL] = None
_core_path: Optional[str] = None
_runtime: Optional[ctypes.CDLL] = None

_HERE = os.path.dirname(os.path.abspath(__file__))


def _candidates(name: str) -> List[str]:
    """Where to look for `name`, in order (see the module docstring)."""
    out: List[str] = []
    try:
        from . import _install  # type: ignore[attr-defined]

        out.append(os.path.normpath(os.path.join(_HERE, _install.LIBDIR, name)))
    except ImportError:
        pass
    out.append(os.path.join(_HERE, name))
    out.append(os.path.join(os.path.dirname(_HERE), name))
    tree = os.path.dirname(os.path.dirname(os.path.dirname(_HERE)))
    if os.path.basename(os.path.dirname(_HERE)) == "python" and os.path.isdir(os.path.join(tree, "runtime")):
        out.append(os.path.join(tree, "build", name))
    return out


def _from_env(name: str) -> Optional[str]:
    value = os.environ.get("MGRUN_LIB")
    if not value:
        return None
    if os.path.isdir(value):
        return os.path.join(value, name)
    if name == CORE_NAME:
        return value
    return os.path.join(os.path.dirname(value), name)  # beside the core


def _open(name: str, near: Optional[str] = None) -> "tuple[ctypes.CDLL, str]":
    tried: List[str] = []
    env = _from_env(name)
    if env is not None:
        try:
            return ctypes.CDLL(env), env
        except OSError as e:
            raise LibraryError(
                f"mgrun: MGRUN_LIB={os.environ.get('MGRUN_LIB')!r} does not give a loadable {name}: {e} "
                f"(MGRUN_LIB is the path of {CORE_NAME} or of the directory that holds it)"
            ) from None
    paths = ([os.path.join(near, name)] if near else []) + _candidates(name)
    for path in paths:
        if os.path.exists(path):
            try:
                return ctypes.CDLL(path), path
            except OSError as e:
                tried.append(f"{path} ({e})")
        else:
            tried.append(path)
    try:
        return ctypes.CDLL(name), name
    except OSError as e:
        tried.append(f"the dynamic loader ({e})")
    raise LibraryError(
        f"mgrun: cannot find {name}; tried " + "; ".join(tried) + f". Set MGRUN_LIB to the path of {CORE_NAME} "
        "(or the directory that holds it), or install mgrun with cmake --install."
    )


def _declare(lib: ctypes.CDLL, table: dict, path: str) -> None:
    for fname, (restype, argtypes) in table.items():
        try:
            fn = getattr(lib, fname)
        except AttributeError:
            raise LibraryError(f"mgrun: {path} has no function {fname}: it is not the libmg this package needs") from None
        fn.restype = restype
        fn.argtypes = argtypes


def _check_layout(lib: ctypes.CDLL, path: str) -> None:
    from . import __version__

    version = lib.mg_ffi_version().decode()
    if version != __version__:
        raise LibraryError(f"mgrun: {path} is libmg {version}, but this package is mgrun {__version__}")
    for cname, cls in STRUCTS.items():
        theirs = lib.mg_ffi_sizeof(cname.encode())
        if theirs != ctypes.sizeof(cls):
            raise LibraryError(
                f"mgrun: {path} lays out {cname} in {theirs} bytes, this package in {ctypes.sizeof(cls)}: "
                "the library and the package are from different builds"
            )


def core() -> ctypes.CDLL:
    """libmg.so.0, loaded once and declared (thread-safe)."""
    global _core, _core_path
    lib = _core
    if lib is not None:
        return lib
    with _lock:
        if _core is None:
            lib, path = _open(CORE_NAME)
            _declare(lib, CORE_FUNCTIONS, path)
            _check_layout(lib, path)
            _core_path = path
            _core = lib
        return _core


def runtime() -> ctypes.CDLL:
    """libmg-runtime.so.0 (supervisor, Lua bindings, runtime host), loaded
    once, looked for first beside libmg."""
    global _runtime
    if _runtime is not None:
        return _runtime
    core()
    with _lock:
        if _runtime is None:
            near = os.path.dirname(_core_path) if _core_path and os.sep in _core_path else None
            lib, path = _open(RUNTIME_NAME, near)
            _declare(lib, RUNTIME_FUNCTIONS, path)
            _runtime = lib
        return _runtime


def library_path() -> str:
    """The path libmg was loaded from (a bare name when the dynamic loader
    found it)."""
    core()
    assert _core_path is not None
    return _core_path
