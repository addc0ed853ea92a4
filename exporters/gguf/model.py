"""Load a llama.cpp GGUF file (Llama and Qwen2 architectures) as a float32 :class:`LoadedModel`.

The metadata becomes a :class:`ModelConfig`, the tensors are dequantized to float32 with the
``gguf`` library (llama.cpp's own) and renamed to the Hugging Face names of the reference model,
and the tokenizer and chat template are rebuilt from ``tokenizer.*`` (:mod:`.tokenizer`).
GGUF lists shapes fastest-varying first (ggml's ``ne``); the reader already gives numpy order.
llama.cpp's converter permutes the rows of Llama q/k projections for its interleaved RoPE; they
are permuted back here (Qwen2's are stored as they are).
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge_sdk._optional import require
from edge_sdk.config import ModelConfig, RopeScaling
from edge_sdk.errors import ConfigError, UnsupportedModelError
from edge_sdk.exporters.checkpoint import LoadedModel, build_model
from edge_sdk.exporters.gguf.rope import rope_scaling_from_factors
from edge_sdk.exporters.gguf.tokenizer import gguf_chat_template, gguf_tokenizer_json

__all__ = ["SUPPORTED_GGUF_ARCHITECTURES", "dequantized", "gguf_config", "load_gguf", "read_gguf"]

#: ``general.architecture`` values this SDK reads.
SUPPORTED_GGUF_ARCHITECTURES = ("llama", "qwen2")

_GLOBAL_TENSORS = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_LAYER_TENSORS = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_LAYER_NAME = re.compile(r"blk\.(\d+)\.(.+)")
_ROPE_FREQS = "rope_freqs.weight"


def load_gguf(path: str | os.PathLike[str]) -> LoadedModel:
    """Read a GGUF file of a supported architecture into a float32 model in eval mode."""
    path = Path(path)
    metadata, tensors = read_gguf(path)
    by_name = {tensor.name: tensor for tensor in tensors}
    _architecture(metadata)  # before the tokenizer: an unsupported model says so first
    tokenizer_json = gguf_tokenizer_json(metadata)
    factors = dequantized(by_name.pop(_ROPE_FREQS)) if _ROPE_FREQS in by_name else None
    config = gguf_config(metadata, set(by_name), factors)
    state = {
        _hf_name(name): torch.from_numpy(_hf_layout(name, dequantized(tensor), config))
        for name, tensor in by_name.items()
    }
    model = build_model(config, state, str(path))
    name = str(metadata.get("general.name") or path.stem)
    return LoadedModel(model, tokenizer_json, str(path), name, gguf_chat_template(metadata))


def read_gguf(path: Path) -> tuple[dict[str, Any], list[Any]]:
    """The metadata as plain Python values and the tensor records (``gguf.ReaderTensor``)."""
    gguf = require("gguf", "reading GGUF files")
    try:
        reader = gguf.GGUFReader(str(path))
        metadata = {
            name: _field_value(field, gguf.GGUFValueType) for name, field in reader.fields.items()
        }
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist") from exc
    except (ValueError, OSError, IndexError, KeyError, struct.error, UnicodeDecodeError) as exc:
        raise UnsupportedModelError(
            f"{path} cannot be read as a GGUF file ({_first_line(exc)}): it is not GGUF, or it "
            "is truncated or corrupt; download or convert it again"
        ) from exc
    return metadata, list(reader.tensors)


def _dequantize_types() -> str:
    """The tensor types the installed ``gguf`` library dequantizes (for messages)."""
    import gguf.quants

    block_formats = getattr(gguf.quants, "_type_traits", {})  # the library's registry
    return ", ".join(["F32", "F16", *sorted(t.name for t in block_formats)])


def dequantized(tensor: Any) -> np.ndarray:
    """A GGUF tensor as a float32 numpy array of its (numpy-order) shape, writeable."""
    from gguf.quants import dequantize

    kind = tensor.tensor_type
    try:
        values = dequantize(tensor.data, kind)
    except NotImplementedError as exc:
        raise UnsupportedModelError(
            f"tensor {tensor.name} is stored as {kind.name}, which the gguf library cannot "
            f"dequantize; supported: {_dequantize_types()}"
        ) from exc
    except ValueError as exc:
        raise UnsupportedModelError(
            f"tensor {tensor.name} ({kind.name}) cannot be decoded ({_first_line(exc)}); "
            "the file may be truncated or corrupt"
        ) from exc
    shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))
    try:
        values = values.reshape(shape)
    except ValueError as exc:
        raise UnsupportedModelError(
            f"tensor {tensor.name} holds {values.size} values, not {shape}; the file may be corrupt"
        ) from exc
    return np.require(values, dtype=np.float32, requirements=["C_CONTIGUOUS", "WRITEABLE"])


def gguf_config(
    metadata: Mapping[str, Any], tensor_names: set[str], rope_factors: np.ndarray | None = None
) -> ModelConfig:
    """The :class:`ModelConfig` a GGUF's metadata (and its tensor names) describe."""
    arch = _architecture(metadata)

    def key(name: str, default: Any = ...) -> Any:
        value = metadata.get(f"{arch}.{name}", default)
        if value is ...:
            raise ConfigError(f"the GGUF metadata lacks {arch}.{name}")
        return _one_value(f"{arch}.{name}", value)

    heads, hidden = int(key("attention.head_count")), int(key("embedding_length"))
    head_dim = int(
        key("attention.key_length", 0) or key("rope.dimension_count", 0) or hidden // heads
    )
    for other in ("rope.dimension_count", "attention.value_length"):
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
            architecture=arch,
            vocab_size=int(key("vocab_size", 0) or len(tokens)),
            hidden_size=hidden,
            num_layers=int(key("block_count")),
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
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the GGUF metadata has an invalid value: {exc}") from exc


