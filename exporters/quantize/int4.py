"""INT4 weight-only block-wise quantization of an exported graph, in standard ONNX (opset 21).

* Every MatMul whose right operand is a constant [K, N] weight becomes
  ``DequantizeLinear(int4 [K, N], scale [ceil(K/G), N], axis=0, block_size=G) -> MatMul``:
  symmetric (zero point 0, levels -8..7), one scale per G consecutive inputs (the reduction
  dimension) of each output channel. onnxruntime fuses the pair into its 4-bit ``MatMulNBits``
  kernel at load time (measured, also when G does not divide K: the last block is then shorter,
  as ONNX's blocked quantization defines, so no padding is stored); TensorRT reads the same
  standard form. The whole graph moves to opset 21 (``onnx.version_converter``), IR version 10.
* The weights come either from round to nearest (RTN: scale = block max |w| / 7) or, keyed by
  :func:`~edge_sdk.exporters.quantize.int8.weight_key`, from a solver such as GPTQ.
* With ``embedding=True`` the embedding table is stored int8 per row (a Gather of int4 rows has
  no onnxruntime kernel) and the LM head int8 per output channel (``head_bits=8``: a tied head
  reads the same int8 table, as llama.cpp keeps its output tensor at higher precision) or int4
  blocks (``head_bits=4``: a tied head gets its own int4 [E, V] copy, as onnxruntime-genai does);
  otherwise both stay float.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, version_converter

from edge_sdk.errors import ExportError
from edge_sdk.exporters.quantize.int8 import (
    _dequantized_gather,
    _float_matrix,
    _fresh,
    _gather_axis,
    _initializers,
    _per_channel,
    _remove_unused_initializers,
    tied_int8_head,
    weight_key,
)

__all__ = [
    "OPSET_INT4",
    "QMAX",
    "QMIN",
    "Int4Report",
    "dequantize_int4",
    "quantize_int4",
    "rtn_int4",
]

OPSET_INT4 = 21
QMIN, QMAX = -8, 7
Solved = dict[
    bytes, tuple[np.ndarray, np.ndarray]
]  # weight_key -> (q [K, N] int8 in -8..7, scale [B, N])


@dataclass(frozen=True)
class Int4Report:
    """What :func:`quantize_int4` changed."""

    matmuls: int
    solved: int  # of which the weights came from the solver (GPTQ) rather than RTN
    embeddings: int
    int4_bytes: int
    int8_bytes: int
    scale_bytes: int
    float_bytes_left: int


def rtn_int4(w: np.ndarray, group: int) -> tuple[np.ndarray, np.ndarray]:
    """Round-to-nearest int4 of ``w`` [K, N] in blocks of ``group`` rows: (q [K, N], scale [B,
    N])."""
    k, n = w.shape
    blocks = -(-k // group)
    padded = np.zeros((blocks * group, n), dtype=np.float32)
    padded[:k] = w
    peak = np.abs(padded.reshape(blocks, group, n)).max(axis=1)  # [B, N]
    scale = (np.where(peak > 0, peak, 1.0) / QMAX).astype(np.float32)
    q = np.clip(np.rint(w / np.repeat(scale, group, axis=0)[:k]), QMIN, QMAX).astype(np.int8)
    return q, scale


def dequantize_int4(q: np.ndarray, scale: np.ndarray, group: int) -> np.ndarray:
    """The float weights [K, N] that ``DequantizeLinear`` reconstructs."""
    weights: np.ndarray = q.astype(np.float32) * np.repeat(scale, group, axis=0)[: q.shape[0]]
    return weights.astype(np.float32)


def int4_tensor(q: np.ndarray, name: str) -> onnx.TensorProto:
    """An ONNX ``INT4`` initializer: two values per byte, the first in the low nibble."""
    flat = q.astype(np.int8).ravel().view(np.uint8) & 0x0F
    if flat.size % 2:
        flat = np.append(flat, np.uint8(0))
    tensor = TensorProto()
    tensor.name = name
    tensor.data_type = TensorProto.INT4
    tensor.dims.extend(q.shape)
    tensor.raw_data = (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8).tobytes()
    return tensor


def to_opset21(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` converted to opset 21 and IR version 10 (needed for int4 and ``block_size``)."""
    try:
        converted = version_converter.convert_version(model, OPSET_INT4)
    except Exception as exc:  # the converter raises RuntimeError/ValidationError variants
        raise ExportError(
            f"cannot convert the graph to opset {OPSET_INT4} for int4: {exc}"
        ) from exc
    converted.ir_version = max(converted.ir_version, 10)
    return converted


