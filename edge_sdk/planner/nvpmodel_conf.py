"""Read the power modes of a board from its nvpmodel configuration file.

Format (``shared/docs/jetson.md``): blocks opened by a header in angle brackets, then
``PARAM ARG VALUE`` lines; ``#`` starts a comment. The planner needs, per
``< POWER_MODEL ID=n NAME=s >`` block, the ``GPU MAX_FREQ`` and ``EMC MAX_FREQ`` caps (Hz; ``-1``
means no cap, and shipped files also write ``0`` for "no cap" on the EMC) and
``TPC_POWER_GATING TPC_PG_MASK`` (a set bit gates one of the SoC's 8 TPCs), and the default mode
from ``< PM_CONFIG DEFAULT=n >``. Headers with irregular spacing (``<PARAM ... >``) are accepted.
"""

from __future__ import annotations

from pathlib import Path

from edge_sdk.errors import ConfigError, PowerError
from edge_sdk.nvpmodel_conf import NvpModelMode, parse_nvpmodel_text
from edge_sdk.planner.catalog import Device, PowerModeSpec

__all__ = ["device_with_conf", "mode_specs_from_conf"]

_SOC_TPCS = 8


def _cap(mode: NvpModelMode, param: str, where: str) -> int | None:
    value = mode.params.get((param, "MAX_FREQ"))
    if value is None:
        return None
    try:
        hz = int(value)
    except ValueError as exc:
        raise ConfigError(
            f"{where}, mode {mode.name}: {param} MAX_FREQ {value!r} is not an integer"
        ) from exc
    return None if hz <= 0 else hz


def _active_tpcs(mode: NvpModelMode, where: str) -> int | None:
    mask = mode.tpc_pg_mask
    if mask is None:
        return None
    try:
        bits = int(mask)
    except ValueError as exc:
        raise ConfigError(
            f"{where}, mode {mode.name}: TPC_PG_MASK {mask!r} is not an integer"
        ) from exc
    return sum(1 for bit in range(_SOC_TPCS) if not bits >> bit & 1)


def mode_specs_from_conf(
    text: str, device: Device, source: str = "nvpmodel conf"
) -> tuple[tuple[PowerModeSpec, ...], str]:
    """The planner's mode specs for the nvpmodel.conf ``text`` (the device's budget for names
    without a wattage) and the default mode's name."""
    try:
        conf = parse_nvpmodel_text(text, source)
    except PowerError as exc:
        raise ConfigError(str(exc)) from exc
    fallback_budget = max(mode.budget_w for mode in device.modes)
    modes = tuple(
        PowerModeSpec(
            name=mode.name,
            budget_w=mode.watts or fallback_budget,
            mode_id=mode.id,
            gpu_max_hz=_cap(mode, "GPU", source),
            emc_max_hz=_cap(mode, "EMC", source),
            active_tpcs=_active_tpcs(mode, source),
            source=source,
        )
        for mode in conf.modes
    )
    default = conf.by_id(conf.default_id)
    assert default is not None  # the core parser checks the default names a mode
    return modes, default.name


def device_with_conf(device: Device, path: str | Path) -> Device:
    """The device with the modes, caps and default of an nvpmodel configuration file."""
    path = Path(path)
    if not device.jetson:
        raise ConfigError(
            f"{device.name} is not a Jetson; --nvpmodel-conf applies to Jetson modules"
        )
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the nvpmodel configuration {path}: {exc.strerror or exc}"
        ) from exc
    modes, default = mode_specs_from_conf(text, device, source=str(path))
    return device.with_modes(modes, default)
