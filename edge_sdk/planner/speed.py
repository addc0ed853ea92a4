"""Compute and speed model: FLOPs per token, time to first token, decode tokens/s (the roofline).

- Decode FLOPs of the token at position ``t``: ``2 x (weight-matrix parameters of the layers +
  LM head)`` (one multiply-add per weight; each layer's own matrices, :mod:`.layers`) plus each
  layer's token mixer: attention over the ``t`` cached positions (``4 x heads x head_dim`` per
  position: ``Q.K`` and ``P.V``), a sliding layer over at most its window, a linear-attention
  layer a fixed recurrence whatever ``t``. The embedding is a lookup, not a matmul, and norms
  are negligible.
- Prefill of ``P`` prompt tokens: the sum of that over ``t = 1..P`` (causal attention), with
  logits for every prompt position (the exported graph returns them).
- A step takes at least ``bytes read / bandwidth`` and at least ``FLOPs / peak``; the larger is
  the bound (the roofline). Bytes: every weight read once, plus the cache the step attends over
  (a sliding layer its window) and the linear layers' state, read and rewritten. Decode at
  batch 1 is bandwidth-bound: tokens/s <= bandwidth / bytes read per token. Prefill is
  compute-bound.
- Peaks are the dense tensor-core peaks of the precision's compute type (int8 TOPS for int8,
  FP16 for fp16/bf16/int4, CUDA-core FP32 for fp32), scaled by the power mode. Real runtimes
  reach 60-80% of the bandwidth bound (MLC INT4 Llama 3.2 3B on Orin Nano 8GB: 27.7 tok/s against
  a 37 tok/s bound) and less of the compute peak.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_sdk.config import ModelConfig
from edge_sdk.planner.cache import estimate_cache
from edge_sdk.planner.catalog import Device, PowerModeSpec
from edge_sdk.planner.layers import matmul_parameters, mixer_flops, prefill_mixer_flops
from edge_sdk.planner.memory import WeightBreakdown
from edge_sdk.planner.precision import WeightFormat

__all__ = ["SpeedEstimate", "decode_flops", "estimate_speed", "peak_ops", "prefill_flops"]


@dataclass(frozen=True)
class SpeedEstimate:
    """Roofline bounds for one device, mode, precision, context and batch."""

    bandwidth_bytes_s: float  # DRAM bandwidth in this mode
    peak_ops_s: float  # GPU peak of the compute type in this mode
    prompt_tokens: int
    prefill_flops: float
    ttft_s: float  # lower bound on the time to first token
    ttft_bound: str  # "compute" or "bandwidth"
    decode_flops_per_token: float  # at the end of the context
    bytes_per_step: int  # weights + the cache the batch's step moves, at the end of the context
    decode_tps: float  # upper bound, all sequences together, at the end of the context
    decode_tps_per_sequence: float
    decode_bound: str
    weights_only_tps: float  # bandwidth / weight bytes read per token: batch 1, empty cache


def _matmul_flops_per_token(config: ModelConfig) -> int:
    """Two FLOPs per weight a token multiplies: every layer's matrices and the LM head."""
    return 2 * (matmul_parameters(config) + config.hidden_size * config.vocab_size)


def decode_flops(config: ModelConfig, position: int) -> float:
    """FLOPs of one decode token that attends to ``position`` cached positions."""
    mixers = sum(mixer_flops(config, i, position) for i in range(config.num_layers))
    return float(_matmul_flops_per_token(config) + mixers)


def prefill_flops(config: ModelConfig, prompt: int, batch: int = 1) -> float:
    """FLOPs to process a ``prompt``-token prompt (causal attention, logits for every position)."""
    mixers = sum(prefill_mixer_flops(config, i, prompt) for i in range(config.num_layers))
    return float(batch * (_matmul_flops_per_token(config) * prompt + mixers))


def peak_ops(device: Device, mode: PowerModeSpec, fmt: WeightFormat) -> float:
    """The dense peak that bounds this precision's compute, in this mode."""
    base = {"int8": device.int8_ops_s, "fp16": device.fp16_flops_s, "fp32": device.fp32_flops_s}
    return base[fmt.compute] * device.compute_scale(mode)


def estimate_speed(
    config: ModelConfig,
    device: Device,
    mode: PowerModeSpec,
    fmt: WeightFormat,
    weights: WeightBreakdown,
    context: int,
    batch: int,
    prompt: int,
    kv_dtype: str,
) -> SpeedEstimate:
    """TTFT and decode tokens/s bounds (the roofline)."""
    bandwidth = device.bandwidth_bytes_s * device.bandwidth_scale(mode)
    peak = peak_ops(device, mode, fmt)
    flops = prefill_flops(config, prompt, batch)
    prefill_compute = flops / peak
    prompt_cache = estimate_cache(config, prompt, batch, kv_dtype).step_bytes
    prefill_memory = (weights.read_per_token + prompt_cache) / bandwidth
    ttft = max(prefill_compute, prefill_memory)
    step_cache = estimate_cache(config, context, batch, kv_dtype).step_bytes
    step_bytes = weights.read_per_token + step_cache
    step_flops = batch * decode_flops(config, context)
    memory_time, compute_time = step_bytes / bandwidth, step_flops / peak
    step = max(memory_time, compute_time)
    return SpeedEstimate(
        bandwidth_bytes_s=bandwidth,
        peak_ops_s=peak,
        prompt_tokens=prompt,
        prefill_flops=flops,
        ttft_s=ttft,
        ttft_bound="compute" if prefill_compute >= prefill_memory else "bandwidth",
        decode_flops_per_token=decode_flops(config, context),
        bytes_per_step=step_bytes,
        decode_tps=batch / step,
        decode_tps_per_sequence=1 / step,
        decode_bound="bandwidth" if memory_time >= compute_time else "compute",
        weights_only_tps=bandwidth / weights.read_per_token,
    )
