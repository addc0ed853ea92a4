"""INT8 weight-only quantization of an exported ONNX graph, in standard QDQ form.

* Every MatMul whose right operand is a constant [K, N] weight becomes
  ``DequantizeLinear(int8 [K, N], scale, ...) -> MatMul``, symmetric, zero point 0, with either
  - one scale per G consecutive inputs of each output channel (``block_size=G``: scale
    [ceil(K/G), N], ``axis=0``, opset 21), the CPU form, as llama.cpp's Q8_0 (G = 32) stores its
    weights; or
  - one scale per output channel (``block_size=0``: scale [N], ``axis=1``), TensorRT's INT8
    weight form (it takes no int8 blocks).
  onnxruntime fuses the pair into its 8-bit ``MatMulNBits`` kernel at load time. That kernel
  (accuracy level 4) also quantizes the *activations* to int8 per block of G inputs at run time,
  so a real model's outlier channels cost accuracy there: see ``QuantConfig``'s SmoothQuant
  migration for int8.
* The embedding table [V, E] becomes int8 per row: ``Gather(int8) * Gather(scale)``, so only the
  looked-up rows are dequantized (a DequantizeLinear of the whole table before the Gather would
  dequantize all of it on every step: 7.8 ms vs 0.08 ms for a 32000 x 1024 table, measured).
* With calibration statistics (the mean square of each input channel of a MatMul), each output
  channel's clipping range is chosen from a small grid to minimise the activation-weighted
  squared error; without them, the range is the channel's max |w| (round to nearest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "CLIP_RATIOS",
    "Int8Report",
    "blocked_int8",
    "quantize_int8",
    "tied_int8_head",
    "weight_key",
]

QMAX = 127
CLIP_RATIOS = (1.0, 0.975, 0.95, 0.925, 0.9, 0.875, 0.85, 0.8, 0.75)


@dataclass(frozen=True)
class Int8Report:
    """What :func:`quantize_int8` changed."""

    matmuls: int
    embeddings: int
    calibrated: int
    int8_bytes: int
    float_bytes_left: int


def weight_key(matmul_weight: np.ndarray) -> bytes:
    """Identity of a [K, N] MatMul weight, to match ONNX initializers with torch modules."""
    return matmul_weight.astype(np.float32).tobytes()[:4096] + str(matmul_weight.shape).encode()


def _per_channel(
    w: np.ndarray, axis: int, moments: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 of ``w`` with one scale per index along ``axis``; clipping from
    ``moments``."""
    reduce_axis = 1 - axis
    peak = np.abs(w).max(axis=reduce_axis)
    peak = np.where(peak > 0, peak, 1.0).astype(np.float32)
    if moments is None:
        scale = peak / QMAX
    else:  # w is [K, N], axis=1, moments [K]: pick the ratio with least weighted error per column
        best_err = np.full(w.shape[1], np.inf, dtype=np.float64)
        scale = peak / QMAX
        for ratio in CLIP_RATIOS:
            candidate = peak * ratio / QMAX
            q = np.clip(np.rint(w / candidate), -QMAX, QMAX)
            err = (moments[:, None] * (w - q * candidate) ** 2).sum(axis=0)
            better = err < best_err
            best_err = np.where(better, err, best_err)
            scale = np.where(better, candidate, scale)
    shape = [1, 1]
    shape[axis] = -1
    q = np.clip(np.rint(w / scale.reshape(shape)), -QMAX, QMAX).astype(np.int8)
    return q, scale.astype(np.float32)


