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
from edge_sdk.exporters.fused_graph import rope_tables
from edge_sdk.exporters.model import rope_inverse_frequencies
from edge_sdk.exporters.quantize.int4 import int4_packed
from edge_sdk.exporters.quantize.qweight import QWeight
from edge_sdk.exporters.stream.onnx_builder import GraphBuilder
from edge_sdk.exporters.stream.ops import FusedState, rms_norm, skip_norm
from edge_sdk.onnx_io import LOGITS_TO_KEEP, cache_tensors

__all__ = [
    "LayerKind",
    "Table",
    "embedding",
    "fused_prelude",
    "fused_tail",
    "layer_kind",
    "standard_prelude",
    "standard_tail",
]

_TABLE = "model.embed_tokens.weight"
_EMBEDDED = "model.embed_tokens.output"

#: What the shared inputs of a layer depend on: its RoPE (the sliding layers' base or not) and
#: how many positions it attends to (None: all).
LayerKind = tuple[bool, int | None]


def layer_kind(config: ModelConfig, index: int) -> LayerKind:
    """The :data:`LayerKind` of layer ``index``."""
    return config.local_rope(index), config.layer_window(index)


def _kinds(config: ModelConfig) -> list[LayerKind]:
    return sorted({layer_kind(config, i) for i in config.attention_layers}, key=str)


