"""QuantizeLinear / DequantizeLinear in TensorRT's explicit-quantization form (see :mod:`.compat`).

TensorRT (8.6 and 10.x) takes Q/DQ nodes whose zero point is absent or all zeros and of a signed
type (int8; int4 on 10.x), whose scales are build-time constants, quantizing activations per
tensor and weights per tensor or per output channel (a MatMul weight [K, N]: axis 1), and
block-wise only for int4 weights on 10.x.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from edge_sdk.exporters.tensorrt import ops as T

__all__ = ["QdqContext", "check_qdq"]

_NAMES = {v: k.lower() for k, v in onnx.TensorProto.DataType.items()}
_SYMMETRIC = (
    "requantize symmetrically: int8 with zero point 0 (scale = max|x| / 127); "
    "TensorRT has no asymmetric quantization"
)

Issue = tuple[str, str, str, str, str]  # severity, node, op, problem, fix


@dataclass
class QdqContext:
    """What the Q/DQ checks need to know about the graph."""

    model: onnx.ModelProto
    types: dict[str, int]
    consts: dict[str, onnx.TensorProto]
    target: T.TrtTarget
    base_dir: str = ""
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = field(default_factory=dict)
    producers: dict[str, onnx.NodeProto] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for node in self.model.graph.node:
            self.producers.update((out, node) for out in node.output)
            for index, name in enumerate(node.input):
                self.consumers.setdefault(name, []).append((node, index))

    def values(self, name: str) -> np.ndarray:
        """A constant's values (external data read from ``base_dir``)."""
        return numpy_helper.to_array(self.consts[name], self.base_dir)


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for attr in node.attribute:
        if attr.name == name:
            return int(attr.i)
    return default


def _dims(ctx: QdqContext, name: str) -> list[int] | None:
    tensor = ctx.consts.get(name)
    return list(tensor.dims) if tensor is not None else None


def _weight_source(ctx: QdqContext, name: str) -> str | None:
    """The initializer ``name`` is (or is a Transpose / Reshape / Identity of), if any."""
    for _ in range(4):
        if name in ctx.consts:
            return name
        producer = ctx.producers.get(name)
        if producer is None or producer.op_type not in ("Transpose", "Reshape", "Identity"):
            return None
        name = producer.input[0]
    return None


def check_qdq(node: onnx.NodeProto, name: str, ctx: QdqContext) -> Iterator[Issue]:
    """Yield each way ``node`` (a Q or DQ) departs from TensorRT's explicit quantization."""
    op = node.op_type
    dequantize = op == "DequantizeLinear"
    x, scale = node.input[0], node.input[1] if len(node.input) > 1 else ""
    zero = node.input[2] if len(node.input) > 2 else ""
    target = ctx.target
    if scale not in ctx.consts:
        yield (
            "error",
            name,
            op,
            f"the scale {scale or '(missing)'} is computed at run time",
            "make the scale an initializer: TensorRT needs build-time scales",
        )
    qtype = ctx.types.get(x) if dequantize else None
    if zero:
        zp_type = ctx.consts[zero].data_type if zero in ctx.consts else ctx.types.get(zero)
        qtype = qtype or zp_type
        if zp_type in (T.UINT8, T.UINT4):
            yield (
                "error",
                name,
                op,
                f"zero point {zero} is {_NAMES.get(zp_type)} (asymmetric unsigned quantization)",
                _SYMMETRIC,
            )
        elif zero not in ctx.consts:
            yield (
                "error",
                name,
                op,
                f"the zero point {zero} is computed at run time",
                "drop the zero point or make it an initializer of zeros",
            )
        elif np.any(ctx.values(zero) != 0):
            yield (
                "error",
                name,
                op,
                f"zero point {zero} is not 0 (asymmetric quantization)",
                _SYMMETRIC,
            )
    elif not dequantize:
        qtype = T.UINT8  # QuantizeLinear without a zero point produces uint8
        yield (
            "error",
            name,
            op,
            "no y_zero_point, so the output is uint8",
            "add an int8 zero point initializer of 0 (symmetric int8)",
        )
    if qtype is not None and qtype not in target.dq_types and qtype not in (T.UINT8, T.UINT4):
        yield (
            "error",
            name,
            op,
            f"quantized type {_NAMES.get(qtype, qtype)} is not one TensorRT "
            f"{target.version} quantizes to",
            "use int8" + (" or int4" if T.INT4 in target.dq_types else ""),
        )
    block = _attr(node, "block_size", 0)
    if block:
        if qtype in target.block_types:
            return
        if target.block_types:
            yield (
                "error",
                name,
                op,
                f"block-wise quantization (block_size {block}) of "
                f"{_NAMES.get(qtype or 0, 'this type')}; TensorRT {target.version} takes "
                "block-wise int4 weights only",
                "quantize int8 weights per output channel, or use int4 blocks",
            )
        else:
            yield (
                "error",
                name,
                op,
                f"block-wise quantization (block_size {block}) is not in TensorRT {target.version}",
                "quantize per output channel with int8, or build "
                "with TensorRT 10 (JetPack 6.1+) for int4 blocks",
            )
        return
    scale_dims = _dims(ctx, scale)
    per_axis = scale_dims is not None and len(scale_dims) >= 1 and int(np.prod(scale_dims)) > 1
    if not per_axis:
        return
    source = _weight_source(ctx, x)
    if source is None:
        yield (
            "error",
            name,
            op,
            f"per-channel scales ({scale_dims}) on an activation",
            "quantize activations per tensor (one scale)",
        )
        return
    rank = len(ctx.consts[source].dims)
    axis = _attr(node, "axis", 1)
    axis = axis + rank if axis < 0 else axis
    if not dequantize:
        return
    for consumer, index in ctx.consumers.get(node.output[0], []):
        if consumer.op_type == "MatMul" and index == 1 and rank == 2 and axis != 1:
            yield (
                "error",
                name,
                op,
                f"per-channel axis {axis} of the MatMul weight {x} [K, N] is "
                "the reduction dimension; TensorRT wants the output channel",
                "quantize the weight along axis 1 (one scale per output column N)",
            )
        elif consumer.op_type == "Gemm" and index == 1:
            expected = 0 if _attr(consumer, "transB", 0) else 1
            if axis != expected:
                yield (
                    "error",
                    name,
                    op,
                    f"per-channel axis {axis} of the Gemm weight {x} is not its output channel",
                    f"quantize along axis {expected}",
                )
