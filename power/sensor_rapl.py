"""Linux RAPL energy counters (``/sys/class/powercap/intel-rapl:N``), with wrap-around.

The counters are cumulative microjoules that wrap at ``max_energy_range_uj``; power is the energy
since the previous read divided by the time since it. Since Linux 5.10 only root can read them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge_sdk.errors import PowerError
from edge_sdk.power.paths import sysfs
from edge_sdk.power.sensors import PowerReading, PowerSensor, RailReading

__all__ = ["RaplSensor", "counter_delta"]

_ROOT_ONLY = (
    "RAPL energy counters are readable by root only (Linux 5.10+): run as root, or "
    "allow it with: sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj"
)


def counter_delta(previous: int, current: int, max_range: int) -> int:
    """Counter increase from ``previous`` to ``current``, allowing one wrap at ``max_range``."""
    if current >= previous:
        return current - previous
    return current + max_range - previous


@dataclass
class _Domain:
    name: str
    energy_file: Path
    max_range: int
    last_uj: int = 0
    total_uj: int = field(default=0)


class RaplSensor(PowerSensor):
    """Every top-level RAPL domain (one per CPU package) as a rail; total = their sum."""

    kind = "rapl"
    refresh_hz = 10.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.domains: list[_Domain] = []
        self._last_time = 0.0

    def open(self) -> RaplSensor:
        if self._opened:
            return self
        base = sysfs("/sys/class/powercap")
        folders = sorted(p for p in base.glob("intel-rapl:*") if p.name.count(":") == 1)
        if not folders:
            raise PowerError(
                f"no RAPL domains under {base} (not an Intel/AMD Linux machine, "
                "or the intel_rapl driver is not loaded)"
            )
        domains = []
        for folder in folders:
            try:
                name = (
                    (folder / "name").read_text().strip()
                    if (folder / "name").exists()
                    else folder.name
                )
                max_range = int((folder / "max_energy_range_uj").read_text())
                domain = _Domain(
                    f"{name}({folder.name.split(':')[1]})", folder / "energy_uj", max_range
                )
                domain.last_uj = self._counter(domain)
            except ValueError as exc:
                raise PowerError(f"unreadable RAPL domain {folder}: {exc}") from exc
            domains.append(domain)
        self.domains = domains
        self._last_time = self.clock()
        self._opened = True
        return self

    @staticmethod
    def _counter(domain: _Domain) -> int:
        try:
            return int(domain.energy_file.read_text())
        except PermissionError as exc:
            raise PowerError(_ROOT_ONLY) from exc
        except (OSError, ValueError) as exc:
            raise PowerError(f"reading {domain.energy_file} failed: {exc}") from exc

    def describe(self) -> str:
        return f"RAPL ({', '.join(d.name for d in self.domains)})"

    def _read(self) -> PowerReading:
        counters = [self._counter(d) for d in self.domains]
        now = self.clock()
        dt = max(now - self._last_time, 1e-9)
        rails = {}
        for domain, value in zip(self.domains, counters, strict=True):
            delta = counter_delta(domain.last_uj, value, domain.max_range)
            domain.last_uj = value
            domain.total_uj += delta
            rails[domain.name] = RailReading(domain.name, delta / 1e6 / dt)
        self._last_time = now
        total = sum(r.power_w for r in rails.values())
        energy = sum(d.total_uj for d in self.domains) / 1e6
        return PowerReading(now, total, "sum of RAPL packages", rails, energy)
