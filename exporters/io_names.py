"""The I/O names an exported graph actually has, by role, for the manifest (``io_names``)."""

from __future__ import annotations

import onnx

from edge_sdk.errors import ExportError
from edge_sdk.manifest import IoNames

__all__ = ["graph_io_names"]


def graph_io_names(model: onnx.ModelProto, layers: int, fused: bool) -> dict[str, object]:
    """``io_names`` of ``model``, read from its graph in the order the exporter builds it.

    Standard graph: ``input_ids, attention_mask, position_ids, past...``; fused graph:
    ``input_ids, past..., seqlens_k, total_sequence_length``; both output ``logits, present...``.
    """
    weights = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in weights]
    outputs = [o.name for o in model.graph.output]
    kv = 2 * layers
    if len(inputs) != kv + 3 or len(outputs) != kv + 1:
        kind = "fused" if fused else "standard"
        raise ExportError(
            f"the {kind} graph has {len(inputs)} inputs and {len(outputs)} outputs, a "
            f"{layers}-layer model needs {kv + 3} and {kv + 1}: the export is broken, report it"
        )
    if fused:
        names = IoNames(
            inputs[0],
            outputs[0],
            tuple(inputs[1 : 1 + kv]),
            tuple(outputs[1:]),
            seqlens_k=inputs[1 + kv],
            total_sequence_length=inputs[2 + kv],
        )
    else:
        names = IoNames(
            inputs[0], outputs[0], tuple(inputs[3:]), tuple(outputs[1:]), inputs[1], inputs[2]
        )
    return names.to_dict()
