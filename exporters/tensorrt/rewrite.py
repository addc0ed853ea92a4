"""Rewrite the exporter's int8 embedding into the form TensorRT 10 parses, exactly.

TensorRT 10 accepts int8 only between QuantizeLinear and DequantizeLinear, but the int8 bundle
stores the token embedding as an int8 table read by ``Gather`` (then ``Cast`` and ``Mul`` by the
gathered row scales) and a tied LM head as ``Transpose(int8 table) -> DequantizeLinear(axis=1)``.
Two value-preserving rewrites fix both (the bundle's file is not touched; the engine builder
parses the rewritten copy):

- ``Gather(T, ids)``  ->  ``Gather(DequantizeLinear(T, 1.0), ids)`` (per-tensor scale 1: the
  same integers as float; the row scales are still applied by the ``Mul`` after it);
- ``DequantizeLinear(Transpose(T, perm), S, axis=a)``  ->
  ``Transpose(DequantizeLinear(T, S, axis=perm[a]), perm)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["Rewrite", "rewrite_for_tensorrt"]

_QUANTIZED = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT4)


@dataclass(frozen=True)
class Rewrite:
    """One change made: the node and what it became."""

    node: str
    change: str


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def rewrite_for_tensorrt(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[Rewrite]]:
    """A copy of ``model`` with quantized tables dequantized before Gather / Transpose."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {i.name: i for i in graph.initializer if i.data_type in _QUANTIZED}
    producers = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    done: list[Rewrite] = []
    new_nodes: list[onnx.NodeProto] = []
    unit_scale = "edge_sdk.trt.unit_scale"
    for node in graph.node:
        if node.op_type == "Gather" and node.input[0] in inits:
            table = node.input[0]
            floated = f"{table}.trt_float"
            if not any(n.output[0] == floated for n in new_nodes):
                new_nodes.append(
                    helper.make_node(
                        "DequantizeLinear",
                        [table, unit_scale],
                        [floated],
                        name=f"{table}/TrtDequantize",
                    )
                )
            node.input[0] = floated
            new_nodes.append(node)
            done.append(Rewrite(node.name, f"Gather reads DequantizeLinear({table}, 1.0)"))
            continue
        source = producers.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if (
            source is not None
            and source.op_type == "Transpose"
            and source.input[0] in inits
            and len(consumers.get(source.output[0], [])) == 1
        ):
            perm = list(_attr(source, "perm", []))  # type: ignore[call-overload]
            rank = len(inits[source.input[0]].dims)
            perm = perm or list(reversed(range(rank)))
            axis = int(_attr(node, "axis", 1))  # type: ignore[call-overload]
            axis = axis + rank if axis < 0 else axis
            dequantized = f"{source.input[0]}.trt_dequantized"
            new_nodes.append(
                helper.make_node(
                    "DequantizeLinear",
                    [source.input[0], *node.input[1:]],
                    [dequantized],
                    name=f"{node.name}/TrtBeforeTranspose",
                    axis=perm[axis],
                )
            )
            new_nodes.append(
                helper.make_node(
                    "Transpose",
                    [dequantized],
                    list(node.output),
                    name=f"{node.name}/TrtTranspose",
                    perm=perm,
                )
            )
            done.append(Rewrite(node.name, f"Transpose after DequantizeLinear(axis={perm[axis]})"))
            continue
        if (
            node.op_type == "Transpose"
            and node.input[0] in inits
            and all(
                c.op_type == "DequantizeLinear" and producers.get(c.input[0]) is node
                for c in consumers.get(node.output[0], [])
            )
            and len(consumers.get(node.output[0], [])) == 1
        ):
            continue  # replaced together with its DequantizeLinear
        new_nodes.append(node)
    if done:
        graph.initializer.append(
            numpy_helper.from_array(np.array(1.0, dtype=np.float32), unit_scale)
        )
        del graph.node[:]
        graph.node.extend(new_nodes)
    return out, done
