"""Helpers shared by the modules of the package (not public)."""

from __future__ import annotations

import ctypes
import math
import os
from typing import Any, Optional, Union

from . import _lib

ERR_LEN = 1024


def errbuf(n: int = ERR_LEN) -> "ctypes.Array[ctypes.c_char]":
    """A fresh buffer for a C function's `err` text."""
    return ctypes.create_string_buffer(n)


def text_of(buf: Any) -> str:
    """The NUL-terminated text in a ctypes char buffer or field."""
    raw = buf.value if hasattr(buf, "value") else buf
    return raw.decode("utf-8", "replace")


def err_name(code: int) -> str:
    """libmg's name for an error code ("ENOENT", "EPARSE"…)."""
    return _lib.core().mg_err_name(code).decode()


def strerror(code: int) -> str:
    return _lib.core().mg_strerror(code).decode()


def type_name(v: Any) -> str:
    return type(v).__name__


def c_text(value: Optional[str], what: str) -> Optional[bytes]:
    """A text field for C: UTF-8 without NUL bytes (None stays None)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type_name(value)}")
    if "\0" in value:
        raise ValueError(f"{what} must not contain NUL characters (got {value!r})")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{what} is not encodable as UTF-8: {e}") from None


def c_path(value: Union[str, "os.PathLike[str]", bytes], what: str) -> bytes:
    """A file path for C."""
    try:
        p = os.fsencode(value)
    except TypeError:
        raise TypeError(f"{what} must be a path (str, bytes or os.PathLike), got {type_name(value)}") from None
    if not p:
        raise ValueError(f"{what} must not be empty")
    if b"\0" in p:
        raise ValueError(f"{what} must not contain NUL bytes")
    return p


def check_int(value: Any, what: str, lo: int, hi: int) -> int:
    """An integer in [lo, hi] (bool refused; an integral float accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be an integer, got {type_name(value)}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"{what} must be an integer, got {value!r}")
        value = int(value)
    if value < lo or value > hi:
        raise ValueError(f"{what} must be from {lo} to {hi}, got {value}")
    return int(value)


def optional_root(value: Optional[Union[str, "os.PathLike[str]"]], what: str) -> Optional[bytes]:
    return None if value is None else c_path(value, what)


INT64_MAX = (1 << 63) - 1
