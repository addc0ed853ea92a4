"""Serve tests: the engine's optimized graphs go to a temporary cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_sdk.runtime import Generator, load


@pytest.fixture(scope="session", autouse=True)
def serve_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("edge-sdk-cache")
        patch.setenv("EDGE_SDK_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="session")
def reference(demo_bundle_int8: Path) -> Iterator[Generator]:
    """One Generator on the same bundle: the single-request greedy outputs to compare with."""
    with load(demo_bundle_int8, "ort-cpu", threads=1) as generator:
        yield generator