def _architecture(metadata: Mapping[str, Any]) -> str:
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


def _hf_name(gguf_name: str) -> str:
    if gguf_name in _GLOBAL_TENSORS:
        return _GLOBAL_TENSORS[gguf_name]
    match = _LAYER_NAME.fullmatch(gguf_name)
    if match and match.group(2) in _LAYER_TENSORS:
        return f"model.layers.{match.group(1)}.{_LAYER_TENSORS[match.group(2)]}"
    raise UnsupportedModelError(
        f"the GGUF holds a tensor this SDK does not know, {gguf_name!r}: not a plain Llama/Qwen2 "
        "decoder (RMSNorm, RoPE, grouped-query attention, SwiGLU)"
    )


def _hf_layout(gguf_name: str, weights: np.ndarray, config: ModelConfig) -> np.ndarray:
    """Undo llama.cpp's row permutation of Llama q/k (weights and biases)."""
    if config.architecture != "llama":
        return weights
    if ".attn_q." in gguf_name:
        return _unpermute_rotary_rows(weights, config.num_heads)
    if ".attn_k." in gguf_name:
        return _unpermute_rotary_rows(weights, config.num_kv_heads)
    return weights


def _unpermute_rotary_rows(weights: np.ndarray, heads: int) -> np.ndarray:
    """Inverse of convert_hf_to_gguf's ``reshape(heads, 2, D/2, ...).swapaxes(1, 2)``: within each
    head, rows interleaved pairwise (GGUF) go back to the two rotary halves (Hugging Face)."""
    rows = weights.shape[0]
    if rows % (2 * heads):
        raise UnsupportedModelError(
            f"a q/k projection has {rows} rows, not a multiple of 2 x {heads} heads"
        )
    paired = weights.reshape(heads, rows // heads // 2, 2, *weights.shape[1:])
    return np.ascontiguousarray(paired.swapaxes(1, 2).reshape(weights.shape))


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


def _field_value(field: Any, value_type: Any) -> Any:
    """One metadata field as a Python value (str, int, float, bool or a list of them)."""
    kind = field.types[0]
    if kind == value_type.ARRAY:
        item = field.types[-1] if len(field.types) > 1 else None
        if item == value_type.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        if item == value_type.ARRAY or not field.data:
            return []
        return np.concatenate([field.parts[i] for i in field.data]).tolist()
    if kind == value_type.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    value = field.parts[field.data[0]][0]
    if kind == value_type.FLOAT32:  # its shortest decimal: 1e-05, not 9.999999747378752e-06
        return float(str(value))
    return bool(value) if kind == value_type.BOOL else value.item()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]
