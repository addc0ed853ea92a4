"""Qwen3 specifics: its config, a tied head, and GGUF input (the HF-folder parity and streamed
export tests cover it through ``FAMILIES``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from edge_sdk import ModelConfig
from edge_sdk.exporters import export, load_model
from tests.exporters.gguf_files import tiny_hf_model, write_gguf
from tests.exporters.hf_models import FAMILIES, make_hf_folder

transformers = pytest.importorskip("transformers")

_QWEN3_0_6B = {  # Qwen/Qwen3-0.6B's config.json, the keys that matter
    "architectures": ["Qwen3ForCausalLM"],
    "vocab_size": 151936,
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "attention_bias": False,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000,
    "max_position_embeddings": 40960,
    "sliding_window": None,
    "use_sliding_window": False,
    "tie_word_embeddings": True,
}


@pytest.fixture(scope="module")
def tokenizer_json(demo_checkpoint: Path) -> str:
    from edge_sdk.checkpoint import read_checkpoint_metadata

    return str(read_checkpoint_metadata(demo_checkpoint)["tokenizer"])


def test_config_reads_head_dim_and_counts_the_qk_norms() -> None:
    config = ModelConfig.from_hf_dict(_QWEN3_0_6B)
    assert (config.architecture, config.head_dim, config.q_size) == ("qwen3", 128, 2048)
    assert config.qk_norm and not config.qkv_bias and config.sliding_window is None
    assert config.parameter_count() == 596_049_920  # "0.6B", tied head
    assert config.parameter_count(include_embeddings=False) == 440_467_456  # "0.44B"
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.from_hf_dict(_QWEN3_0_6B | {"attention_bias": True}).qkv_bias
    windowed = _QWEN3_0_6B | {"use_sliding_window": True, "sliding_window": 4096}
    assert ModelConfig.from_hf_dict(windowed).sliding_window == 4096
    assert not ModelConfig.from_hf_dict(_QWEN3_0_6B | {"sliding_window": 4096}).sliding_window


def test_parameter_count_matches_transformers() -> None:
    model = tiny_hf_model("qwen3")
    config = ModelConfig.from_hf_dict(
        model.config.to_dict() | {"architectures": [type(model).__name__]}
    )
    assert config.parameter_count() == sum(p.numel() for p in model.parameters())


def test_tied_head_exports_against_transformers(
    tokenizer_json: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = FAMILIES["qwen3"]
    monkeypatch.setitem(
        FAMILIES, "qwen3", spec | {"extra": spec["extra"] | {"tie_word_embeddings": True}}
    )
    hf = make_hf_folder("qwen3", tmp_path / "hf", tokenizer_json, vocab_size=2048)
    result = export(tmp_path / "hf", tmp_path / "bundle", "fp32")
    assert result.bundle.manifest["model"]["config"]["tie_word_embeddings"]
    assert result.parity.worst <= 1e-4
    assert result.bundle.manifest["onnxruntime"]["fused_graph"]
    ids = torch.randint(0, 2048, (1, 9), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        logits, _ = load_model(tmp_path / "hf").model(ids)
        assert float((logits - hf(ids).logits).abs().max()) <= 1e-4


def _transformers_gguf(path: Path, config: Any) -> Any:
    # transformers' qwen3 GGUF mapping drops attention.key_length (it would take head_dim 128)
    return transformers.AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32, config=config
    ).eval()


@pytest.mark.parametrize("plan", ["F32", "mixed"])
def test_gguf_matches_transformers_gguf_loader(
    plan: str, tokenizer_json: str, tmp_path: Path
) -> None:
    pytest.importorskip("gguf")
    original = tiny_hf_model("qwen3")
    path = write_gguf(tmp_path / "tiny.gguf", original, "qwen3", tokenizer_json, plan)
    loaded = load_model(path)
    c = loaded.config
    assert (c.architecture, c.head_dim, c.qkv_bias, c.tie_word_embeddings) == (
        "qwen3",
        32,
        False,
        False,
    )
    ids = torch.randint(0, 2048, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, _ = loaded.model(ids)
        expected = _transformers_gguf(path, original.config)(ids).logits
        assert float((logits - expected).abs().max() / expected.abs().max()) <= 1e-4
        if plan == "F32":  # nothing lost: the model that was written (q/k rows not permuted)
            written = original(ids).logits
            assert float((logits - written).abs().max() / written.abs().max()) <= 1e-4


def test_gguf_exports_both_graphs(tokenizer_json: str, tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    path = write_gguf(
        tmp_path / "tiny.gguf", tiny_hf_model("qwen3"), "qwen3", tokenizer_json, "mixed"
    )
    result = export(path, tmp_path / "bundle", "int8", eval_tokens=64)
    assert result.parity.worst <= 1e-4
    fused = result.bundle.manifest["onnxruntime"]["fused_graph"]
    assert fused and fused["parity_vs_pytorch"]["worst"] <= 1e-4
    graph = onnx.load(str(result.bundle.path / fused["file"]), load_external_data=False)
    gqa = [n for n in graph.graph.node if n.op_type == "GroupQueryAttention"]
    assert len(gqa) == 2 and all(n.input[1] and n.input[2] for n in gqa)  # q, k, v apart
    norms = [n for n in graph.graph.node if n.name.startswith("model.layers.0.self_attn.")]
    assert [n.op_type for n in norms] == ["SimplifiedLayerNormalization"] * 2  # q_norm, k_norm
    weights = {i.name: i for i in graph.graph.initializer}
    q_norm = onnx.numpy_helper.to_array(weights["model.layers.0.self_attn.q_norm.weight"])
    assert q_norm.shape == (32,) and not np.allclose(q_norm, 1.0)
