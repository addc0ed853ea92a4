"""The reference model and the ONNX export against transformers, for each supported family."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edge_sdk import UnsupportedModelError, load_bundle
from edge_sdk.exporters import export, load_model, open_model
from edge_sdk.exporters.fused_graph_check import FusedSession
from edge_sdk.exporters.ort_check import OrtModel
from tests.exporters.hf_models import FAMILIES, WHOLE_MODEL, make_hf_folder

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tokenizer_json(demo_checkpoint: Path) -> str:
    from edge_sdk.checkpoint import read_checkpoint_metadata

    return str(read_checkpoint_metadata(demo_checkpoint)["tokenizer"])


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def hf_model(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tokenizer_json: str
) -> tuple[str, Path, object]:
    folder = tmp_path_factory.mktemp(request.param)
    model = make_hf_folder(request.param, folder, tokenizer_json, vocab_size=2048)
    return request.param, folder, model


def test_reference_matches_transformers(hf_model: tuple[str, Path, object]) -> None:
    family, folder, hf = hf_model
    if family not in WHOLE_MODEL:  # layer-wise reference only: the exports below check it
        with pytest.raises(UnsupportedModelError, match="export it with fp32, int8 or int4"):
            load_model(folder)
        return
    ours = load_model(folder).model
    assert ours.config.architecture == family
    ids = torch.randint(0, 2048, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(ids).logits  # type: ignore[operator]
        logits, past = ours(ids)
        step_expected = hf(torch.cat([ids, ids[:, :1]], 1)).logits[:, -1:]  # type: ignore[operator]
        step, _ = ours(ids[:, :1], past_key_values=past)
    assert float((logits - expected).abs().max()) <= 1e-4
    assert float((step - step_expected).abs().max()) <= 1e-4


def test_family_specifics_are_read(hf_model: tuple[str, Path, object]) -> None:
    family, folder, _ = hf_model
    config = open_model(folder).config
    if family == "llama":
        assert config.rope_scaling is not None and config.rope_scaling.kind == "llama3"
    if family == "qwen2":
        assert config.qkv_bias and config.tie_word_embeddings
    if family == "mistral":
        assert config.sliding_window == 6
    if family == "qwen3":  # q_size 128 != hidden 64
        assert config.qk_norm and config.head_dim == 32 and not config.qkv_bias
    if family == "gemma3":
        assert config.layer_window(0) == 3 and config.layer_window(1) is None
        assert config.local_rope(0) and not config.local_rope(1)
        assert (config.rope_local_theta, config.rope_theta) == (10000.0, 1000000.0)
        assert config.attention_scale == pytest.approx(24**-0.5) and config.norm_offset == 1.0


def test_fp32_export_matches_transformers(
    hf_model: tuple[str, Path, object], tmp_path: Path
) -> None:
    _family, folder, hf = hf_model
    result = export(folder, tmp_path / "bundle", "fp32")
    assert result.parity.worst <= 1e-4
    bundle = load_bundle(result.bundle.path)
    onnx.checker.check_model(str(bundle.onnx_path))
    ort_model = OrtModel(bundle.onnx_path, bundle.config)
    ids = np.random.default_rng(2).integers(0, 2048, (1, 10))
    logits, past = ort_model.run(ids)
    step, _ = ort_model.run(ids[:, :1], past)
    with torch.no_grad():
        expected = hf(torch.from_numpy(ids)).logits.numpy()  # type: ignore[operator]
        step_expected = (
            hf(torch.from_numpy(np.concatenate([ids, ids[:, :1]], 1))).logits[:, -1:].numpy()
        )  # type: ignore[operator]
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(logits - expected).max() / scale <= 1e-4
    assert np.abs(step - step_expected).max() / scale <= 1e-4
    # the onnxruntime graph too (llama3 RoPE, Qwen2's biases, Mistral's window, Qwen3's q/k norms)
    onnxruntime = bundle.manifest["onnxruntime"]
    assert onnxruntime["fused_graph"], onnxruntime.get("fused_graph_skipped")
    fused = FusedSession(bundle.path / onnxruntime["fused_graph"]["file"], bundle.config, 16, {})
    assert np.abs(fused.run(ids[0].tolist()) - expected[0, -1]).max() / scale <= 1e-4
    assert np.abs(fused.run(ids[0, :1].tolist()) - step_expected[0, -1]).max() / scale <= 1e-4


def test_int8_export_of_each_family_is_int8(
    hf_model: tuple[str, Path, object], tmp_path: Path
) -> None:
    _, folder, _ = hf_model
    result = export(folder, tmp_path / "bundle", "int8", eval_tokens=256)
    graph = onnx.load(str(result.bundle.onnx_path))
    matmul_weights = [i for i in graph.graph.initializer if i.name.endswith(".int8")]
    assert matmul_weights and all(i.data_type == onnx.TensorProto.INT8 for i in matmul_weights)
    assert result.accuracy is not None and result.accuracy.gate.startswith(
        "skipped"
    )  # random weights


def test_unsupported_architecture(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(UnsupportedModelError, match="LlamaForCausalLM"):
        load_model(tmp_path)
