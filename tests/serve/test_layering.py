"""The server sits on top: the runtime and the power module never import it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_runtime_and_power_do_not_import_serve() -> None:
    offenders = [str(path.relative_to(ROOT)) for folder in ("runtime", "power", "edge_sdk")
                 for path in (ROOT / folder).rglob("*.py")
                 if any(name.startswith("edge_sdk.serve") for name in _imports(path))]
    assert offenders == []