@dataclass(frozen=True)
class Table:
    """The token embedding [V, E]: float32, or int8 with one scale per row (``scale`` [V]) or
    per ``block`` columns of a row (``scale`` [V, E / block]); ``bits`` 4: int4 levels (-8..7)
    in blocks, which the graphs store transposed, [E, V], as the tied head's int4 weight."""

    values: np.ndarray
    scale: np.ndarray | None = None
    bits: int = 8

    @property
    def block(self) -> int:
        """Columns per scale; 0: one scale per row."""
        if self.scale is None or self.scale.ndim == 1:
            return 0
        return int(self.values.shape[1] // self.scale.shape[1])

    def scales(self, rows: slice | np.ndarray) -> np.ndarray:
        """The scale of each value of ``rows`` [n, E] (or [n, 1] per row)."""
        assert self.scale is not None
        if not self.block:
            return self.scale[rows, None]
        return np.repeat(self.scale[rows], self.block, axis=-1)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The float32 rows of ``ids`` as the graph computes them [n, E]."""
        rows: np.ndarray = self.values[ids].astype(np.float32)
        if self.scale is not None:
            rows *= self.scales(ids)
        return rows


def _int4_table(g: GraphBuilder, table: Table) -> tuple[str, str]:
    """The 4-bit table written once, transposed [E, V] as the tied head's int4 weight, and its
    scales [E / block, V]: their initializer names."""
    assert table.scale is not None
    vocab, hidden = table.values.shape
    levels = int4_packed(np.ascontiguousarray(table.values.T))
    data = g.tensor(f"{_TABLE}.int4", TensorProto.INT4, (hidden, vocab), levels)
    return data, g.const(f"{_TABLE}.scale", np.ascontiguousarray(table.scale.T))


def _int4_rows_standard(g: GraphBuilder, table: Table, ids: str, name: str) -> str:
    """Rows [B, S, E] of the 4-bit table in standard ops: the [E, V] table read as int8
    [E, V / 2] (two vocabulary columns per byte, the even one in the low nibble), the byte of
    each id gathered and its nibble taken in float arithmetic, times the gathered scales."""
    vocab, hidden = table.values.shape
    data, scale = _int4_table(g, table)
    pairs = g.alias(f"{_TABLE}.int4_pairs", data, TensorProto.INT8, (hidden, vocab // 2))
    p = _EMBEDDED
    two = g.const(f"{p}.two", np.array(2, np.int64))
    column = g.op("Div", [ids, two], f"{p}.pair")
    odd = g.op("Cast", [g.op("Mod", [ids, two])], f"{p}.odd", to=TensorProto.BOOL)
    byte = g.op("Gather", [pairs, column], f"{p}.bytes", axis=1)  # [E, B, S]
    byte = g.op("Cast", [byte], f"{p}.byte_values", to=TensorProto.FLOAT)
    sixteen = g.const(f"{p}.sixteen", np.array(16.0, np.float32))
    high = g.op("Floor", [g.op("Div", [byte, sixteen])], f"{p}.high")  # signed: -8..7
    low = g.op("Sub", [byte, g.op("Mul", [high, sixteen])], f"{p}.low_bits")  # 0..15
    wraps = g.op("GreaterOrEqual", [low, g.const(f"{p}.eight", np.array(8.0, np.float32))])
    low = g.op("Where", [wraps, g.op("Sub", [low, sixteen]), low], f"{p}.low")
    levels = g.op("Where", [odd, high, low], f"{p}.levels")  # [E, B, S]
    levels = g.op("Transpose", [levels], f"{p}.rows", perm=[1, 2, 0])
    scales = g.op("Gather", [scale, ids], f"{p}.scale_columns", axis=1)  # [E / block, B, S]
    scales = g.op("Transpose", [scales], f"{p}.scale_rows", perm=[1, 2, 0])
    return _blocks_scaled(g, levels, scales, table.block, name)


def _blocks_scaled(g: GraphBuilder, rows: str, scale: str, block: int, name: str) -> str:
    """Rows [B, S, E] as [B, S, E / block, block] times the scales [B, S, E / block, 1]."""
    scale = g.op("Unsqueeze", [scale, g.ints(f"{_EMBEDDED}.last_axis", [-1])])
    blocks = g.ints(f"{_EMBEDDED}.blocks", [0, 0, -1, block])
    rows = g.op("Reshape", [rows, blocks], f"{_EMBEDDED}.blocked")
    scaled = g.op("Mul", [rows, scale], f"{_EMBEDDED}.scaled")
    return g.op("Reshape", [scaled, g.ints(f"{_EMBEDDED}.merged", [0, 0, -1])], name)


def _int4_rows_fused(g: GraphBuilder, table: Table, ids: str, name: str) -> str:
    """Rows [B, S, E] of the 4-bit table by onnxruntime's ``GatherBlockQuantized`` (int4 data,
    gathered along the [E, V] table's columns, its blocks along E)."""
    data, scale = _int4_table(g, table)
    columns = g.op(
        "GatherBlockQuantized",
        [data, ids, scale],
        f"{_EMBEDDED}.columns",
        domain="com.microsoft",
        gather_axis=1,
        quantize_axis=0,
        block_size=table.block,
        bits=4,
    )  # [E, B, S]
    return g.op("Transpose", [columns], name, perm=[1, 2, 0])


def embedding(
    g: GraphBuilder, config: ModelConfig, table: Table, ids: str, fused: bool = False
) -> str:
    """``Gather`` of the rows of ``ids`` (int8 or int4 rows times their scales: only those rows
    are dequantized; ``fused``: the fused graph's contrib op for int4), times the model's
    embedding scale (Gemma)."""
    multiplier = config.embedding_scale
    name = _EMBEDDED if multiplier == 1.0 else f"{_EMBEDDED}.unscaled"
    if table.bits == 4:
        rows = (_int4_rows_fused if fused else _int4_rows_standard)(g, table, ids, name)
    elif table.scale is None:
        rows = g.op("Gather", [g.const(_TABLE, table.values), ids], name)
    else:
        ints = g.op("Gather", [g.const(f"{_TABLE}.int8", table.values), ids], f"{_EMBEDDED}.int8")
        scale = g.op("Gather", [g.const(f"{_TABLE}.scale", table.scale), ids], f"{name}.scale")
        ints = g.op("Cast", [ints], f"{_EMBEDDED}.rows", to=TensorProto.FLOAT)
        if not table.block:
            scale = g.op("Unsqueeze", [scale, g.ints(f"{_EMBEDDED}.last_axis", [-1])])
            rows = g.op("Mul", [ints, scale], name)
        else:
            rows = _blocks_scaled(g, ints, scale, table.block, name)
    if multiplier == 1.0:
        return rows
    factor = g.const(f"{_EMBEDDED}.multiplier", np.array(multiplier, np.float32))
    return g.op("Mul", [rows, factor], _EMBEDDED)


def _head(g: GraphBuilder, x: str, table: Table, head: QWeight | None) -> str:
    """Logits of ``x``: the untied (or separately quantized) head, or the tied table."""
    if head is not None:
        return g.op("MatMul", [x, g.weight("lm_head.weight", head)], "logits")
    if table.bits == 4:  # the [E, V] int4 table under names of its own (the fused graph's
        # MatMulNBits fusion takes a weight only its DequantizeLinear reads)
        levels = g.alias("lm_head.tied.int4", f"{_TABLE}.int4")
        scale = g.alias("lm_head.tied.scale", f"{_TABLE}.scale")
        weight = g.op(
            "DequantizeLinear", [levels, scale], "lm_head.tied", axis=0, block_size=table.block
        )
        return g.op("MatMul", [x, weight], "logits")
    if table.scale is None:
        transposed = g.op("Transpose", [_TABLE], "lm_head.tied", perm=[1, 0])
        return g.op("MatMul", [x, transposed], "logits")
    # Transpose(int8 table) -> DequantizeLinear: the row scales are the head's output channels
    # (axis 1), or its blocks along E (axis 0); the head's own copy of them lets onnxruntime fuse
    # it into MatMulNBits.
    transposed = g.op("Transpose", [f"{_TABLE}.int8"], "lm_head.tied.int8", perm=[1, 0])
    if not table.block:
        scale = g.const("lm_head.tied.scale", table.scale)
        weight = g.op("DequantizeLinear", [transposed, scale], "lm_head.tied", axis=1)
    else:
        scale = g.const("lm_head.tied.scale", np.ascontiguousarray(table.scale.T))
        weight = g.op(
            "DequantizeLinear",
            [transposed, scale],
            "lm_head.tied",
            axis=0,
            block_size=table.block,
        )
    return g.op("MatMul", [x, weight], "logits")


def _cache_shape(shape: tuple[int | None, ...], length: str) -> list[int | str]:
    return ["batch", *(length if d is None else d for d in shape)]


def _past_inputs(g: GraphBuilder, config: ModelConfig, length: str) -> None:
    for tensor in cache_tensors(config):
        g.input(tensor.past, TensorProto.FLOAT, _cache_shape(tensor.shape, length))


def _present_outputs(g: GraphBuilder, config: ModelConfig, length: str) -> None:
    for tensor in cache_tensors(config):
        g.output(tensor.present, TensorProto.FLOAT, _cache_shape(tensor.shape, length))


def standard_prelude(
    g: GraphBuilder, config: ModelConfig, table: Table
) -> tuple[str, dict[LayerKind, StandardInputs]]:
    """Inputs, the embedding [B, S, E], and per :data:`LayerKind` the RoPE tables and the
    attention bias its layers read."""
    ids = g.input("input_ids", TensorProto.INT64, ["batch", "sequence"])
    mask = g.input("attention_mask", TensorProto.INT64, ["batch", "total_sequence"])
    positions = g.input("position_ids", TensorProto.INT64, ["batch", "sequence"])
    _past_inputs(g, config, "past_sequence")
    x = embedding(g, config, table, ids)
    position = g.op(
        "Unsqueeze", [g.op("Cast", [positions], to=TensorProto.FLOAT), g.ints("rope.last", [-1])]
    )
    kinds = _kinds(config)
    ropes = {local: _rope(g, config, position, local) for local in {k[0] for k in kinds}}
    biases = {w: _attention_bias(g, ids, mask, w) for w in {k[1] for k in kinds}}
    return x, {kind: StandardInputs(*ropes[kind[0]], bias=biases[kind[1]]) for kind in kinds}


def _rope(
    g: GraphBuilder, config: ModelConfig, position: str, local: bool
) -> tuple[str, str, str, str]:
    """cos/sin for q [B, 1, 1, S, D] and for k [B, 1, S, D] from positions [B, S, 1]; angles in
    float32, both halves."""
    p = "rope.local" if local else "rope"
    inv_freq = rope_inverse_frequencies(config, local).numpy()
    freqs = g.op("Mul", [position, g.const(f"{p}.inv_freq", inv_freq)], f"{p}.freqs")
    angles = g.op("Concat", [freqs, freqs], f"{p}.angles", axis=-1)
    cos, sin = g.op("Cos", [angles], f"{p}.cos"), g.op("Sin", [angles], f"{p}.sin")
    axes_q, axes_k = g.ints(f"{p}.axes_q", [1, 2]), g.ints(f"{p}.axes_k", [1])
    return (
        g.op("Unsqueeze", [cos, axes_q], f"{p}.cos_q"),
        g.op("Unsqueeze", [sin, axes_q], f"{p}.sin_q"),
        g.op("Unsqueeze", [cos, axes_k], f"{p}.cos_k"),
        g.op("Unsqueeze", [sin, axes_k], f"{p}.sin_k"),
    )


def _length(g: GraphBuilder, tensor: str, name: str) -> str:
    """Dimension 1 of ``tensor`` as an int64 scalar."""
    dim = g.op(
        "Slice", [g.op("Shape", [tensor]), g.ints(f"{name}.from", [1]), g.ints(f"{name}.to", [2])]
    )
    return g.op("Squeeze", [dim, g.ints(f"{name}.axis", [0])], name)


def _attention_bias(g: GraphBuilder, ids: str, mask: str, window: int | None) -> str:
    """[B, 1, 1, S, T]: 0 where a query may attend a key (causal, inside the ``window`` last
    positions when given, not padding), float32's lowest value elsewhere; the S new tokens are
    the last S of T slots."""
    p = "mask" if window is None else f"mask.window{window}"
    total = _length(g, mask, f"{p}.total")  # T: past + new positions
    new = _length(g, ids, f"{p}.new")  # S
    step = g.const(f"{p}.step", np.array(1, np.int64))
    keys = g.op("Range", [g.const(f"{p}.start", np.array(0, np.int64)), total, step], f"{p}.keys")
    queries = g.op("Range", [g.op("Sub", [total, new]), total, step], f"{p}.queries")
    key_row = g.op("Unsqueeze", [keys, g.ints(f"{p}.zero", [0])], f"{p}.key_row")  # [1, T]
    query_col = g.op("Unsqueeze", [queries, g.ints(f"{p}.last", [-1])], f"{p}.query_col")
    allowed = g.op("LessOrEqual", [key_row, query_col], f"{p}.causal")  # [S, T]
    if window is not None:
        size = g.const(f"{p}.size", np.array(window, np.int64))
        inside = g.op("Greater", [key_row, g.op("Sub", [query_col, size])], f"{p}.inside")
        allowed = g.op("And", [allowed, inside], f"{p}.local")
    padding = g.op("Cast", [mask], f"{p}.real", to=TensorProto.BOOL)  # [B, T]
    padding = g.op("Unsqueeze", [padding, g.ints(f"{p}.axis1", [1])])  # [B, 1, T]
    allowed = g.op("And", [allowed, padding], f"{p}.allowed")  # [B, S, T]
    lowest = np.array(np.finfo(np.float32).min, np.float32)
    bias = g.op(
        "Where",
        [allowed, g.const(f"{p}.open", np.array(0.0, np.float32)), g.const(f"{p}.closed", lowest)],
    )
    name = "attention_bias" if window is None else f"attention_bias.window{window}"
    return g.op("Unsqueeze", [bias, g.ints(f"{p}.axes", [1, 2])], name)


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
    g: GraphBuilder, config: ModelConfig, table: Table, positions: int
) -> tuple[FusedState, dict[bool, tuple[str, str]]]:
    """Inputs of the fused graph, the embedding, and the RoPE caches [positions, D/2]
    GroupQueryAttention reads (by ``local``: the sliding layers' own, where they have one)."""
    ids = g.input("input_ids", TensorProto.INT64, ["batch", "sequence"])
    _past_inputs(g, config, "capacity")
    g.input("seqlens_k", TensorProto.INT32, ["batch"])
    g.input("total_sequence_length", TensorProto.INT32, [])
    caches: dict[bool, tuple[str, str]] = {}
    for local in sorted({kind[0] for kind in _kinds(config)}):
        p = "ort.local_" if local else "ort."
        cos, sin = rope_tables(config, positions, local)
        caches[local] = (
            g.const(f"{p}cos_cache", np.ascontiguousarray(cos, dtype=np.float32)),
            g.const(f"{p}sin_cache", np.ascontiguousarray(sin, dtype=np.float32)),
        )
    return FusedState(embedding(g, config, table, ids, fused=True)), caches


def fused_tail(
    g: GraphBuilder,
    config: ModelConfig,
    state: FusedState,
    final_norm: np.ndarray,
    table: Table,
    head: QWeight | None,
) -> None:
    """The final skip-norm, the head on the last ``logits_to_keep`` positions (an optional
    int64 [1] input, 1 when not given: speculative decoding checks several drafted tokens in
    one call), and the outputs."""
    h, _ = skip_norm(g, state, final_norm, float(config.rms_norm_eps), "model.norm")
    g.input(LOGITS_TO_KEEP, TensorProto.INT64, [1])
    g.ints(LOGITS_TO_KEEP, [1])  # the default: an initializer of the input's name
    start = g.op("Neg", [LOGITS_TO_KEEP], "ort.logits_start")
    last = g.op(
        "Slice",
        [h, start, g.ints("ort.end", [2**62]), g.ints("ort.axis1", [1])],
        "ort.last",
    )
    _head(g, last, table, head)
    g.output("logits", TensorProto.FLOAT, ["batch", "kept_positions", config.vocab_size])
    _present_outputs(g, config, "capacity")
