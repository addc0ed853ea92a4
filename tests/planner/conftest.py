"""Shared fixtures for the planner tests: a tiny model config and its Hugging Face form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_sdk.config import ModelConfig


@pytest.fixture
def tiny_config() -> ModelConfig:
    """vocab 100, hidden 16, 2 layers, 4 heads (2 KV heads, head_dim 4), MLP 32, tied."""
    return ModelConfig(
        vocab_size=100,
        hidden_size=16,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=32,
        tie_word_embeddings=True,
        max_position_embeddings=512,
    )


@pytest.fixture
def hf_config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny" / "config.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "vocab_size": 100,
                "hidden_size": 16,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "intermediate_size": 32,
                "tie_word_embeddings": True,
                "max_position_embeddings": 512,
            }
        ),
        encoding="utf-8",
    )
    return path
