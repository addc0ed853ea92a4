"""The Llama family (Llama 2/3.x, Qwen2/2.5, Mistral): RMSNorm, RoPE, grouped-query attention
(q/k/v biases for Qwen2, a sliding window for Mistral), SwiGLU MLP; Hugging Face tensor names.
Qwen3 (``qwen3.py``) reuses it, passing a per-head q/k norm to the emitters (:data:`HeadNorm`).

Shapes: B batch, S new tokens, P past, T = P + S, KV kv-heads, G = heads / KV, D head dim.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from edge_sdk.config import ModelConfig
from edge_sdk.exporters.families.base import LayerTensors, StandardInputs
from edge_sdk.exporters.model import DecoderLayer
from edge_sdk.exporters.quantize.qweight import QWeight
from edge_sdk.exporters.quantize.scaling import ScaleGroup
from edge_sdk.exporters.stream.onnx_builder import GraphBuilder
from edge_sdk.exporters.stream.ops import (
    FusedState,
    apply_rope,
    attention_divisor,
    fused_rms_norm,
    linear,
    rms_norm,
    skip_norm,
    swiglu,
)
from edge_sdk.onnx_io import past_names, present_names

__all__ = [
    "GatedActivation",
    "HeadNorm",
    "attention_fused",
    "attention_standard",
    "emit_fused",
    "emit_standard",
    "head_norm",
    "layer_scale_groups",
    "layer_shapes",
    "layer_tensors",
    "linears",
    "mlp_fused",
    "mlp_standard",
    "reference_layer",
    "scale_groups",
]

_MS = "com.microsoft"
_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")

#: A per-head norm of q or k before RoPE (Qwen3): (tensor with head_dim last, "q" or "k") -> output.
HeadNorm = Callable[[str, str], str]


def head_norm(g: GraphBuilder, t: LayerTensors, eps: float, fused: bool) -> HeadNorm:
    """The layer's ``self_attn.q_norm`` / ``k_norm`` RMSNorm over each head: standard ops, or
    ``SimplifiedLayerNormalization`` in the fused graph."""
    p = f"model.layers.{t.index}.self_attn"
    norm = fused_rms_norm if fused else rms_norm

    def apply(heads: str, which: str) -> str:
        weight = t.vectors[f"self_attn.{which}_norm.weight"]
        return norm(g, heads, weight, eps, f"{p}.{which}_norm")

    return apply


def layer_shapes(config: ModelConfig, index: int) -> dict[str, tuple[int, ...]]:
    """Hugging Face name -> shape of every tensor of layer ``index``."""
    c, p = config, f"model.layers.{index}."
    e, i = c.hidden_size, c.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "input_layernorm.weight": (e,),
        "self_attn.q_proj.weight": (c.q_size, e),
        "self_attn.k_proj.weight": (c.kv_size, e),
        "self_attn.v_proj.weight": (c.kv_size, e),
        "self_attn.o_proj.weight": (e, c.q_size),
        "post_attention_layernorm.weight": (e,),
        "mlp.gate_proj.weight": (i, e),
        "mlp.up_proj.weight": (i, e),
        "mlp.down_proj.weight": (e, i),
    }
    if c.qkv_bias:
        shapes |= {
            "self_attn.q_proj.bias": (c.q_size,),
            "self_attn.k_proj.bias": (c.kv_size,),
            "self_attn.v_proj.bias": (c.kv_size,),
        }
    return {p + name: shape for name, shape in shapes.items()}


def reference_layer(config: ModelConfig, tensors: dict[str, np.ndarray]) -> nn.Module:
    """The float PyTorch layer holding ``tensors`` (names inside the layer)."""
    layer = DecoderLayer(config)
    layer.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    return layer.eval()


def _decoder(layer: nn.Module) -> DecoderLayer:
    if not isinstance(layer, DecoderLayer):
        raise TypeError(f"expected a Llama-family DecoderLayer, got {type(layer).__name__}")
    return layer


def linears(layer: nn.Module) -> dict[str, nn.Linear]:
    """q/k/v/o and gate/up/down, by short name."""
    decoder = _decoder(layer)
    attn, mlp = decoder.self_attn, decoder.mlp
    found = {name: getattr(attn, name) for name in _ATTENTION}
    found |= {name: getattr(mlp, name) for name in _MLP}
    return found


def scale_groups(config: ModelConfig, layer: nn.Module, index: int) -> list[ScaleGroup]:
    """The four groups of one layer (see :mod:`edge_sdk.exporters.quantize.scaling`)."""
    decoder = _decoder(layer)
    return layer_scale_groups(config, decoder, index, decoder.post_attention_layernorm)


def layer_scale_groups(
    config: ModelConfig, layer: DecoderLayer, index: int, mlp_norm: nn.Module
) -> list[ScaleGroup]:
    """q/k/v after the input norm, o after v, gate/up after ``mlp_norm``, down after up."""
    attn, mlp, g = layer.self_attn, layer.mlp, config.num_heads // config.num_kv_heads
    return [
        ScaleGroup(
            f"layers.{index}.attention_input",
            layer.input_layernorm,
            (attn.q_proj, attn.k_proj, attn.v_proj),
        ),
        ScaleGroup(f"layers.{index}.o_proj_input", attn.v_proj, (attn.o_proj,), g, config.head_dim),
        ScaleGroup(f"layers.{index}.mlp_input", mlp_norm, (mlp.gate_proj, mlp.up_proj)),
        ScaleGroup(f"layers.{index}.down_proj_input", mlp.up_proj, (mlp.down_proj,)),
    ]


def layer_tensors(layer: nn.Module, index: int, matmuls: dict[str, QWeight]) -> LayerTensors:
    """The quantized MatMuls plus the norms and biases of ``layer`` (after any scaling)."""
    vectors = {
        name: value.detach().numpy().astype(np.float32)
        for name, value in layer.state_dict().items()
        if value.ndim == 1
    }
    return LayerTensors(index, dict(matmuls), vectors)


def _bias(t: LayerTensors, projection: str) -> np.ndarray | None:
    return t.vectors.get(f"self_attn.{projection}.bias")


def emit_standard(
    g: GraphBuilder,
    config: ModelConfig,
    x: str,
    shared: StandardInputs,
    t: LayerTensors,
    qk_norm: HeadNorm | None = None,
    output_gate: bool = False,
) -> str:
    """The layer in standard ONNX ops; its output hidden state [B, S, E]. ``qk_norm`` writes a
    per-head norm of q and k before RoPE; ``output_gate``: see :func:`attention_standard`."""
    p, eps = f"model.layers.{t.index}", float(config.rms_norm_eps)
    h = rms_norm(g, x, t.vectors["input_layernorm.weight"], eps, f"{p}.input_layernorm")
    o = attention_standard(g, config, h, shared, t, qk_norm, output_gate)
    x = g.op("Add", [x, o], f"{p}.attn_residual")
    h = rms_norm(g, x, t.vectors["post_attention_layernorm.weight"], eps, f"{p}.post_norm")
    return g.op("Add", [x, mlp_standard(g, h, t, swiglu)], f"{p}.output")


def attention_standard(
    g: GraphBuilder,
    config: ModelConfig,
    h: str,
    shared: StandardInputs,
    t: LayerTensors,
    qk_norm: HeadNorm | None = None,
    output_gate: bool = False,
) -> str:
    """Self-attention of the normed hidden state ``h`` [B, S, E] over the past KV and its output
    projection (standard ops); ``qk_norm`` writes a per-head norm of q and k before RoPE;
    ``output_gate``: ``q_proj`` gives each head's query then a gate, and the heads' output is
    multiplied by sigmoid(gate) (Qwen3.5)."""
    c, i = config, t.index
    kv, d = c.num_kv_heads, c.head_dim
    p = f"model.layers.{i}"
    proj = {
        n: linear(g, h, t.matmuls[n], _bias(t, n), f"{p}.self_attn.{n}")
        for n in ("q_proj", "k_proj", "v_proj")
    }
    norm = qk_norm or (lambda heads, _which: heads)
    query, gate = _query_and_gate(g, proj["q_proj"], d, p) if output_gate else (proj["q_proj"], "")
    q = g.op("Reshape", [query, g.ints(f"{p}.q_shape", [0, 0, kv, -1, d])])
    q = g.op("Transpose", [norm(q, "q")], f"{p}.q", perm=[0, 2, 3, 1, 4])  # [B, KV, G, S, D]
    kv_shape = g.ints(f"{p}.kv_shape", [0, 0, kv, d])
    k = norm(g.op("Reshape", [proj["k_proj"], kv_shape]), "k")  # [B, S, KV, D]
    k = g.op("Transpose", [k], perm=[0, 2, 1, 3])
    v = g.op("Transpose", [g.op("Reshape", [proj["v_proj"], kv_shape])], perm=[0, 2, 1, 3])
    q = apply_rope(g, q, shared.cos_q, shared.sin_q, d, f"{p}.q_rope", c.rotary_dim)
    k = apply_rope(g, k, shared.cos_k, shared.sin_k, d, f"{p}.k_rope", c.rotary_dim)
    past_k, past_v = past_names(c.num_layers)[2 * i : 2 * i + 2]
    present_k, present_v = present_names(c.num_layers)[2 * i : 2 * i + 2]
    g.op("Concat", [past_k, k], outputs=[present_k], axis=2)  # [B, KV, T, D]
    g.op("Concat", [past_v, v], outputs=[present_v], axis=2)
    axis2 = g.ints(f"{p}.axis2", [2])
    keys = g.op("Unsqueeze", [g.op("Transpose", [present_k], perm=[0, 1, 3, 2]), axis2])
    scores = g.op("MatMul", [q, keys], f"{p}.scores")  # [B, KV, G, S, T]
    scores = g.op(
        "Div", [scores, g.const(f"{p}.sqrt_d", np.array(attention_divisor(c), np.float32))]
    )
    probs = g.op("Softmax", [g.op("Add", [scores, shared.bias])], f"{p}.probs", axis=-1)
    out = g.op("MatMul", [probs, g.op("Unsqueeze", [present_v, axis2])])  # [B, KV, G, S, D]
    out = g.op("Transpose", [out], perm=[0, 3, 1, 2, 4])
    out = g.op("Reshape", [out, g.ints(f"{p}.merge_heads", [0, 0, -1])], f"{p}.attn")
    if gate:
        out = _gated(g, out, gate, p)
    return linear(g, out, t.matmuls["o_proj"], None, f"{p}.self_attn.o_proj")


def _query_and_gate(g: GraphBuilder, q_proj: str, head_dim: int, p: str) -> tuple[str, str]:
    """The query [B, S, H, D] and the gate [B, S, H D] of a gated ``q_proj`` output
    [B, S, H 2D] (each head: D query channels, then D gate channels)."""
    heads = g.op("Reshape", [q_proj, g.ints(f"{p}.gated_heads", [0, 0, -1, 2 * head_dim])])
    query, gate = f"{p}.query", f"{p}.gate_heads"
    halves = g.ints(f"{p}.gate_split", [head_dim, head_dim])
    g.op("Split", [heads, halves], outputs=[query, gate], axis=-1)
    return query, g.op("Reshape", [gate, g.ints(f"{p}.gate_merged", [0, 0, -1])], f"{p}.attn_gate")


def _gated(g: GraphBuilder, out: str, gate: str, p: str) -> str:
    """``out * sigmoid(gate)`` (the attention output gate)."""
    return g.op("Mul", [out, g.op("Sigmoid", [gate], f"{p}.gate_sigmoid")], f"{p}.gated")


#: A gated activation: (graph, gate, up, name) -> act(gate) * up (SwiGLU, GeGLU).
GatedActivation = Callable[[GraphBuilder, str, str, str], str]


def mlp_standard(g: GraphBuilder, h: str, t: LayerTensors, act: GatedActivation) -> str:
    """``down(act(gate(h)) * up(h))`` with separate gate and up MatMuls (standard graph)."""
    p = f"model.layers.{t.index}.mlp"
    gate = linear(g, h, t.matmuls["gate_proj"], None, f"{p}.gate_proj")
    up = linear(g, h, t.matmuls["up_proj"], None, f"{p}.up_proj")
    return linear(g, act(g, gate, up, p), t.matmuls["down_proj"], None, f"{p}.down_proj")


def emit_fused(
    g: GraphBuilder,
    config: ModelConfig,
    state: FusedState,
    rope_cache: tuple[str, str],
    t: LayerTensors,
    qk_norm: HeadNorm | None = None,
    output_gate: bool = False,
) -> FusedState:
    """The layer with onnxruntime's contrib ops: GroupQueryAttention over a shared KV buffer,
    skip-RMSNorms, q/k/v and gate/up as one MatMul each. With ``qk_norm``, q/k/v are split and q
    and k normalized per head before GroupQueryAttention (which applies RoPE); ``output_gate``:
    see :func:`attention_standard`."""
    p, eps = f"model.layers.{t.index}", float(config.rms_norm_eps)
    h, residual = skip_norm(g, state, t.vectors["input_layernorm.weight"], eps, f"{p}.in_norm")
    attention = attention_fused(g, config, h, rope_cache, t, qk_norm, output_gate)
    state = FusedState(residual, attention)
    h, residual = skip_norm(
        g, state, t.vectors["post_attention_layernorm.weight"], eps, f"{p}.post_norm"
    )
    return FusedState(residual, mlp_fused(g, config, h, t, swiglu))


def attention_fused(
    g: GraphBuilder,
    config: ModelConfig,
    h: str,
    rope_cache: tuple[str, str],
    t: LayerTensors,
    qk_norm: HeadNorm | None = None,
    output_gate: bool = False,
) -> str:
    """GroupQueryAttention of the normed hidden state ``h`` over the shared KV buffer (RoPE from
    ``rope_cache``: all of each head or its first ``rotary_dim`` channels; the layer's window)
    and the output projection; ``output_gate`` as in :func:`attention_standard`."""
    c, i = config, t.index
    p = f"model.layers.{i}"
    qkv_w = QWeight.concatenated([t.matmuls[n] for n in ("q_proj", "k_proj", "v_proj")])
    biases = [_bias(t, n) for n in ("q_proj", "k_proj", "v_proj")]
    present = [b for b in biases if b is not None]
    joined = np.concatenate(present) if len(present) == len(biases) else None
    qkv = linear(g, h, qkv_w, joined if joined is not None and joined.any() else None, f"{p}.qkv")
    past_k, past_v = past_names(c.num_layers)[2 * i : 2 * i + 2]
    present_k, present_v = present_names(c.num_layers)[2 * i : 2 * i + 2]
    gate = ""
    if qk_norm is None and not output_gate:
        qkv_inputs = [qkv, "", ""]
    else:
        qkv_inputs, gate = _split_qkv(g, c, qkv, qk_norm, output_gate, p)
    attn = g.op(
        "GroupQueryAttention",
        [*qkv_inputs, past_k, past_v, "seqlens_k", "total_sequence_length", *rope_cache],
        outputs=[f"{p}.attn", present_k, present_v],
        domain=_MS,
        num_heads=c.num_heads,
        kv_num_heads=c.num_kv_heads,
        scale=c.attention_scale,
        do_rotary=1,
        rotary_interleaved=0,
        local_window_size=int(c.layer_window(i) or -1),
    )
    if gate:
        attn = _gated(g, attn, gate, p)
    return linear(g, attn, t.matmuls["o_proj"], None, f"{p}.o_proj")


def mlp_fused(
    g: GraphBuilder, config: ModelConfig, h: str, t: LayerTensors, act: GatedActivation
) -> str:
    """``down(act(gate(h)) * up(h))`` with gate and up as one MatMul (fused graph)."""
    p = f"model.layers.{t.index}"
    gate_up_w = QWeight.concatenated([t.matmuls["gate_proj"], t.matmuls["up_proj"]])
    gate_up = linear(g, h, gate_up_w, None, f"{p}.gate_up")
    size = config.intermediate_size
    gate, up = f"{p}.gate", f"{p}.up"
    g.op("Split", [gate_up, g.ints(f"{p}.split", [size, size])], outputs=[gate, up], axis=-1)
    return linear(g, act(g, gate, up, f"{p}.mlp"), t.matmuls["down_proj"], None, f"{p}.down_proj")


def _split_qkv(
    g: GraphBuilder,
    c: ModelConfig,
    qkv: str,
    norm: HeadNorm | None,
    output_gate: bool,
    p: str,
) -> tuple[list[str], str]:
    """[q, k, v] split from ``qkv`` [B, S, (H (2 if gated) + 2 KV) D], q and k normalized per
    head by ``norm``; and the output gate [B, S, H D] ("" without one)."""
    q, k, v = f"{p}.q", f"{p}.k", f"{p}.v"
    q_width = 2 * c.q_size if output_gate else c.q_size
    sizes = g.ints(f"{p}.qkv_sizes", [q_width, c.kv_size, c.kv_size])
    g.op("Split", [qkv, sizes], outputs=[q, k, v], axis=-1)
    query, gate = _query_and_gate(g, q, c.head_dim, p) if output_gate else (q, "")
    heads = g.ints(f"{p}.heads_shape", [0, 0, -1, c.head_dim])  # [B, S, H or KV, D]
    merged = g.ints(f"{p}.merged_shape", [0, 0, -1])
    if norm is None:
        return [g.op("Reshape", [query, merged], f"{p}.q_merged"), k, v], gate
    normed = [
        g.op("Reshape", [norm(g.op("Reshape", [x, heads]), which), merged], f"{p}.{which}_normed")
        for x, which in ((query, "q"), (k, "k"))
    ]
    return [*normed, v], gate
