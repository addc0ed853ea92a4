"""The planner's KV cache figure is what the runtime really allocates for a bundle."""

from __future__ import annotations

from pathlib import Path

from edge_sdk import load_bundle, plan
from edge_sdk.runtime import load


def test_kv_cache_estimate_equals_the_runtime_allocation(demo_bundle_int8: Path) -> None:
    """The plan is for the Orin's GPU paths, which run the standard graph (here: on the CPU)."""
    bundle = load_bundle(demo_bundle_int8)
    generator = load(demo_bundle_int8, fused_graph=False)
    stats = generator.generate("Once upon a time", max_new_tokens=2).stats
    estimate = plan(
        bundle.config,
        "orin-nano-8gb",
        precision="int8",
        context=bundle.max_sequence_length,
        kv_dtype="fp32",
    )
    assert stats.kv_cache_bytes == estimate.memory.kv_allocated
    assert estimate.memory.kv_cache == (
        2
        * bundle.config.num_layers
        * bundle.config.num_kv_heads
        * bundle.config.head_dim
        * bundle.max_sequence_length
        * 4
    )
