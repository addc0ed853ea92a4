"""The server sits on top: the runtime and the power module never import it."""

from __future__ import annotations

from pathlib import Path

from tests.source_imports import imported_modules

ROOT = Path(__file__).resolve().parents[2]


def test_runtime_and_power_do_not_import_serve() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("runtime", "power", "edge_sdk")
        for path in (ROOT / folder).rglob("*.py")
        if any(name.startswith("edge_sdk.serve") for name in imported_modules(path))
    ]
    assert offenders == []
