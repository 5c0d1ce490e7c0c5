"""Shared fixtures of the Python package's pytest suites.

ctest runs them with the build's library (``MGRUN_LIB``), the source
tree's package (``PYTHONPATH=bindings/python``), the fixture tree
(``MG_FIXTURES``), the mgrun binary (``MGRUN``) and the build directory
(``MG_BUILD_DIR``). By hand, from the source tree::

    MGRUN_LIB=build/libmg.so.0 PYTHONPATH=bindings/python MG_FIXTURES=tests/fixtures \\
        MGRUN=build/mgrun MG_BUILD_DIR=build /usr/bin/python3 -m pytest -q tests/python
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, Optional

import pytest

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent.parent


def _env_path(name: str, default: Optional[Path]) -> Optional[Path]:
    v = os.environ.get(name)
    return Path(v) if v else default


FIXTURES = _env_path("MG_FIXTURES", SOURCE / "tests" / "fixtures")
BUILD = _env_path("MG_BUILD_DIR", None)
MGRUN = _env_path("MGRUN", None)
#: The sanitizer build: python3 runs with libasan preloaded; no rlimit may be
#: set on it (ASan's shadow memory counts against RLIMIT_DATA and AS).
SANITIZED = "asan" in os.environ.get("LD_PRELOAD", "") or os.environ.get("MG_SANITIZE") == "1"


def snapshot(store):
    """Everything observable about a store but its rejected_count, to
    compare before and after an operation that must change nothing."""
    st = store.stats().as_dict()
    st.pop("rejected_count")
    return [(m.id, m.role, m.content, m.size, m.tokens, m.meta, m.group, m.pinned) for m in store], st


@pytest.fixture
def fixtures() -> Path:
    assert FIXTURES is not None and FIXTURES.is_dir(), "MG_FIXTURES must name tests/fixtures"
    return FIXTURES


def run_python(code: str, env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None,
               timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (this one's environment, plus
    `env`); returns the completed process (text output)."""
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=e, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def py():
    return run_python
