"""Finding and loading libmg: MGRUN_LIB (a file or a directory), the error
when it is wrong, lazy loading, the layout check against the library."""

import ctypes
import os
from pathlib import Path

import mgrun
from mgrun import _lib


def test_the_library_loaded_is_the_one_asked_for():
    want = os.environ.get("MGRUN_LIB")
    assert want, "ctest sets MGRUN_LIB"
    assert os.path.realpath(mgrun.library_path()) == os.path.realpath(want)


def test_every_declared_struct_matches_the_library():
    lib = _lib.core()
    for cname, cls in _lib.STRUCTS.items():
        assert lib.mg_ffi_sizeof(cname.encode()) == ctypes.sizeof(cls), cname
    assert lib.mg_ffi_version().decode() == mgrun.__version__


def test_import_does_not_load_the_library(py):
    out = py("""
        import mgrun, mgrun.context, mgrun.memory_limit, mgrun.strategies
        from mgrun import _lib
        assert _lib._core is None
        try:
            mgrun.size("1G")
        except ImportError as e:
            print(type(e).__name__, e)
    """, env={"MGRUN_LIB": "/nonexistent/libmg.so.0"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("LibraryError mgrun: MGRUN_LIB='/nonexistent/libmg.so.0' does not give a loadable "
                                 "libmg.so.0")
    assert "MGRUN_LIB is the path of libmg.so.0 or of the directory that holds it" in out.stdout


def test_mgrun_lib_may_name_the_directory(py):
    d = str(Path(os.environ["MGRUN_LIB"]).parent)
    out = py("import mgrun; print(mgrun.library_path()); print(mgrun.size('1K'))", env={"MGRUN_LIB": d})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [os.path.join(d, "libmg.so.0"), "1024"]


def test_a_library_that_is_not_libmg_is_refused(py):
    libc = next(p for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                            "/lib/aarch64-linux-gnu/libc.so.6", "/usr/lib/libc.so.6") if os.path.exists(p))
    out = py("""
        import mgrun
        try:
            mgrun.size("1G")
        except ImportError as e:
            print(e)
    """, env={"MGRUN_LIB": libc})
    assert out.returncode == 0, out.stderr
    assert "has no function mg_strerror: it is not the libmg this package needs" in out.stdout


def test_without_mgrun_lib_the_candidates_are_searched(py, tmp_path):
    """A copy of the package with the library beside it (as a vendored
    install would have it) finds that library."""
    import shutil

    pkg = tmp_path / "mgrun"
    shutil.copytree(Path(mgrun.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__", "_install.py"))
    shutil.copy(os.environ["MGRUN_LIB"], pkg / "libmg.so.0")
    env = {k: v for k, v in os.environ.items() if k not in ("MGRUN_LIB",)}
    env["PYTHONPATH"] = str(tmp_path)
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import mgrun; print(mgrun.library_path())"], env=env,
                         cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(pkg / "libmg.so.0")


def test_the_runtime_library_is_found_beside_libmg(py):
    """libmg-runtime.so.0 (for the Runtime class built on this package
    later) loads from where libmg was found."""
    out = py("""
        import os
        from mgrun import _lib
        rt = _lib.runtime()
        print(os.path.dirname(_lib.library_path()) == os.path.dirname(rt._name), rt._name)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("True "), out.stdout
