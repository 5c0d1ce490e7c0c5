"""cmake --install into a temporary prefix, then the installed package
imported from outside the source tree with only the prefix's paths."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import BUILD

needs_build = pytest.mark.skipif(BUILD is None or shutil.which("cmake") is None,
                                 reason="MG_BUILD_DIR (the cmake build tree) or cmake is missing")


@needs_build
def test_installed_package_imports_and_finds_its_library(tmp_path):
    prefix = tmp_path / "prefix with space"
    out = subprocess.run(["cmake", "--install", str(BUILD), "--prefix", str(prefix)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    line = [x for x in out.stdout.splitlines() if "Python package mgrun:" in x]
    assert line, out.stdout
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert str(site / "mgrun") in line[0]
    assert (site / "mgrun" / "__init__.py").is_file() and (site / "mgrun" / "_install.py").is_file()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    for k in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS"):  # the sanitizer build's library needs them
        if k in os.environ:
            env[k] = os.environ[k]
    code = """
import mgrun, mgrun.context, mgrun.memory_limit
print(mgrun.__file__)
print(mgrun.library_path())
s = mgrun.Store("installed", max_messages=2, on_full="prune", strategy="keep_last(1)")
for i in range(3):
    s.add("user", str(i))
print(s.ids())
ctx = mgrun.context.ExecutionContext("t", "g")
ctx.add_message({"role": "user", "content": "hi"})
print(len(ctx), mgrun.memory_limit.get_system_memory_gb() > 0)
"""
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(tmp_path), capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == str(site / "mgrun" / "__init__.py")
    assert os.path.realpath(lines[1]).startswith(os.path.realpath(prefix)), lines[1]
    assert lines[2] == "[2, 3]" and lines[3] == "1 True"


def test_sitedir_rule():
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bindings", "python"))
    try:
        from sitedir import sitedir
    finally:
        sys.path.pop(0)
    v = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert sitedir("/opt/x") == f"/opt/x/lib/{v}/site-packages"
    assert sitedir("/opt/x", "py") == "/opt/x/py"
    assert sitedir("/opt/x", "/abs/site") == "/abs/site"
    if os.path.exists("/usr/lib/python3/dist-packages"):  # Debian
        assert sitedir("/usr") == "/usr/lib/python3/dist-packages"
        assert sitedir("/usr/local") == f"/usr/local/lib/{v}/dist-packages"


@needs_build
def test_destdir_staging_for_a_system_prefix(tmp_path):
    """Packagers stage with DESTDIR: the files land under it once (not
    twice), and the recorded library directory is the final one."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bindings", "python"))
    try:
        from sitedir import sitedir
    finally:
        sys.path.pop(0)
    stage = tmp_path / "stage"
    env = dict(os.environ, DESTDIR=str(stage))
    out = subprocess.run(["cmake", "--install", str(BUILD), "--prefix", "/usr"], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    site = sitedir("/usr")
    pkg = stage / site.lstrip("/") / "mgrun"
    assert (pkg / "__init__.py").is_file() and (pkg / "store.py").is_file()
    assert not (stage / str(stage).lstrip("/")).exists()  # DESTDIR not applied twice
    rel = (pkg / "_install.py").read_text().split('LIBDIR = "')[1].split('"')[0]
    staged = [p for p in stage.rglob("libmg.so.0")]
    assert len(staged) == 1
    libdir = "/" + str(staged[0].parent.relative_to(stage))
    assert os.path.normpath(os.path.join(site, "mgrun", rel)) == libdir