def blocked_int8(
    w: np.ndarray, block: int, moments: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 of ``w`` [K, N] with one scale per ``block`` rows of each column:
    (q [K, N], scale [ceil(K / block), N]); each block's clipping from ``moments`` [K] (the
    activation-weighted least squares of :data:`CLIP_RATIOS`), else its max |w|."""
    k, n = w.shape
    blocks = -(-k // block)
    padded = np.zeros((blocks * block, n), dtype=np.float32)
    padded[:k] = w
    grid = padded.reshape(blocks, block, n)
    peak = np.abs(grid).max(axis=1)
    peak = np.where(peak > 0, peak, 1.0).astype(np.float32)  # [B, N]
    scale = peak / QMAX
    if moments is not None:
        weights = np.zeros(blocks * block, dtype=np.float64)
        weights[:k] = moments
        weights = weights.reshape(blocks, block, 1)
        best = np.full(peak.shape, np.inf)
        for ratio in CLIP_RATIOS:
            candidate = peak * ratio / QMAX
            q = np.clip(np.rint(grid / candidate[:, None]), -QMAX, QMAX)
            err = (weights * (grid - q * candidate[:, None]) ** 2).sum(axis=1)
            better = err < best
            best = np.where(better, err, best)
            scale = np.where(better, candidate, scale)
    q = np.clip(np.rint(grid / scale[:, None]), -QMAX, QMAX).astype(np.int8)
    return q.reshape(blocks * block, n)[:k], scale.astype(np.float32)


def quantize_int8(
    model: onnx.ModelProto,
    moments: dict[bytes, np.ndarray] | None = None,
    *,
    embedding: bool = True,
) -> tuple[onnx.ModelProto, Int8Report]:
    """``model`` with int8 weights per output channel, rewritten in place (the traced W8A8
    export; the streamed flow quantizes tensors with :func:`blocked_int8` and
    :func:`_per_channel` as it writes them); ``moments`` maps :func:`weight_key` to [K].

    The embedding table becomes int8 per row. A tied LM head written as
    ``MatMul(x, Transpose(table))`` (see ``share_tied_head``) reuses the int8 embedding table:
    its per-row scales are the head's per-output-channel scales. ``embedding=False`` keeps the
    embedding table and the LM head (the MatMul producing ``logits``) in float.
    """
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    taken = set(inits)
    tables: dict[str, str] = {}  # float table name -> base name of its int8 version
    new_nodes: list[onnx.NodeProto] = []
    matmuls = calibrated = 0
    for node in graph.node:
        if not embedding and (node.op_type == "Gather" or "logits" in node.output):
            new_nodes.append(node)
        elif (
            node.op_type == "Gather"
            and _gather_axis(node) == 0
            and _float_matrix(inits, node.input[0])
        ):
            base = tables.get(node.input[0]) or _fresh(node.name or node.input[0], taken)
            if node.input[0] not in tables:
                tables[node.input[0]] = base
                q, scale = _per_channel(
                    numpy_helper.to_array(inits[node.input[0]]), axis=0, moments=None
                )
                graph.initializer.extend(_initializers(base, q, scale))
            new_nodes += _dequantized_gather(node, base)
        elif node.op_type == "Transpose" and node.input[0] in tables:
            new_nodes += tied_int8_head(graph, node, tables[node.input[0]])
        elif (
            node.op_type == "MatMul"
            and len(node.input) == 2
            and _float_matrix(inits, node.input[1])
        ):
            w = numpy_helper.to_array(inits[node.input[1]])
            stats = (moments or {}).get(weight_key(w))
            q, scale = _per_channel(w, 1, stats)
            calibrated += stats is not None
            base = _fresh(node.name or node.input[1], taken)
            graph.initializer.extend(_initializers(base, q, scale))
            new_nodes.append(
                helper.make_node(
                    "DequantizeLinear",
                    [f"{base}.int8", f"{base}.scale"],
                    [f"{base}.dequantized"],
                    name=f"{base}/DequantizeLinear",
                    axis=1,
                )
            )
            node.input[1] = f"{base}.dequantized"
            new_nodes.append(node)
            matmuls += 1
        else:
            new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    _remove_unused_initializers(graph)
    int8_bytes = sum(
        int(np.prod(i.dims)) for i in graph.initializer if i.data_type == TensorProto.INT8
    )
    float_left = sum(
        4 * int(np.prod(i.dims)) for i in graph.initializer if i.data_type == TensorProto.FLOAT
    )
    return model, Int8Report(matmuls, len(tables), calibrated, int8_bytes, float_left)


def tied_int8_head(graph: onnx.GraphProto, node: onnx.NodeProto, base: str) -> list[onnx.NodeProto]:
    """A tied LM head's ``Transpose(table)`` read from the int8 table ``base`` (its per-row
    scales are the head's per-output-channel scales): ``Transpose(int8) -> DequantizeLinear``."""
    transposed = node.output[0]
    node.input[0], node.output[0] = f"{base}.int8", f"{transposed}.int8"
    # The head gets its own copy of the scales (V floats): onnxruntime fuses a DequantizeLinear
    # into MatMulNBits only when nothing else reads its scale tensor.
    scale = numpy_helper.to_array(next(i for i in graph.initializer if i.name == f"{base}.scale"))
    graph.initializer.append(numpy_helper.from_array(scale, f"{transposed}.scale"))
    return [
        node,
        helper.make_node(
            "DequantizeLinear",
            [f"{transposed}.int8", f"{transposed}.scale"],
            [transposed],
            name=f"{base}/DequantizeLinearTransposed",
            axis=1,
        ),
    ]


def _initializers(base: str, q: np.ndarray, scale: np.ndarray) -> list[onnx.TensorProto]:
    return [
        numpy_helper.from_array(q, f"{base}.int8"),
        numpy_helper.from_array(scale, f"{base}.scale"),
    ]


def _dequantized_gather(node: onnx.NodeProto, base: str) -> list[onnx.NodeProto]:
    """``Gather(int8 table)`` then a multiply by the gathered rows' scales [..., 1]."""
    ids, out = node.input[1], node.output[0]
    stem = node.name.strip("/").replace("/", ".") or base
    node.input[0], node.output[0] = f"{base}.int8", f"{stem}.rows_int8"
    axes = numpy_helper.from_array(np.array([-1], np.int64), f"{stem}.last_axis")
    return [
        node,
        helper.make_node(
            "Gather", [f"{base}.scale", ids], [f"{stem}.row_scale"], name=f"{stem}/GatherScale"
        ),
        helper.make_node(
            "Constant", [], [f"{stem}.last_axis"], name=f"{stem}/LastAxis", value=axes
        ),
        helper.make_node(
            "Unsqueeze",
            [f"{stem}.row_scale", f"{stem}.last_axis"],
            [f"{stem}.row_scale_1"],
            name=f"{stem}/Unsqueeze",
        ),
        helper.make_node(
            "Cast",
            [f"{stem}.rows_int8"],
            [f"{stem}.rows"],
            name=f"{stem}/Cast",
            to=TensorProto.FLOAT,
        ),
        helper.make_node("Mul", [f"{stem}.rows", f"{stem}.row_scale_1"], [out], name=f"{stem}/Mul"),
    ]


def _float_matrix(inits: dict[str, onnx.TensorProto], name: str) -> bool:
    init = inits.get(name)
    return init is not None and len(init.dims) == 2 and init.data_type == TensorProto.FLOAT


def _gather_axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 0)


def _fresh(base: str, taken: set[str]) -> str:
    base = base.strip("/").replace("/", ".").replace("::", ".")
    name, n = base, 1
    while f"{name}.int8" in taken:
        n += 1
        name = f"{base}.{n}"
    taken.add(f"{name}.int8")
    return name


def _remove_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
