"""What comes before and after the layers in each graph: inputs, embedding, RoPE, mask, the final
norm, the LM head and the outputs. Interfaces: ``edge_sdk.onnx_io`` (standard) and the fused
graph's docstring in :mod:`edge_sdk.exporters.fused_graph_check`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from edge_sdk.config import ModelConfig
from edge_sdk.exporters.families.base import StandardInputs
from edge_sdk.exporters.quantize.qweight import QWeight
from edge_sdk.exporters.stream.onnx_builder import GraphBuilder
from edge_sdk.exporters.stream.ops import FusedState, rms_norm, skip_norm
from edge_sdk.onnx_io import past_names, present_names

__all__ = [
    "Table",
    "fused_prelude",
    "fused_tail",
    "standard_prelude",
    "standard_tail",
]

_TABLE = "model.embed_tokens.weight"
_EMBEDDED = "model.embed_tokens.output"


@dataclass(frozen=True)
class Table:
    """The token embedding [V, E]: float32, or int8 rows with one scale per row (``scale`` [V])."""

    values: np.ndarray
    scale: np.ndarray | None = None

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The float32 rows of ``ids`` as the graph computes them [n, E]."""
        rows: np.ndarray = self.values[ids].astype(np.float32)
        if self.scale is not None:
            rows *= self.scale[ids, None]
        return rows


def _embedding(g: GraphBuilder, table: Table, ids: str) -> str:
    """``Gather`` of the rows of ``ids`` (int8 rows times their scales: only those rows are
    dequantized)."""
    if table.scale is None:
        return g.op("Gather", [g.const(_TABLE, table.values), ids], _EMBEDDED)
    rows = g.op("Gather", [g.const(f"{_TABLE}.int8", table.values), ids], f"{_EMBEDDED}.int8")
    scale = g.op("Gather", [g.const(f"{_TABLE}.scale", table.scale), ids], f"{_EMBEDDED}.scale")
    scale = g.op("Unsqueeze", [scale, g.ints(f"{_EMBEDDED}.last_axis", [-1])])
    rows = g.op("Cast", [rows], f"{_EMBEDDED}.rows", to=TensorProto.FLOAT)
    return g.op("Mul", [rows, scale], _EMBEDDED)


def _head(g: GraphBuilder, x: str, table: Table, head: QWeight | None) -> str:
    """Logits of ``x``: the untied (or separately quantized) head, or the tied table."""
    if head is not None:
        return g.op("MatMul", [x, g.weight("lm_head.weight", head)], "logits")
    if table.scale is None:
        transposed = g.op("Transpose", [_TABLE], "lm_head.tied", perm=[1, 0])
        return g.op("MatMul", [x, transposed], "logits")
    # Transpose(int8 table) -> DequantizeLinear(axis 1): the row scales are the head's output
    # channels; the head's own copy of them lets onnxruntime fuse it into MatMulNBits.
    transposed = g.op("Transpose", [f"{_TABLE}.int8"], "lm_head.tied.int8", perm=[1, 0])
    scale = g.const("lm_head.tied.scale", table.scale)
    weight = g.op("DequantizeLinear", [transposed, scale], "lm_head.tied", axis=1)
    return g.op("MatMul", [x, weight], "logits")


def _past_inputs(g: GraphBuilder, config: ModelConfig, length: str) -> None:
    shape: list[int | str] = ["batch", config.num_kv_heads, length, config.head_dim]
    for name in past_names(config.num_layers):
        g.input(name, TensorProto.FLOAT, shape)


def _present_outputs(g: GraphBuilder, config: ModelConfig, length: str) -> None:
    shape: list[int | str] = ["batch", config.num_kv_heads, length, config.head_dim]
    for name in present_names(config.num_layers):
        g.output(name, TensorProto.FLOAT, shape)


def standard_prelude(
    g: GraphBuilder, config: ModelConfig, table: Table, inv_freq: np.ndarray
) -> tuple[str, StandardInputs]:
    """Inputs, the embedding [B, S, E], RoPE tables and the attention bias."""
    ids = g.input("input_ids", TensorProto.INT64, ["batch", "sequence"])
    mask = g.input("attention_mask", TensorProto.INT64, ["batch", "total_sequence"])
    positions = g.input("position_ids", TensorProto.INT64, ["batch", "sequence"])
    _past_inputs(g, config, "past_sequence")
    x = _embedding(g, table, ids)
    # RoPE angles in float32: positions x inverse frequencies, both halves  [B, S, D]
    angles = g.op(
        "Mul",
        [
            g.op(
                "Unsqueeze",
                [g.op("Cast", [positions], to=TensorProto.FLOAT), g.ints("rope.last", [-1])],
            ),
            g.const("rope.inv_freq", inv_freq.astype(np.float32)),
        ],
        "rope.freqs",
    )
    angles = g.op("Concat", [angles, angles], "rope.angles", axis=-1)
    cos, sin = g.op("Cos", [angles], "rope.cos"), g.op("Sin", [angles], "rope.sin")
    axes_q, axes_k = g.ints("rope.axes_q", [1, 2]), g.ints("rope.axes_k", [1])
    shared = StandardInputs(
        cos_q=g.op("Unsqueeze", [cos, axes_q], "rope.cos_q"),
        sin_q=g.op("Unsqueeze", [sin, axes_q], "rope.sin_q"),
        cos_k=g.op("Unsqueeze", [cos, axes_k], "rope.cos_k"),
        sin_k=g.op("Unsqueeze", [sin, axes_k], "rope.sin_k"),
        bias=_attention_bias(g, config, ids, mask),
    )
    return x, shared


