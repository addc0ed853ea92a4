"""The curated public surface: complete, importable, and free of heavy imports."""

from __future__ import annotations
import __future__

import importlib
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest

import edge_sdk

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [
    "edge_sdk",
    "edge_sdk.exporters",
    "edge_sdk.runtime",
    "edge_sdk.power",
    "edge_sdk.planner",
    "edge_sdk.manifest",
    "edge_sdk.serve",
    "edge_sdk.deploy",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", [])
    assert exported, f"{name} has no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing


# Dunder names a package exports on purpose (as httpx exports __version__).
EXPORTED_DUNDERS = {"__version__"}


def _public_names(module: types.ModuleType) -> set[str]:
    """What ``from module import *`` should give: every public name the module defines or
    re-exports, not its submodules, ``annotations`` or names imported for type hints; plus the
    names it serves lazily (a ``_WHERE`` table of name -> submodule, read by ``__getattr__``)."""
    names = {
        name
        for name, value in vars(module).items()
        if (not name.startswith("_") or name in EXPORTED_DUNDERS)
        and not isinstance(value, (types.ModuleType, __future__._Feature))
        and value is not getattr(typing, name, None)
    }
    return names | set(getattr(module, "_WHERE", {}))


@pytest.mark.parametrize("name", PACKAGES)
def test_all_equals_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    public = _public_names(module)
    exported = set(module.__all__)
    assert exported == public, (
        f"{name}.__all__ lacks {sorted(public - exported)}; lists {sorted(exported - public)} "
        "that the module does not define"
    )
    assert len(module.__all__) == len(exported), f"{name}.__all__ lists a name twice"


def test_the_root_exports_every_error_class() -> None:
    errors = importlib.import_module("edge_sdk.errors")
    assert set(errors.__all__) <= set(edge_sdk.__all__)


def test_core_runtime_and_power_import_without_torch() -> None:
    code = (
        "import sys, edge_sdk, edge_sdk.runtime, edge_sdk.power, edge_sdk.planner; "
        "print(sorted(m for m in ('torch', 'onnx', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_packaging_lists_every_package() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for package, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]))
    assert found <= listed, f"not listed in pyproject.toml: {sorted(found - listed)}"
