"""The sampler: energy against analytic curves, per-rail sums, failures, bounded memory."""

from __future__ import annotations

import math

import pytest

from edge_sdk.errors import PowerError
from edge_sdk.power import EnergyMeter, PowerReading, PowerSampler, PowerSensor, SyntheticSensor
from edge_sdk.power.sensors import RailReading


def _curve(t: float) -> float:
    return 6.0 + 3.0 * math.sin(2 * math.pi * t / 0.4) + 2.0 * t  # W


def _integral(a: float, b: float) -> float:
    def f(t: float) -> float:
        return 6.0 * t - 3.0 * 0.4 / (2 * math.pi) * math.cos(2 * math.pi * t / 0.4) + t * t

    return f(b) - f(a)


def test_energy_matches_analytic_curve_live() -> None:
    sensor = SyntheticSensor(_curve)
    with PowerSampler(sensor, interval=0.005) as sampler:
        import time

        time.sleep(0.6)
    stats = sampler.stats()
    readings = sampler.recent()
    a, b = readings[0].time - sensor.start_time, readings[-1].time - sensor.start_time
    exact = _integral(a, b)
    assert stats.samples > 50 and stats.failures == 0
    assert abs(stats.energy_j - exact) / exact < 0.005
    assert stats.avg_w == pytest.approx(exact / (b - a), rel=0.005)
    assert stats.peak_w <= 9.0 + 2.0 * b + 1e-9 and stats.overhead < 1.0


def test_energy_meter_exact_trapezoid_per_rail_and_total() -> None:
    meter = EnergyMeter()
    for i in range(1001):
        t = i * 0.001
        rails = {
            "VDD_GPU_SOC": RailReading("VDD_GPU_SOC", 4.0 + t),
            "VDD_CPU_CV": RailReading("VDD_CPU_CV", 2.0),
        }
        meter.add(PowerReading(t, 6.0 + t, "sum of rails", rails))
    assert meter.energy_j == pytest.approx(6.5, rel=1e-9)
    assert meter.rail_energy_j["VDD_GPU_SOC"] == pytest.approx(4.5, rel=1e-9)
    assert sum(meter.rail_energy_j.values()) == pytest.approx(meter.energy_j, rel=1e-9)


def test_agx_sampled_total_equals_sum_of_rail_energies(fake_board) -> None:
    from edge_sdk.power import Ina3221Sensor

    fake_board("agx_orin_64gb")
    with PowerSampler(Ina3221Sensor(), interval=0.005) as sampler:
        import time

        time.sleep(0.1)
    stats = sampler.stats()
    assert stats.total_source == "sum of rails"
    assert sum(stats.rail_energy_j.values()) == pytest.approx(stats.energy_j, rel=1e-9)
    assert stats.avg_w == pytest.approx(11.0)


class _Flaky(PowerSensor):
    """A sensor whose every third read fails, like an I2C bus that times out."""

    kind = "flaky"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _read(self) -> PowerReading:
        self.calls += 1
        if self.calls % 3 == 0:
            raise PowerError("i2c timeout")
        if self.calls % 7 == 0:
            raise OSError("EIO")
        return PowerReading(self.clock(), 5.0, "flaky")


def test_failed_reads_are_counted_not_raised() -> None:
    sensor = _Flaky()
    with PowerSampler(sensor, interval=0.002, history=10) as sampler:
        import time

        while sensor.calls < 60:
            time.sleep(0.01)
    stats = sampler.stats()
    assert stats.failures > 0 and stats.samples > 0
    assert stats.failures + stats.samples == sensor.calls
    assert "i2c timeout" in (stats.last_error or "") or "EIO" in (stats.last_error or "")
    assert len(sampler.recent()) == 10  # bounded ring
    assert stats.avg_w == pytest.approx(5.0)


def test_a_broken_consumer_does_not_stop_sampling() -> None:
    def consumer(reading: PowerReading) -> None:
        raise ValueError("disk full")

    with PowerSampler(SyntheticSensor(lambda t: 3.0), interval=0.002, on_sample=consumer) as s:
        import time

        time.sleep(0.05)
    stats = s.stats()
    assert stats.samples > 5 and stats.failures == stats.samples
    assert s.window_average_w(1.0) == pytest.approx(3.0)
