"""The CUDA fused graph (``model.cuda.onnx``): the fused graph with fp16 activations.

:func:`write_fp16_graph` derives it from the written fused graph (the same emitters, the same
nodes: GroupQueryAttention over the shared KV buffer, per-row ``seqlens_k``, ``logits_to_keep``)
by retyping what is float32: the float initializers (quantization scales, norm weights, the RoPE
caches, biases) become fp16, every ``Cast`` to float32 casts to fp16, the KV inputs and outputs
are fp16. ``input_ids`` stays int64; ``logits`` stays float32 (one ``Cast`` of the kept rows at
the end: the runtime's samplers read float32, and a vocabulary row is small).

The int4/int8 weight blocks are not copied: the fp16 graph's integer initializers point into the
fused graph's external data file (``model.ort.onnx.data``), so it adds only its fp16 tensors
(``model.cuda.onnx.data``) to the bundle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from edge_sdk.config import ModelConfig
from edge_sdk.errors import ExportError
from edge_sdk.exporters.fused_graph import ORT_GRAPH_FILE
from edge_sdk.exporters.fused_graph_check import FusedSession
from edge_sdk.exporters.stream.onnx_builder import GraphBuilder

__all__ = ["CUDA_GRAPH_FILE", "fp16_agreement", "write_fp16_graph"]

CUDA_GRAPH_FILE = "model.cuda.onnx"
_LOGITS = "logits"


def _external(tensor: TensorProto) -> dict[str, str]:
    return {entry.key: entry.value for entry in tensor.external_data}


def _float_values(tensor: TensorProto, folder: Path) -> np.ndarray:
    """The float32 values of ``tensor`` (inline, or read from its external data file)."""
    if tensor.data_location != TensorProto.EXTERNAL:
        values: np.ndarray = numpy_helper.to_array(tensor)
        return values
    where = _external(tensor)
    count = int(where["length"]) // 4
    data = np.fromfile(
        folder / where["location"], np.float32, count=count, offset=int(where["offset"])
    )
    return data.reshape(tuple(tensor.dims))


def _retyped_initializers(model: onnx.ModelProto, folder: Path, g: GraphBuilder) -> None:
    """Every float32 initializer as fp16 (written by ``g``); the others kept as they are, their
    external data read where it already is (the fused graph's file)."""
    for tensor in model.graph.initializer:
        if tensor.data_type == TensorProto.FLOAT:
            wide = _float_values(tensor, folder)
            finite = np.abs(wide[np.isfinite(wide)])
            if finite.size and finite.max() > np.finfo(np.float16).max:
                raise ExportError(
                    f"{tensor.name} holds values beyond fp16's range (|x| > 65504): this model "
                    "has no fp16 graph; serve it with the fused or the standard graph"
                )
            values = wide.astype(np.float16)
            g.tensor(tensor.name, TensorProto.FLOAT16, tuple(tensor.dims), values)
        else:
            g.initializers.append(tensor)


def _retyped_nodes(model: onnx.ModelProto, g: GraphBuilder) -> None:
    """The nodes, ``Cast`` to float32 made ``Cast`` to fp16 and the logits computed as
    ``logits.fp16`` then cast to float32."""
    for node in model.graph.node:
        if node.op_type == "Cast":
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == TensorProto.FLOAT:
                    attribute.i = TensorProto.FLOAT16
        node.output[:] = [f"{_LOGITS}.fp16" if o == _LOGITS else o for o in node.output]
        g.nodes.append(node)
    g.op("Cast", [f"{_LOGITS}.fp16"], _LOGITS, to=TensorProto.FLOAT)


def _retyped(values: list[onnx.ValueInfoProto], keep: str) -> list[onnx.ValueInfoProto]:
    """``values`` with float32 made fp16, except ``keep``."""
    out = []
    for value in values:
        value = onnx.ValueInfoProto.FromString(value.SerializeToString())
        tensor = value.type.tensor_type
        if tensor.elem_type == TensorProto.FLOAT and value.name != keep:
            tensor.elem_type = TensorProto.FLOAT16
        out.append(value)
    return out


def write_fp16_graph(fused: Path, target: Path | None = None) -> list[Path]:
    """Write the fp16 variant of the fused graph at ``fused`` (default: ``model.cuda.onnx`` next
    to it); the files written. It runs only next to the fused graph's data file, which it
    reads its integer weights from."""
    target = target or fused.with_name(CUDA_GRAPH_FILE)
    if target.name == fused.name and target.parent.resolve() == fused.parent.resolve():
        raise ExportError(f"write the fp16 graph under another name than {fused.name}")
    try:
        model = onnx.load(str(fused), load_external_data=False)
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read the fused graph {fused}: {exc}") from exc
    g = GraphBuilder(target, f"{model.graph.name}-fp16")
    try:
        _retyped_initializers(model, fused.parent, g)
        _retyped_nodes(model, g)
        g.inputs = _retyped(list(model.graph.input), keep="")
        g.outputs = _retyped(list(model.graph.output), keep=_LOGITS)
        g.domains = {o.domain: o.version for o in model.opset_import if o.domain}
        opset = next(o.version for o in model.opset_import if not o.domain)
        return g.save(opset)
    except BaseException:
        g.discard()
        raise


def fp16_agreement(
    folder: Path, config: ModelConfig, ids: list[int], session_config: dict[str, str]
) -> tuple[float, float]:
    """(top-1 agreement, largest absolute logit difference) of the fp16 graph against the fused
    graph in ``folder``, decoding ``ids`` one token at a time on the CPU EP (every position's
    next-token logits)."""
    capacity = len(ids) + 1
    graphs = [
        FusedSession(folder / name, config, capacity, session_config)
        for name in (ORT_GRAPH_FILE, CUDA_GRAPH_FILE)
    ]
    logits = [np.stack([s.run([token]) for token in ids]) for s in graphs]
    top1 = float((logits[0].argmax(-1) == logits[1].argmax(-1)).mean())
    return top1, float(np.abs(logits[0] - logits[1]).max())
