"""The cache of ``batch`` sequences of ``context`` tokens, per layer type: what the model needs
and what this SDK's runtime allocates.

- Full attention: K and V for every position, ``2 x kv_heads x head_dim x context x batch``
  values per layer, in the KV dtype.
- Sliding-window attention: the model needs only the last ``min(window, context)`` positions.
  This runtime keeps every position for every attention layer anyway (the standard graph's
  past/present buffers and the fused graph's shared KV buffer are ``max_seq_len`` long), so a
  sliding layer is *allocated* like a full one; both figures are reported.
- Linear attention (Gated DeltaNet): a fixed state per sequence, ``LinearAttention.
  state_values()`` values (the conv window and the recurrent matrices), whatever the context.
  It is float32 (:data:`STATE_DTYPE`), the dtype the runtime keeps the recurrent state in
  (the recurrence accumulates into it), whatever ``--kv-dtype`` says.

One copy is what a step reads; the standard graph the Orin's GPU paths run binds a past and a
present buffer per tensor (:data:`KV_BUFFERS` copies), the state's included.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_sdk.config import LAYER_TYPES, ModelConfig
from edge_sdk.planner.precision import DTYPE_BYTES

__all__ = ["KV_BUFFERS", "STATE_DTYPE", "CacheEstimate", "estimate_cache", "kv_cache_bytes"]

# On the Orin's GPU paths the runtime runs the standard graph, whose cache keeps two buffers per
# tensor (past read, present written in place, swapped each step: a slice of one buffer is not
# contiguous), so it allocates two copies of the cache for the bundle's maximum context
# (runtime/kv_cache.py). The CPU's fused graph (model.ort.onnx) needs one: the plan is for the GPU.
KV_BUFFERS = 2
#: The linear-attention state's dtype (conv window and recurrent matrices).
STATE_DTYPE = "fp32"


@dataclass(frozen=True)
class CacheEstimate:
    """One copy of the cache, in bytes, by layer type; ``copies`` is what the runtime holds."""

    context: int
    batch: int
    kv_dtype: str
    state_dtype: str
    full_layers: int
    sliding_layers: int
    linear_layers: int
    window: int | None  # positions a sliding layer attends to
    full: int  # K and V of the full-attention layers: every position
    sliding: int  # K and V the sliding layers need: min(window, context) positions
    sliding_allocated: int  # what this runtime keeps for them: every position
    state: int  # the linear-attention layers' state: fixed whatever the context
    state_values: int  # values of one linear layer's state for one sequence
    copies: int = KV_BUFFERS

    @property
    def attention(self) -> int:
        """K and V the attention layers need (one copy)."""
        return self.full + self.sliding

    @property
    def needed(self) -> int:
        """What the model needs (one copy): attention KV plus the fixed state."""
        return self.attention + self.state

    @property
    def allocated(self) -> int:
        """What this runtime allocates: ``copies`` x (every position of every attention layer
        plus the state)."""
        return self.copies * (self.full + self.sliding_allocated + self.state)

    @property
    def step_bytes(self) -> int:
        """Cache bytes a decode step moves: the K/V it attends over, the state read and
        rewritten."""
        return self.attention + 2 * self.state


def _kv_per_position(config: ModelConfig, dtype: str) -> float:
    """Bytes of K and V of one layer, one position, one sequence."""
    return 2 * config.num_kv_heads * config.head_dim * DTYPE_BYTES[dtype]


def estimate_cache(
    config: ModelConfig, context: int, batch: int = 1, kv_dtype: str = "fp16"
) -> CacheEstimate:
    """The cache of ``batch`` sequences of ``context`` tokens, per layer type."""
    kinds = [config.layer_type(i) for i in range(config.num_layers)]
    full, sliding, linear = (kinds.count(kind) for kind in LAYER_TYPES)
    window = config.sliding_window if sliding else None
    per_layer = _kv_per_position(config, kv_dtype) * batch
    kept = context if window is None else min(window, context)
    values = config.linear_attention.state_values() if config.linear_attention else 0
    state = linear * values * batch * DTYPE_BYTES[STATE_DTYPE]
    return CacheEstimate(
        context=context,
        batch=batch,
        kv_dtype=kv_dtype,
        state_dtype=STATE_DTYPE,
        full_layers=full,
        sliding_layers=sliding,
        linear_layers=linear,
        window=window,
        full=int(full * per_layer * context),
        sliding=int(sliding * per_layer * kept),
        sliding_allocated=int(sliding * per_layer * context),
        state=int(state),
        state_values=values,
    )


def kv_cache_bytes(config: ModelConfig, context: int, batch: int = 1, dtype: str = "fp16") -> int:
    """The cache the model needs, one copy: K and V of each attention layer for the positions it
    attends to (a sliding layer: its window) plus the linear layers' fixed state."""
    return estimate_cache(config, context, batch, dtype).needed
