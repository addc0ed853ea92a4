"""The planner's entry point: one model on one device, mode and precision -> a :class:`Plan`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from edge_sdk.config import ModelConfig
from edge_sdk.errors import ConfigError
from edge_sdk.planner.backends import BackendDecode, backend_decodes
from edge_sdk.planner.catalog import Device, PowerModeSpec, get_device
from edge_sdk.planner.cost import (
    DEFAULT_ELECTRICITY_PRICE,
    EnergyEstimate,
    TcoEstimate,
    estimate_energy,
    estimate_tco,
)
from edge_sdk.planner.memory import (
    DEFAULT_HEADROOM,
    MemoryEstimate,
    estimate_memory,
    max_batch,
    max_context,
)
from edge_sdk.planner.precision import DTYPE_BYTES, weight_format
from edge_sdk.planner.rule_of_thumb import RuleOfThumbComparison, compare_rule_of_thumb
from edge_sdk.planner.speed import SpeedEstimate, estimate_speed

__all__ = ["CostInputs", "Plan", "plan"]

DEFAULT_CONTEXT = 4096


@dataclass(frozen=True)
class CostInputs:
    """Inputs of the energy and TCO estimates (every one a CLI flag)."""

    electricity_price: float = DEFAULT_ELECTRICITY_PRICE  # per kWh
    years: float = 3.0
    utilisation: float = 0.5
    hardware_price: float | None = None  # None: the catalog's list price
    power_w: float | None = None  # None: the mode's budget
    idle_power_w: float = 0.0
    tokens_per_joule: float | None = None  # measured (an edge-power efficiency summary)
    efficiency_source: str = ""


@dataclass(frozen=True)
class Plan:
    """Will ``model`` fit on ``device`` in ``mode`` at ``precision``, how fast, at what cost."""

    model: str
    device: str
    device_title: str
    mode: str
    mode_source: str
    budget_w: float
    precision: str
    context: int
    batch: int
    parameters: int
    memory: MemoryEstimate
    max_context: int
    max_context_limit: str  # "memory", or the context limit's source: "model" or "bundle"
    max_batch: int  # at this context
    speed: SpeedEstimate
    energy: EnergyEstimate
    tco: TcoEstimate
    rule_of_thumb: RuleOfThumbComparison
    bundle_model_bytes: int | None = None
    context_limit: int = 0  # most tokens a sequence may hold (the model's or the bundle's)
    context_limit_source: str = "model"  # "model" (max_position_embeddings) or "bundle"
    context_capped: bool = False  # the default context was above the limit and planned at it
    backends: tuple[BackendDecode, ...] = ()  # int8/int4: decode bytes and bound per backend

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (``--json``)."""
        data = dataclasses.asdict(self)
        data["memory"]["free"] = self.memory.free
        cache = self.memory.cache
        data["memory"]["cache"].update(
            attention=cache.attention, needed=cache.needed, allocated=cache.allocated
        )
        data["rule_of_thumb"]["memory_ratio"] = self.rule_of_thumb.memory_ratio
        data["rule_of_thumb"]["flops_ratio"] = self.rule_of_thumb.flops_ratio
        return data


def plan(
    config: ModelConfig,
    device: Device | str,
    *,
    model_name: str = "model",
    mode: str | None = None,
    precision: str = "int8",
    group_size: int | None = None,
    context: int | None = None,
    batch: int = 1,
    prompt: int | None = None,
    kv_dtype: str | None = None,
    quantize_embedding: bool = True,
    headroom: float = DEFAULT_HEADROOM,
    costs: CostInputs | None = None,
    bundle_model_bytes: int | None = None,
    context_limit: int | None = None,
    context_limit_source: str = "model",
) -> Plan:
    """Plan one deployment. ``context`` defaults to ``DEFAULT_CONTEXT`` or the context limit
    when that is lower; ``prompt`` to half the context (the TTFT prompt). ``context_limit``: the
    most tokens a sequence may hold, default the model's ``max_position_embeddings``; a bundle's
    is its ``max_sequence_length`` (``context_limit_source="bundle"``). A ``context`` above the
    limit is a :class:`~edge_sdk.ConfigError`."""
    if isinstance(device, str):
        device = get_device(device)
    limit = config.max_position_embeddings if context_limit is None else context_limit
    capped = context is None and limit < DEFAULT_CONTEXT
    if context is None:
        context = min(DEFAULT_CONTEXT, limit)
    elif context > limit:
        raise ConfigError(_above_limit(context, limit, context_limit_source, config))
    if kv_dtype is not None and kv_dtype not in DTYPE_BYTES:
        raise ConfigError(f"unknown KV cache dtype {kv_dtype!r}; valid: {', '.join(DTYPE_BYTES)}")
    costs = costs or CostInputs()
    fmt = weight_format(precision, group_size)
    power_mode: PowerModeSpec = device.mode(mode)
    memory = estimate_memory(
        config, device, fmt, context, batch, prompt, kv_dtype, quantize_embedding, headroom
    )
    longest = max_context(
        config, device, fmt, batch, prompt, memory.kv_dtype, quantize_embedding, headroom, limit
    )
    prompt = max(1, context // 2) if prompt is None else prompt
    widest = max_batch(
        config, device, fmt, context, prompt, memory.kv_dtype, quantize_embedding, headroom
    )
    speed = estimate_speed(
        config, device, power_mode, fmt, memory.weights, context, batch, prompt, memory.kv_dtype
    )
    energy = estimate_energy(
        speed.decode_tps,
        power_mode.budget_w,
        costs.electricity_price,
        costs.tokens_per_joule,
        costs.efficiency_source,
    )
    power = costs.power_w if costs.power_w is not None else power_mode.budget_w
    tco = estimate_tco(
        speed.decode_tps,
        device.price_usd if costs.hardware_price is None else costs.hardware_price,
        power,
        costs.years,
        costs.utilisation,
        costs.electricity_price,
        costs.idle_power_w,
    )
    rule = compare_rule_of_thumb(
        config, fmt, memory.weights.stored, memory.total, memory.kv_cache, prompt
    )
    return Plan(
        model=model_name,
        device=device.name,
        device_title=device.title,
        mode=power_mode.name,
        mode_source=power_mode.source,
        budget_w=power_mode.budget_w,
        precision=fmt.label,
        context=context,
        batch=batch,
        parameters=config.parameter_count(),
        memory=memory,
        max_context=longest,
        max_context_limit=context_limit_source if longest == limit else "memory",
        max_batch=widest,
        speed=speed,
        energy=energy,
        tco=tco,
        rule_of_thumb=rule,
        bundle_model_bytes=bundle_model_bytes,
        context_limit=limit,
        context_limit_source=context_limit_source,
        context_capped=capped,
        backends=backend_decodes(config, fmt.name, context, batch, speed.bandwidth_bytes_s),
    )


def _above_limit(context: int, limit: int, source: str, config: ModelConfig) -> str:
    if source == "bundle":
        longer = (
            f", or re-export it with edge-export --max-seq-len N (up to the model's "
            f"{config.max_position_embeddings})"
            if limit < config.max_position_embeddings
            else ""
        )
        return (
            f"--context {context} is above the bundle's limit of {limit} tokens (its "
            f"max_sequence_length): pass --context {limit} or less{longer}"
        )
    return (
        f"--context {context} is above the model's limit of {limit} tokens "
        f"(max_position_embeddings): pass --context {limit} or less"
    )
