#!/usr/bin/python3
"""Print the directory where Python packages go under an installation prefix.

Usage: sitedir.py PREFIX [OVERRIDE]

OVERRIDE (MG_PYTHON_SITEDIR), when not empty, wins: absolute as it is,
relative under PREFIX. Otherwise, for the Python running this script:

- PREFIX /usr        -> /usr/lib/python3/dist-packages (Debian's system site)
- PREFIX /usr/local  -> /usr/local/lib/python3.X/dist-packages (Debian's
                        local site, on sys.path)
- any other PREFIX   -> PREFIX/lib/python3.X/site-packages (CPython's own
                        layout; put it on PYTHONPATH)
"""
import os
import sys
import sysconfig


def sitedir(prefix: str, override: str = "") -> str:
    if override:
        return override if os.path.isabs(override) else os.path.join(prefix, override)
    prefix = os.path.normpath(prefix)
    schemes = sysconfig.get_scheme_names()
    if prefix == "/usr" and "deb_system" in schemes:
        return sysconfig.get_path("purelib", "deb_system", vars={"base": "/usr", "platbase": "/usr"})
    if prefix == "/usr/local" and "posix_local" in schemes:
        return sysconfig.get_path("purelib", "posix_local", vars={"base": "/usr", "platbase": "/usr"})
    return sysconfig.get_path("purelib", "posix_prefix", vars={"base": prefix, "platbase": prefix})


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or not sys.argv[1]:
        sys.exit("usage: sitedir.py PREFIX [OVERRIDE]")
    print(sitedir(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else ""))
