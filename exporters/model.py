"""The PyTorch reference decoder: Llama, Qwen2, Qwen3 and Mistral families in one small model.

RMSNorm, rotary position embeddings (with Llama 3 "llama3" and linear scaling), grouped-query
attention with an explicit KV cache (Qwen3: q and k RMS-normalized per head first), SwiGLU MLP.
Parameter names match Hugging Face's, so a ``*.safetensors`` state dict loads as it is.
Shapes: B batch, S new tokens, P past tokens, T = P + S, H heads, KV kv-heads, G = H / KV,
D head dim, E hidden size, V vocabulary.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import Tensor, nn

from edge_sdk.config import ModelConfig

__all__ = [
    "WHOLE_MODEL_FAMILIES",
    "KVPair",
    "LiteForCausalLM",
    "attention_bias",
    "rope_inverse_frequencies",
]

#: The families :class:`LiteForCausalLM` computes whole (the traced fp16/W8A8 export and
#: ``load_model`` need it); the others (Gemma 3) have a layer-wise reference only, in their
#: family module, which the streamed export (fp32, int8, int4) runs.
WHOLE_MODEL_FAMILIES = ("llama", "qwen2", "mistral", "qwen3")

KVPair = tuple[Tensor, Tensor]  # key, value: [B, KV, T, D]


def rope_inverse_frequencies(config: ModelConfig, local: bool = False) -> Tensor:
    """Inverse frequencies [rotary_dim / 2] of RoPE, with the config's scaling applied; ``local``:
    those of the sliding layers (their own base, unscaled: Gemma 3)."""
    dim = config.rotary_dim
    theta = config.rope_local_theta if local and config.rope_local_theta else config.rope_theta
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    scaling = None if local else config.rope_scaling
    if scaling is None:
        return inv_freq.float()
    if scaling.kind == "linear":
        return (inv_freq / scaling.factor).float()
    # "llama3": keep high frequencies, divide low ones by `factor`, interpolate in between.
    old_len = scaling.original_max_position_embeddings
    low_wavelen = old_len / scaling.low_freq_factor
    high_wavelen = old_len / scaling.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
    smooth = (old_len / wavelen - scaling.low_freq_factor) / (
        scaling.high_freq_factor - scaling.low_freq_factor
    )
    smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, smoothed, scaled).float()


def attention_bias(
    attention_mask: Tensor, new_tokens: int, dtype: torch.dtype, sliding_window: int | None = None
) -> Tensor:
    """Additive bias [B, 1, 1, S, T]: 0 where a query may attend a key, dtype's min elsewhere.

    ``attention_mask`` [B, T] marks real tokens (1) and padding (0) over past + new positions;
    the S new tokens are the last S of the T slots.
    """
    total = attention_mask.shape[1]
    key_index = torch.arange(total, device=attention_mask.device)  # [T]
    query_index = key_index[total - new_tokens :] if new_tokens else key_index[:0]  # [S]
    allowed = key_index[None, :] <= query_index[:, None]  # [S, T]
    if sliding_window is not None:
        allowed = allowed & (key_index[None, :] > query_index[:, None] - sliding_window)
    allowed = allowed[None, :, :] & attention_mask[:, None, :].bool()  # [B, S, T]
    bias = torch.zeros(allowed.shape, dtype=dtype, device=attention_mask.device)
    bias = bias.masked_fill(~allowed, torch.finfo(dtype).min)
    return bias[:, None, None, :, :]


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in float32."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class Attention(nn.Module):
    """Grouped-query self-attention with RoPE and an explicit KV cache; q and k are RMS-normalized
    per head before RoPE when the config says so (``q_norm``/``k_norm``, Qwen3)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        e, bias = config.hidden_size, config.qkv_bias
        self.q_proj = nn.Linear(e, config.q_size, bias=bias)
        self.k_proj = nn.Linear(e, config.kv_size, bias=bias)
        self.v_proj = nn.Linear(e, config.kv_size, bias=bias)
        self.o_proj = nn.Linear(config.q_size, e, bias=False)
        d, eps = config.head_dim, config.rms_norm_eps
        self.q_norm: nn.Module = RMSNorm(d, eps) if config.qk_norm else nn.Identity()
        self.k_norm: nn.Module = RMSNorm(d, eps) if config.qk_norm else nn.Identity()
        self.heads, self.kv_heads, self.head_dim = (
            config.num_heads,
            config.num_kv_heads,
            config.head_dim,
        )
        self.divisor = math.sqrt(config.query_pre_attn_scalar or config.head_dim)

    def forward(
        self, x: Tensor, cos: Tensor, sin: Tensor, bias: Tensor, past: KVPair | None
    ) -> tuple[Tensor, KVPair]:
        b, s, _ = x.shape
        kv, d = self.kv_heads, self.head_dim
        g = self.heads // kv
        q = self.q_norm(self.q_proj(x).view(b, s, kv, g, d))  # [B, S, KV, G, D]
        q = q.permute(0, 2, 3, 1, 4)  # [B, KV, G, S, D]
        k = self.k_norm(self.k_proj(x).view(b, s, kv, d)).transpose(1, 2)  # [B, KV, S, D]
        v = self.v_proj(x).view(b, s, kv, d).transpose(1, 2)  # [B, KV, S, D]
        q = q * cos[:, None, None] + _rotate_half(q) * sin[:, None, None]
        k = k * cos[:, None] + _rotate_half(k) * sin[:, None]
        if past is not None:
            k = torch.cat((past[0], k), dim=2)  # [B, KV, T, D]
            v = torch.cat((past[1], v), dim=2)
        scores = q @ k[:, :, None].transpose(-1, -2) / self.divisor  # [B, KV, G, S, T]
        probs = torch.softmax(scores.float() + bias.float(), dim=-1).to(v.dtype)  # float32 island
        out = probs @ v[:, :, None]  # [B, KV, G, S, D]
        out = out.permute(0, 3, 1, 2, 4).reshape(b, s, kv * g * d)  # [B, S, H*D]
        return self.o_proj(out), (k, v)


