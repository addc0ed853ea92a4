"""Power sensors: one small interface, several backends, and automatic detection.

A sensor is opened, read any number of times, and closed (also as a context manager)::

    with detect_sensor() as sensor:
        reading = sensor.read()
        print(reading.total_w, reading.total_source)

Backends (one file each): ``sensor_ina3221`` (Jetson sysfs), ``sensor_jtop`` (jetson-stats),
``sensor_nvml`` (desktop NVIDIA GPUs), ``sensor_rapl`` (Linux powercap), ``sensor_replay`` (a
recorded trace or an analytic curve, for demos and tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from edge_sdk.errors import BackendUnavailableError, PowerError

__all__ = [
    "SENSOR_KINDS",
    "PowerReading",
    "PowerSensor",
    "RailReading",
    "detect_sensor",
    "open_sensor",
    "probe_sensors",
]


@dataclass(frozen=True)
class RailReading:
    """One power rail at one instant. ``voltage_mv``/``current_ma`` are None when not reported."""

    name: str
    power_w: float
    voltage_mv: float | None = None
    current_ma: float | None = None


@dataclass(frozen=True)
class PowerReading:
    """One read of a sensor: monotonic time (s), rails, and the total with where it came from.

    ``total_source`` is e.g. ``"VDD_IN"`` (the module input rail) or ``"sum of rails"``.
    ``energy_j`` is the sensor's own cumulative energy since it was opened, where it has a counter
    (RAPL, NVML), else None.
    """

    time: float
    total_w: float
    total_source: str
    rails: dict[str, RailReading] = field(default_factory=dict)
    energy_j: float | None = None

    def rail_watts(self) -> dict[str, float]:
        """``{rail name: watts}``."""
        return {name: rail.power_w for name, rail in self.rails.items()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "t": self.time,
            "total_w": self.total_w,
            "total_source": self.total_source,
            "rails": {
                n: {"power_w": r.power_w, "voltage_mv": r.voltage_mv, "current_ma": r.current_ma}
                for n, r in self.rails.items()
            },
            "energy_j": self.energy_j,
        }


def total_of(rails: dict[str, RailReading]) -> tuple[float, str]:
    """The board total: ``VDD_IN`` where present (Orin Nano/NX), else the rails' sum (AGX)."""
    if "VDD_IN" in rails:
        return rails["VDD_IN"].power_w, "VDD_IN"
    return sum(r.power_w for r in rails.values()), "sum of rails"


class PowerSensor:
    """Base class: subclasses set ``kind`` and implement :meth:`_read` (and maybe open/close)."""

    kind: str = "sensor"
    #: how often the hardware refreshes its value; the sampler's default rate follows it
    refresh_hz: float = 10.0
    _opened: bool

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._opened = False

    def open(self) -> PowerSensor:
        """Acquire the sensor (idempotent). Raises :class:`PowerError` or
        :class:`BackendUnavailableError` when it cannot be used."""
        self._opened = True
        return self

    def close(self) -> None:
        """Release the sensor (idempotent)."""
        self._opened = False

    def read(self) -> PowerReading:
        """Read every rail now; raises :class:`PowerError` when the read fails."""
        if not self._opened:
            self.open()
        return self._read()

    def _read(self) -> PowerReading:
        raise NotImplementedError

    def describe(self) -> str:
        """A short human description (``"INA3221 (sysfs hwmon)"``)."""
        return self.kind

    def __enter__(self) -> PowerSensor:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _factories() -> dict[str, Callable[[str], PowerSensor]]:
    from edge_sdk.power.sensor_ina3221 import Ina3221Sensor
    from edge_sdk.power.sensor_jtop import JtopSensor
    from edge_sdk.power.sensor_nvml import NvmlSensor
    from edge_sdk.power.sensor_rapl import RaplSensor
    from edge_sdk.power.sensor_replay import ReplaySensor

    return {
        "ina3221": lambda arg: Ina3221Sensor(),
        "jtop": lambda arg: JtopSensor(),
        "nvml": lambda arg: NvmlSensor(index=int(arg or 0)),
        "rapl": lambda arg: RaplSensor(),
        "replay": lambda arg: ReplaySensor.from_file(arg, loop=True),
    }


#: the order automatic detection tries (replay is never picked automatically)
SENSOR_KINDS = ("ina3221", "jtop", "nvml", "rapl")


def open_sensor(spec: str = "auto") -> PowerSensor:
    """Open a sensor by spec: ``auto``, ``ina3221``, ``jtop``, ``nvml[:GPU]``, ``rapl``,
    ``replay:FILE`` or ``replay:sample`` (the packaged sample trace). Raises
    :class:`PowerError` saying why when it is not available."""
    if spec == "auto":
        return detect_sensor()
    kind, _, arg = spec.partition(":")
    factories = _factories()
    if kind not in factories:
        raise PowerError(
            f"unknown sensor '{spec}'; use auto, ina3221, jtop, nvml[:GPU], rapl "
            "or replay:FILE (replay:sample: the packaged sample trace)"
        )
    if kind == "replay" and not arg:
        raise PowerError(
            "the replay sensor needs a file: replay:FILE (a CSV or JSONL power log; "
            "replay:sample for the packaged sample trace)"
        )
    try:
        return factories[kind](arg).open()
    except (BackendUnavailableError, PowerError) as exc:
        raise PowerError(f"sensor '{spec}' is not available here: {exc}") from exc


def probe_sensors() -> tuple[PowerSensor | None, dict[str, str]]:
    """Try each backend in :data:`SENSOR_KINDS` order; return the first that opens (opened) and
    why each one before it did not."""
    reasons: dict[str, str] = {}
    factories = _factories()
    for kind in SENSOR_KINDS:
        sensor = factories[kind]("")
        try:
            sensor.open()
            sensor.read()
        except (PowerError, BackendUnavailableError, OSError) as exc:
            sensor.close()
            reasons[kind] = str(exc)
            continue
        return sensor, reasons
    return None, reasons


def detect_sensor() -> PowerSensor:
    """The best available sensor, opened; :class:`PowerError` listing what was tried otherwise."""
    sensor, reasons = probe_sensors()
    if sensor is None:
        tried = "; ".join(f"{k}: {v}" for k, v in reasons.items())
        raise PowerError(
            f"no power sensor found on this machine (tried {tried}). "
            "Tokens/s still work without watts; pass --sensor replay:FILE to replay "
            "a recorded power log (replay:sample: the packaged one)"
        )
    return sensor
