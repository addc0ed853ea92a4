"""Memory model: weights by precision, KV cache, prefill workspace, runtime overhead, fit.

Sizes are bytes; reports print GB = 10^9 bytes. Assumptions (documented in the README):

- Weights follow the layout of :mod:`edge_sdk.planner.precision` (``stored``: the bundle's
  model files; ``total``: resident, with the load-time copy of a tied head).
- Cache, per layer type (:mod:`edge_sdk.planner.cache`): K and V of full-attention layers for the
  whole context, of sliding layers for their window (what the model needs; this runtime keeps
  every position), a fixed state for linear-attention layers; allocated up front, twice (what a
  static-shape runtime or TensorRT engine does).
- Prefill workspace: the transient tensors of one layer for the whole prompt, with attention
  scores materialized (``heads x prompt^2``; a flash-attention kernel needs none of that term)
  and logits for every prompt position (``prompt x vocab``: the exported graph returns them).
- Runtime overhead: 256 MB (allocator arenas, kernels' scratch) plus 5% of weights + KV cache for
  fragmentation. The OS and the CUDA context are the device's ``reserved_bytes``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

from edge_sdk.config import ModelConfig
from edge_sdk.errors import ConfigError
from edge_sdk.planner.cache import KV_BUFFERS, CacheEstimate, estimate_cache, kv_cache_bytes
from edge_sdk.planner.catalog import Device
from edge_sdk.planner.layers import layer_float_parameters, layer_matmuls
from edge_sdk.planner.precision import (
    DTYPE_BYTES,
    WeightFormat,
    int4_int8_layer,
    weight_format,
)

__all__ = [
    "KV_BUFFERS",
    "MemoryEstimate",
    "WeightBreakdown",
    "estimate_memory",
    "kv_cache_bytes",
    "matmul_bytes",
    "max_batch",
    "max_context",
    "prefill_workspace_bytes",
    "runtime_overhead_bytes",
    "weight_bytes",
]

RUNTIME_FIXED_BYTES = 256 * 10**6
RUNTIME_FRACTION = 0.05
DEFAULT_HEADROOM = 0.10


@dataclass(frozen=True)
class WeightBreakdown:
    """Bytes of the weights, by part: as stored in a bundle, as resident in memory, as read per
    token."""

    precision: str
    layers: int  # token-mixer + MLP matrices of all layers (with scales / zero points)
    norms_biases: int  # and every other float part: q/k norms, convs, gates
    embedding: int  # the token-embedding table (Gather), with scales
    lm_head: int  # an untied LM head (0 when tied: it reuses the table)
    tied_copy: int  # the transposed table a runtime builds at load for a tied head
    stored: int  # in the bundle: layers + norms + embedding + LM head
    total: int  # resident in memory: stored + tied copy
    read_per_token: int  # layers + norms + LM head (or the table) + one embedding row


@dataclass(frozen=True)
class MemoryEstimate:
    """Everything that must fit in the device's memory, and whether it does."""

    weights: WeightBreakdown
    kv_cache: int  # what the model needs, one copy: attention KV (sliding: its window) + state
    kv_dtype: str
    kv_allocated: int  # what this runtime allocates: KV_BUFFERS copies, every position kept
    workspace: int
    overhead: int
    total: int
    device_memory: int
    reserved: int
    usable: int  # device memory - reserved, less the headroom
    headroom: float
    fits: bool
    cache: CacheEstimate  # the cache by layer type

    @property
    def free(self) -> int:
        """Usable memory left (negative when it does not fit)."""
        return self.usable - self.total


def matmul_bytes(fmt: WeightFormat, in_features: int, out_features: int) -> int:
    """One weight matrix [in, out]: quantized per output channel (int8) or per group (int4)."""
    values = in_features * out_features
    if not fmt.quantized:
        return int(values * fmt.weight_bytes)
    if fmt.group_size is None:  # per output channel
        return int(values * fmt.weight_bytes) + out_features * fmt.scale_bytes
    groups = math.ceil(in_features / fmt.group_size) * out_features
    return int(values * fmt.weight_bytes + groups * (fmt.scale_bytes + fmt.zero_point_bytes))


def int4_layer_format(
    config: ModelConfig, fmt: WeightFormat, index: int, int8: WeightFormat
) -> WeightFormat:
    """``fmt``, or ``int8`` for the layers the ``--int4`` default keeps at int8 (``fmt`` int4)."""
    return int8 if fmt.name == "int4" and int4_int8_layer(config, index) else fmt


def _layers_bytes(config: ModelConfig, fmt: WeightFormat) -> int:
    """Every layer's weight matrices, each in ``fmt`` (int4: the default's int8 layers in int8
    blocks)."""
    int8 = weight_format("int8")
    return sum(
        matmul_bytes(int4_layer_format(config, fmt, i, int8), n_in, n_out)
        for i in range(config.num_layers)
        for n_in, n_out in layer_matmuls(config, i)
    )


