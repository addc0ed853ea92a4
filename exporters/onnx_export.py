"""Export a :class:`LiteForCausalLM` to ONNX with a flattened KV cache.

The graph uses standard ONNX ops only (opset 18), so one file serves onnxruntime's CPU, CUDA and
TensorRT execution providers and TensorRT itself. Interface (recorded in the manifest)::

    inputs   input_ids            int64   [batch, sequence]
             attention_mask       int64   [batch, total_sequence]     1 = token, 0 = padding
             position_ids         int64   [batch, sequence]
             past_key_values.{i}.key/value   float32 [batch, kv_heads, past_sequence, head_dim]
    outputs  logits               float32 [batch, sequence, vocab]
             present.{i}.key/value           float32 [batch, kv_heads, total_sequence, head_dim]

total_sequence = past_sequence + sequence; a past of length 0 is valid (the first step).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import Tensor, nn

from edge_sdk.errors import ExportError
from edge_sdk.exporters.model import KVPair, LiteForCausalLM
from edge_sdk.onnx_io import graph_io

__all__ = ["EXTERNAL_DATA_THRESHOLD", "OPSET", "export_onnx", "save_onnx", "share_tied_head"]

OPSET = 18
# Above this many bytes of weights, tensors go to an external data file (protobuf caps at 2 GB).
EXTERNAL_DATA_THRESHOLD = 1 << 30


class _FlatKVWrapper(nn.Module):
    """Presents the model with the KV cache flattened into separate tensors (ONNX has no tuples)."""

    def __init__(self, model: LiteForCausalLM) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor, *past_flat: Tensor
    ) -> tuple[Tensor, ...]:
        past: list[KVPair] = [(past_flat[i], past_flat[i + 1]) for i in range(0, len(past_flat), 2)]
        logits, presents = self.model(input_ids, attention_mask, position_ids, past)
        return (logits, *[t for pair in presents for t in pair])


class _Float16Wrapper(nn.Module):
    """A float16 model behind float32 inputs and outputs (casts inside the graph)."""

    def __init__(self, model: LiteForCausalLM) -> None:
        super().__init__()
        self.inner = _FlatKVWrapper(model)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor, *past_flat: Tensor
    ) -> tuple[Tensor, ...]:
        outputs = self.inner(
            input_ids, attention_mask, position_ids, *[p.half() for p in past_flat]
        )
        return tuple(o.float() for o in outputs)


def export_onnx(model: LiteForCausalLM, path: Path, dtype: torch.dtype = torch.float32) -> Path:
    """Trace ``model`` to ``path`` as an ONNX graph (see :func:`save_onnx` for large ones).

    ``dtype=torch.float16`` stores weights and computes in float16 (RMSNorm and softmax stay
    float32 inside the model) behind the same float32 inputs and outputs.
    """
    config = model.config
    io = graph_io(config)
    batch, seq, past = 2, 3, 4
    example: list[Tensor] = [
        torch.zeros(batch, seq, dtype=torch.int64),
        torch.ones(batch, past + seq, dtype=torch.int64),
        torch.arange(past, past + seq, dtype=torch.int64)[None].expand(batch, seq).contiguous(),
    ]
    example += [
        torch.zeros(batch, config.num_kv_heads, past, config.head_dim)
        for _ in range(2 * config.num_layers)
    ]
    dynamic_axes: dict[str, dict[int, str]] = {}
    for spec in io["inputs"] + io["outputs"]:
        dynamic_axes[spec["name"]] = {
            i: d for i, d in enumerate(spec["shape"]) if isinstance(d, str)
        }
    if dtype == torch.float16:
        half = copy.deepcopy(model).eval().half()
        half.inv_freq = model.inv_freq.float()  # RoPE angles in float32: fp16 frequencies drift
        wrapper: nn.Module = _Float16Wrapper(half)
    else:
        wrapper = _FlatKVWrapper(model.eval())
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes about shape arithmetic
            torch.onnx.export(
                wrapper,
                tuple(example),
                str(path),
                input_names=[s["name"] for s in io["inputs"]],
                output_names=[s["name"] for s in io["outputs"]],
                dynamic_axes=dynamic_axes,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:  # torch raises many unrelated types here
        raise ExportError(f"torch.onnx.export failed: {exc}") from exc
    return path


def save_onnx(model: onnx.ModelProto, path: Path) -> list[Path]:
    """Save ``model``; weights go to ``<name>.data`` beside it when they exceed the threshold.

    Returns the files written.
    """
    weight_bytes = sum(len(i.raw_data) for i in model.graph.initializer)
    if weight_bytes <= EXTERNAL_DATA_THRESHOLD:
        onnx.save_model(model, str(path))
        return [path]
    data = path.with_name(path.name + ".data")
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data.name,
        size_threshold=1024,
    )
    return [path, data]


def share_tied_head(model: onnx.ModelProto) -> int:
    """Store a tied LM head once: ``MatMul(x, Transpose(table))`` instead of a transposed copy.

    The tracer folds ``embed.weight.T`` into a second initializer; onnxruntime folds the Transpose
    back at load time, so only the file shrinks. Returns the number of heads shared.
    """
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    tables = {
        node.input[0]: numpy_helper.to_array(inits[node.input[0]])
        for node in graph.node
        if node.op_type == "Gather" and node.input[0] in inits
    }
    shared = 0
    new_nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits:
            weight = numpy_helper.to_array(inits[node.input[1]])
            for name, table in tables.items():
                if table.shape == weight.shape[::-1] and np.array_equal(table.T, weight):
                    out = f"{name}.transposed"
                    new_nodes.append(
                        helper.make_node(
                            "Transpose", [name], [out], name=f"{name}/Transpose", perm=[1, 0]
                        )
                    )
                    graph.initializer.remove(inits.pop(node.input[1]))
                    node.input[1] = out
                    shared += 1
                    break
        new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return shared
