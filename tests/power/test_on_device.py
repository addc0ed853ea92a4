"""On-device suite for a real Jetson Orin: ``pytest -m jetson tests/power`` (as root for modes).

Skips elsewhere. Tolerance for the budget test: the average board power (VDD_IN or the rails'
sum) during generation may exceed the mode's stated wattage by ``EDGE_SDK_POWER_TOLERANCE``
(default 20 %), since nvpmodel caps clocks, not watts, and the module total includes DRAM/IO.
Set ``EDGE_SDK_TEST_BUNDLE`` to a bundle directory to run the generation tests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edge_sdk.power import (
    EfficiencyLog,
    Ina3221Sensor,
    NvpModel,
    PowerSampler,
    power_mode,
    recorded_states,
)

pytestmark = pytest.mark.jetson
TOLERANCE = float(os.environ.get("EDGE_SDK_POWER_TOLERANCE", "0.20"))


def _root_or_skip() -> None:
    if os.geteuid() != 0:
        pytest.skip("changing the power mode needs root: sudo pytest -m jetson")


def _bundle_or_skip() -> Path:
    bundle = os.environ.get("EDGE_SDK_TEST_BUNDLE")
    if not bundle:
        pytest.skip("set EDGE_SDK_TEST_BUNDLE to a bundle directory (edge-export ...)")
    return Path(bundle)


def test_sensor_reads_plausible_rails() -> None:
    with Ina3221Sensor() as sensor:
        reading = sensor.read()
    assert reading.rails, "no INA3221 rails"
    assert 1.0 < reading.total_w < 80.0
    for rail in reading.rails.values():
        assert 0.0 <= rail.power_w < 80.0
        assert rail.voltage_mv is None or 500 < rail.voltage_mv < 25000
    assert reading.total_source in ("VDD_IN", "sum of rails")


def test_15w_mode_is_set_and_restored() -> None:
    _root_or_skip()
    nvp = NvpModel()
    before = nvp.current()
    target = nvp.resolve("15W")
    if nvp.needs_reboot(before, target):
        pytest.skip(f"switching {before.label()} -> {target.label()} needs a reboot")
    with power_mode("15W"):
        assert nvp.current().id == target.id
    assert nvp.current().id == before.id
    assert "nvpmodel" not in recorded_states()


def test_generation_stays_within_budget_and_logs_efficiency(tmp_path: Path) -> None:
    _root_or_skip()
    bundle = _bundle_or_skip()
    from edge_sdk.runtime import load

    generator = load(bundle)
    log_path = tmp_path / "efficiency.jsonl"
    with power_mode("15W"), Ina3221Sensor() as sensor:
        log = EfficiencyLog(log_path)
        with PowerSampler(sensor, on_sample=log.add_sample):
            log.start()
            for _ in generator.stream("The Jetson Orin is", max_new_tokens=128):
                log.token()
            log.stop()
        summary = log.summary()
        log.close()
    assert summary.run.avg_w is not None
    assert summary.run.avg_w <= 15.0 * (1 + TOLERANCE), summary.to_dict()
    assert summary.run.tokens_per_joule and summary.run.tokens_per_joule > 0
    records = [json.loads(line) for line in log_path.open()]
    assert any(r["type"] == "token" for r in records)
    assert any(r["type"] == "sample" for r in records)


def test_backend_report_runs_every_usable_backend(tmp_path: Path) -> None:
    """``edge-power bench --backends all`` under the current mode: no backend that is usable
    fails, ort-cpu is measured with the INA3221, every GPU backend that ran agrees with it."""
    bundle = _bundle_or_skip()
    from edge_sdk.power.cli import main

    output = tmp_path / "report.json"
    argv = ["bench", str(bundle), "--backends", "all", "--sensor", "ina3221"]
    assert main([*argv, "--tokens", "64", "--output", str(output)]) == 0, output
    report = json.loads(output.read_text())
    rows = {row["name"]: row for row in report["backends"]}
    assert report["sensor"].startswith("INA3221") and report["host"]["l4t"]
    assert all(row["status"] in ("ok", "unavailable") for row in rows.values()), rows
    assert rows["ort-cpu"]["status"] == "ok"
    for row in rows.values():
        if row["status"] != "ok":
            assert row["reason"], row
            continue
        assert row["decode"]["tokens_per_s"] > 0 and row["decode"]["tokens_per_joule"] > 0
        assert row["agreement"]["top1_agreement"] >= 0.9, row
