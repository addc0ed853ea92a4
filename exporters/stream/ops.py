"""Small subgraphs every family writes: RMSNorm, RoPE, a Linear, SwiGLU (standard ONNX ops only)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge_sdk.config import ModelConfig
from edge_sdk.exporters.quantize.qweight import QWeight
from edge_sdk.exporters.stream.onnx_builder import GraphBuilder

__all__ = [
    "FusedState",
    "apply_rope",
    "fused_rms_norm",
    "linear",
    "rms_norm",
    "skip_norm",
    "swiglu",
]

_MS = "com.microsoft"


@dataclass
class FusedState:
    """The fused graph between layers: the residual stream and the last block's output not yet
    added to it (folded into the next SkipSimplifiedLayerNormalization)."""

    residual: str
    pending: str = ""


def rms_norm(g: GraphBuilder, x: str, weight: np.ndarray, eps: float, name: str) -> str:
    """``weight * x / sqrt(mean(x^2) + eps)`` over the last axis (float32)."""
    square = g.op("Mul", [x, x], f"{name}.square")
    mean = g.op("ReduceMean", [square, g.ints(f"{name}.axes", [-1])], f"{name}.mean", keepdims=1)
    shifted = g.op("Add", [mean, g.const(f"{name}.eps", np.array(eps, np.float32))])
    normalized = g.op("Div", [x, g.op("Sqrt", [shifted])], f"{name}.normalized")
    return g.op("Mul", [g.const(f"{name}.weight", weight.astype(np.float32)), normalized], name)


def linear(g: GraphBuilder, x: str, weight: QWeight, bias: np.ndarray | None, name: str) -> str:
    """``x @ W (+ b)`` with ``W`` [K, N] as stored (float or dequantized)."""
    out = g.op("MatMul", [x, g.weight(f"{name}.weight", weight)], f"{name}.out")
    if bias is None:
        return out
    return g.op("Add", [out, g.const(f"{name}.bias", bias.astype(np.float32))], f"{name}.biased")


def apply_rope(
    g: GraphBuilder, x: str, cos: str, sin: str, head_dim: int, name: str, rotary_dim: int = 0
) -> str:
    """``x * cos + rotate_half(x) * sin`` (Hugging Face's two-halves layout) on the last axis, or
    on its first ``rotary_dim`` channels only (partial rotary; 0: all of them)."""
    rotary = rotary_dim or head_dim
    if rotary < head_dim:
        rot, rest = f"{name}.rot", f"{name}.pass"
        sizes = g.ints(f"{name}.partial", [rotary, head_dim - rotary])
        g.op("Split", [x, sizes], outputs=[rot, rest], axis=-1)
        rotated = apply_rope(g, rot, cos, sin, rotary, f"{name}.partial_rope")
        return g.op("Concat", [rotated, rest], f"{name}.rotary", axis=-1)
    half = head_dim // 2
    first, second = f"{name}.first", f"{name}.second"
    g.op("Split", [x, g.ints(f"{name}.halves", [half, half])], outputs=[first, second], axis=-1)
    rotated = g.op("Concat", [g.op("Neg", [second]), first], f"{name}.rotated", axis=-1)
    return g.op(
        "Add",
        [g.op("Mul", [x, cos]), g.op("Mul", [rotated, sin])],
        f"{name}.rotary",
    )


def swiglu(g: GraphBuilder, gate: str, up: str, name: str) -> str:
    """``silu(gate) * up``."""
    act = g.op("Mul", [gate, g.op("Sigmoid", [gate])], f"{name}.silu")
    return g.op("Mul", [act, up], f"{name}.mixed")


def attention_divisor(config: ModelConfig) -> float:
    """What the reference divides the attention scores by: sqrt(head_dim), or
    sqrt(query_pre_attn_scalar) (Gemma)."""
    return math.sqrt(config.query_pre_attn_scalar or config.head_dim)


def skip_norm(
    g: GraphBuilder, state: FusedState, weight: np.ndarray, eps: float, name: str
) -> tuple[str, str]:
    """(normalized, residual) of the residual stream plus the pending output: one
    SkipSimplifiedLayerNormalization, or a SimplifiedLayerNormalization when nothing is pending."""
    if not state.pending:
        return fused_rms_norm(g, state.residual, weight, eps, name), state.residual
    w = g.const(f"{name}.weight", weight.astype(np.float32))
    residual = f"{name}.residual"
    g.op(
        "SkipSimplifiedLayerNormalization",
        [state.residual, state.pending, w],
        outputs=[name, "", "", residual],
        domain=_MS,
        epsilon=eps,
    )
    return name, residual


def fused_rms_norm(g: GraphBuilder, x: str, weight: np.ndarray, eps: float, name: str) -> str:
    """RMSNorm over the last axis as onnxruntime's ``SimplifiedLayerNormalization``."""
    w = g.const(f"{name}.weight", weight.astype(np.float32))
    return g.op("SimplifiedLayerNormalization", [x, w], name, axis=-1, epsilon=eps)
