"""The :class:`ModelConfig` a llama.cpp GGUF file's metadata describes (Llama, Qwen2, Qwen3,
Gemma 3 and Qwen3.5): shared by the planner, which reads only the file's header
(:mod:`edge_sdk.gguf_header`), and the exporters, which read its tensors too."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from edge_sdk.config import LinearAttention, ModelConfig, RopeScaling
from edge_sdk.errors import ConfigError, UnsupportedModelError
from edge_sdk.gguf_rope import rope_scaling_from_factors

__all__ = ["ROPE_FREQS", "SUPPORTED_GGUF_ARCHITECTURES", "gguf_architecture", "gguf_config"]

#: ``general.architecture`` values this SDK reads.
SUPPORTED_GGUF_ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3", "qwen35")
#: llama.cpp's architecture name -> the SDK's model family, where the two differ.
_FAMILIES = {"qwen35": "qwen3_5"}
#: The tensor that carries RoPE scaling factors (config, not a model weight).
ROPE_FREQS = "rope_freqs.weight"


def gguf_config(
    metadata: Mapping[str, Any], tensor_names: set[str], rope_factors: np.ndarray | None = None
) -> ModelConfig:
    """The :class:`ModelConfig` a GGUF's metadata (and its tensor names) describe."""
    arch = gguf_architecture(metadata)

    def key(name: str, default: Any = ..., per_layer: bool = False) -> Any:
        value = metadata.get(f"{arch}.{name}", default)
        if value is ...:
            raise ConfigError(f"the GGUF metadata lacks {arch}.{name}")
        return value if per_layer else _one_value(f"{arch}.{name}", value)

    heads, hidden = int(key("attention.head_count")), int(key("embedding_length"))
    # Qwen3.5: llama.cpp appends its multi-token-prediction block(s) to block_count
    layers = int(key("block_count")) - int(key("nextn_predict_layers", 0))
    if arch == "qwen35":  # partial RoPE: rope.dimension_count is the share of a head it rotates
        head_dim = int(key("attention.key_length", 0) or hidden // heads)
        same_width: tuple[str, ...] = ("attention.value_length",)
    else:
        head_dim = int(
            key("attention.key_length", 0) or key("rope.dimension_count", 0) or hidden // heads
        )
        same_width = ("rope.dimension_count", "attention.value_length")
    for other in same_width:
        if int(key(other, head_dim)) != head_dim:
            raise UnsupportedModelError(
                f"{arch}.{other} = {key(other)} differs from the head size {head_dim}; partial "
                "rotary embeddings and uneven key/value heads are not supported"
            )
    theta = float(key("rope.freq_base", 10000.0))
    tokens = metadata.get("tokenizer.ggml.tokens") or []
    eos = [metadata.get(f"tokenizer.ggml.{k}_token_id") for k in ("eos", "eot", "eom")]
    try:
        return ModelConfig(
            architecture=_FAMILIES.get(arch, arch),
            vocab_size=int(key("vocab_size", 0) or len(tokens)),
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=int(key("attention.head_count_kv", heads)),
            head_dim=head_dim,
            intermediate_size=int(key("feed_forward_length")),
            rope_theta=theta,
            rope_scaling=_rope_scaling(key, rope_factors, theta, head_dim),
            rms_norm_eps=float(key("attention.layer_norm_rms_epsilon", 1e-5)),
            max_position_embeddings=int(key("context_length", 2048)),
            tie_word_embeddings="output.weight" not in tensor_names,
            qkv_bias="blk.0.attn_q.bias" in tensor_names,
            bos_token_id=metadata.get("tokenizer.ggml.bos_token_id"),
            eos_token_ids=tuple(dict.fromkeys(int(i) for i in eos if i is not None)),
            **(_gemma3_fields(key, head_dim) if arch == "gemma3" else {}),
            **(_qwen35_fields(key, layers, head_dim) if arch == "qwen35" else {}),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the GGUF metadata has an invalid value: {exc}") from exc


def _gemma3_fields(key: Any, head_dim: int) -> dict[str, Any]:
    """Gemma 3's layer pattern, local RoPE base and attention scale. llama.cpp writes the window
    only; like its loader, this takes every sixth layer as global, the sliding layers' base as
    10000 unless the file says, and scales the scores by 1/sqrt(head_dim) (Gemma 3's
    ``query_pre_attn_scalar`` is the head size up to 12B)."""
    layers = int(key("block_count"))
    return {
        "sliding_window": int(key("attention.sliding_window")),
        "layer_types": tuple(
            "full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(layers)
        ),
        "rope_local_theta": float(key("rope.freq_base_swa", 10000.0)),
        "query_pre_attn_scalar": float(head_dim),
    }


def _qwen35_fields(key: Callable[..., Any], num_layers: int, head_dim: int) -> dict[str, Any]:
    """The :class:`~edge_sdk.config.ModelConfig` fields only Qwen3.5 has: layer types, the linear
    layers' shapes and the rotated share of a head. ``key(name, default)`` reads ``qwen35.name``."""
    value_heads = int(key("ssm.time_step_rank"))
    inner = int(key("ssm.inner_size"))
    if inner % value_heads:
        raise UnsupportedModelError(
            f"qwen35.ssm.inner_size ({inner}) is not a multiple of the {value_heads} value heads "
            "(ssm.time_step_rank); the file is not a Qwen3.5 llama.cpp wrote"
        )
    rotary = int(key("rope.dimension_count", head_dim))
    if not 0 < rotary <= head_dim or rotary % 2:
        raise UnsupportedModelError(
            f"qwen35.rope.dimension_count = {rotary} is not an even share of the head "
            f"size {head_dim}"
        )
    return {
        "layer_types": _layer_types(key, num_layers),
        "partial_rotary_factor": rotary / head_dim,
        "linear_attention": LinearAttention(
            num_key_heads=int(key("ssm.group_count")),
            num_value_heads=value_heads,
            key_head_dim=int(key("ssm.state_size")),
            value_head_dim=inner // value_heads,
            conv_kernel=int(key("ssm.conv_kernel")),
        ),
    }


def _layer_types(key: Callable[..., Any], num_layers: int) -> tuple[str, ...]:
    recurrent = key("attention.recurrent_layers", None, per_layer=True)
    if isinstance(recurrent, list):
        linear = [bool(recurrent[i]) for i in range(num_layers)]
    elif recurrent is not None:
        linear = [bool(recurrent)] * num_layers
    else:
        every = int(key("full_attention_interval", 4))
        linear = [(i + 1) % every != 0 for i in range(num_layers)]
    return tuple("linear_attention" if kind else "full_attention" for kind in linear)


def gguf_architecture(metadata: Mapping[str, Any]) -> str:
    """``general.architecture``, when this SDK reads it (:data:`SUPPORTED_GGUF_ARCHITECTURES`)."""
    arch = metadata.get("general.architecture")
    if arch not in SUPPORTED_GGUF_ARCHITECTURES:
        raise UnsupportedModelError(
            f"GGUF architecture {arch or '(none given)'!r} is not supported; supported: "
            f"{', '.join(SUPPORTED_GGUF_ARCHITECTURES)}"
        )
    return str(arch)


def _rope_scaling(
    key: Any, factors: np.ndarray | None, theta: float, head_dim: int
) -> RopeScaling | None:
    kind = str(key("rope.scaling.type", "none"))
    # both keys hold the divisor of the positions (llama.cpp's 1 / freq_scale)
    linear = float(key("rope.scaling.factor", 0) or key("rope.scale_linear", 0) or 1.0)
    if kind not in ("none", "linear", "llama3") or (kind == "llama3" and factors is None):
        raise UnsupportedModelError(
            f"GGUF RoPE scaling {kind!r} is not supported; supported: "
            "linear, and llama3 (stored as a rope_freqs tensor)"
        )
    if factors is not None:
        if kind == "linear" and linear != 1.0:
            raise UnsupportedModelError(
                "the GGUF combines linear RoPE scaling with rope_freqs; "
                "only one of them is supported"
            )
        original = key("rope.scaling.original_context_length", None)
        return rope_scaling_from_factors(
            factors, theta, head_dim, int(original) if original else None
        )
    if kind == "linear" and linear != 1.0:
        return RopeScaling(kind="linear", factor=linear)
    return None


def _one_value(name: str, value: Any) -> Any:
    """A per-layer array whose entries all agree, as one value (other arrays are refused)."""
    if not isinstance(value, list):
        return value
    if value and all(v == value[0] for v in value):
        return value[0]
    raise UnsupportedModelError(
        f"{name} differs between layers ({value[:4]}...); layers of "
        "different shapes are not supported"
    )
