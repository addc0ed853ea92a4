"""Read the power modes of a board from its nvpmodel configuration file.

Format (``shared/docs/jetson.md``): blocks opened by a header in angle brackets, then
``PARAM ARG VALUE`` lines; ``#`` starts a comment. The planner needs, per
``< POWER_MODEL ID=n NAME=s >`` block, the ``GPU MAX_FREQ`` and ``EMC MAX_FREQ`` caps (Hz; ``-1``
means no cap, and shipped files also write ``0`` for "no cap" on the EMC) and
``TPC_POWER_GATING TPC_PG_MASK`` (a set bit gates one of the SoC's 8 TPCs), and the default mode
from ``< PM_CONFIG DEFAULT=n >``. Headers with irregular spacing (``<PARAM ... >``) are accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edge_sdk.errors import ConfigError
from edge_sdk.planner.catalog import Device, PowerMode

__all__ = ["parse_nvpmodel_conf", "device_with_conf"]

_HEADER = re.compile(r"^<\s*(\w+)\s*(.*?)\s*>$")
_SOC_TPCS = 8


@dataclass
class _Block:
    mode_id: int
    name: str
    gpu: int | None = None
    emc: int | None = None
    tpcs: int | None = None


def _cap(value: str, where: str) -> int | None:
    try:
        hz = int(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: clock value {value!r} is not an integer") from exc
    return None if hz <= 0 else hz


def parse_nvpmodel_conf(text: str, device: Device, source: str = "nvpmodel conf"
                        ) -> tuple[tuple[PowerMode, ...], str]:
    """The modes in ``text`` (with the device's budget for names without a wattage) and the default."""
    fallback_budget = max(mode.budget_w for mode in device.modes)
    blocks: list[_Block] = []
    default_id: int | None = None
    current: _Block | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source} line {number}"
        header = _HEADER.match(line)
        if header:
            kind = header.group(1).upper()
            attrs = dict(re.findall(r"(\w+)\s*=\s*(\S+)", header.group(2)))
            current = None
            if kind == "POWER_MODEL":
                try:
                    current = _Block(int(attrs["ID"]), attrs["NAME"])
                except (KeyError, ValueError) as exc:
                    raise ConfigError(f"{where}: POWER_MODEL needs ID=<int> and NAME=<name>") from exc
                blocks.append(current)
            elif kind == "PM_CONFIG":
                try:
                    default_id = int(attrs["DEFAULT"])
                except (KeyError, ValueError) as exc:
                    raise ConfigError(f"{where}: PM_CONFIG needs DEFAULT=<id>") from exc
            continue
        parts = line.split()
        if current is None or len(parts) != 3:
            continue
        param, arg, value = parts[0].upper(), parts[1].upper(), parts[2]
        if param == "GPU" and arg == "MAX_FREQ":
            current.gpu = _cap(value, where)
        elif param == "EMC" and arg == "MAX_FREQ":
            current.emc = _cap(value, where)
        elif param == "TPC_POWER_GATING" and arg == "TPC_PG_MASK":
            try:
                mask = int(value)
            except ValueError as exc:
                raise ConfigError(f"{where}: TPC_PG_MASK {value!r} is not an integer") from exc
            current.tpcs = sum(1 for bit in range(_SOC_TPCS) if not mask >> bit & 1)
    if not blocks:
        raise ConfigError(f"{source} has no < POWER_MODEL ID=n NAME=s > block")
    modes = []
    for block in blocks:
        watts = PowerMode(block.name, 0).watts_in_name
        modes.append(PowerMode(
            name=block.name, budget_w=float(watts) if watts else fallback_budget,
            mode_id=block.mode_id, gpu_max_hz=block.gpu, emc_max_hz=block.emc,
            active_tpcs=block.tpcs, source=source,
        ))
    by_id = {mode.mode_id: mode for mode in modes}
    if default_id is None:
        raise ConfigError(f"{source} lacks the mandatory < PM_CONFIG DEFAULT=n > section")
    if default_id not in by_id:
        raise ConfigError(f"{source}: PM_CONFIG DEFAULT={default_id} names no POWER_MODEL")
    return tuple(modes), by_id[default_id].name


def device_with_conf(device: Device, path: str | Path) -> Device:
    """The device with the modes, caps and default of an nvpmodel configuration file."""
    path = Path(path)
    if not device.jetson:
        raise ConfigError(f"{device.name} is not a Jetson; --nvpmodel-conf applies to Jetson modules")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read the nvpmodel configuration {path}: {exc.strerror or exc}") from exc
    modes, default = parse_nvpmodel_conf(text, device, source=str(path))
    return device.with_modes(modes, default)
