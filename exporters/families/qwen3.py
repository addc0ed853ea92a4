"""The Qwen3 family: the Llama layer plus an RMSNorm over each head of q and k (``q_norm``,
``k_norm``: [head_dim] weights) between the projections and RoPE; no q/k/v biases by default.

Everything but the tensors of a layer and the two emitters is Llama's; the emitters are Llama's
with the per-head norm passed in (:data:`~edge_sdk.exporters.families.llama.HeadNorm`).
"""

from __future__ import annotations

from edge_sdk.config import ModelConfig
from edge_sdk.exporters.families import llama
from edge_sdk.exporters.families.base import LayerTensors, StandardInputs
from edge_sdk.exporters.families.llama import (
    layer_tensors,
    linears,
    reference_layer,
    scale_groups,
)
from edge_sdk.exporters.stream.onnx_builder import GraphBuilder
from edge_sdk.exporters.stream.ops import FusedState

__all__ = [
    "emit_fused",
    "emit_standard",
    "layer_shapes",
    "layer_tensors",
    "linears",
    "reference_layer",
    "scale_groups",
]


def layer_shapes(config: ModelConfig, index: int) -> dict[str, tuple[int, ...]]:
    """Llama's tensors plus the q/k norm weights [head_dim]."""
    p = f"model.layers.{index}.self_attn."
    norms = {f"{p}{n}_norm.weight": (config.head_dim,) for n in ("q", "k")}
    return llama.layer_shapes(config, index) | norms


def emit_standard(
    g: GraphBuilder, config: ModelConfig, x: str, shared: StandardInputs, t: LayerTensors
) -> str:
    """Llama's layer with q and k RMS-normalized per head (standard ops) before RoPE."""
    norm = llama.head_norm(g, t, float(config.rms_norm_eps), fused=False)
    return llama.emit_standard(g, config, x, shared, t, norm)


def emit_fused(
    g: GraphBuilder,
    config: ModelConfig,
    state: FusedState,
    rope_cache: tuple[str, str],
    t: LayerTensors,
) -> FusedState:
    """Llama's fused layer with q and k normalized per head (``SimplifiedLayerNormalization``)
    before GroupQueryAttention, which applies RoPE."""
    norm = llama.head_norm(g, t, float(config.rms_norm_eps), fused=True)
    return llama.emit_fused(g, config, state, rope_cache, t, norm)
