"""Qwen3.5 in a GGUF file (llama.cpp's architecture ``qwen35``): the inverse of what llama.cpp's
converter does to its tensors (its config: :mod:`edge_sdk.gguf_config`).

What ``convert_hf_to_gguf`` (``Qwen3_5TextModel``: ``Qwen3NextModel`` plus
``_LinearAttentionVReorderBase``) writes, and what is undone here:

- names: the Gated DeltaNet mixer's ``in_proj_qkv`` / ``in_proj_z`` / ``in_proj_b`` /
  ``in_proj_a`` / ``conv1d`` / ``dt_bias`` / ``A_log`` / ``norm`` / ``out_proj`` become
  ``attn_qkv`` / ``attn_gate`` / ``ssm_beta`` / ``ssm_alpha`` / ``ssm_conv1d`` /
  ``ssm_dt.bias`` / ``ssm_a`` (no ``.weight``) / ``ssm_norm`` / ``ssm_out``;
  ``post_attention_layernorm`` is ``post_attention_norm``. The gated attention's ``q_proj``
  (query and gate per head) is ``attn_q`` as it is.
- values: ``A_log`` is stored as ``-exp(A_log)``; every RMSNorm weight but the mixer's gated
  norm as the ``1 + w`` it scales by (undone through ``config.norm_offset``); the conv kernel
  [C, 1, K] squeezed to [C, K].
- order: when a layer has more value heads than key heads, the value heads (rows of ``attn_qkv``'s
  v part, ``attn_gate``, ``ssm_beta``, ``ssm_alpha``, ``ssm_a``, ``ssm_dt``, the conv's v
  channels, columns of ``ssm_out``) go from Hugging Face's grouped order (the value heads of key
  head 0, then of key head 1 ...) to a tiled one (value head 0 of each key head, then value head
  1 ...), for ggml's broadcast. Files converted before that reorder existed (llama.cpp's first
  Qwen3.5 support, February 2026) hold the grouped order; nothing in the metadata tells them
  apart, and they are read as tiled.

The metadata (``llama_model_qwen35::load_arch_hparams``): ``ssm.group_count`` key heads,
``ssm.time_step_rank`` value heads, ``ssm.state_size`` the key head width, ``ssm.inner_size``
all value channels, ``ssm.conv_kernel``; a layer is linear attention unless
``(i + 1) % full_attention_interval == 0`` (or as ``attention.recurrent_layers`` lists);
``rope.dimension_count`` is the rotated share of ``attention.key_length``; ``block_count``
counts the multi-token-prediction block(s) after the decoder (``nextn_predict_layers``), which
are not read. Qwen3.5's RoPE is llama.cpp's interleaved multimodal one, the same rotation as plain
RoPE for text, where the three position streams are equal.
"""

from __future__ import annotations

import numpy as np

from edge_sdk.config import ModelConfig
from edge_sdk.errors import UnsupportedModelError

__all__ = ["LAYER_TENSORS", "qwen35_layout", "qwen35_shape"]

#: llama.cpp's layer tensor names -> Hugging Face's (inside ``model.layers.{i}.``).
LAYER_TENSORS = {
    "attn_norm.weight": "input_layernorm.weight",
    "post_attention_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "attn_qkv.weight": "linear_attn.in_proj_qkv.weight",
    "attn_gate.weight": "linear_attn.in_proj_z.weight",
    "ssm_beta.weight": "linear_attn.in_proj_b.weight",
    "ssm_alpha.weight": "linear_attn.in_proj_a.weight",
    "ssm_conv1d.weight": "linear_attn.conv1d.weight",
    "ssm_dt.bias": "linear_attn.dt_bias",
    "ssm_a": "linear_attn.A_log",
    "ssm_norm.weight": "linear_attn.norm.weight",
    "ssm_out.weight": "linear_attn.out_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}


def qwen35_shape(gguf_name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The Hugging Face shape of a tensor whose GGUF shape is ``shape`` (the conv kernel gets
    back its middle axis)."""
    if gguf_name.endswith(".ssm_conv1d.weight") and len(shape) == 2:
        return (shape[0], 1, shape[1])
    return shape


def qwen35_layout(gguf_name: str, values: np.ndarray, config: ModelConfig) -> np.ndarray:
    """``values`` of ``gguf_name`` in Hugging Face layout: value heads back in grouped order,
    ``A_log`` from ``-exp(A_log)``, the conv kernel [C, 1, K]."""
    shapes = config.linear_attention
    kind = gguf_name.split(".", 2)[-1]
    if shapes is None or not kind.startswith(("attn_qkv.", "attn_gate.", "ssm_")):
        return values
    hk, hv, dv = shapes.num_key_heads, shapes.num_value_heads, shapes.value_head_dim
    qk_rows = 2 * hk * shapes.key_head_dim

    def grouped(array: np.ndarray, axis: int, width: int) -> np.ndarray:
        """Inverse of the converter's ``_reorder_v_heads``: [r, Hk, width] -> [Hk, r, width]."""
        if hv == hk:
            return array
        shape = array.shape
        tiled = array.reshape(*shape[:axis], hv // hk, hk, width, *shape[axis + 1 :])
        return np.ascontiguousarray(np.swapaxes(tiled, axis, axis + 1).reshape(shape))

    if kind in ("attn_qkv.weight", "ssm_conv1d.weight"):
        values[qk_rows:] = grouped(values[qk_rows:], 0, dv)
        return values.reshape(qwen35_shape(gguf_name, values.shape))
    if kind == "attn_gate.weight":
        return grouped(values, 0, dv)
    if kind in ("ssm_beta.weight", "ssm_alpha.weight", "ssm_dt.bias"):
        return grouped(values, 0, 1)
    if kind == "ssm_out.weight":
        return grouped(values, 1, dv)
    if kind == "ssm_a":
        if not (values < 0).all():
            raise UnsupportedModelError(
                f"{gguf_name} holds values >= 0; llama.cpp stores -exp(A_log) there, which is "
                "negative: the file is corrupt or not from llama.cpp's converter"
            )
        return grouped(np.log(-values), 0, 1)
    return values
