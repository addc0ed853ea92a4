"""The ONNX model interface shared by the exporter and the runtime (numpy only).

Inputs ``input_ids``, ``attention_mask``, ``position_ids`` (int64) and the cache, two tensors per
layer (:func:`cache_tensors`); outputs ``logits`` and the updated cache. An attention layer's
cache is ``past_key_values.{i}.key/value`` [batch, kv_heads, past, head_dim], written back as
``present.{i}.key/value`` [batch, kv_heads, past + sequence, head_dim]; a linear-attention layer's
(Qwen3.5) is a state of fixed size, ``past_state.{i}.conv`` [batch, conv_channels, kernel - 1]
and ``past_state.{i}.recurrent`` [batch, value_heads, key_dim, value_dim], written back as
``present_state.{i}.*`` of the same shapes. The exporter records the same description in the
bundle manifest (``graph.inputs`` / ``graph.outputs``).

The fused CPU graph (``model.ort.onnx``) computes the LM head on the last position only, or on
the last ``logits_to_keep`` (:data:`LOGITS_TO_KEEP`, an optional int64 [1] input, 1 when not
given; bundles exported before it lack the input).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_sdk.config import ModelConfig

#: The fused graph's optional input: how many last positions get logits (default 1).
LOGITS_TO_KEEP = "logits_to_keep"

__all__ = [
    "LOGITS_TO_KEEP",
    "CacheTensor",
    "cache_tensors",
    "empty_past",
    "graph_io",
    "past_length",
    "past_names",
    "prefill_feed",
    "present_names",
]


@dataclass(frozen=True)
class CacheTensor:
    """One cache tensor of a layer: its input and output names and its shape for one sequence
    (no batch axis), ``None`` standing for the sequence axis of a KV tensor."""

    past: str
    present: str
    shape: tuple[int | None, ...]

    @property
    def grows(self) -> bool:
        """Whether it holds one entry per position (K or V), not a fixed-size state."""
        return None in self.shape

    def sized(self, length: int) -> tuple[int, ...]:
        """The shape for one sequence holding ``length`` positions."""
        return tuple(length if d is None else d for d in self.shape)


def cache_tensors(config: ModelConfig) -> list[CacheTensor]:
    """The cache, two tensors per layer in layer order (see the module docstring)."""
    tensors: list[CacheTensor] = []
    linear = config.linear_attention
    for i in range(config.num_layers):
        if config.layer_type(i) == "linear_attention" and linear is not None:
            conv = (linear.conv_channels, linear.conv_kernel - 1)
            recurrent = (linear.num_value_heads, linear.key_head_dim, linear.value_head_dim)
            tensors += [
                CacheTensor(f"past_state.{i}.conv", f"present_state.{i}.conv", conv),
                CacheTensor(f"past_state.{i}.recurrent", f"present_state.{i}.recurrent", recurrent),
            ]
            continue
        kv: tuple[int | None, ...] = (config.num_kv_heads, None, config.head_dim)
        tensors += [
            CacheTensor(f"past_key_values.{i}.{part}", f"present.{i}.{part}", kv)
            for part in ("key", "value")
        ]
    return tensors


def past_names(num_layers: int) -> list[str]:
    """Input names of the KV cache of a model whose every layer attends, key then value for
    each layer (the conventional names; :func:`cache_tensors` gives any model's)."""
    return [f"past_key_values.{i}.{part}" for i in range(num_layers) for part in ("key", "value")]


def present_names(num_layers: int) -> list[str]:
    """Output names of the updated KV cache, in the order of :func:`past_names`."""
    return [f"present.{i}.{part}" for i in range(num_layers) for part in ("key", "value")]


def graph_io(config: ModelConfig) -> dict[str, list[dict[str, Any]]]:
    """Names, element types and symbolic shapes of the graph's inputs and outputs."""
    cache = cache_tensors(config)
    inputs: list[dict[str, Any]] = [
        {"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]},
        {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "total_sequence"]},
        {"name": "position_ids", "dtype": "int64", "shape": ["batch", "sequence"]},
    ]
    inputs += [
        {"name": t.past, "dtype": "float32", "shape": _symbolic(t, "past_sequence")} for t in cache
    ]
    outputs: list[dict[str, Any]] = [
        {"name": "logits", "dtype": "float32", "shape": ["batch", "sequence", config.vocab_size]},
    ]
    outputs += [
        {"name": t.present, "dtype": "float32", "shape": _symbolic(t, "total_sequence")}
        for t in cache
    ]
    return {"inputs": inputs, "outputs": outputs}


def _symbolic(tensor: CacheTensor, length: str) -> list[int | str]:
    return ["batch", *(length if d is None else d for d in tensor.shape)]


def empty_past(config: ModelConfig, batch: int = 1) -> list[np.ndarray]:
    """A cache of length 0 (the first step): empty KV tensors, zero states."""
    return [np.zeros((batch, *t.sized(0)), dtype=np.float32) for t in cache_tensors(config)]


def past_length(config: ModelConfig, past: list[np.ndarray]) -> int:
    """Positions held by ``past`` (in :func:`cache_tensors` order): the length of a KV tensor."""
    for tensor, value in zip(cache_tensors(config), past, strict=True):
        if tensor.grows:
            return int(value.shape[1 + tensor.shape.index(None)])
    raise ValueError("the model has no attention layer: the cache does not say its length")


def prefill_feed(
    config: ModelConfig, input_ids: np.ndarray, past: list[np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Feed for ``input_ids`` [batch, sequence] on top of ``past`` (default: empty), no padding."""
    ids = np.ascontiguousarray(input_ids, dtype=np.int64)
    batch, seq = ids.shape
    past = past if past is not None else empty_past(config, batch)
    past_len = past_length(config, past)
    feed: dict[str, np.ndarray] = {
        "input_ids": ids,
        "attention_mask": np.ones((batch, past_len + seq), dtype=np.int64),
        "position_ids": np.broadcast_to(
            np.arange(past_len, past_len + seq, dtype=np.int64), (batch, seq)
        ).copy(),
    }
    feed.update(zip((t.past for t in cache_tensors(config)), past, strict=True))
    return feed
