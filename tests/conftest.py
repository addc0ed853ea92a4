"""Test-wide setup: hardware markers skip with a reason when the hardware is absent."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.real_models import gemma3_gguf, smollm2_gguf  # noqa: F401  (session fixtures)


def _on_jetson() -> bool:
    model = Path("/proc/device-tree/model")
    text = model.read_text(errors="ignore") if model.is_file() else ""
    return Path("/etc/nv_tegra_release").is_file() or "Jetson" in text or "Orin" in text


def _has_cuda() -> bool:
    return Path("/proc/driver/nvidia/version").is_file() or _on_jetson()


def _has_tensorrt() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


_HARDWARE = {
    "jetson": (_on_jetson, "needs a Jetson Orin (run the on-device suite there: pytest -m jetson)"),
    "cuda": (_has_cuda, "needs an NVIDIA GPU with a driver"),
    "tensorrt": (_has_tensorrt, "needs TensorRT's Python bindings (JetPack's python3-libnvinfer)"),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    present = {name: check() for name, (check, _) in _HARDWARE.items()}
    for item in items:
        for name, (_, reason) in _HARDWARE.items():
            if name in item.keywords and not present[name]:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session", autouse=True)
def edge_sdk_session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The cache of session fixtures (set up before any test's own): never ~/.cache/edge-sdk."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("edge-sdk-cache")
        patch.setenv("EDGE_SDK_CACHE_DIR", str(path))
        patch.delenv("EDGE_SDK_CACHE_MAX_MB", raising=False)
        yield path


@pytest.fixture(autouse=True)
def edge_sdk_cache_dir(
    edge_sdk_session_cache_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """Each test's own empty cache (optimized graphs, engines), inherited by its subprocesses."""
    path = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("EDGE_SDK_CACHE_DIR", str(path))
    return path


# -- shared model fixtures (made once per test session, a few seconds of CPU) ---------------------


@pytest.fixture(scope="session")
def demo_checkpoint() -> Path:
    """The packaged demo model.pt."""
    from edge_sdk.exporters import demo_checkpoint_path

    return demo_checkpoint_path()


@pytest.fixture(scope="session")
def demo_bundle_fp32(tmp_path_factory: pytest.TempPathFactory, demo_checkpoint: Path) -> Path:
    """An fp32 bundle of the demo model."""
    from edge_sdk.exporters import export

    return export(
        demo_checkpoint, tmp_path_factory.mktemp("bundles") / "demo-fp32", "fp32"
    ).bundle.path


@pytest.fixture(scope="session")
def demo_bundle_int8_per_channel(
    tmp_path_factory: pytest.TempPathFactory, demo_checkpoint: Path
) -> Path:
    """An int8 bundle of the demo model in TensorRT's form: weights per output channel."""
    from edge_sdk.exporters import QuantConfig, export

    quant = QuantConfig(method="int8", group_size=0, smoothquant_alpha=None)
    return export(
        demo_checkpoint, tmp_path_factory.mktemp("bundles") / "demo-int8-pc", quant=quant
    ).bundle.path


@pytest.fixture(scope="session")
def demo_bundle_int8(tmp_path_factory: pytest.TempPathFactory, demo_checkpoint: Path) -> Path:
    """An int8 bundle of the demo model."""
    from edge_sdk.exporters import export

    return export(
        demo_checkpoint, tmp_path_factory.mktemp("bundles") / "demo-int8", "int8"
    ).bundle.path


@pytest.fixture(scope="session")
def smollm2_int8(
    smollm2_gguf: Path,  # noqa: F811  (the session fixture imported above)
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """SmolLM2-135M-Instruct exported to int8 from its GGUF file, once per session (about a
    minute on 2 cores); its accuracy gate must pass unforced."""
    from edge_sdk.exporters import export

    result = export(
        smollm2_gguf, tmp_path_factory.mktemp("smollm2") / "int8", "int8", eval_tokens=1024
    )
    assert result.accuracy is not None and result.accuracy.gate == "passed"
    assert result.parity.worst <= 1e-4  # the float graph against PyTorch
    return result.bundle.path


@pytest.fixture(scope="session")
def qwen3_5_random(
    demo_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, Path]:
    """A tiny random Qwen3.5 from transformers (one linear-attention layer, one attention
    layer; the demo's tokenizer, 2048 ids) and our fp32 bundle of it (a second or two)."""
    pytest.importorskip("transformers.models.qwen3_5")
    from edge_sdk.checkpoint import read_checkpoint_metadata
    from edge_sdk.exporters import export
    from tests.exporters.hf_models import make_hf_folder

    tokenizer = str(read_checkpoint_metadata(demo_checkpoint)["tokenizer"])
    folder = tmp_path_factory.mktemp("qwen3_5")
    hf = make_hf_folder("qwen3_5", folder / "hf", tokenizer, vocab_size=2048)
    bundle = export(folder / "hf", folder / "bundle", "fp32").bundle.path
    return hf, bundle
