"""Named models with their real hyper-parameters (from each model's Hugging Face ``config.json``).

Token ids are those of the checkpoint named by each preset's comment (the base checkpoints for
the older families). ``max_position_embeddings`` is the trained context (Llama 3.2: 131072 with
llama3 RoPE scaling; Qwen2.5 1.5B/7B base: 131072 / 32768 per config). Qwen3.5 and Gemma 3 4B
are vision-language checkpoints: the presets are their ``text_config`` (the text decoder).
"""

from __future__ import annotations

from typing import TypedDict

from edge_sdk.config import LinearAttention, ModelConfig, RopeScaling
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


class _Shape(TypedDict):
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    head_dim: int


def _shape(
    vocab: int, hidden: int, layers: int, heads: int, kv: int, inter: int, head_dim: int
) -> _Shape:
    """The size fields every decoder has."""
    return {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_layers": layers,
        "num_heads": heads,
        "num_kv_heads": kv,
        "intermediate_size": inter,
        "head_dim": head_dim,
    }


def _qwen3(hidden: int, layers: int, heads: int, inter: int) -> ModelConfig:
    """Qwen3 dense (shared by 0.6B-4B): vocab 151936, 8 KV heads of 128 with q/k norms, tied
    head, 40960 positions, RoPE base 1e6; ids of the post-trained checkpoints."""
    return ModelConfig(
        architecture="qwen3",
        **_shape(151936, hidden, layers, heads, 8, inter, head_dim=128),
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        max_position_embeddings=40960,
        tie_word_embeddings=True,
        bos_token_id=151643,
        eos_token_ids=(151645,),
    )


def _qwen3_5(hidden: int, layers: int, heads: int, kv: int, inter: int, values: int) -> ModelConfig:
    """Qwen3.5 text decoder (shared by 0.8B-4B): every 4th layer gated full attention (head_dim
    256, a quarter of it rotated, RoPE base 1e7), the others Gated DeltaNet (16 key heads of 128,
    ``values`` value heads of 128, conv kernel 4); vocab 248320, tied head, 262144 positions."""
    types = tuple(
        "full_attention" if (i + 1) % 4 == 0 else "linear_attention" for i in range(layers)
    )
    return ModelConfig(
        architecture="qwen3_5",
        **_shape(248320, hidden, layers, heads, kv, inter, head_dim=256),
        rope_theta=10000000.0,
        rms_norm_eps=1e-6,
        max_position_embeddings=262144,
        tie_word_embeddings=True,
        eos_token_ids=(248044,),
        layer_types=types,
        partial_rotary_factor=0.25,
        linear_attention=LinearAttention(16, values, 128, 128, conv_kernel=4),
    )


def _gemma3(
    vocab: int,
    hidden: int,
    layers: int,
    heads: int,
    kv: int,
    inter: int,
    window: int,
    max_pos: int,
    scaling: RopeScaling | None = None,
) -> ModelConfig:
    """Gemma 3 text decoder: five sliding-window layers (RoPE base 1e4) per global one (1e6),
    head_dim 256, scores scaled by 256^-1/2, tied head."""
    types = tuple("sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(layers))
    return ModelConfig(
        architecture="gemma3",
        **_shape(vocab, hidden, layers, heads, kv, inter, head_dim=256),
        rope_theta=1000000.0,
        rope_scaling=scaling,
        rms_norm_eps=1e-6,
        max_position_embeddings=max_pos,
        tie_word_embeddings=True,
        sliding_window=window,
        bos_token_id=2,
        eos_token_ids=(1,),
        layer_types=types,
        rope_local_theta=10000.0,
        query_pre_attn_scalar=256.0,
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
    # Qwen/Qwen3-0.6B config.json (verbatim copy: huggingface.co/TensorStack/TextEncoder,
    # Qwen-3-06B/config.json; also tests/exporters/test_qwen3.py)
    "qwen3-0.6b": _qwen3(1024, 28, 16, 3072),
    # Qwen/Qwen3-1.7B config.json (hidden 2048, 28 layers, 16 heads, MLP 6144, tied: the
    # DictaLM-3.0-1.7B config derived from it on huggingface.co, and the Qwen3-1.7B rows of
    # public planner tables in the code corpus)
    "qwen3-1.7b": _qwen3(2048, 28, 16, 6144),
    # Qwen/Qwen3-4B config.json (verbatim copy: huggingface.co/MultiRL/qwen3_4b_instruct_sft)
    "qwen3-4b": _qwen3(2560, 36, 32, 9728),
    # Qwen/Qwen3.5-0.8B config.json text_config (GitHub p-doom/omegalax,
    # omegalax/models/qwen3_5/config.py; cpehle/tyr, Tyr/Model/Qwen35/Config.lean)
    "qwen3.5-0.8b": _qwen3_5(1024, 24, 8, 2, 3584, values=16),
    # Qwen/Qwen3.5-2B config.json text_config (p-doom/omegalax, omegalax/models/qwen3_5/config.py)
    "qwen3.5-2b": _qwen3_5(2048, 24, 8, 2, 6144, values=16),
    # Qwen/Qwen3.5-4B config.json text_config (p-doom/omegalax, omegalax/models/qwen3_5/config.py)
    "qwen3.5-4b": _qwen3_5(2560, 32, 16, 4, 9216, values=32),
    # google/gemma-3-270m config.json (tests/exporters/test_gemma3.py)
    "gemma-3-270m": _gemma3(262144, 640, 18, 4, 1, 2048, window=512, max_pos=32768),
    # google/gemma-3-1b-pt config.json (mirror: huggingface.co/mlx-community/gemma-3-1b-pt-6bit)
    "gemma-3-1b": _gemma3(262144, 1152, 26, 4, 1, 6912, window=512, max_pos=32768),
    # google/gemma-3-4b-it config.json text_config (mirror: huggingface.co/mlx-community/
    # gemma-3-4b-it-bf16) plus transformers' Gemma3TextConfig defaults for the keys it omits
    # (8 heads, 4 KV heads, vocab 262208, 131072 positions); linear RoPE scaling x8 (global layers)
    "gemma-3-4b": _gemma3(
        262208,
        2560,
        34,
        8,
        4,
        10240,
        window=1024,
        max_pos=131072,
        scaling=RopeScaling(kind="linear", factor=8.0),
    ),
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
