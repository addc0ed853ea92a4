"""Serve tests: the single-request reference outputs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_sdk.runtime import Generator, load


@pytest.fixture(scope="session")
def reference(demo_bundle_int8: Path) -> Iterator[Generator]:
    """One Generator on the same bundle: the single-request greedy outputs to compare with."""
    with load(demo_bundle_int8, "ort-cpu", threads=1) as generator:
        yield generator
