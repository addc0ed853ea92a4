"""edge_sdk.deploy composes the core only; what it mirrors of the runtime stays equal to it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge_sdk.deploy import cli, sizing
from edge_sdk.runtime import backend, slots
from tests.source_imports import imported_modules

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_NOT_CORE = (
    "edge_sdk.runtime",
    "edge_sdk.serve",
    "edge_sdk.power",
    "edge_sdk.exporters",
    "torch",
    "onnx",
    "onnxruntime",
)


def test_deploy_imports_only_the_core() -> None:
    offenders = {
        path.name: sorted(n for n in imported_modules(path) if n.startswith(_NOT_CORE))
        for path in DEPLOY.glob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_it_loads_neither_onnxruntime_nor_yaml() -> None:
    code = (
        "import sys, edge_sdk.deploy.cli; "
        "print(sorted(m for m in ('onnxruntime', 'torch', 'yaml', 'edge_sdk.runtime') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"


def test_it_mirrors_the_runtime() -> None:
    assert sizing.PREFILL_CHUNK == slots.PREFILL_CHUNK
    assert ("auto", *backend.BACKENDS) == cli._BACKENDS
