"""Build an ONNX graph node by node, its weights appended to an external data file as they come.

A :class:`GraphBuilder` never holds the model's weights: each initializer above
:data:`INLINE_LIMIT` bytes is written to ``<model>.data`` when it is added and kept in the graph
as a reference (offset, length), so the protobuf written by :meth:`GraphBuilder.save` stays small
whatever the model's size (no 2 GiB limit), and a layer's tensors can be freed before the next
layer is read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper

from edge_sdk.errors import ExportError
from edge_sdk.exporters.quantize.int4 import int4_packed
from edge_sdk.exporters.quantize.qweight import QWeight

__all__ = ["INLINE_LIMIT", "GraphBuilder"]

INLINE_LIMIT = 1024  # bytes; smaller tensors stay in the protobuf
_PAGE = 4096  # tensors of a MB or more start on a page (onnxruntime can map them)
_ALIGN = 64


class GraphBuilder:
    """Nodes, inputs and outputs of one graph; weights streamed to ``path.data``.

    ``lender``: another graph of the same folder written alongside; a tensor with the same type,
    shape and bytes as one the lender already wrote is not written again but read from the
    lender's data file (the standard graph's int4 table and the MatMul weights both graphs
    store alike, once per bundle)."""

    def __init__(self, path: Path, name: str, lender: GraphBuilder | None = None) -> None:
        self.path = path
        self.data_path = path.with_name(path.name + ".data")
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.domains: dict[str, int] = {}
        self._data: BinaryIO | None = None
        self._offset = 0
        self._count = 0
        self.lender = lender
        self._lends = False  # another builder borrows from this one: key what it writes
        if lender is not None:
            lender._lends = True
        self._written: dict[tuple[int, tuple[int, ...], bytes], onnx.TensorProto] = {}

    # -- tensors ----------------------------------------------------------------------------

    def tensor(self, name: str, data_type: int, dims: tuple[int, ...], raw: np.ndarray) -> str:
        """Add an initializer of ``raw`` (its bytes, C order); to the data file unless tiny.

        The bytes go straight from numpy to the file: a protobuf message that once held them
        would keep them in its arena while it lives (the graph's whole life).
        """
        data = np.ascontiguousarray(raw)
        key = None  # hashed only where a tensor may be shared: external, lent or borrowed
        if data.nbytes > INLINE_LIMIT and (self._lends or self.lender is not None):
            key = (data_type, dims, hashlib.blake2b(data.data, digest_size=20).digest())
        if key is not None and self.lender is not None:
            lent = self.lender._written.get(key)
            if lent is not None:
                return self.alias(name, lent.name, source=lent)
        proto = onnx.TensorProto()
        proto.name, proto.data_type = name, data_type
        proto.dims.extend(dims)
        if data.nbytes <= INLINE_LIMIT:
            proto.raw_data = data.tobytes()
        else:
            if self._data is None:
                self._data = open(self.data_path, "wb")  # noqa: SIM115 - closed by save()
            pad = -self._offset % (_PAGE if data.nbytes >= 1 << 20 else _ALIGN)
            self._data.write(b"\0" * pad)
            self._offset += pad
            self._data.write(data.data)
            proto.data_location = TensorProto.EXTERNAL
            for field_name, value in (
                ("location", self.data_path.name),
                ("offset", str(self._offset)),
                ("length", str(data.nbytes)),
            ):
                entry = proto.external_data.add()
                entry.key, entry.value = field_name, value
            self._offset += data.nbytes
            if key is not None and self._lends:
                self._written[key] = proto
        self.initializers.append(proto)
        return name

    def alias(
        self,
        name: str,
        of: str,
        data_type: int | None = None,
        dims: tuple[int, ...] = (),
        source: onnx.TensorProto | None = None,
    ) -> str:
        """A second initializer over the bytes of initializer ``of`` (the same place in the data
        file: stored once), optionally read as another type and shape of the same byte count;
        ``source``: the initializer itself (the lender's)."""
        if source is None:
            source = next(init for init in self.initializers if init.name == of)
        proto = onnx.TensorProto()
        proto.CopyFrom(source)
        proto.name = name
        if data_type is not None:
            proto.data_type = data_type
            del proto.dims[:]
            proto.dims.extend(dims)
        self.initializers.append(proto)
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        """A constant tensor (numpy dtype kept)."""
        data_type = helper.np_dtype_to_tensor_dtype(value.dtype)
        return self.tensor(name, data_type, tuple(int(d) for d in value.shape), value)

    def ints(self, name: str, values: list[int]) -> str:
        """An int64 vector constant (shapes, axes)."""
        return self.const(name, np.array(values, dtype=np.int64))

    def weight(self, name: str, w: QWeight) -> str:
        """The tensor a MatMul multiplies by: the float weight, or ``DequantizeLinear`` of it."""
        if w.scale is None:
            return self.const(name, w.values.astype(np.float32))
        levels = f"{name}.int{w.bits}"
        if w.bits == 4:
            self.tensor(levels, TensorProto.INT4, w.shape, int4_packed(w.values))
        else:
            self.const(levels, w.values.astype(np.int8))
        scale = self.const(f"{name}.scale", w.scale.astype(np.float32))
        layout: dict[str, Any] = {"axis": 0, "block_size": w.block} if w.block else {"axis": 1}
        return self.op("DequantizeLinear", [levels, scale], name=f"{name}.dequantized", **layout)

    # -- nodes ------------------------------------------------------------------------------

    def op(
        self,
        op_type: str,
        inputs: list[str],
        name: str | None = None,
        outputs: list[str] | None = None,
        domain: str = "",
        **attrs: Any,
    ) -> str:
        """Append a node; its first output's name (``name``, or a fresh one)."""
        self._count += 1
        outs = outputs or [name or f"{op_type.lower()}_{self._count}"]
        self.nodes.append(
            helper.make_node(
                op_type,
                inputs,
                outs,
                name=f"{outs[0] or op_type}/{op_type}",
                domain=domain or None,
                **attrs,
            )
        )
        if domain:
            self.domains[domain] = 1
        return outs[0]

    def input(self, name: str, elem: int, shape: list[int | str]) -> str:
        """Declare a graph input."""
        self.inputs.append(helper.make_tensor_value_info(name, elem, shape))
        return name

    def output(self, name: str, elem: int, shape: list[int | str]) -> None:
        """Declare a graph output (a tensor some node produces)."""
        self.outputs.append(helper.make_tensor_value_info(name, elem, shape))

    # -- writing ----------------------------------------------------------------------------

    def save(self, opset: int) -> list[Path]:
        """Write the graph (weight-less protobuf) and close the data file; the files written."""
        if self._data is not None:
            self._data.close()
        graph = helper.make_graph(
            self.nodes, self.name, self.inputs, self.outputs, self.initializers
        )
        opsets = [helper.make_opsetid("", opset)]
        opsets += [helper.make_opsetid(d, v) for d, v in sorted(self.domains.items())]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="edge-sdk")
        model.ir_version = 10 if opset >= 21 else 8
        try:
            onnx.save_model(model, str(self.path))
        except (OSError, ValueError) as exc:
            raise ExportError(f"cannot write {self.path}: {exc}") from exc
        return [self.path, *([self.data_path] if self._data is not None else [])]

    def discard(self) -> None:
        """Close and remove what was written (an export that failed)."""
        if self._data is not None:
            self._data.close()
        for path in (self.path, self.data_path):
            path.unlink(missing_ok=True)
