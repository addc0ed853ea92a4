"""Where the widely copied rule of thumb differs from the planner's model, and why.

The rule: memory = ``params x 2 (weights + activations) x bytes per value`` (7B at BF16 ->
26.8 GB) and compute = ``2 x seq_len x layers x hidden^2`` FLOPs. Why it is wrong for inference:

- Memory: inference keeps no activations per parameter (that is training, which stores
  activations for the backward pass). Weights are ``params x bytes`` (7B at BF16 ~13.5 GB); what
  grows is the KV cache, which depends on context, batch and the KV heads (GQA), not on the
  parameter count; the prefill workspace is transient and sized by the prompt.
- Compute: a layer's weight matrices hold ``4 h^2`` (attention, fewer with GQA; a
  linear-attention layer its own projections) ``+ 3 h x intermediate`` (SwiGLU MLP) parameters,
  about ``12 h^2`` rather than ``h^2``, so the forward pass is ``2 x tokens x parameters``; it
  also misses the LM head (``h x vocab``, large for small models with big vocabularies) and
  attention over the context, which grows with the square of the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_sdk.config import ModelConfig
from edge_sdk.planner.layers import layer_matmuls, matmul_parameters
from edge_sdk.planner.precision import DTYPE_BYTES, WeightFormat
from edge_sdk.planner.speed import prefill_flops
from edge_sdk.planner.units import format_bytes, format_count, format_flops

__all__ = ["RuleOfThumbComparison", "compare_rule_of_thumb"]


@dataclass(frozen=True)
class RuleOfThumbComparison:
    """The rule of thumb's numbers next to the planner's, with the reasons they differ."""

    parameters: int
    bytes_per_value: float
    rule_memory_bytes: float  # params x 2 x bytes
    weights_bytes: int  # planner: stored weights
    total_bytes: int  # planner: weights + KV cache + workspace + overhead
    kv_cache_bytes: int
    prompt_tokens: int
    rule_flops: float  # 2 x seq_len x layers x hidden^2
    prefill_flops: float  # planner
    reasons: tuple[str, ...]

    @property
    def memory_ratio(self) -> float:
        """Rule of thumb / planner total."""
        return self.rule_memory_bytes / self.total_bytes

    @property
    def flops_ratio(self) -> float:
        """Planner prefill FLOPs / rule of thumb."""
        return self.prefill_flops / self.rule_flops


def _uniform(config: ModelConfig) -> bool:
    """Whether every layer multiplies the same matrices."""
    return len({layer_matmuls(config, i) for i in range(config.num_layers)}) == 1


def compare_rule_of_thumb(
    config: ModelConfig,
    fmt: WeightFormat,
    weights_bytes: int,
    total_bytes: int,
    kv_bytes: int,
    prompt: int,
) -> RuleOfThumbComparison:
    """Compare for one model, precision and prompt (``weights_bytes`` etc. from the planner)."""
    params = config.parameter_count()
    per_value = DTYPE_BYTES[fmt.name]
    rule_memory = params * 2 * per_value
    rule_flops = 2.0 * prompt * config.num_layers * config.hidden_size**2
    flops = prefill_flops(config, prompt)
    mlp = 3 * config.hidden_size * config.intermediate_size
    per_layer = round(matmul_parameters(config) / config.num_layers) - mlp  # the token mixer
    uniform = _uniform(config)
    average, mixer = ("", "attention") if uniform else (" on average", "token mixer")
    reasons = (
        f"memory: the rule doubles the weights for 'activations' ({format_count(params)} params "
        f"x 2 x {per_value:g} byte{'' if per_value == 1 else 's'} = {format_bytes(rule_memory)}); "
        "inference stores weights once "
        f"({format_bytes(weights_bytes)} at {fmt.label}) plus a KV cache that depends on context "
        f"and batch, not on parameters ({format_bytes(kv_bytes)} here): "
        f"{format_bytes(total_bytes)} in all",
        f"compute: a layer multiplies by {per_layer + mlp:,} weights{average} "
        f"({(per_layer + mlp) / config.hidden_size**2:.1f} x hidden^2: {mixer} "
        f"{per_layer / config.hidden_size**2:.1f}, MLP {mlp / config.hidden_size**2:.1f}), "
        "not hidden^2; the rule also omits the LM head "
        f"({config.hidden_size:,} x {config.vocab_size:,}) and attention over the context: "
        f"{format_flops(flops)} for a {prompt}-token prompt, not {format_flops(rule_flops)}",
    )
    return RuleOfThumbComparison(
        params,
        per_value,
        rule_memory,
        weights_bytes,
        total_bytes,
        kv_bytes,
        prompt,
        rule_flops,
        flops,
        reasons,
    )
