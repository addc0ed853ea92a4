"""ModelConfig validation and conversions."""

from __future__ import annotations

import pytest

from edge_sdk import ConfigError, ModelConfig, UnsupportedModelError

BASE = dict(
    vocab_size=100, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128
)


def test_defaults_and_derived_sizes() -> None:
    config = ModelConfig(**BASE)
    assert config.head_dim == 16 and config.q_size == 64 and config.kv_size == 32
    assert ModelConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_kv_heads": 3}, "multiple of num_kv_heads"),
        ({"hidden_size": 0}, "hidden_size must be a positive integer"),
        ({"head_dim": 15}, "head_dim must be even"),
        ({"rms_norm_eps": 0}, "rms_norm_eps"),
        ({"eos_token_ids": (100,)}, "outside the vocabulary"),
        ({"architecture": "gpt2"}, "not supported"),
    ],
)
def test_invalid_configs_say_what_is_wrong(change: dict[str, object], message: str) -> None:
    with pytest.raises((ConfigError, UnsupportedModelError), match=message):
        ModelConfig(**{**BASE, **change})  # type: ignore[arg-type]


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown model config keys: colour"):
        ModelConfig.from_dict({**BASE, "colour": "red"})


def test_hugging_face_llama3_config() -> None:
    hf = {
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": 128256,
        "hidden_size": 2048,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 8192,
        "rope_theta": 500000.0,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": True,
        "bos_token_id": 128000,
        "eos_token_id": [128001, 128008, 128009],
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    }
    config = ModelConfig.from_hf_dict(hf)
    assert config.head_dim == 64 and config.eos_token_ids == (128001, 128008, 128009)
    assert config.rope_scaling is not None and config.rope_scaling.factor == 32.0
    assert 1.2e9 < config.parameter_count() < 1.3e9  # Llama 3.2 1B: 1.24 B


def test_qwen2_has_qkv_bias_and_other_architectures_are_named() -> None:
    hf = {
        "architectures": ["Qwen2ForCausalLM"],
        "vocab_size": 151936,
        "hidden_size": 896,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "intermediate_size": 4864,
        "tie_word_embeddings": True,
    }
    config = ModelConfig.from_hf_dict(hf)
    assert config.qkv_bias and 0.49e9 < config.parameter_count() < 0.5e9  # Qwen2.5-0.5B: 494 M
    with pytest.raises(UnsupportedModelError, match="Qwen2ForCausalLM"):
        ModelConfig.from_hf_dict({"architectures": ["PhiForCausalLM"]})
    with pytest.raises(ConfigError, match="hidden_size"):
        ModelConfig.from_hf_dict({"architectures": ["LlamaForCausalLM"], "num_attention_heads": 2})
