"""Backends: selection by name, clear errors when one is unavailable, the shared lifecycle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_sdk import BackendUnavailableError, load_bundle
from edge_sdk.runtime import (
    AUTO_ORDER,
    BACKENDS,
    Backend,
    BackendOptions,
    available_backends,
    create_backend,
    load,
)


def test_auto_order_and_names() -> None:
    assert AUTO_ORDER == ("ort-tensorrt", "ort-cuda", "ort-cpu")
    assert set(BACKENDS) == {"ort-tensorrt", "ort-cuda", "ort-cpu", "tensorrt"}
    usable = available_backends()
    assert "ort-cpu" in usable
    assert usable == [name for name in BACKENDS if name in usable]


def test_auto_picks_the_first_usable(demo_bundle_fp32: Path) -> None:
    backend = create_backend("auto", load_bundle(demo_bundle_fp32), BackendOptions())
    assert backend.name == available_backends()[0]


def test_unknown_backend_names_the_choices(demo_bundle_fp32: Path) -> None:
    with pytest.raises(BackendUnavailableError, match=r"unknown backend 'cuda'.*ort-cpu"):
        load(demo_bundle_fp32, "cuda")


@pytest.mark.skipif("ort-cuda" in available_backends(), reason="CUDA EP present here")
def test_missing_cuda_names_the_extra(demo_bundle_fp32: Path) -> None:
    with pytest.raises(BackendUnavailableError, match=r"edge-sdk-orin\[gpu\]"):
        load(demo_bundle_fp32, "ort-cuda")
    with pytest.raises(BackendUnavailableError, match="TensorRT"):
        load(demo_bundle_fp32, "ort-tensorrt")


def test_native_tensorrt_names_what_to_install(demo_bundle_fp32: Path) -> None:
    with pytest.raises(BackendUnavailableError, match=r"tensorrt|JetPack"):
        load(demo_bundle_fp32, "tensorrt")


def test_lifecycle_is_a_context_manager(demo_bundle_fp32: Path) -> None:
    bundle = load_bundle(demo_bundle_fp32, verify=False)
    backend = create_backend("ort-cpu", bundle, BackendOptions(threads=1))
    assert isinstance(backend, Backend) and backend.cache_bytes == 0
    with backend:
        backend.allocate(16)
        logits = backend.forward(np.array([5, 6, 7]))
        assert logits.shape == (bundle.config.vocab_size,) and backend.cache_length == 3
        backend.forward(np.array([8]))
        assert backend.cache_length == 4
        backend.reset()
        assert backend.cache_length == 0 and backend.cache_bytes > 0
    assert backend.cache_bytes == 0


@pytest.mark.cuda
def test_cuda_backend_matches_cpu(demo_bundle_fp32: Path) -> None:
    if "ort-cuda" not in available_backends():
        pytest.skip("onnxruntime here has no CUDA EP (pip install 'edge-sdk-orin[gpu]')")
    with load(demo_bundle_fp32, "ort-cuda") as gpu, load(demo_bundle_fp32, "ort-cpu") as cpu:
        a = gpu.generate("Once upon a time", max_new_tokens=32)
        b = cpu.generate("Once upon a time", max_new_tokens=32)
        assert a.token_ids == b.token_ids


def test_optimized_graph_cache(demo_bundle_int8: Path, tmp_path: Path) -> None:
    prompt = "Once upon a time"
    with load(demo_bundle_int8, "ort-cpu", cache_dir=tmp_path, optimized_cache=False) as plain:
        expected = plain.generate(prompt, max_new_tokens=40, ignore_eos=True)
    assert not (tmp_path / "ort").exists()
    with load(demo_bundle_int8, "ort-cpu", cache_dir=tmp_path) as first:
        made = sorted((tmp_path / "ort").iterdir())
        files = {p.name for p in made[0].iterdir()}
        assert len(made) == 1 and files == {"model.onnx", "model.data", ".in-use"}  # + its lease
        assert (
            first.generate(prompt, max_new_tokens=40, ignore_eos=True).token_ids
            == expected.token_ids
        )
    stamp = (made[0] / "model.data").stat().st_mtime_ns
    with load(demo_bundle_int8, "ort-cpu", cache_dir=tmp_path) as again:  # reused, not rebuilt
        assert (
            again.generate(prompt, max_new_tokens=40, ignore_eos=True).token_ids
            == expected.token_ids
        )
    assert (made[0] / "model.data").stat().st_mtime_ns == stamp
    with load(
        demo_bundle_int8,
        "ort-cpu",
        cache_dir=tmp_path,
        session_config={"session.intra_op.allow_spinning": "0"},
    ):
        assert len(list((tmp_path / "ort").iterdir())) == 2  # another config, another entry


def test_unwritable_cache_falls_back_to_the_bundle(demo_bundle_int8: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with load(demo_bundle_int8, "ort-cpu", cache_dir=blocker) as gen:
        assert gen.generate("Once", max_new_tokens=3).stats.new_tokens == 3


def test_runtime_never_imports_torch_or_the_exporters() -> None:
    import subprocess
    import sys

    code = (
        "import sys, edge_sdk.runtime, edge_sdk.runtime.cli; "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('edge_sdk.exporters') "
        "or m.startswith('edge_sdk.power')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_public_surface_is_complete() -> None:
    from edge_sdk import runtime

    for name in runtime.__all__:
        assert getattr(runtime, name) is not None
    assert {
        "load",
        "Generator",
        "Stream",
        "TokenEvent",
        "GenerationResult",
        "GenerationStats",
        "Backend",
        "available_backends",
    } <= set(runtime.__all__)


@pytest.mark.tensorrt
@pytest.mark.cuda
def test_tensorrt_ep_builds_and_caches_engines(demo_bundle_int8: Path, tmp_path: Path) -> None:
    if "ort-tensorrt" not in available_backends():
        pytest.skip("onnxruntime here has no TensorRT EP (onnxruntime-gpu + TensorRT)")
    with load(demo_bundle_int8, "ort-tensorrt", cache_dir=tmp_path) as gen:
        result = gen.generate("Once upon a time", max_new_tokens=16)
        assert result.stats.new_tokens >= 1 and "TensorrtExecutionProvider" in result.stats.backend
    assert any((tmp_path / "trt").rglob("*"))


@pytest.mark.filterwarnings("ignore:Specified provider:UserWarning")
def test_auto_skips_a_listed_provider_that_does_not_start(
    demo_bundle_fp32: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge_sdk.runtime.ort_backend import OrtCudaBackend

    if "ort-cuda" in available_backends():
        pytest.skip("CUDA EP present here")
    # onnxruntime lists an EP whose libraries are missing (e.g. onnxruntime-gpu without CUDA)
    monkeypatch.setattr(OrtCudaBackend, "check_available", classmethod(lambda cls: None))
    assert "ort-cuda" in available_backends()
    with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider"):
        load(demo_bundle_fp32, "ort-cuda")
    with load(demo_bundle_fp32) as gen:  # auto: ort-cuda fails to start, ort-cpu runs
        assert gen.backend.name == "ort-cpu"