def weight_bytes(
    config: ModelConfig, fmt: WeightFormat, quantize_embedding: bool = True
) -> WeightBreakdown:
    """Weight bytes of ``config`` in format ``fmt``: stored, resident and read per decode token."""
    h, vocab = config.hidden_size, config.vocab_size
    layers = _layers_bytes(config, fmt)
    floats = sum(layer_float_parameters(config, i) for i in range(config.num_layers)) + h
    norms_biases = floats * fmt.float_bytes  # + h: the final norm
    head_scales = 0
    if fmt.quantized and quantize_embedding:  # as the Gather reads it: [vocab, hidden]
        # int8: in the weights' blocks along a row where they divide it, else one scale per row
        blocked = bool(fmt.group_size) and h % (fmt.group_size or 1) == 0
        per_row = dataclasses.replace(fmt, group_size=None)
        if fmt.name == "int4":  # the int8 table, one scale per row
            table_format = dataclasses.replace(weight_format("int8"), group_size=None)
        else:
            table_format = per_row if not blocked else fmt
        table = matmul_bytes(table_format, h, vocab)
        if fmt.name == "int8" and config.tie_word_embeddings:  # the tied head's own scale copy
            head_scales = table - int(vocab * h * fmt.weight_bytes)
    else:
        table = vocab * h * fmt.float_bytes
    embedding = table + head_scales
    tied = config.tie_word_embeddings
    lm_head = 0 if tied else matmul_bytes(fmt, h, vocab)
    tied_copy = table if tied and fmt.tied_copy_at_load else 0
    stored = layers + norms_biases + embedding + lm_head
    row = math.ceil(embedding / vocab)
    read = layers + norms_biases + (lm_head if lm_head else embedding) + row
    return WeightBreakdown(
        fmt.label,
        layers,
        norms_biases,
        embedding,
        lm_head,
        tied_copy,
        stored,
        stored + tied_copy,
        read,
    )


def prefill_workspace_bytes(
    config: ModelConfig, prompt: int, batch: int = 1, dtype: str = "fp16"
) -> int:
    """Peak transient activations while one layer processes the whole prompt."""
    h, p = config.hidden_size, prompt
    residual = 2 * p * h
    attention = p * (2 * config.q_size + 2 * config.kv_size) + 2 * config.num_heads * p * p
    mlp = 3 * p * config.intermediate_size
    logits = p * config.vocab_size
    return int(batch * DTYPE_BYTES[dtype] * (residual + max(attention, mlp) + logits))


def runtime_overhead_bytes(weights: int, kv_cache: int) -> int:
    """Allocator arenas and scratch: a fixed part plus a fraction of weights and cache."""
    return int(RUNTIME_FIXED_BYTES + RUNTIME_FRACTION * (weights + kv_cache))


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ConfigError(f"--{name} must be a positive integer, got {value}")


def estimate_memory(
    config: ModelConfig,
    device: Device,
    fmt: WeightFormat,
    context: int,
    batch: int = 1,
    prompt: int | None = None,
    kv_dtype: str | None = None,
    quantize_embedding: bool = True,
    headroom: float = DEFAULT_HEADROOM,
) -> MemoryEstimate:
    """Memory needed to serve ``batch`` sequences of ``context`` tokens, and whether it fits."""
    prompt = max(1, context // 2) if prompt is None else prompt
    _check_positive(context=context, batch=batch, prompt=prompt)
    if prompt > context:
        raise ConfigError(f"--prompt ({prompt}) cannot exceed --context ({context})")
    if not 0 <= headroom < 1:
        raise ConfigError(f"--headroom must be in [0, 1), got {headroom}")
    kv_dtype = kv_dtype or fmt.activation_dtype
    weights = weight_bytes(config, fmt, quantize_embedding)
    cache = estimate_cache(config, context, batch, kv_dtype)
    workspace = prefill_workspace_bytes(config, prompt, batch, fmt.activation_dtype)
    overhead = runtime_overhead_bytes(weights.total, cache.allocated)
    total = weights.total + cache.allocated + workspace + overhead
    usable = int((device.memory_bytes - device.reserved_bytes) * (1 - headroom))
    return MemoryEstimate(
        weights=weights,
        kv_cache=cache.needed,
        kv_dtype=kv_dtype,
        kv_allocated=cache.allocated,
        workspace=workspace,
        overhead=overhead,
        total=total,
        device_memory=device.memory_bytes,
        reserved=device.reserved_bytes,
        usable=usable,
        headroom=headroom,
        fits=total <= usable,
        cache=cache,
    )


def _largest(fits: Callable[[int], bool], upper: int) -> int:
    """Largest n in [0, upper] with fits(n), for a monotone predicate (0 if none)."""
    low, high = 0, upper
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def max_context(
    config: ModelConfig,
    device: Device,
    fmt: WeightFormat,
    batch: int = 1,
    prompt: int | None = None,
    kv_dtype: str | None = None,
    quantize_embedding: bool = True,
    headroom: float = DEFAULT_HEADROOM,
    limit: int | None = None,
) -> int:
    """Longest context (up to ``limit``, default the model's ``max_position_embeddings``) that
    fits; 0 if none.

    With ``prompt`` None the prompt is half the context, as in :func:`estimate_memory`;
    otherwise the prompt is ``min(prompt, context)``.
    """

    def fits(context: int) -> bool:
        p = None if prompt is None else min(prompt, context)
        return estimate_memory(
            config, device, fmt, context, batch, p, kv_dtype, quantize_embedding, headroom
        ).fits

    return _largest(fits, config.max_position_embeddings if limit is None else limit)


def max_batch(
    config: ModelConfig,
    device: Device,
    fmt: WeightFormat,
    context: int,
    prompt: int | None = None,
    kv_dtype: str | None = None,
    quantize_embedding: bool = True,
    headroom: float = DEFAULT_HEADROOM,
    limit: int = 4096,
) -> int:
    """Largest batch (up to ``limit``) of ``context``-token sequences that fits; 0 if none."""

    def fits(batch: int) -> bool:
        return estimate_memory(
            config, device, fmt, context, batch, prompt, kv_dtype, quantize_embedding, headroom
        ).fits

    return _largest(fits, limit)
