"""The Gemma 3 family (text decoder): Llama's attention with a per-head q/k RMSNorm, scores scaled
by ``query_pre_attn_scalar``, five sliding-window layers (their own RoPE base) for each global
one; a norm after attention and after the MLP as well as before each; a GeGLU MLP (tanh GELU);
every RMSNorm scales by ``1 + w`` (folded into the stored weights: ``config.norm_offset``), and
the embedding is multiplied by sqrt(hidden) (``config.embedding_scale``, in the shared prelude).

The window, the RoPE base and the scale of each layer come from the config, so the attention
emitters are Llama's; this module adds the post-norms and the activation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from edge_sdk.config import ModelConfig
from edge_sdk.exporters.families import llama
from edge_sdk.exporters.families.base import LayerTensors, StandardInputs
from edge_sdk.exporters.families.llama import layer_tensors, linears
from edge_sdk.exporters.model import MLP, DecoderLayer, KVPair, RMSNorm
from edge_sdk.exporters.quantize.scaling import ScaleGroup
from edge_sdk.exporters.stream.onnx_builder import GraphBuilder
from edge_sdk.exporters.stream.ops import FusedState, fused_rms_norm, rms_norm, skip_norm

__all__ = [
    "emit_fused",
    "emit_standard",
    "layer_shapes",
    "layer_tensors",
    "linears",
    "reference_layer",
    "scale_groups",
]

_MS = "com.microsoft"
_POST_NORMS = ("pre_feedforward_layernorm", "post_feedforward_layernorm")


def layer_shapes(config: ModelConfig, index: int) -> dict[str, tuple[int, ...]]:
    """Llama's tensors, the q/k norms [head_dim] and the two feed-forward norms [hidden]."""
    p = f"model.layers.{index}."
    extra = {f"{p}self_attn.{n}_norm.weight": (config.head_dim,) for n in ("q", "k")}
    extra |= {f"{p}{n}.weight": (config.hidden_size,) for n in _POST_NORMS}
    return llama.layer_shapes(config, index) | extra


class GeGLU(MLP):
    """``down(gelu_tanh(gate(x)) * up(x))``."""

    def forward(self, x: Tensor) -> Tensor:
        gate = nn.functional.gelu(self.gate_proj(x), approximate="tanh")
        out: Tensor = self.down_proj(gate * self.up_proj(x))
        return out


class Gemma3Layer(DecoderLayer):
    """Norm, attention, norm, residual; norm, GeGLU, norm, residual."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.mlp = GeGLU(config)
        self.pre_feedforward_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_feedforward_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(
        self, x: Tensor, cos: Tensor, sin: Tensor, bias: Tensor, past: KVPair | None
    ) -> tuple[Tensor, KVPair]:
        attn, present = self.self_attn(self.input_layernorm(x), cos, sin, bias, past)
        x = x + self.post_attention_layernorm(attn)
        mlp = self.mlp(self.pre_feedforward_layernorm(x))
        return x + self.post_feedforward_layernorm(mlp), present


def reference_layer(config: ModelConfig, tensors: dict[str, np.ndarray]) -> nn.Module:
    """The float layer holding ``tensors`` (names inside the layer), each norm weight ``w``
    stored as the ``1 + w`` it scales by."""
    layer = Gemma3Layer(config)
    offset = np.float32(config.norm_offset)
    state = {
        name: torch.from_numpy(value + offset if name.endswith("norm.weight") else value)
        for name, value in tensors.items()
    }
    layer.load_state_dict(state, strict=True)
    return layer.eval()


def _gemma(layer: nn.Module) -> Gemma3Layer:
    if not isinstance(layer, Gemma3Layer):
        raise TypeError(f"expected a Gemma3Layer, got {type(layer).__name__}")
    return layer


def scale_groups(config: ModelConfig, layer: nn.Module, index: int) -> list[ScaleGroup]:
    """Llama's four groups, the MLP's input made by the pre-feed-forward norm."""
    layer = _gemma(layer)
    return llama.layer_scale_groups(config, layer, index, layer.pre_feedforward_layernorm)


def geglu(g: GraphBuilder, gate: str, up: str, name: str) -> str:
    """``gelu_tanh(gate) * up`` in standard ops, with
    gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))."""
    cube = g.op("Mul", [gate, g.op("Mul", [gate, gate])], f"{name}.cube")
    inner = g.op("Add", [gate, g.op("Mul", [cube, g.const(f"{name}.c", np.float32(0.044715))])])
    slope = g.const(f"{name}.slope", np.float32(math.sqrt(2.0 / math.pi)))
    tanh = g.op("Tanh", [g.op("Mul", [inner, slope])], f"{name}.tanh")
    half = g.op("Mul", [gate, g.const(f"{name}.half", np.float32(0.5))])
    act = g.op("Mul", [half, g.op("Add", [tanh, g.const(f"{name}.one", np.float32(1.0))])])
    return g.op("Mul", [act, up], f"{name}.mixed")


def fast_geglu(g: GraphBuilder, gate: str, up: str, name: str) -> str:
    """``gelu_tanh(gate) * up`` with onnxruntime's ``FastGelu`` (the tanh approximation)."""
    act = g.op("FastGelu", [gate], f"{name}.gelu", domain=_MS)
    return g.op("Mul", [act, up], f"{name}.mixed")


def emit_standard(
    g: GraphBuilder, config: ModelConfig, x: str, shared: StandardInputs, t: LayerTensors
) -> str:
    """The layer in standard ONNX ops; its output hidden state [B, S, E]."""
    p, eps = f"model.layers.{t.index}", float(config.rms_norm_eps)
    h = rms_norm(g, x, t.vectors["input_layernorm.weight"], eps, f"{p}.input_layernorm")
    o = llama.attention_standard(g, config, h, shared, t, llama.head_norm(g, t, eps, fused=False))
    o = rms_norm(g, o, t.vectors["post_attention_layernorm.weight"], eps, f"{p}.post_attn_norm")
    x = g.op("Add", [x, o], f"{p}.attn_residual")
    h = rms_norm(g, x, t.vectors["pre_feedforward_layernorm.weight"], eps, f"{p}.pre_ffw_norm")
    m = llama.mlp_standard(g, h, t, geglu)
    m = rms_norm(g, m, t.vectors["post_feedforward_layernorm.weight"], eps, f"{p}.post_ffw_norm")
    return g.op("Add", [x, m], f"{p}.output")


def emit_fused(
    g: GraphBuilder,
    config: ModelConfig,
    state: FusedState,
    rope_cache: tuple[str, str],
    t: LayerTensors,
) -> FusedState:
    """The layer with onnxruntime's contrib ops (GroupQueryAttention with the layer's window,
    skip-norms folding each residual add into the next norm, FastGelu)."""
    p, eps = f"model.layers.{t.index}", float(config.rms_norm_eps)
    v = t.vectors
    h, residual = skip_norm(g, state, v["input_layernorm.weight"], eps, f"{p}.in_norm")
    norm = llama.head_norm(g, t, eps, fused=True)
    o = llama.attention_fused(g, config, h, rope_cache, t, norm)
    o = fused_rms_norm(g, o, v["post_attention_layernorm.weight"], eps, f"{p}.attn_norm")
    state = FusedState(residual, o)
    h, residual = skip_norm(g, state, v["pre_feedforward_layernorm.weight"], eps, f"{p}.ffw_in")
    m = llama.mlp_fused(g, config, h, t, fast_geglu)
    m = fused_rms_norm(g, m, v["post_feedforward_layernorm.weight"], eps, f"{p}.ffw_out")
    return FusedState(residual, m)
