"""The ONNX model interface shared by the exporter and the runtime (numpy only).

Inputs ``input_ids``, ``attention_mask``, ``position_ids`` (int64) and
``past_key_values.{i}.key/value`` [batch, kv_heads, past, head_dim]; outputs ``logits`` and
``present.{i}.key/value`` [batch, kv_heads, past + sequence, head_dim]. The exporter records the
same description in the bundle manifest (``graph.inputs`` / ``graph.outputs``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_sdk.config import ModelConfig

__all__ = ["empty_past", "graph_io", "past_names", "prefill_feed", "present_names"]


def past_names(num_layers: int) -> list[str]:
    """Input names of the KV cache, key then value for each layer."""
    return [f"past_key_values.{i}.{part}" for i in range(num_layers) for part in ("key", "value")]


def present_names(num_layers: int) -> list[str]:
    """Output names of the updated KV cache, in the order of :func:`past_names`."""
    return [f"present.{i}.{part}" for i in range(num_layers) for part in ("key", "value")]


def graph_io(config: ModelConfig) -> dict[str, list[dict[str, Any]]]:
    """Names, element types and symbolic shapes of the graph's inputs and outputs."""
    kv_shape = ["batch", config.num_kv_heads, "past_sequence", config.head_dim]
    present_shape = ["batch", config.num_kv_heads, "total_sequence", config.head_dim]
    inputs: list[dict[str, Any]] = [
        {"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]},
        {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "total_sequence"]},
        {"name": "position_ids", "dtype": "int64", "shape": ["batch", "sequence"]},
    ]
    inputs += [
        {"name": n, "dtype": "float32", "shape": kv_shape} for n in past_names(config.num_layers)
    ]
    outputs: list[dict[str, Any]] = [
        {"name": "logits", "dtype": "float32", "shape": ["batch", "sequence", config.vocab_size]},
    ]
    outputs += [
        {"name": n, "dtype": "float32", "shape": present_shape}
        for n in present_names(config.num_layers)
    ]
    return {"inputs": inputs, "outputs": outputs}


def empty_past(config: ModelConfig, batch: int = 1) -> list[np.ndarray]:
    """A KV cache of length 0 (the first step)."""
    shape = (batch, config.num_kv_heads, 0, config.head_dim)
    return [np.zeros(shape, dtype=np.float32) for _ in range(2 * config.num_layers)]


def prefill_feed(
    config: ModelConfig, input_ids: np.ndarray, past: list[np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Feed for ``input_ids`` [batch, sequence] on top of ``past`` (default: empty), no padding."""
    ids = np.ascontiguousarray(input_ids, dtype=np.int64)
    batch, seq = ids.shape
    past = past if past is not None else empty_past(config, batch)
    past_len = past[0].shape[2]
    feed: dict[str, np.ndarray] = {
        "input_ids": ids,
        "attention_mask": np.ones((batch, past_len + seq), dtype=np.int64),
        "position_ids": np.broadcast_to(
            np.arange(past_len, past_len + seq, dtype=np.int64), (batch, seq)
        ).copy(),
    }
    feed.update(zip(past_names(config.num_layers), past, strict=True))
    return feed
