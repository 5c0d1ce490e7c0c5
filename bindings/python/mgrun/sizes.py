"""Memory sizes: parsing ``"1.5G"`` and formatting bytes for people.

A size is a non-negative integer number of bytes, or a string
``<number>[unit]`` where the number may have a fraction and the unit is
``B``, ``K``/``KB``/``KiB``, ``M``/``MB``/``MiB``, ``G``/``GB``/``GiB``,
``T``/``TB``/``TiB`` (also ``P``, ``E``), any case, **all powers of 1024**
(``"2 GB"`` is 2147483648, as in the seed), or ``<number>%`` of the
effective system memory. Anything else — empty, negative, NaN, inf,
``1e3``, ``0x10``, trailing garbage, more than 2**63 - 1 bytes — raises
:class:`mgrun.SizeError` quoting the input and saying what is accepted.
"""

from __future__ import annotations

import ctypes
from typing import Optional, Union

from . import _lib
from ._util import err_name, errbuf, text_of, type_name
from .errors import SizeError

__all__ = ["SizeLike", "size", "format_size", "SIZE_MAX", "ACCEPTED"]

SizeLike = Union[int, float, str]
"""What a size argument accepts: bytes (an int, or an integral float) or a
string such as ``"1.5G"`` or ``"40%"``."""

SIZE_MAX = (1 << 63) - 1
"""The largest size mgrun accepts: 2**63 - 1 bytes."""

ACCEPTED = (
    "a non-negative number of bytes, or <number>[B|K|KB|KiB|M|MB|MiB|G|GB|GiB|T|TB|TiB|P|PiB|E|EiB] "
    "(powers of 1024, any case), or <number>% of effective memory"
)


def size(value: SizeLike, *, percent_of: Optional[int] = None, what: str = "size") -> int:
    """The number of bytes `value` stands for.

    ``percent_of`` is what 100 % means for ``"N%"`` (default: the effective
    system memory, read only when needed). ``what`` names the value in
    error messages. Raises SizeError on a value that is not a size, and
    TypeError on a value of another type (bool included).
    """
    lib = _lib.core()
    out = ctypes.c_uint64()
    err = errbuf(512)
    pre = "" if what == "size" else f"{what}: "
    if isinstance(value, str):
        if "\0" in value:
            raise SizeError(f"{pre}invalid size {value!r}: it holds a NUL character; expected {ACCEPTED}", "EPARSE")
        base = 0
        if value.rstrip().endswith("%"):
            if percent_of is None:
                from .probes import effective_memory

                percent_of = effective_memory()
            base = percent_of
        rc = lib.mg_size_parse(value.encode("utf-8", "replace"), base, ctypes.byref(out), err, len(err))
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of bytes or a string like \"2G\", got {type_name(value)}")
    elif isinstance(value, int):
        if value < 0:
            raise SizeError(f"{pre}invalid size {value}: negative sizes are not accepted; expected {ACCEPTED}",
                            "EPARSE")
        if value > SIZE_MAX:
            raise SizeError(f"{pre}invalid size {value}: more than 2^63-1 bytes ({SIZE_MAX}); expected {ACCEPTED}",
                            "ERANGE_SIZE")
        return value
    else:
        rc = lib.mg_size_from_double(float(value), ctypes.byref(out), err, len(err))
    if rc < 0:
        raise SizeError(pre + text_of(err), err_name(rc))
    return out.value


def format_size(value: SizeLike) -> str:
    """`value` for people: ``"512 B"``, ``"1.00 KiB"``, ``"1.50 GiB"`` (two
    decimals, 1024-based, up to EiB). Accepts what :func:`size` accepts;
    :func:`size` reads every result back (to within a hundredth of its
    unit)."""
    n = size(value)
    buf = ctypes.create_string_buffer(32)
    _lib.core().mg_size_format(n, buf, len(buf))
    return buf.value.decode()


def _as_double(value: SizeLike, what: str) -> float:
    """A limit value for validation: numbers pass through (so NaN, inf and
    negative values are judged, not lost), strings are parsed."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a number of bytes or a string like \"2G\", got bool")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return float(size(value, what=what))
    raise TypeError(f"{what} must be a number of bytes or a string like \"2G\", got {type_name(value)}")