def _length(g: GraphBuilder, tensor: str, name: str) -> str:
    """Dimension 1 of ``tensor`` as an int64 scalar."""
    dim = g.op(
        "Slice", [g.op("Shape", [tensor]), g.ints(f"{name}.from", [1]), g.ints(f"{name}.to", [2])]
    )
    return g.op("Squeeze", [dim, g.ints(f"{name}.axis", [0])], name)


def _attention_bias(g: GraphBuilder, config: ModelConfig, ids: str, mask: str) -> str:
    """[B, 1, 1, S, T]: 0 where a query may attend a key (causal, inside the sliding window, not
    padding), float32's lowest value elsewhere; the S new tokens are the last S of T slots."""
    total = _length(g, mask, "mask.total")  # T: past + new positions
    new = _length(g, ids, "mask.new")  # S
    step = g.const("mask.step", np.array(1, np.int64))
    keys = g.op("Range", [g.const("mask.start", np.array(0, np.int64)), total, step], "mask.keys")
    queries = g.op("Range", [g.op("Sub", [total, new]), total, step], "mask.queries")
    key_row = g.op("Unsqueeze", [keys, g.ints("mask.zero", [0])], "mask.key_row")  # [1, T]
    query_col = g.op("Unsqueeze", [queries, g.ints("mask.last", [-1])], "mask.query_col")  # [S, 1]
    allowed = g.op("LessOrEqual", [key_row, query_col], "mask.causal")  # [S, T]
    if config.sliding_window is not None:
        window = g.const("mask.window", np.array(config.sliding_window, np.int64))
        inside = g.op("Greater", [key_row, g.op("Sub", [query_col, window])], "mask.window_ok")
        allowed = g.op("And", [allowed, inside], "mask.local")
    padding = g.op("Cast", [mask], "mask.real", to=TensorProto.BOOL)  # [B, T]
    padding = g.op("Unsqueeze", [padding, g.ints("mask.axis1", [1])])  # [B, 1, T]
    allowed = g.op("And", [allowed, padding], "mask.allowed")  # [B, S, T]
    lowest = np.array(np.finfo(np.float32).min, np.float32)
    bias = g.op(
        "Where",
        [allowed, g.const("mask.open", np.array(0.0, np.float32)), g.const("mask.closed", lowest)],
    )
    return g.op("Unsqueeze", [bias, g.ints("mask.axes", [1, 2])], "attention_bias")


def standard_tail(
    g: GraphBuilder,
    config: ModelConfig,
    x: str,
    final_norm: np.ndarray,
    table: Table,
    head: QWeight | None,
) -> None:
    """Final RMSNorm, the LM head and the outputs."""
    h = rms_norm(g, x, final_norm, float(config.rms_norm_eps), "model.norm")
    _head(g, h, table, head)
    g.output("logits", TensorProto.FLOAT, ["batch", "sequence", config.vocab_size])
    _present_outputs(g, config, "total_sequence")


def fused_prelude(
    g: GraphBuilder, config: ModelConfig, table: Table, cos_sin: tuple[np.ndarray, np.ndarray]
) -> tuple[FusedState, tuple[str, str]]:
    """Inputs of the fused graph, the embedding, and the RoPE caches GroupQueryAttention reads."""
    ids = g.input("input_ids", TensorProto.INT64, ["batch", "sequence"])
    _past_inputs(g, config, "capacity")
    g.input("seqlens_k", TensorProto.INT32, ["batch"])
    g.input("total_sequence_length", TensorProto.INT32, [])
    cache = (
        g.const("ort.cos_cache", np.ascontiguousarray(cos_sin[0], dtype=np.float32)),
        g.const("ort.sin_cache", np.ascontiguousarray(cos_sin[1], dtype=np.float32)),
    )
    return FusedState(_embedding(g, table, ids)), cache


def fused_tail(
    g: GraphBuilder,
    config: ModelConfig,
    state: FusedState,
    final_norm: np.ndarray,
    table: Table,
    head: QWeight | None,
) -> None:
    """The final skip-norm, the head on the last position only, and the outputs."""
    h, _ = skip_norm(g, state, final_norm, float(config.rms_norm_eps), "model.norm")
    last = g.op(
        "Slice",
        [h, g.ints("ort.minus1", [-1]), g.ints("ort.end", [2**62]), g.ints("ort.axis1", [1])],
        "ort.last",
    )
    _head(g, last, table, head)
    g.output("logits", TensorProto.FLOAT, ["batch", 1, config.vocab_size])
    _present_outputs(g, config, "capacity")