def quantize_int4(
    model: onnx.ModelProto,
    group: int,
    solved: Solved | None = None,
    *,
    embedding: bool = False,
    head_bits: int = 8,
) -> tuple[onnx.ModelProto, Int4Report]:
    """Return ``model`` at opset 21 with int4 block-wise MatMul weights (see the module
    docstring)."""
    model = to_opset21(model)
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    taken = set(inits)
    tables: dict[str, str] = {}  # float table -> base name of its int8 rows
    transposed: dict[str, str] = {}  # Transpose output -> float table it transposes
    new_nodes: list[onnx.NodeProto] = []
    matmuls = from_solver = 0
    for node in graph.node:
        is_head = "logits" in node.output
        if (
            embedding
            and node.op_type == "Gather"
            and _gather_axis(node) == 0
            and _float_matrix(inits, node.input[0])
        ):
            base = tables.get(node.input[0]) or _fresh(node.name or node.input[0], taken)
            if node.input[0] not in tables:
                tables[node.input[0]] = base
                q8, scale8 = _per_channel(
                    numpy_helper.to_array(inits[node.input[0]]), axis=0, moments=None
                )
                graph.initializer.extend(_initializers(base, q8, scale8))
            new_nodes += _dequantized_gather(node, base)
        elif (
            embedding and head_bits == 8 and node.op_type == "Transpose" and node.input[0] in tables
        ):
            new_nodes += tied_int8_head(graph, node, tables[node.input[0]])
        elif embedding and node.op_type == "Transpose" and _float_matrix(inits, node.input[0]):
            transposed[node.output[0]] = node.input[0]  # the head gets its own int4 copy below
        elif embedding and head_bits == 8 and is_head and _float_matrix(inits, node.input[1]):
            q8, scale8 = _per_channel(
                numpy_helper.to_array(inits[node.input[1]]), axis=1, moments=None
            )
            base = _fresh(node.name or node.input[1], taken)
            graph.initializer.extend(_initializers(base, q8, scale8))
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
        elif (
            node.op_type == "MatMul"
            and (not is_head or embedding)
            and (_float_matrix(inits, node.input[1]) or node.input[1] in transposed)
        ):
            source = transposed.get(node.input[1])
            w = (
                numpy_helper.to_array(inits[source]).T
                if source
                else numpy_helper.to_array(inits[node.input[1]])
            )
            answer = (solved or {}).get(weight_key(w))
            q, scale = answer if answer is not None else rtn_int4(w, group)
            from_solver += answer is not None
            base = _fresh(node.name or node.input[1], taken)
            graph.initializer.extend(
                [int4_tensor(q, f"{base}.int4"), numpy_helper.from_array(scale, f"{base}.scale")]
            )
            new_nodes.append(
                helper.make_node(
                    "DequantizeLinear",
                    [f"{base}.int4", f"{base}.scale"],
                    [f"{base}.dequantized"],
                    name=f"{base}/DequantizeLinear",
                    axis=0,
                    block_size=group,
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
    return model, _report(graph, matmuls, from_solver, len(tables))


def _report(graph: onnx.GraphProto, matmuls: int, solved: int, embeddings: int) -> Int4Report:
    def count(data_type: int) -> int:
        return sum(int(np.prod(i.dims)) for i in graph.initializer if i.data_type == data_type)

    scales = sum(4 * int(np.prod(i.dims)) for i in graph.initializer if i.name.endswith(".scale"))
    floats = 4 * count(TensorProto.FLOAT) - scales
    return Int4Report(
        matmuls,
        solved,
        embeddings,
        (count(TensorProto.INT4) + 1) // 2,
        count(TensorProto.INT8),
        scales,
        floats,
    )
