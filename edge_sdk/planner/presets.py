"""Named models with their real hyper-parameters (from each model's Hugging Face ``config.json``).

Token ids are those of the base checkpoints. ``max_position_embeddings`` is the trained context
(Llama 3.2: 131072 with llama3 RoPE scaling; Qwen2.5 1.5B/7B base: 131072 / 32768 per config).
"""

from __future__ import annotations

from edge_sdk.config import ModelConfig, RopeScaling
from edge_sdk.errors import ConfigError

__all__ = ["PRESETS", "get_preset", "preset_names"]

_LLAMA3_SCALING = RopeScaling(
    kind="llama3",
    factor=32.0,
    low_freq_factor=1.0,
    high_freq_factor=4.0,
    original_max_position_embeddings=8192,
)


def _qwen2(
    vocab: int,
    hidden: int,
    layers: int,
    heads: int,
    kv: int,
    inter: int,
    tie: bool,
    theta: float,
    max_pos: int,
    bos: int,
    eos: int,
) -> ModelConfig:
    return ModelConfig(
        architecture="qwen2",
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv,
        intermediate_size=inter,
        tie_word_embeddings=tie,
        rope_theta=theta,
        rms_norm_eps=1e-6,
        max_position_embeddings=max_pos,
        qkv_bias=True,
        bos_token_id=bos,
        eos_token_ids=(eos,),
    )


PRESETS: dict[str, ModelConfig] = {
    # TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T
    "tinyllama-1.1b": ModelConfig(
        vocab_size=32000,
        hidden_size=2048,
        num_layers=22,
        num_heads=32,
        num_kv_heads=4,
        intermediate_size=5632,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_ids=(2,),
    ),
    # meta-llama/Llama-3.2-1B
    "llama-3.2-1b": ModelConfig(
        vocab_size=128256,
        hidden_size=2048,
        num_layers=16,
        num_heads=32,
        num_kv_heads=8,
        intermediate_size=8192,
        head_dim=64,
        rope_theta=500000.0,
        rope_scaling=_LLAMA3_SCALING,
        rms_norm_eps=1e-5,
        max_position_embeddings=131072,
        tie_word_embeddings=True,
        bos_token_id=128000,
        eos_token_ids=(128001,),
    ),
    # meta-llama/Llama-3.2-3B
    "llama-3.2-3b": ModelConfig(
        vocab_size=128256,
        hidden_size=3072,
        num_layers=28,
        num_heads=24,
        num_kv_heads=8,
        intermediate_size=8192,
        head_dim=128,
        rope_theta=500000.0,
        rope_scaling=_LLAMA3_SCALING,
        rms_norm_eps=1e-5,
        max_position_embeddings=131072,
        tie_word_embeddings=True,
        bos_token_id=128000,
        eos_token_ids=(128001,),
    ),
    # Qwen/Qwen2.5-0.5B
    "qwen2.5-0.5b": _qwen2(151936, 896, 24, 14, 2, 4864, True, 1000000.0, 32768, 151643, 151643),
    # Qwen/Qwen2.5-1.5B
    "qwen2.5-1.5b": _qwen2(151936, 1536, 28, 12, 2, 8960, True, 1000000.0, 131072, 151643, 151643),
    # deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B: Qwen2.5-Math-1.5B shape, untied LM head, theta 1e4
    "deepseek-r1-distill-qwen-1.5b": _qwen2(
        151936, 1536, 28, 12, 2, 8960, False, 10000.0, 131072, 151646, 151643
    ),
    # HuggingFaceTB/SmolLM2-135M
    "smollm2-135m": ModelConfig(
        vocab_size=49152,
        hidden_size=576,
        num_layers=30,
        num_heads=9,
        num_kv_heads=3,
        intermediate_size=1536,
        rope_theta=100000.0,
        rms_norm_eps=1e-5,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_ids=(0,),
    ),
    # HuggingFaceTB/SmolLM2-360M
    "smollm2-360m": ModelConfig(
        vocab_size=49152,
        hidden_size=960,
        num_layers=32,
        num_heads=15,
        num_kv_heads=5,
        intermediate_size=2560,
        rope_theta=100000.0,
        rms_norm_eps=1e-5,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_ids=(0,),
    ),
    # meta-llama/Llama-2-7b-hf (multi-head attention: 32 KV heads)
    "llama-2-7b": ModelConfig(
        vocab_size=32000,
        hidden_size=4096,
        num_layers=32,
        num_heads=32,
        num_kv_heads=32,
        intermediate_size=11008,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_ids=(2,),
    ),
    # Qwen/Qwen2.5-7B
    "qwen2.5-7b": _qwen2(152064, 3584, 28, 28, 4, 18944, False, 1000000.0, 131072, 151643, 151643),
}


def preset_names() -> list[str]:
    """Names of the presets."""
    return list(PRESETS)


def get_preset(name: str) -> ModelConfig:
    """A preset by name (case-insensitive); an unknown name lists the valid ones."""
    config = PRESETS.get(name.strip().lower())
    if config is None:
        raise ConfigError(f"unknown model preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return config
