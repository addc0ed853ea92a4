"""Generators over the demo bundles, loaded once per test session (real onnxruntime sessions)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_sdk.runtime import Generator, load


@pytest.fixture(scope="session")
def gen_fp32(demo_bundle_fp32: Path) -> Iterator[Generator]:
    with load(demo_bundle_fp32, "ort-cpu", threads=2) as generator:
        yield generator


@pytest.fixture(scope="session")
def gen_int8(demo_bundle_int8: Path) -> Iterator[Generator]:
    with load(demo_bundle_int8, threads=2) as generator:
        yield generator
