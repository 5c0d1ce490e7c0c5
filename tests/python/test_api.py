"""Every public name of the package has a docstring and a typed
signature, and docs/python-api.md documents it."""

import dataclasses
import inspect
import re
import typing
from pathlib import Path

import pytest

import mgrun
import mgrun.context
import mgrun.errors
import mgrun.limits
import mgrun.memory_limit
import mgrun.probes
import mgrun.sizes
import mgrun.store
import mgrun.strategies

DOC = (Path(__file__).resolve().parents[2] / "docs" / "python-api.md").read_text()
MODULES = [mgrun, mgrun.context, mgrun.errors, mgrun.limits, mgrun.memory_limit, mgrun.probes, mgrun.sizes,
           mgrun.store, mgrun.strategies]
CLASSES = [mgrun.Store, mgrun.StoreView, mgrun.Units, mgrun.strategies.Builtin, mgrun.strategies.Accumulator,
           mgrun.context.ExecutionContext]
CONSTANTS = {"__version__", "SIZE_MAX", "MSG_OVERHEAD", "BUILTIN_NAMES", "LIMIT_WARN_PCT", "TOTAL_WARN_PCT", "GB",
             "strategies", "ACCEPTED", "SizeLike", "StrategyLike", "StrategyFn", "oldest", "lowest_priority_first",
             "user_turn_start"}


def public_names():
    for mod in MODULES:
        for name in mod.__all__:
            yield mod, name, getattr(mod, name)


def public_methods():
    for cls in CLASSES:
        for name, member in vars(cls).items():
            if name.startswith("_") and name not in ("__init__",):
                continue
            yield cls, name, member


def check_signature(fn, where):
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn)
    for p in sig.parameters.values():
        if p.name in ("self", "cls"):
            continue
        assert p.name in hints, f"{where}: parameter {p.name!r} has no annotation"
    assert "return" in hints or fn.__name__ == "__init__", f"{where}: no return annotation"


@pytest.mark.parametrize("mod, name, obj", list(public_names()), ids=lambda x: getattr(x, "__name__", str(x)))
def test_public_names_have_docstrings_and_types(mod, name, obj):
    where = f"{mod.__name__}.{name}"
    assert hasattr(mod, name), where
    if name in CONSTANTS or isinstance(obj, (int, float, str, tuple)):
        return
    assert inspect.getdoc(obj), f"{where} has no docstring"
    if inspect.isfunction(obj):
        check_signature(obj, where)
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
        hints = typing.get_type_hints(obj)
        for f in dataclasses.fields(obj):
            assert f.name in hints, f"{where}.{f.name} has no type"


@pytest.mark.parametrize("cls, name, member", list(public_methods()),
                         ids=lambda x: getattr(x, "__name__", str(x)))
def test_public_methods_have_docstrings_and_types(cls, name, member):
    where = f"{cls.__name__}.{name}"
    fn = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
    if not callable(fn):
        return
    if name != "__init__":
        assert inspect.getdoc(fn), f"{where} has no docstring"
    check_signature(fn, where)


def test_docs_name_every_public_name_and_method():
    missing = []
    for mod, name, _ in public_names():
        if not re.search(r"`[^`]*\b" + re.escape(name) + r"\b", DOC):
            missing.append(f"{mod.__name__}.{name}")
    for cls, name, member in public_methods():
        if name == "__init__" or (not callable(member) and not isinstance(member, property)):
            continue
        if not re.search(r"`[^`]*\b" + re.escape(name) + r"\b", DOC):
            missing.append(f"{cls.__name__}.{name}")
    assert missing == [], f"docs/python-api.md does not document: {missing}"


def test_every_module_is_in_the_docs():
    for mod in ("mgrun.memory_limit", "mgrun.context", "mgrun.strategies"):
        assert f"`{mod}`" in DOC
