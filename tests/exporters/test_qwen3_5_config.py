"""Qwen3.5's config.json is read (for edge-plan; the text decoder of a vision-language
checkpoint), and an export says in one line that this family has no exporter yet."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_sdk import EdgeError, ModelConfig
from edge_sdk.exporters import export

transformers = pytest.importorskip("transformers")


def _tiny_text_config() -> dict[str, object]:
    config = transformers.Qwen3_5TextConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        linear_num_key_heads=2,
        linear_num_value_heads=4,
        linear_key_head_dim=16,
        linear_value_head_dim=16,
    )
    data: dict[str, object] = config.to_dict()
    return data


def test_text_config_is_read_and_counts_as_transformers_counts() -> None:
    text = _tiny_text_config()
    config = ModelConfig.from_hf_dict(text | {"architectures": ["Qwen3_5ForCausalLM"]})
    assert config.architecture == "qwen3_5" and config.attention_layers == (3,)
    assert config.rotary_dim == 8 and config.norm_offset == 1.0  # a quarter of 32, 1 + w norms
    linear = config.linear_attention
    assert linear is not None and (linear.num_key_heads, linear.num_value_heads) == (2, 4)
    model = transformers.Qwen3_5ForCausalLM(transformers.Qwen3_5TextConfig(**text))
    assert config.parameter_count() == sum(p.numel() for p in model.parameters())
    nested = {"architectures": ["Qwen3_5ForConditionalGeneration"], "text_config": text}
    assert ModelConfig.from_hf_dict(nested) == config


def test_export_names_a_missing_tensor_and_writes_nothing(
    tmp_path: Path, demo_checkpoint: Path
) -> None:
    from safetensors.numpy import load_file, save_file

    from edge_sdk.checkpoint import read_checkpoint_metadata
    from tests.exporters.hf_models import make_hf_folder

    tokenizer = str(read_checkpoint_metadata(demo_checkpoint)["tokenizer"])
    folder = tmp_path / "model"
    make_hf_folder("qwen3_5", folder, tokenizer, vocab_size=2048)
    weights = load_file(folder / "model.safetensors")
    del weights["model.layers.0.linear_attn.A_log"]
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(EdgeError, match=r"model\.layers\.0\.linear_attn\.A_log") as info:
        export(folder, tmp_path / "bundle", "int8")
    assert "\n" not in str(info.value) and not (tmp_path / "bundle").exists()
