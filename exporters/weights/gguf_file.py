"""The tensors of a llama.cpp GGUF file, dequantized to float32 one at a time, in Hugging Face
names and layout.

The ``gguf`` reader memory-maps the file; a tensor is dequantized only when :meth:`GgufWeights.get`
asks for it. llama.cpp's converter permutes the rows of Llama q/k projections for its interleaved
RoPE; they are permuted back here (Qwen2's, Qwen3's, Gemma 3's and Qwen3.5's are stored as they
are). Gemma's and Qwen3.5's converters store each RMSNorm weight as the ``1 + w`` it scales by
(Qwen3.5's gated norm inside the linear-attention mixer excepted); ``w`` is restored. Qwen3.5's
other transforms are undone by :mod:`edge_sdk.exporters.gguf.qwen35`.
``rope_freqs.weight`` holds Llama 3 RoPE scaling factors, which belong to the config, so it is
not a weight.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from edge_sdk.config import ModelConfig
from edge_sdk.errors import UnsupportedModelError
from edge_sdk.exporters.gguf import qwen35
from edge_sdk.exporters.weights.pages import drop_array_pages

__all__ = ["ROPE_FREQS", "GgufWeights", "dequantized", "first_line", "hf_layout", "hf_name"]

#: The GGUF tensor that carries RoPE scaling factors (config, not a model weight).
ROPE_FREQS = "rope_freqs.weight"

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
    "attn_q_norm.weight": "self_attn.q_norm.weight",  # Qwen3
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
# Gemma 3: a norm before and after attention and the MLP; ffn_norm is the one before the MLP.
_GEMMA3_LAYER_TENSORS = _LAYER_TENSORS | {
    "post_attention_norm.weight": "post_attention_layernorm.weight",
    "ffn_norm.weight": "pre_feedforward_layernorm.weight",
    "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
}
_LAYER_TABLES = {"gemma3": _GEMMA3_LAYER_TENSORS, "qwen3_5": qwen35.LAYER_TENSORS}
_LAYER_NAME = re.compile(r"blk\.(\d+)\.(.+)")
# Norms that keep their own scale where the others are stored as 1 + w (Qwen3.5's gated norm).
_PLAIN_NORMS = (".ssm_norm.weight",)


class GgufWeights:
    """The weights of a GGUF file, from its ``gguf.ReaderTensor`` records and the config they
    describe (the config says whether q/k rows need un-permuting and whether the head is tied)."""

    def __init__(self, tensors: Iterable[Any], config: ModelConfig) -> None:
        self._config = config
        self._tensors: dict[str, Any] = {}  # Hugging Face name -> gguf.ReaderTensor
        for tensor in tensors:
            if tensor.name == ROPE_FREQS:
                continue
            self._tensors[hf_name(tensor.name, config.architecture)] = tensor
        if config.tie_word_embeddings:
            self._tensors.pop("lm_head.weight", None)

    def names(self) -> frozenset[str]:
        """Every weight's Hugging Face name."""
        return frozenset(self._tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        """The numpy-order shape (ggml lists dimensions fastest-varying first), Hugging Face's."""
        tensor = self._tensor(name)
        return qwen35.qwen35_shape(tensor.name, _shape(tensor))

    def get(self, name: str) -> np.ndarray:
        """``name`` dequantized to float32, in Hugging Face layout."""
        tensor = self._tensor(name)
        values = hf_layout(tensor.name, dequantized(tensor), self._config)
        drop_array_pages(tensor.data, int(tensor.data_offset), int(tensor.n_bytes))
        return values

    def close(self) -> None:
        """Drop the records (the file's map closes with the last reference to it)."""
        self._tensors.clear()

    def _tensor(self, name: str) -> Any:
        try:
            return self._tensors[name]
        except KeyError:
            raise KeyError(f"no tensor {name!r} in the GGUF file") from None


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
            f"tensor {tensor.name} ({kind.name}) cannot be decoded ({first_line(exc)}); "
            "the file may be truncated or corrupt"
        ) from exc
    shape = _shape(tensor)
    try:
        values = values.reshape(shape)
    except ValueError as exc:
        raise UnsupportedModelError(
            f"tensor {tensor.name} holds {values.size} values, not {shape}; the file may be corrupt"
        ) from exc
    return np.require(values, dtype=np.float32, requirements=["C_CONTIGUOUS", "WRITEABLE"])


def hf_name(gguf_name: str, architecture: str = "llama") -> str:
    """The Hugging Face name of a llama.cpp tensor name (``blk.0.attn_q.weight`` ->
    ``model.layers.0.self_attn.q_proj.weight``) in a model of ``architecture``."""
    if gguf_name in _GLOBAL_TENSORS:
        return _GLOBAL_TENSORS[gguf_name]
    table = _LAYER_TABLES.get(architecture, _LAYER_TENSORS)
    match = _LAYER_NAME.fullmatch(gguf_name)
    if match and match.group(2) in table:
        return f"model.layers.{match.group(1)}.{table[match.group(2)]}"
    raise UnsupportedModelError(
        f"the GGUF holds a tensor this SDK does not know for {architecture}, {gguf_name!r}: "
        "not a plain decoder of a supported family"
    )


def hf_layout(gguf_name: str, weights: np.ndarray, config: ModelConfig) -> np.ndarray:
    """Undo llama.cpp's row permutation of Llama q/k (weights and biases), the ``+ 1`` of
    Gemma's and Qwen3.5's norm weights and Qwen3.5's linear-attention transforms."""
    if config.norm_offset and gguf_name.endswith("norm.weight"):
        if not gguf_name.endswith(_PLAIN_NORMS):
            weights -= np.float32(config.norm_offset)
        return weights
    if config.architecture == "qwen3_5":
        return qwen35.qwen35_layout(gguf_name, weights, config)
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


def _shape(tensor: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in reversed(tensor.shape.tolist()))


def _dequantize_types() -> str:
    """The tensor types the installed ``gguf`` library dequantizes (for messages)."""
    import gguf.quants

    block_formats = getattr(gguf.quants, "_type_traits", {})  # the library's registry
    return ", ".join(["F32", "F16", *sorted(t.name for t in block_formats)])


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for one-line errors."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]
