"""The onnxruntime graph of a bundle: fused attention and norms, for onnxruntime's CPU EP.

The standard graph (``model.onnx``) uses standard ONNX ops only, so TensorRT and every
onnxruntime provider take it; it spends about 800 small nodes on attention, RoPE and norms. This
module rebuilds the same model for onnxruntime's CPU EP from the standard graph's own weight
tensors (the quantized ones, exactly as evaluated), with onnxruntime's contrib ops:

* ``GroupQueryAttention`` per layer: RoPE, GQA and the KV cache in one node, reading and writing
  a cache buffer of the full context (``past`` and ``present`` are the same memory), so a decode
  step copies nothing;
* ``SimplifiedLayerNormalization`` / ``SkipSimplifiedLayerNormalization`` for RMSNorm and the
  residual adds;
* one MatMul for q/k/v and one for gate/up (their weights concatenated along the output
  dimension: per-channel and block-wise scales concatenate exactly);
* the LM head on the last position only.

Interface: ``input_ids`` [1, S]; ``past_key_values.{i}.key|value`` [1, kv_heads, capacity,
head_dim]; ``seqlens_k`` int32 [1] (positions filled after this step, minus one);
``total_sequence_length`` int32 scalar; outputs ``logits`` [1, 1, vocab] and ``present.{i}.*``
(bound to the past buffers). The runtime's ``ort-cpu`` backend uses it when the bundle has one.

This module builds the graph; :mod:`edge_sdk.exporters.fused_graph_check` checks it against the
standard graph and writes it into the bundle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge_sdk.config import ModelConfig
from edge_sdk.exporters.quantize.int4 import int4_tensor
from edge_sdk.onnx_io import past_names, present_names

__all__ = [
    "FUSED_GRAPH_LOSS",
    "ORT_GRAPH_FILE",
    "UnsupportedGraph",
    "build_ort_graph",
    "rope_tables",
]

ORT_GRAPH_FILE = "model.ort.onnx"
#: What a bundle without its fused graph loses, in the user's words.
FUSED_GRAPH_LOSS = (
    f"the fused CPU graph ({ORT_GRAPH_FILE}, about 2x faster decode on "
    "onnxruntime's CPU EP) was not built"
)
_MS = "com.microsoft"


class UnsupportedGraph(ValueError):
    """The standard graph does not have the shape this builder knows (the bundle keeps only it)."""


class _Builder:
    """Copies weight subgraphs out of the standard graph and emits the fused nodes."""

    def __init__(self, standard: onnx.ModelProto) -> None:
        self.src = standard.graph
        self.inits = {i.name: i for i in self.src.initializer}
        self.producer = {out: node for node in self.src.node for out in node.output}
        self.by_name: dict[str, onnx.NodeProto] = {node.name: node for node in self.src.node}
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self._copied: set[str] = set()

    # -- the standard graph's pieces ------------------------------------------------------------

    def node(self, name: str) -> onnx.NodeProto:
        try:
            return self.by_name[name]
        except KeyError:
            raise UnsupportedGraph(f"the standard graph has no node {name!r}") from None

    def weight_input(self, matmul: str) -> str:
        """The tensor a weight MatMul multiplies by (an initializer or a DequantizeLinear's)."""
        return str(self.node(matmul).input[1])

    def norm_weight(self, prefix: str) -> str:
        """The scale initializer of an RMSNorm (``{prefix}/Mul_1``: weight * normalized)."""
        node = self.node(f"{prefix}/Mul_1")
        inputs: list[str] = [i for i in node.input if self._initializer_or_alias(i)]
        if len(inputs) != 1:
            raise UnsupportedGraph(f"{prefix} is not an RMSNorm with one weight")
        self.copy(inputs[0])
        return inputs[0]

    def _initializer_or_alias(self, tensor: str) -> bool:
        """An initializer, or the tracer's Identity of one (it aliases equal parameters)."""
        node = self.producer.get(tensor)
        return tensor in self.inits or (
            node is not None and node.op_type == "Identity" and node.input[0] in self.inits
        )

    def constant_array(self, tensor: str) -> np.ndarray | None:
        """The value of an initializer or Constant, through the tracer's Identity aliases (equal
        parameters, e.g. zero-initialized biases, share one initializer); None if computed."""
        while tensor not in self.inits:
            node = self.producer.get(tensor)
            if node is None or node.op_type not in ("Identity", "Constant"):
                return None
            if node.op_type == "Constant":
                value = next((a for a in node.attribute if a.name == "value"), None)
                return None if value is None else numpy_helper.to_array(value.t)
            tensor = node.input[0]
        return numpy_helper.to_array(self.inits[tensor])

    def copy(self, tensor: str) -> str:
        """Copy ``tensor``'s constant subgraph (weights, dequantization) into the new graph."""
        if not tensor or tensor in self._copied:
            return tensor
        self._copied.add(tensor)
        if tensor in self.inits:
            self.initializers[tensor] = self.inits[tensor]
            return tensor
        node = self.producer.get(tensor)
        if node is None:  # a graph input (input_ids)
            return tensor
        for name in node.input:
            self.copy(name)
        self._copied.update(node.output)
        self.nodes.append(node)
        return tensor

    def concatenated(self, matmuls: list[str], name: str) -> str:
        """One [K, sum N] weight for MatMuls sharing an input: float, or int8/int4 + scales."""
        sources = [self.weight_input(m) for m in matmuls]
        floats = [self.constant_array(s) for s in sources]
        arrays = [f for f in floats if f is not None]
        if len(arrays) == len(floats):  # float weights
            joined = np.concatenate(arrays, axis=1)
            self.initializers[name] = numpy_helper.from_array(joined, name)
            return name
        dqs = [self.producer.get(s) for s in sources]
        if not all(
            d is not None
            and d.op_type == "DequantizeLinear"
            and len(d.input) == 2
            and all(i in self.inits for i in d.input)
            for d in dqs
        ):
            raise UnsupportedGraph(f"cannot concatenate the weights of {', '.join(matmuls)}")
        attrs = [{a.name: helper.get_attribute_value(a) for a in d.attribute} for d in dqs]  # type: ignore[union-attr]
        if any(a != attrs[0] for a in attrs):
            raise UnsupportedGraph(f"{', '.join(matmuls)} are quantized differently")
        data = [self.inits[d.input[0]] for d in dqs]  # type: ignore[union-attr]
        scales = [numpy_helper.to_array(self.inits[d.input[1]]) for d in dqs]  # type: ignore[union-attr]
        q = np.concatenate([numpy_helper.to_array(t) for t in data], axis=1)
        scale = np.concatenate(scales, axis=-1)
        q_name, s_name = f"{name}.q", f"{name}.scale"
        self.initializers[q_name] = (
            int4_tensor(q.astype(np.int8), q_name)
            if data[0].data_type == TensorProto.INT4
            else numpy_helper.from_array(q, q_name)
        )
        self.initializers[s_name] = numpy_helper.from_array(scale, s_name)
        self.emit("DequantizeLinear", [q_name, s_name], [name], **attrs[0])
        return name

    def bias(self, layer: int, projections: tuple[str, ...]) -> str | None:
        """Concatenated q/k/v biases (Qwen2), or None when there are none or all are zero (a
        freshly initialized Qwen2's: the Add would add nothing)."""
        adds = [self.by_name.get(f"/model/layers.{layer}/self_attn/{p}/Add") for p in projections]
        if not any(adds):
            return None
        arrays = []
        for projection, add in zip(projections, adds, strict=True):
            if add is None:
                raise UnsupportedGraph(
                    f"layer {layer}: {projection} has no bias while the other "
                    "attention projections have one"
                )
            values = [v for v in (self.constant_array(i) for i in add.input) if v is not None]
            if len(values) != 1:
                raise UnsupportedGraph(
                    f"layer {layer}: the {projection} bias is computed in the graph, not a constant"
                )
            arrays.append(values[0])
        joined = np.concatenate(arrays)
        if not joined.any():
            return None
        name = f"model.layers.{layer}.qkv.bias"
        self.initializers[name] = numpy_helper.from_array(joined, name)
        return name

    # -- new nodes ------------------------------------------------------------------------------

    def emit(
        self, op: str, inputs: list[str], outputs: list[str], domain: str = "", **attrs: Any
    ) -> list[str]:
        self.nodes.append(
            helper.make_node(
                op, inputs, outputs, name=f"ort/{outputs[0]}", domain=domain or None, **attrs
            )
        )
        return outputs

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers[name] = numpy_helper.from_array(value, name)
        return name


def build_ort_graph(
    standard: onnx.ModelProto, config: ModelConfig, cos_sin: tuple[np.ndarray, np.ndarray]
) -> onnx.ModelProto:
    """The fused onnxruntime graph of ``standard`` (see the module docstring).

    ``cos_sin``: RoPE tables [positions, head_dim / 2] of the model (its frequencies and
    scaling), for every position the bundle serves. Raises :class:`UnsupportedGraph` when
    ``standard`` is not the exporter's float32, int8 or int4 graph of a Llama-family model.
    """
    b = _Builder(standard)
    c = config
    eps = float(c.rms_norm_eps)
    cos = b.constant("ort.cos_cache", np.ascontiguousarray(cos_sin[0], dtype=np.float32))
    sin = b.constant("ort.sin_cache", np.ascontiguousarray(cos_sin[1], dtype=np.float32))
    hidden = b.copy(b.node("/model/layers.0/input_layernorm/Cast").input[0])  # the embedding output
    residual, pending = hidden, ""
    for i in range(c.num_layers):
        layer = f"/model/layers.{i}"
        norm_in = b.norm_weight(f"{layer}/input_layernorm")
        if pending:
            h, residual = _skip_norm(b, residual, pending, norm_in, eps, f"ort.l{i}.in")
        else:
            h = b.emit(
                "SimplifiedLayerNormalization",
                [residual, norm_in],
                [f"ort.l{i}.in"],
                axis=-1,
                epsilon=eps,
            )[0]
        qkv_w = b.concatenated(
            [f"{layer}/self_attn/{p}_proj/MatMul" for p in "qkv"], f"model.layers.{i}.qkv"
        )
        qkv = b.emit("MatMul", [h, qkv_w], [f"ort.l{i}.qkv"])[0]
        bias = b.bias(i, ("q_proj", "k_proj", "v_proj"))
        if bias:
            qkv = b.emit("Add", [qkv, bias], [f"ort.l{i}.qkv_biased"])[0]
        past_k, past_v = past_names(c.num_layers)[2 * i : 2 * i + 2]
        present_k, present_v = present_names(c.num_layers)[2 * i : 2 * i + 2]
        attn = b.emit(
            "GroupQueryAttention",
            [qkv, "", "", past_k, past_v, "seqlens_k", "total_sequence_length", cos, sin],
            [f"ort.l{i}.attn", present_k, present_v],
            domain=_MS,
            num_heads=c.num_heads,
            kv_num_heads=c.num_kv_heads,
            scale=float(c.head_dim**-0.5),
            do_rotary=1,
            rotary_interleaved=0,
            local_window_size=int(c.sliding_window or -1),
        )[0]
        o = b.emit(
            "MatMul",
            [attn, b.copy(b.weight_input(f"{layer}/self_attn/o_proj/MatMul"))],
            [f"ort.l{i}.o"],
        )[0]
        h, residual = _skip_norm(
            b,
            residual,
            o,
            b.norm_weight(f"{layer}/post_attention_layernorm"),
            eps,
            f"ort.l{i}.post",
        )
        gate_up_w = b.concatenated(
            [f"{layer}/mlp/gate_proj/MatMul", f"{layer}/mlp/up_proj/MatMul"],
            f"model.layers.{i}.gate_up",
        )
        gate_up = b.emit("MatMul", [h, gate_up_w], [f"ort.l{i}.gate_up"])[0]
        split = b.constant(f"ort.l{i}.split", np.array([c.intermediate_size] * 2, np.int64))
        gate, up = b.emit("Split", [gate_up, split], [f"ort.l{i}.gate", f"ort.l{i}.up"], axis=-1)
        sig = b.emit("Sigmoid", [gate], [f"ort.l{i}.sigmoid"])[0]
        act = b.emit("Mul", [gate, sig], [f"ort.l{i}.silu"])[0]
        mixed = b.emit("Mul", [act, up], [f"ort.l{i}.mixed"])[0]
        down = b.copy(b.weight_input(f"{layer}/mlp/down_proj/MatMul"))
        pending = b.emit("MatMul", [mixed, down], [f"ort.l{i}.down"])[0]
    final, _ = _skip_norm(b, residual, pending, b.norm_weight("/model/norm"), eps, "ort.final")
    last = b.emit(
        "Slice",
        [
            final,
            b.constant("ort.minus1", np.array([-1], np.int64)),
            b.constant("ort.end", np.array([2**62], np.int64)),
            b.constant("ort.axis1", np.array([1], np.int64)),
        ],
        ["ort.last"],
    )[0]
    b.emit("MatMul", [last, b.copy(b.weight_input("/model/lm_head/MatMul"))], ["logits"])
    return _model(b, standard, c)


def _skip_norm(
    b: _Builder, residual: str, add: str, weight: str, eps: float, name: str
) -> tuple[str, str]:
    """(normalized, residual + add) from one SkipSimplifiedLayerNormalization."""
    out = b.emit(
        "SkipSimplifiedLayerNormalization",
        [residual, add, weight],
        [name, "", "", f"{name}.residual"],
        domain=_MS,
        epsilon=eps,
    )
    return out[0], out[3]


def _model(b: _Builder, standard: onnx.ModelProto, c: ModelConfig) -> onnx.ModelProto:
    kv: list[str | int] = ["batch", c.num_kv_heads, "capacity", c.head_dim]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])]
    inputs += [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, kv) for n in past_names(c.num_layers)
    ]
    inputs += [
        helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["batch"]),
        helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
    ]
    outputs = [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1, c.vocab_size])
    ]
    outputs += [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, kv) for n in present_names(c.num_layers)
    ]
    graph = helper.make_graph(
        b.nodes, "edge-sdk-ort", inputs, outputs, list(b.initializers.values())
    )
    opsets = [o for o in standard.opset_import if o.domain in ("", "ai.onnx")] + [
        helper.make_opsetid(_MS, 1)
    ]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="edge-sdk")
    model.ir_version = standard.ir_version
    return model


def rope_tables(config: ModelConfig, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [positions, head_dim / 2] of the model's RoPE (its frequencies and scaling)."""
    import torch

    from edge_sdk.exporters.model import rope_inverse_frequencies

    angles = (
        torch.arange(positions, dtype=torch.float64)[:, None]
        * rope_inverse_frequencies(config).double()
    )
    return angles.cos().float().numpy(), angles.sin().float().numpy()
