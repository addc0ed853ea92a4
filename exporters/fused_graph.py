"""The onnxruntime graph of a bundle (``model.ort.onnx``): fused attention and norms, for
onnxruntime's CPU EP. Its name, what a bundle loses without it, and its RoPE tables.

The standard graph (``model.onnx``) uses standard ONNX ops only, so TensorRT and every
onnxruntime provider take it; it spends about 800 small nodes on attention, RoPE and norms. The
fused graph holds the same weight tensors (the quantized ones, exactly as evaluated) behind
onnxruntime's contrib ops, written layer by layer by each family's ``emit_fused``
(:mod:`edge_sdk.exporters.families`):

* ``GroupQueryAttention`` per layer: RoPE, GQA and the KV cache in one node, reading and writing
  a cache buffer of the full context (``past`` and ``present`` are the same memory), so a decode
  step copies nothing;
* ``SimplifiedLayerNormalization`` / ``SkipSimplifiedLayerNormalization`` for RMSNorm and the
  residual adds;
* one MatMul for q/k/v and one for gate/up (their weights concatenated along the output
  dimension: per-channel and block-wise scales concatenate exactly);
* the LM head on the last position only (the last ``logits_to_keep`` when that optional input
  is given: speculative decoding checks several drafted tokens in one call).

Interface: ``input_ids`` [1, S]; ``past_key_values.{i}.key|value`` [1, kv_heads, capacity,
head_dim]; ``seqlens_k`` int32 [1] (positions filled after this step, minus one);
``total_sequence_length`` int32 scalar; optional ``logits_to_keep`` int64 [1] (default 1);
outputs ``logits`` [1, logits_to_keep, vocab] and ``present.{i}.*``
(bound to the past buffers). The runtime's ``ort-cpu`` backend uses it when the bundle has one;
:mod:`edge_sdk.exporters.fused_graph_check` checks it against the standard graph.
"""

from __future__ import annotations

import numpy as np

from edge_sdk.config import ModelConfig

__all__ = ["FUSED_GRAPH_LOSS", "ORT_GRAPH_FILE", "UnsupportedGraph", "rope_tables"]

ORT_GRAPH_FILE = "model.ort.onnx"
#: What a bundle without its fused graph loses, in the user's words.
FUSED_GRAPH_LOSS = (
    f"the fused CPU graph ({ORT_GRAPH_FILE}, about 2x faster decode on "
    "onnxruntime's CPU EP) was not built"
)


class UnsupportedGraph(ValueError):
    """The fused graph cannot be kept (the bundle keeps only the standard graph): this
    onnxruntime cannot run it, or it disagrees with the standard graph."""


def rope_tables(
    config: ModelConfig, positions: int, local: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [positions, rotary_dim / 2] of the model's RoPE (its frequencies and scaling;
    ``local``: the sliding layers')."""
    import torch

    from edge_sdk.exporters.model import rope_inverse_frequencies

    angles = (
        torch.arange(positions, dtype=torch.float64)[:, None]
        * rope_inverse_frequencies(config, local).double()
    )
    return angles.cos().float().numpy(), angles.sin().float().numpy()