class MLP(nn.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        e, i = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(e, i, bias=False)
        self.up_proj = nn.Linear(e, i, bias=False)
        self.down_proj = nn.Linear(i, e, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))
        return out


class DecoderLayer(nn.Module):
    """Pre-norm attention block followed by a pre-norm MLP block."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(
        self, x: Tensor, cos: Tensor, sin: Tensor, bias: Tensor, past: KVPair | None
    ) -> tuple[Tensor, KVPair]:
        attn, present = self.self_attn(self.input_layernorm(x), cos, sin, bias, past)
        x = x + attn
        return x + self.mlp(self.post_attention_layernorm(x)), present


class Decoder(nn.Module):
    """Embedding, decoder layers and the final norm (Hugging Face's ``model.`` prefix)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class LiteForCausalLM(nn.Module):
    """A decoder-only language model whose state dict matches Hugging Face's names."""

    def decoder_layers(self) -> list[DecoderLayer]:
        """The decoder layers, typed (iterating ``nn.ModuleList`` gives plain modules)."""
        return cast("list[DecoderLayer]", list(self.model.layers))

    inv_freq: Tensor  # RoPE inverse frequencies [head_dim / 2], a non-persistent buffer

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.model = Decoder(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.register_buffer("inv_freq", rope_inverse_frequencies(config), persistent=False)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        past_key_values: list[KVPair] | None = None,
    ) -> tuple[Tensor, list[KVPair]]:
        """Logits [B, S, V] and the present KV per layer ([B, KV, T, D] each).

        ``attention_mask`` [B, T] covers past + new tokens (default: all ones);
        ``position_ids`` [B, S] default to P .. T-1.
        """
        b, s = input_ids.shape
        past_len = past_key_values[0][0].shape[2] if past_key_values else 0
        if attention_mask is None:
            attention_mask = torch.ones(b, past_len + s, dtype=torch.int64, device=input_ids.device)
        if position_ids is None:
            position_ids = torch.arange(past_len, past_len + s, device=input_ids.device)[
                None
            ].expand(b, s)
        x = self.model.embed_tokens(input_ids)  # [B, S, E]
        freqs = position_ids[..., None].float() * self.inv_freq  # [B, S, D/2]
        angles = torch.cat((freqs, freqs), dim=-1)  # [B, S, D]
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        bias = attention_bias(attention_mask, s, x.dtype, self.config.sliding_window)
        presents: list[KVPair] = []
        for i, layer in enumerate(self.model.layers):
            x, present = layer(x, cos, sin, bias, past_key_values[i] if past_key_values else None)
            presents.append(present)
        return self.lm_head(self.model.norm(x)), presents
