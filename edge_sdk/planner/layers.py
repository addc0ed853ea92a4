"""What each decoder layer multiplies and mixes, by layer type: the planner's per-layer model.

- Weight matrices a token multiplies (:func:`layer_matmuls`): attention layers ``q, k, v, o``
  (Qwen3.5's gated attention: ``q`` twice as wide, the output gate), Gated DeltaNet layers
  ``in_proj_qkv, in_proj_z, in_proj_b, in_proj_a, out_proj``; then the MLP (gate, up, down).
  Whatever else a layer holds (norms, q/k norms, biases, the depthwise conv, ``A_log``,
  ``dt_bias``) is :func:`layer_float_parameters`: ``ModelConfig.layer_parameters`` less the
  matrices, so the two always add up to the model's parameter count.
- Token-mixer FLOPs of one token (:func:`mixer_flops`): attention over the positions it attends
  to (``4 x heads x head_dim`` per position: ``Q.K`` and ``P.V``), a sliding layer at most its
  window; a Gated DeltaNet layer a fixed cost whatever the context (the depthwise conv over
  ``conv_kernel`` positions, and per value head about ``7 x key_head_dim x value_head_dim`` for
  the state's decay, ``S.k``, the rank-one update and ``q.S``).
"""

from __future__ import annotations

from edge_sdk.config import ModelConfig

__all__ = [
    "layer_float_parameters",
    "layer_matmuls",
    "matmul_parameters",
    "mixer_flops",
    "prefill_mixer_flops",
]

# Multiply-adds per element of a Gated DeltaNet state for one token (decay, S.k, update, q.S).
_RECURRENCE_OPS = 7


def layer_matmuls(config: ModelConfig, index: int) -> tuple[tuple[int, int], ...]:
    """The weight matrices ``(in, out)`` a token multiplies in layer ``index``."""
    h, inter = config.hidden_size, config.intermediate_size
    mlp = ((h, inter), (h, inter), (inter, h))
    linear = config.linear_attention
    if config.layer_type(index) == "linear_attention" and linear is not None:
        values = linear.num_value_heads * linear.value_head_dim
        heads = linear.num_value_heads
        return ((h, linear.conv_channels), (h, values), (h, heads), (h, heads), (values, h), *mlp)
    gated = config.architecture == "qwen3_5"  # the query projection also yields an output gate
    q_out = 2 * config.q_size if gated else config.q_size
    kv = config.kv_size
    return ((h, q_out), (h, kv), (h, kv), (config.q_size, h), *mlp)


def layer_float_parameters(config: ModelConfig, index: int) -> int:
    """Parameters of layer ``index`` outside its weight matrices (norms, biases, conv, gates)."""
    matrices = sum(n_in * n_out for n_in, n_out in layer_matmuls(config, index))
    return config.layer_parameters(index) - matrices


def matmul_parameters(config: ModelConfig) -> int:
    """Weight-matrix parameters of all layers: what one token multiplies, LM head aside."""
    return sum(
        n_in * n_out for i in range(config.num_layers) for n_in, n_out in layer_matmuls(config, i)
    )


def _attended(config: ModelConfig, index: int, position: int) -> int:
    window = config.layer_window(index)
    return position if window is None else min(position, window)


def _recurrence_flops(config: ModelConfig) -> float:
    linear = config.linear_attention
    if linear is None:
        return 0.0
    state = linear.num_value_heads * linear.key_head_dim * linear.value_head_dim
    return float(2 * linear.conv_channels * linear.conv_kernel + _RECURRENCE_OPS * state)


def mixer_flops(config: ModelConfig, index: int, position: int) -> float:
    """Token-mixer FLOPs of one token of layer ``index`` with ``position`` positions cached."""
    if config.layer_type(index) == "linear_attention":
        return _recurrence_flops(config)
    return float(4 * config.q_size * _attended(config, index, position))


def _attended_sum(prompt: int, window: int | None) -> float:
    """Sum over t = 1..prompt of min(t, window): positions attended while prefilling."""
    if window is None or prompt <= window:
        return prompt * (prompt + 1) / 2
    return window * (window + 1) / 2 + (prompt - window) * window


def prefill_mixer_flops(config: ModelConfig, index: int, prompt: int) -> float:
    """Token-mixer FLOPs of layer ``index`` over a ``prompt``-token prompt (causal)."""
    if config.layer_type(index) == "linear_attention":
        return prompt * _recurrence_flops(config)
    return 4 * config.q_size * _attended_sum(prompt, config.layer_window(index))
