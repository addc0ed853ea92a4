"""Qwen3.5's config.json is read (for edge-plan; the text decoder of a vision-language
checkpoint), and an export says in one line that this family has no exporter yet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_sdk import ModelConfig, UnsupportedModelError
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


def test_export_says_there_is_no_exporter_yet(tmp_path: Path) -> None:
    text = _tiny_text_config() | {"architectures": ["Qwen3_5ForCausalLM"]}
    (tmp_path / "config.json").write_text(json.dumps(text), encoding="utf-8")
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (tmp_path / "tokenizer.json").write_text("{}", encoding="utf-8")
    with pytest.raises(UnsupportedModelError, match="no exporter for the 'qwen3_5' family") as info:
        export(tmp_path, tmp_path / "bundle", "int8")
    assert "\n" not in str(info.value) and not (tmp_path / "bundle").exists()
