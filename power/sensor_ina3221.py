"""Jetson INA3221 power monitors read through sysfs (JetPack 5/6 hwmon, JetPack 4 iio).

hwmon: ``inK_label`` (rail), ``inK_input`` (mV), ``currK_input`` (mA); power = mV x mA / 1000.
iio: ``rail_name_K``, ``in_voltageK_input`` (mV), ``in_currentK_input`` (mA), ``in_powerK_input``
(mW). Unlabelled and ``NC`` channels and the shunt-sum channel (hwmon channel 7) are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_sdk.errors import PowerError
from edge_sdk.power.paths import sysfs
from edge_sdk.power.sensors import PowerReading, PowerSensor, RailReading, total_of

__all__ = ["Channel", "Ina3221Sensor", "find_ina3221_channels"]

_SHUNT_SUM_CHANNEL = 7


@dataclass(frozen=True)
class Channel:
    """One labelled rail: where its voltage, current and (iio only) power files are."""

    name: str
    voltage: Path
    current: Path
    power: Path | None = None  # iio reports mW directly


def _text(path: Path) -> str:
    return path.read_text(errors="replace").strip().strip("\x00")


def _hwmon_dirs() -> list[Path]:
    found: list[Path] = []
    for name_file in sorted(sysfs("/sys/bus/i2c/devices").glob("*/name")):
        try:
            if "ina3221" in _text(name_file):
                found.extend(sorted((name_file.parent / "hwmon").glob("hwmon*")))
        except OSError:
            continue
    found.extend(sorted(sysfs("/sys/bus/i2c/drivers/ina3221").glob("*/hwmon/hwmon*")))
    return found


def _hwmon_channels(folder: Path) -> list[Channel]:
    channels = []
    for label_file in sorted(folder.glob("in*_label")):
        index = label_file.name[2 : -len("_label")]
        if not index.isdigit() or int(index) == _SHUNT_SUM_CHANNEL:
            continue
        label = _text(label_file)
        if not label or label.upper() == "NC" or "sum" in label.lower():
            continue
        channels.append(Channel(label, folder / f"in{index}_input", folder / f"curr{index}_input"))
    return channels


def _iio_channels(folder: Path) -> list[Channel]:
    channels = []
    for label_file in sorted(folder.glob("rail_name_*")):
        index = label_file.name[len("rail_name_") :]
        label = _text(label_file)
        if not label or label.upper() == "NC" or "sum" in label.lower():
            continue
        channels.append(
            Channel(
                label,
                folder / f"in_voltage{index}_input",
                folder / f"in_current{index}_input",
                folder / f"in_power{index}_input",
            )
        )
    return channels


def find_ina3221_channels() -> tuple[list[Channel], str]:
    """Every labelled INA3221 rail on this board and the layout found (``hwmon`` or ``iio``)."""
    seen: set[Path] = set()
    channels: list[Channel] = []
    for folder in _hwmon_dirs():
        real = folder.resolve()
        if real in seen:
            continue
        seen.add(real)
        channels.extend(_hwmon_channels(folder))
    if channels:
        return channels, "hwmon"
    for folder in sorted(sysfs("/sys/bus/i2c/drivers/ina3221x").glob("*/iio:device*")):
        channels.extend(_iio_channels(folder))
    return channels, ("iio" if channels else "")


class Ina3221Sensor(PowerSensor):
    """The Jetson's INA3221 monitors. Total: ``VDD_IN`` if present, else the rails' sum."""

    kind = "ina3221"
    refresh_hz = 10.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.channels: list[Channel] = []
        self.layout = ""

    def open(self) -> Ina3221Sensor:
        if self._opened:
            return self
        channels, layout = find_ina3221_channels()
        if not channels:
            raise PowerError(
                f"no INA3221 power monitor under {sysfs('/sys/bus/i2c')} "
                "(not a Jetson, or the ina3221 driver is not loaded)"
            )
        self.channels, self.layout = channels, layout
        self._opened = True
        return self

    def describe(self) -> str:
        return f"INA3221 (sysfs {self.layout}, {len(self.channels)} rails)"

    def _read(self) -> PowerReading:
        rails: dict[str, RailReading] = {}
        try:
            for ch in self.channels:
                mv = float(_text(ch.voltage))
                ma = float(_text(ch.current))
                mw = float(_text(ch.power)) if ch.power is not None else mv * ma / 1000.0
                rails[ch.name] = RailReading(ch.name, mw / 1000.0, mv, ma)
        except (OSError, ValueError) as exc:
            raise PowerError(f"reading INA3221 rail failed: {exc}") from exc
        total, source = total_of(rails)
        return PowerReading(self.clock(), total, source, rails)
