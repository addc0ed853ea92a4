"""Native TensorRT backend: engine refusal logic (pure) and a clear failure without TensorRT."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from edge_sdk.bundle import load_bundle
from edge_sdk.errors import BackendUnavailableError
from edge_sdk.runtime import BackendOptions, create_backend
from edge_sdk.runtime.trt_engine import engine_mismatch, same_trt_version, select_engine

ORIN = {
    "file": "model.int8.engine",
    "tensorrt": "10.3.0.30",
    "gpu": "Orin",
    "compute_capability": "8.7",
}


def test_engine_built_here_is_selected() -> None:
    manifest = {"engines": [dict(ORIN, file="old.engine", tensorrt="8.6.2.3"), ORIN]}
    assert select_engine(manifest, "10.3.0.26", "Orin", "8.7")["file"] == "model.int8.engine"
    assert same_trt_version("10.3.0.30", "10.3.0") and not same_trt_version("10.3.0", "10.4.0")


@pytest.mark.parametrize(
    ("trt", "gpu", "cc", "words"),
    [
        ("8.6.2", "Orin", "8.7", "TensorRT 10.3.0.30"),
        ("10.3.0", "NVIDIA H200", "9.0", "compute capability 8.7"),
        ("10.3.0", "NVIDIA GeForce RTX 3050", "8.7", "the GPU 'Orin'"),
    ],
)
def test_engine_for_another_version_or_gpu_is_refused(
    trt: str, gpu: str, cc: str, words: str
) -> None:
    assert words in (engine_mismatch(ORIN, trt, gpu, cc) or "")
    with pytest.raises(BackendUnavailableError, match="edge-engine demo") as info:
        select_engine({"engines": [ORIN]}, trt, gpu, cc, "demo")
    assert words in str(info.value) and "\n" not in str(info.value)


def test_bundle_without_engine_says_to_build_one() -> None:
    with pytest.raises(BackendUnavailableError, match="edge-engine demo"):
        select_engine({"engines": []}, "10.3.0", "Orin", "8.7", "demo")


def test_runtime_imports_without_tensorrt() -> None:
    code = (
        "import sys, edge_sdk.runtime, edge_sdk.runtime.trt_backend; "
        "assert 'tensorrt' not in sys.modules and 'pycuda' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed"
)
def test_tensorrt_backend_without_tensorrt_is_one_clear_line(demo_bundle_fp32: Path) -> None:
    with pytest.raises(BackendUnavailableError) as info:
        create_backend("tensorrt", load_bundle(demo_bundle_fp32), BackendOptions())
    message = str(info.value)
    assert "python3-libnvinfer" in message and "\n" not in message


def test_ort_tensorrt_ep_takes_the_engine_build_settings(
    demo_bundle_int8_per_channel: Path, tmp_path: Path
) -> None:
    from edge_sdk.bundle import Bundle
    from edge_sdk.runtime.ort_backend import OrtTensorrtBackend

    bundle = load_bundle(demo_bundle_int8_per_channel)
    manifest = dict(
        bundle.manifest, engines=[dict(ORIN, workspace_mb=512, builder_optimization_level=2)]
    )
    backend = OrtTensorrtBackend(Bundle(bundle.path, manifest), BackendOptions(cache_dir=tmp_path))
    trt = dict(backend.providers()[0][1])
    assert (
        trt["trt_max_workspace_size"] == 512 * 2**20 and trt["trt_builder_optimization_level"] == 2
    )
    assert trt["trt_int8_enable"] is True and trt["trt_fp16_enable"] is True
    plain = dict(OrtTensorrtBackend(bundle, BackendOptions(cache_dir=tmp_path)).providers()[0][1])
    assert "trt_max_workspace_size" not in plain
