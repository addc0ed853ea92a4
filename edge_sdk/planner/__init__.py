"""The planner: will a model fit on a Jetson Orin module, how fast can it be, what does it cost.

Core: standard library and other ``edge_sdk`` core modules only (no torch, no onnxruntime).
:func:`plan` is the entry point; ``edge-plan`` (:mod:`edge_sdk.planner.cli`) prints its result.
"""

from __future__ import annotations

from edge_sdk.planner.cache import CacheEstimate, estimate_cache
from edge_sdk.planner.catalog import DEVICES, Device, PowerModeSpec, device_names, get_device
from edge_sdk.planner.cost import EnergyEstimate, TcoEstimate, estimate_tco, read_tokens_per_joule
from edge_sdk.planner.inputs import ModelSource, resolve_model
from edge_sdk.planner.memory import (
    MemoryEstimate,
    WeightBreakdown,
    estimate_memory,
    kv_cache_bytes,
    max_batch,
    max_context,
    weight_bytes,
)
from edge_sdk.planner.nvpmodel_conf import device_with_conf
from edge_sdk.planner.plan import CostInputs, Plan, plan
from edge_sdk.planner.precision import PRECISIONS, WeightFormat, weight_format
from edge_sdk.planner.presets import PRESETS, get_preset, preset_names
from edge_sdk.planner.rule_of_thumb import RuleOfThumbComparison, compare_rule_of_thumb
from edge_sdk.planner.speed import SpeedEstimate, decode_flops, prefill_flops

__all__ = [
    "DEVICES",
    "PRECISIONS",
    "PRESETS",
    "CacheEstimate",
    "CostInputs",
    "Device",
    "EnergyEstimate",
    "MemoryEstimate",
    "ModelSource",
    "Plan",
    "PowerModeSpec",
    "RuleOfThumbComparison",
    "SpeedEstimate",
    "TcoEstimate",
    "WeightBreakdown",
    "WeightFormat",
    "compare_rule_of_thumb",
    "decode_flops",
    "device_names",
    "device_with_conf",
    "estimate_cache",
    "estimate_memory",
    "estimate_tco",
    "get_device",
    "get_preset",
    "kv_cache_bytes",
    "max_batch",
    "max_context",
    "plan",
    "prefill_flops",
    "preset_names",
    "read_tokens_per_joule",
    "resolve_model",
    "weight_bytes",
    "weight_format",
]
