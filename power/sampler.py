"""A background thread that samples a power sensor and integrates energy.

Monotonic timestamps; energy by trapezoidal integration, per rail and total; memory bounded by a
ring of recent readings plus running aggregates; failed reads counted, never raised; the
thread's own CPU time measured so its overhead is known (see benchmarks/bench_sampler_overhead.py).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any

from edge_sdk.power.sensors import PowerReading, PowerSensor

__all__ = ["EnergyMeter", "PowerSampler", "SamplerStats"]


class EnergyMeter:
    """Trapezoidal integration of total and per-rail power over successive readings."""

    def __init__(self) -> None:
        self.first: PowerReading | None = None
        self.last: PowerReading | None = None
        self.energy_j = 0.0
        self.rail_energy_j: dict[str, float] = {}
        self.peak_w = float("-inf")
        self.min_w = float("inf")
        self.count = 0

    def add(self, reading: PowerReading) -> None:
        """Fold in one reading (readings must come in time order)."""
        prev = self.last
        if prev is not None:
            dt = reading.time - prev.time
            if dt <= 0:
                return
            self.energy_j += 0.5 * (prev.total_w + reading.total_w) * dt
            for name, rail in reading.rails.items():
                before = prev.rails.get(name)
                if before is not None:
                    self.rail_energy_j[name] = (
                        self.rail_energy_j.get(name, 0.0)
                        + 0.5 * (before.power_w + rail.power_w) * dt
                    )
        else:
            self.first = reading
        self.last = reading
        self.count += 1
        self.peak_w = max(self.peak_w, reading.total_w)
        self.min_w = min(self.min_w, reading.total_w)

    @property
    def duration_s(self) -> float:
        if self.first is None or self.last is None:
            return 0.0
        return self.last.time - self.first.time


@dataclass(frozen=True)
class SamplerStats:
    """What a sampler measured. Watts and joules are None when nothing was read."""

    samples: int
    failures: int
    duration_s: float
    energy_j: float | None
    avg_w: float | None
    peak_w: float | None
    min_w: float | None
    rail_energy_j: dict[str, float] = field(default_factory=dict)
    counter_energy_j: float | None = None  # from the sensor's own counter (RAPL, NVML)
    total_source: str | None = None
    interval_s: float = 0.0
    cpu_s: float = 0.0  # the sampling thread's own CPU time
    overhead: float = 0.0  # cpu_s / wall time (1.0 = one core busy)
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PowerSampler:
    """Sample ``sensor`` every ``interval`` seconds on a daemon thread.

    ``interval`` defaults to the sensor's refresh period (about 10 Hz for the INA3221).
    ``on_sample`` is called on the sampler thread with each reading (e.g.
    :meth:`EfficiencyLog.add_sample`). ``history`` readings are kept for :meth:`recent`.
    """

    def __init__(
        self,
        sensor: PowerSensor,
        interval: float | None = None,
        history: int = 600,
        on_sample: Callable[[PowerReading], None] | None = None,
    ) -> None:
        self.sensor = sensor
        self.interval = interval if interval is not None else 1.0 / max(sensor.refresh_hz, 0.1)
        self.on_sample = on_sample
        self._recent: deque[PowerReading] = deque(maxlen=max(history, 2))
        self._meter = EnergyMeter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._last_error: str | None = None
        self._cpu_s = 0.0
        self._wall = (0.0, 0.0)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> PowerSampler:
        """Open the sensor and start sampling (the first read happens immediately)."""
        if self._thread is not None:
            return self
        self.sensor.open()
        self._stop.clear()
        self._wall = (time.monotonic(), 0.0)
        self._thread = threading.Thread(target=self._run, name="edge-power-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> SamplerStats:
        """Take a last reading, stop the thread and return the statistics."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._wall = (self._wall[0], time.monotonic())
        return self.stats()

    def __enter__(self) -> PowerSampler:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        cpu0 = time.thread_time()
        next_t = time.monotonic()
        while True:
            self._sample_once()
            self._cpu_s = time.thread_time() - cpu0
            if self._stop.is_set():
                break
            next_t += self.interval
            now = time.monotonic()
            if next_t < now:  # fell behind (a slow read): skip, do not burst
                next_t = now + self.interval
            if self._stop.wait(next_t - now):
                self._sample_once()
                break
        self._cpu_s = time.thread_time() - cpu0

    def _sample_once(self) -> None:
        try:
            reading = self.sensor.read()
        except Exception as exc:  # noqa: BLE001 - a failed read is counted, never fatal to the thread
            with self._lock:
                self._failures += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
            return
        with self._lock:
            self._meter.add(reading)
            self._recent.append(reading)
        if self.on_sample is not None:
            try:
                self.on_sample(reading)
            except Exception as exc:  # noqa: BLE001 - a broken consumer must not stop the measurement
                with self._lock:
                    self._failures += 1
                    self._last_error = f"on_sample: {type(exc).__name__}: {exc}"

    # -- results ---------------------------------------------------------------------------------
    def latest(self) -> PowerReading | None:
        with self._lock:
            return self._recent[-1] if self._recent else None

    def recent(self, seconds: float | None = None) -> list[PowerReading]:
        """Readings kept in the ring, optionally only those of the last ``seconds``."""
        with self._lock:
            readings = list(self._recent)
        if seconds is None or not readings:
            return readings
        cutoff = readings[-1].time - seconds
        return [r for r in readings if r.time >= cutoff]

    def window_average_w(self, seconds: float) -> float | None:
        """Time-weighted average total power over the last ``seconds`` (None if < 2 readings)."""
        readings = self.recent(seconds)
        if len(readings) < 2:
            return readings[0].total_w if readings else None
        energy = sum(
            0.5 * (a.total_w + b.total_w) * (b.time - a.time)
            for a, b in itertools.pairwise(readings)
        )
        span = readings[-1].time - readings[0].time
        return energy / span if span > 0 else readings[-1].total_w

    def stats(self) -> SamplerStats:
        with self._lock:
            m = self._meter
            first, last = m.first, m.last
            wall_end = self._wall[1] or time.monotonic()
            wall = max(wall_end - self._wall[0], 1e-9) if self._wall[0] else 0.0
            have = m.count > 0
            duration = m.duration_s
            counter = None
            if (
                first is not None
                and last is not None
                and last.energy_j is not None
                and first.energy_j is not None
            ):
                counter = last.energy_j - first.energy_j
            return SamplerStats(
                samples=m.count,
                failures=self._failures,
                duration_s=duration,
                energy_j=m.energy_j if have else None,
                avg_w=(m.energy_j / duration if duration > 0 else last.total_w)
                if last is not None
                else None,
                peak_w=m.peak_w if have else None,
                min_w=m.min_w if have else None,
                rail_energy_j=dict(m.rail_energy_j),
                counter_energy_j=counter,
                total_source=last.total_source if last is not None else None,
                interval_s=self.interval,
                cpu_s=self._cpu_s,
                overhead=self._cpu_s / wall if wall else 0.0,
                last_error=self._last_error,
            )
