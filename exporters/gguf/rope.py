"""RoPE scaling of a GGUF file: now :mod:`edge_sdk.gguf_rope` (the planner reads GGUF files too,
and may not import the exporters); kept here for the exporters' imports."""

from edge_sdk.gguf_rope import rope_scaling_from_factors

__all__ = ["rope_scaling_from_factors"]
