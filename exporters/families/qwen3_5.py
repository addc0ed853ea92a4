"""The Qwen3.5 family (text decoder): three of every four layers are Gated DeltaNet linear
attention (``linear_attn.*``), the others gated full attention; both then a SwiGLU MLP.

- A linear layer's mixer is written by :func:`~edge_sdk.exporters.stream.delta_rule.
  gated_delta_net` (standard ops, the same in both graphs): its conv window and recurrent state
  are the layer's two cache tensors (``past_state.{i}.conv`` / ``.recurrent``, see
  :func:`edge_sdk.onnx_io.cache_tensors`), a prompt runs the chunked delta rule, one token the
  recurrent step.
- An attention layer is Llama's with Qwen3's per-head q/k norm, an output gate (``q_proj`` gives
  each head's query then its gate) and RoPE on the first ``rotary_dim`` channels of each head;
  in the fused graph GroupQueryAttention takes the partial rotary itself (its cos/sin cache is
  [positions, rotary_dim / 2]).

Norms scale by ``1 + w``: the reference stores ``w + 1`` (:func:`~edge_sdk.exporters.families.
qwen3_5_layers.reference_layer`), so the graphs see plain weights.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from edge_sdk.config import ModelConfig
from edge_sdk.exporters.families import llama
from edge_sdk.exporters.families.base import LayerTensors, StandardInputs
from edge_sdk.exporters.families.qwen3_5_layers import LinearAttentionLayer, reference_layer
from edge_sdk.exporters.quantize.qweight import QWeight
from edge_sdk.exporters.quantize.scaling import ScaleGroup
from edge_sdk.exporters.stream.delta_rule import gated_delta_net
from edge_sdk.exporters.stream.onnx_builder import GraphBuilder
from edge_sdk.exporters.stream.ops import FusedState, rms_norm, skip_norm, swiglu
from edge_sdk.onnx_io import cache_tensors

__all__ = [
    "emit_fused",
    "emit_standard",
    "layer_shapes",
    "layer_tensors",
    "linears",
    "reference_layer",
    "scale_groups",
]

_MIXER = ("in_proj_qkv", "in_proj_z", "in_proj_b", "in_proj_a", "out_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")


def _is_linear(config: ModelConfig, index: int) -> bool:
    return config.layer_type(index) == "linear_attention"


def layer_shapes(config: ModelConfig, index: int) -> dict[str, tuple[int, ...]]:
    """Hugging Face name -> shape of every tensor of layer ``index`` (its kind's)."""
    p, e = f"model.layers.{index}.", config.hidden_size
    shared = {
        "input_layernorm.weight": (e,),
        "post_attention_layernorm.weight": (e,),
        "mlp.gate_proj.weight": (config.intermediate_size, e),
        "mlp.up_proj.weight": (config.intermediate_size, e),
        "mlp.down_proj.weight": (e, config.intermediate_size),
    }
    shapes = config.linear_attention
    if _is_linear(config, index) and shapes is not None:
        hv, c = shapes.num_value_heads, shapes.conv_channels
        v_size = hv * shapes.value_head_dim
        mixer = {
            "in_proj_qkv.weight": (c, e),
            "in_proj_z.weight": (v_size, e),
            "in_proj_b.weight": (hv, e),
            "in_proj_a.weight": (hv, e),
            "conv1d.weight": (c, 1, shapes.conv_kernel),
            "dt_bias": (hv,),
            "A_log": (hv,),
            "norm.weight": (shapes.value_head_dim,),
            "out_proj.weight": (e, v_size),
        }
        layer = shared | {f"linear_attn.{name}": shape for name, shape in mixer.items()}
        return {p + name: shape for name, shape in layer.items()}
    attention = llama.layer_shapes(config, index)
    attention[f"{p}self_attn.q_proj.weight"] = (2 * config.q_size, e)  # query and gate per head
    if config.qkv_bias:
        attention[f"{p}self_attn.q_proj.bias"] = (2 * config.q_size,)
    norms = {f"{p}self_attn.{n}_norm.weight": (config.head_dim,) for n in ("q", "k")}
    return attention | norms


def linears(layer: nn.Module) -> dict[str, nn.Linear]:
    """The mixer's projections (or q/k/v/o), then gate/up/down, by short name."""
    if not isinstance(layer, LinearAttentionLayer):
        return llama.linears(layer)
    found: dict[str, nn.Linear] = {name: getattr(layer.linear_attn, name) for name in _MIXER}
    return found | {name: getattr(layer.mlp, name) for name in _MLP}


def scale_groups(config: ModelConfig, layer: nn.Module, index: int) -> list[ScaleGroup]:
    """An attention layer: Llama's four groups. A linear layer: the mixer's four input
    projections after the input norm, gate/up after the MLP norm, down after up (``out_proj``'s
    input comes from the gated norm, whose weight is shared by the heads: not scaled)."""
    if not isinstance(layer, LinearAttentionLayer):
        return llama.scale_groups(config, layer, index)
    mixer, mlp = layer.linear_attn, layer.mlp
    inputs = (mixer.in_proj_qkv, mixer.in_proj_z, mixer.in_proj_b, mixer.in_proj_a)
    return [
        ScaleGroup(f"layers.{index}.mixer_input", layer.input_layernorm, inputs),
        ScaleGroup(
            f"layers.{index}.mlp_input",
            layer.post_attention_layernorm,
            (mlp.gate_proj, mlp.up_proj),
        ),
        ScaleGroup(f"layers.{index}.down_proj_input", mlp.up_proj, (mlp.down_proj,)),
    ]


def layer_tensors(layer: nn.Module, index: int, matmuls: dict[str, QWeight]) -> LayerTensors:
    """The quantized MatMuls plus every other tensor of ``layer`` (norms, biases, the conv
    kernel, the decay parameters) after any scaling."""
    weights = {id(lin.weight) for lin in linears(layer).values()}
    vectors = {
        name: value.detach().numpy().astype(np.float32)
        for name, value in layer.named_parameters()
        if id(value) not in weights
    }
    return LayerTensors(index, dict(matmuls), vectors)


def _state_names(config: ModelConfig, index: int) -> tuple[tuple[str, str], tuple[str, str]]:
    """(past conv, past recurrent) and (present conv, present recurrent) of layer ``index``."""
    conv, recurrent = cache_tensors(config)[2 * index : 2 * index + 2]
    return (conv.past, recurrent.past), (conv.present, recurrent.present)


def _mixer(g: GraphBuilder, config: ModelConfig, h: str, t: LayerTensors) -> str:
    past, present = _state_names(config, t.index)
    return gated_delta_net(g, config, h, t, past, present)


def emit_standard(
    g: GraphBuilder, config: ModelConfig, x: str, shared: StandardInputs, t: LayerTensors
) -> str:
    """The layer in standard ONNX ops; its output hidden state [B, S, E]."""
    if not _is_linear(config, t.index):
        norm = llama.head_norm(g, t, float(config.rms_norm_eps), fused=False)
        return llama.emit_standard(g, config, x, shared, t, norm, output_gate=True)
    p, eps = f"model.layers.{t.index}", float(config.rms_norm_eps)
    h = rms_norm(g, x, t.vectors["input_layernorm.weight"], eps, f"{p}.input_layernorm")
    x = g.op("Add", [x, _mixer(g, config, h, t)], f"{p}.mixer_residual")
    h = rms_norm(g, x, t.vectors["post_attention_layernorm.weight"], eps, f"{p}.post_norm")
    return g.op("Add", [x, llama.mlp_standard(g, h, t, swiglu)], f"{p}.output")


def emit_fused(
    g: GraphBuilder,
    config: ModelConfig,
    state: FusedState,
    rope_cache: tuple[str, str],
    t: LayerTensors,
) -> FusedState:
    """The layer in the fused onnxruntime graph: skip-RMSNorms, the mixer (GroupQueryAttention
    with q/k norm and the gate, or the Gated DeltaNet ops), gate/up as one MatMul."""
    if not _is_linear(config, t.index):
        norm = llama.head_norm(g, t, float(config.rms_norm_eps), fused=True)
        return llama.emit_fused(g, config, state, rope_cache, t, norm, output_gate=True)
    p, eps = f"model.layers.{t.index}", float(config.rms_norm_eps)
    h, residual = skip_norm(g, state, t.vectors["input_layernorm.weight"], eps, f"{p}.in_norm")
    state = FusedState(residual, _mixer(g, config, h, t))
    weight = t.vectors["post_attention_layernorm.weight"]
    h, residual = skip_norm(g, state, weight, eps, f"{p}.post_norm")
    return FusedState(residual, llama.mlp_fused(g, config, h, t, swiglu))
