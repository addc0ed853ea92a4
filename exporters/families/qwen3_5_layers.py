"""PyTorch reference of the Qwen3.5 text decoder's two layer kinds, Hugging Face tensor names.

- :class:`LinearAttentionLayer` (three of every four layers): a Gated DeltaNet token mixer
  (``linear_attn.*``) between the usual pre-norms and SwiGLU MLP. Its state per sequence is
  fixed: the causal conv window [B, C, K-1] and a recurrent matrix per value head
  [B, Hv, Dk, Dv] (:data:`LinearState`). A prompt runs the chunked form of the gated delta rule
  (:func:`chunked_delta_rule`, parallel within chunks); one token runs the recurrent step
  (:func:`recurrent_delta_rule`). The math is written out in
  :mod:`edge_sdk.exporters.stream.delta_rule`, whose ONNX graph follows these functions.
- :class:`GatedAttentionLayer`: full attention whose ``q_proj`` is twice as wide (per head: the
  query, then a gate; the output is multiplied by sigmoid(gate) before ``o_proj``), q/k RMSNorm
  per head, RoPE on the first ``rotary_dim`` channels of each head only (the two-halves layout on
  them). Same ``(x, cos, sin, bias, past) -> (out, present)`` convention as
  :class:`~edge_sdk.exporters.model.DecoderLayer`; ``cos``/``sin`` are [B, S, rotary_dim].

Norms: Qwen3.5's RMSNorm (the layer norms and q/k norms) scales by ``1 + w``; the modules here
scale by their weight, and :func:`reference_layer` stores ``w + config.norm_offset`` in them, as
Gemma 3 does (activation scaling folds into a plain weight). The gated norm inside the mixer
scales by ``w`` itself and multiplies by silu(z).

Shapes: B batch, S new tokens, E hidden, C conv channels (q, k, v together), K conv kernel,
Hk/Hv key/value heads of the mixer, Dk/Dv their widths, KV kv-heads, G heads per KV head, D head
dim.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edge_sdk.config import LinearAttention, ModelConfig
from edge_sdk.exporters.model import MLP, DecoderLayer, KVPair, RMSNorm
from edge_sdk.exporters.stream.delta_rule import CHUNK, L2_EPS

__all__ = [
    "GatedAttention",
    "GatedAttentionLayer",
    "GatedDeltaNet",
    "GatedRMSNorm",
    "LinearAttentionLayer",
    "LinearState",
    "causal_conv",
    "chunked_delta_rule",
    "recurrent_delta_rule",
    "reference_layer",
]

LinearState = tuple[Tensor, Tensor]  # conv window [B, C, K-1], recurrent [B, Hv, Dk, Dv]
_UNIT_NORMS = ("input_layernorm.weight", "post_attention_layernorm.weight", "_norm.weight")


def causal_conv(x: Tensor, state: Tensor | None, weight: Tensor) -> tuple[Tensor, Tensor]:
    """silu of the depthwise causal conv of ``x`` [B, S, C] continuing the window ``state``
    [B, C, K-1] (None: zeros), ``weight`` [C, 1, K]; (output [B, S, C], new window)."""
    b, _, c = x.shape
    k = weight.shape[-1]
    if state is None:
        state = x.new_zeros(b, c, k - 1)
    full = torch.cat((state, x.transpose(1, 2)), dim=2)  # [B, C, K-1+S]
    out = F.conv1d(full, weight, groups=c)  # [B, C, S]
    return F.silu(out).transpose(1, 2), full[:, :, full.shape[2] - (k - 1) :]


def recurrent_delta_rule(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, state: Tensor
) -> tuple[Tensor, Tensor]:
    """The gated delta rule one token at a time: q, k [B, H, S, Dk] (normalized, q scaled),
    v [B, H, S, Dv], log-decay g and beta [B, H, S], state [B, H, Dk, Dv]; (o [B, H, S, Dv],
    new state)."""
    outs = []
    for t in range(q.shape[2]):
        k_t = k[:, :, t, :, None]  # [B, H, Dk, 1]
        state = state * g[:, :, t, None, None].exp()
        delta = (v[:, :, t, None] - k_t.transpose(-1, -2) @ state) * beta[:, :, t, None, None]
        state = state + k_t @ delta
        outs.append(q[:, :, t, None] @ state)  # [B, H, 1, Dv]
    return torch.cat(outs, dim=2), state


def chunked_delta_rule(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, state: Tensor, chunk: int = CHUNK
) -> tuple[Tensor, Tensor]:
    """The gated delta rule over chunks of ``chunk`` tokens (same arguments and result as
    :func:`recurrent_delta_rule`): within a chunk everything is MatMuls and one unit lower
    triangular solve; only the state passes from chunk to chunk."""
    b, h, s, _ = k.shape
    pad = -s % chunk
    q, k, v = (F.pad(x, (0, 0, 0, pad)).reshape(b, h, -1, chunk, x.shape[-1]) for x in (q, k, v))
    g, beta = (F.pad(x, (0, pad)).reshape(b, h, -1, chunk) for x in (g, beta))  # [B, H, N, C]
    cum = g.cumsum(-1)
    lower = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    decay = (cum[..., :, None] - cum[..., None, :]).masked_fill(~lower, float("-inf")).exp()
    k_beta = k * beta[..., None]
    system = torch.eye(chunk, device=q.device) + (k_beta @ k.transpose(-1, -2) * decay).tril(-1)
    u = torch.linalg.solve_triangular(system, v * beta[..., None], upper=False)
    w = torch.linalg.solve_triangular(system, k_beta * cum.exp()[..., None], upper=False)
    attn = q @ k.transpose(-1, -2) * decay  # [B, H, N, C, C]
    q_in = q * cum.exp()[..., None]
    k_out = k * (cum[..., -1:] - cum).exp()[..., None]
    last = cum[..., -1, None, None].exp()  # [B, H, N, 1, 1]
    outs = []
    for i in range(q.shape[2]):
        new_v = u[:, :, i] - w[:, :, i] @ state  # [B, H, C, Dv]
        outs.append(q_in[:, :, i] @ state + attn[:, :, i] @ new_v)
        state = state * last[:, :, i] + k_out[:, :, i].transpose(-1, -2) @ new_v
    return torch.stack(outs, dim=2).flatten(2, 3)[:, :, :s], state


def _l2_normalized(x: Tensor) -> Tensor:
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + L2_EPS)


class GatedRMSNorm(nn.Module):
    """``w * x / rms(x) * silu(z)`` over the last axis (the mixer's output norm, per head)."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x * F.silu(z)


class GatedDeltaNet(nn.Module):
    """The linear-attention token mixer (``linear_attn``): in_proj_qkv -> causal conv -> q, k, v;
    beta = sigmoid(in_proj_b); log-decay g = -exp(A_log) softplus(in_proj_a + dt_bias); the gated
    delta rule; the gated norm with z = in_proj_z; out_proj."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        shapes = config.linear_attention
        if shapes is None:
            raise ValueError("a Gated DeltaNet layer needs config.linear_attention")
        self.shapes: LinearAttention = shapes
        e, c = config.hidden_size, shapes.conv_channels
        hv, v_size = shapes.num_value_heads, shapes.num_value_heads * shapes.value_head_dim
        self.in_proj_qkv = nn.Linear(e, c, bias=False)
        self.in_proj_z = nn.Linear(e, v_size, bias=False)
        self.in_proj_b = nn.Linear(e, hv, bias=False)
        self.in_proj_a = nn.Linear(e, hv, bias=False)
        self.conv1d = nn.Conv1d(c, c, shapes.conv_kernel, groups=c, bias=False)
        self.dt_bias = nn.Parameter(torch.ones(hv))
        self.A_log = nn.Parameter(torch.zeros(hv))
        self.norm = GatedRMSNorm(shapes.value_head_dim, config.rms_norm_eps)
        self.out_proj = nn.Linear(v_size, e, bias=False)
        self.chunk = CHUNK

    def forward(self, x: Tensor, state: LinearState | None = None) -> tuple[Tensor, LinearState]:
        """Mix ``x`` [B, S, E] from ``state`` (None: a new sequence); (output, new state)."""
        sh, (b, s, _) = self.shapes, x.shape
        hk, hv, dk, dv = sh.num_key_heads, sh.num_value_heads, sh.key_head_dim, sh.value_head_dim
        conv_state, recurrent = state if state is not None else (None, None)
        mixed, conv_state = causal_conv(self.in_proj_qkv(x), conv_state, self.conv1d.weight)
        q, k, v = torch.split(mixed, [hk * dk, hk * dk, hv * dv], dim=-1)

        def value_heads(t: Tensor) -> Tensor:  # [B, S, Hk*Dk] -> [B, Hv, S, Dk]
            t = _l2_normalized(t.view(b, s, hk, dk)).repeat_interleave(hv // hk, dim=2)
            return t.transpose(1, 2)

        beta = torch.sigmoid(self.in_proj_b(x)).transpose(1, 2)  # [B, Hv, S]
        g = -self.A_log.exp() * F.softplus(self.in_proj_a(x) + self.dt_bias)
        if recurrent is None:
            recurrent = x.new_zeros(b, hv, dk, dv)
        args = (value_heads(q) * dk**-0.5, value_heads(k), v.view(b, s, hv, dv).transpose(1, 2))
        if s == 1:
            o, recurrent = recurrent_delta_rule(*args, g.transpose(1, 2), beta, recurrent)
        else:
            o, recurrent = chunked_delta_rule(*args, g.transpose(1, 2), beta, recurrent, self.chunk)
        o = self.norm(o.transpose(1, 2), self.in_proj_z(x).view(b, s, hv, dv))
        return self.out_proj(o.reshape(b, s, hv * dv)), (conv_state, recurrent)


class LinearAttentionLayer(nn.Module):
    """Pre-norm Gated DeltaNet block, then a pre-norm SwiGLU MLP."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.linear_attn = GatedDeltaNet(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, state: LinearState | None = None) -> tuple[Tensor, LinearState]:
        """The layer's output [B, S, E] and its new state."""
        mixed, state = self.linear_attn(self.input_layernorm(x), state)
        x = x + mixed
        return x + self.mlp(self.post_attention_layernorm(x)), state


def _partial_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """RoPE (two-halves layout) on the first ``cos.shape[-1]`` channels of ``x``."""
    r = cos.shape[-1]
    rot, rest = x[..., :r], x[..., r:]
    first, second = rot.chunk(2, dim=-1)
    rotated = rot * cos + torch.cat((-second, first), dim=-1) * sin
    return torch.cat((rotated, rest), dim=-1)


class GatedAttention(nn.Module):
    """Grouped-query attention with an output gate (q_proj: per head D query then D gate
    channels), q/k norm per head, partial RoPE and an explicit KV cache."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        e, d, bias = config.hidden_size, config.head_dim, config.qkv_bias
        self.q_proj = nn.Linear(e, 2 * config.q_size, bias=bias)
        self.k_proj = nn.Linear(e, config.kv_size, bias=bias)
        self.v_proj = nn.Linear(e, config.kv_size, bias=bias)
        self.o_proj = nn.Linear(config.q_size, e, bias=bias)
        self.q_norm = RMSNorm(d, config.rms_norm_eps)
        self.k_norm = RMSNorm(d, config.rms_norm_eps)
        self.heads, self.kv_heads, self.head_dim = config.num_heads, config.num_kv_heads, d
        self.scale = config.attention_scale

    def forward(
        self, x: Tensor, cos: Tensor, sin: Tensor, bias: Tensor, past: KVPair | None
    ) -> tuple[Tensor, KVPair]:
        """``x`` [B, S, E], cos/sin [B, S, rotary_dim], bias [B, 1, 1, S, T]; (out, KV)."""
        b, s, _ = x.shape
        kv, d = self.kv_heads, self.head_dim
        query, gate = self.q_proj(x).view(b, s, self.heads, 2 * d).chunk(2, dim=-1)
        q = self.q_norm(query).reshape(b, s, kv, -1, d).permute(0, 2, 3, 1, 4)  # [B, KV, G, S, D]
        k = self.k_norm(self.k_proj(x).view(b, s, kv, d)).transpose(1, 2)  # [B, KV, S, D]
        v = self.v_proj(x).view(b, s, kv, d).transpose(1, 2)
        q = _partial_rope(q, cos[:, None, None], sin[:, None, None])
        k = _partial_rope(k, cos[:, None], sin[:, None])
        if past is not None:
            k = torch.cat((past[0], k), dim=2)  # [B, KV, T, D]
            v = torch.cat((past[1], v), dim=2)
        scores = q @ k[:, :, None].transpose(-1, -2) * self.scale + bias  # [B, KV, G, S, T]
        out = torch.softmax(scores, dim=-1) @ v[:, :, None]  # [B, KV, G, S, D]
        out = out.permute(0, 3, 1, 2, 4).reshape(b, s, -1) * torch.sigmoid(gate.reshape(b, s, -1))
        return self.o_proj(out), (k, v)


class GatedAttentionLayer(DecoderLayer):
    """:class:`~edge_sdk.exporters.model.DecoderLayer` with :class:`GatedAttention`."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.self_attn = GatedAttention(config)  # type: ignore[assignment]


def reference_layer(config: ModelConfig, tensors: dict[str, np.ndarray]) -> nn.Module:
    """The float layer holding ``tensors`` (HF names inside the layer; its kind read from them),
    each ``1 + w`` norm weight stored as ``w + config.norm_offset``."""
    linear = "linear_attn.in_proj_qkv.weight" in tensors
    layer = LinearAttentionLayer(config) if linear else GatedAttentionLayer(config)
    offset = np.float32(config.norm_offset)
    state = {
        name: torch.from_numpy(value + offset if name.endswith(_UNIT_NORMS) else value)
        for name, value in tensors.items()
    }
    layer.load_state_dict(state, strict=True)
    return layer.eval()
