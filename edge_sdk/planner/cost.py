"""Energy and cost: tokens per joule, energy and electricity cost per million tokens, TCO.

Tokens per joule come from a measured efficiency summary of the power module when one is given
(JSON with ``tokens_per_joule`` at the top level or under ``decode``, ``phases.decode`` (the
decode phase of an ``edge-power`` summary), ``total`` or ``run``, in that order), otherwise from
the estimate ``decode tokens/s bound / mode budget``: the budget caps the module's power, the
bound caps the speed, so the estimate is rough in both directions.
The TCO over N years: hardware price + electricity for ``power x utilisation + idle power x
(1 - utilisation)`` around the clock; the tokens it produces: ``tokens/s x utilisation x time``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_sdk.errors import ConfigError

__all__ = [
    "DEFAULT_ELECTRICITY_PRICE",
    "EnergyEstimate",
    "TcoEstimate",
    "estimate_energy",
    "estimate_tco",
    "read_tokens_per_joule",
]

DEFAULT_ELECTRICITY_PRICE = 0.15  # USD per kWh: assumption, set --electricity-price
_JOULES_PER_KWH = 3.6e6
_SECONDS_PER_YEAR = 365.25 * 24 * 3600
_MILLION = 1e6


@dataclass(frozen=True)
class EnergyEstimate:
    """Energy per token and its electricity cost."""

    tokens_per_joule: float
    source: str  # "measured: FILE" or "estimated from the 15W budget"
    joules_per_token: float
    kwh_per_million_tokens: float
    electricity_price: float  # per kWh
    cost_per_million_tokens: float


@dataclass(frozen=True)
class TcoEstimate:
    """Total cost of ownership of one device over ``years``."""

    years: float
    hardware_price: float
    power_w: float
    idle_power_w: float
    utilisation: float
    electricity_price: float
    energy_kwh: float
    energy_cost: float
    total_cost: float
    tokens: float
    cost_per_million_tokens: float


def _positive_number(value: Any) -> float | None:
    return (
        float(value)
        if isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
        else None
    )


def read_tokens_per_joule(path: str | Path) -> float:
    """The tokens-per-joule figure of an efficiency summary (JSON)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the efficiency file {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"the efficiency file {path} is not JSON: {exc}") from exc
    if isinstance(data, dict):
        found = data.get("phases")
        phases: dict[str, Any] = found if isinstance(found, dict) else {}
        for where in (
            data,
            data.get("decode"),
            phases.get("decode"),
            data.get("total"),
            data.get("run"),
        ):
            if isinstance(where, dict):
                value = _positive_number(where.get("tokens_per_joule"))
                if value is not None:
                    return value
    raise ConfigError(
        f"the efficiency file {path} has no positive 'tokens_per_joule' (looked at the top level "
        "and under 'decode', 'phases.decode', 'total' and 'run'); write one with edge-power"
    )


def estimate_energy(
    tokens_per_s: float,
    budget_w: float,
    electricity_price: float,
    measured_tokens_per_joule: float | None = None,
    source: str = "",
) -> EnergyEstimate:
    """Energy per token from a measurement, or from the speed bound over the power budget."""
    if electricity_price < 0:
        raise ConfigError(f"--electricity-price must be >= 0, got {electricity_price}")
    if measured_tokens_per_joule is not None:
        tpj, where = measured_tokens_per_joule, f"measured: {source}" if source else "measured"
    else:
        tpj, where = (
            tokens_per_s / budget_w,
            source or f"estimated: decode bound / {budget_w:g} W budget",
        )
    kwh = _MILLION / tpj / _JOULES_PER_KWH
    return EnergyEstimate(tpj, where, 1 / tpj, kwh, electricity_price, kwh * electricity_price)


def estimate_tco(
    tokens_per_s: float,
    hardware_price: float,
    power_w: float,
    years: float = 3.0,
    utilisation: float = 0.5,
    electricity_price: float = DEFAULT_ELECTRICITY_PRICE,
    idle_power_w: float = 0.0,
) -> TcoEstimate:
    """Hardware plus electricity over ``years`` and the cost per million tokens produced."""
    checks = {
        "--years": years > 0,
        "--utilisation": 0 < utilisation <= 1,
        "--hardware-price": hardware_price >= 0,
        "--power-draw": power_w > 0,
        "--idle-power": idle_power_w >= 0,
        "--electricity-price": electricity_price >= 0,
    }
    for flag, ok in checks.items():
        if not ok:
            raise ConfigError(
                f"{flag} is out of range (years > 0, 0 < utilisation <= 1, "
                "prices and idle power >= 0, power > 0)"
            )
    seconds = years * _SECONDS_PER_YEAR
    joules = seconds * (power_w * utilisation + idle_power_w * (1 - utilisation))
    kwh = joules / _JOULES_PER_KWH
    energy_cost = kwh * electricity_price
    tokens = tokens_per_s * utilisation * seconds
    total = hardware_price + energy_cost
    per_million = total / tokens * _MILLION if tokens > 0 else math.inf
    return TcoEstimate(
        years,
        hardware_price,
        power_w,
        idle_power_w,
        utilisation,
        electricity_price,
        kwh,
        energy_cost,
        total,
        tokens,
        per_million,
    )
