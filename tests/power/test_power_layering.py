"""The power module composes with the runtime only at the CLI top (``cli.py``'s runtime hooks):
no other power file imports the runtime, the exporters or onnxruntime."""

from __future__ import annotations

from pathlib import Path

from tests.source_imports import imported_modules

POWER = Path(__file__).resolve().parents[2] / "power"
FORBIDDEN = ("edge_sdk.runtime", "edge_sdk.exporters", "onnxruntime", "torch")


def test_only_the_cli_top_imports_the_runtime() -> None:
    importers = {
        path.name: sorted(n for n in imported_modules(path) if n.startswith(FORBIDDEN))
        for path in POWER.rglob("*.py")
    }
    offenders = {name: found for name, found in importers.items() if found}
    assert offenders == {"cli.py": ["edge_sdk.runtime", "edge_sdk.runtime.backend"]}
