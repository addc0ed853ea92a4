"""Power sensors on fake boards and fake counters: rails, totals, layouts, wrap-around, errors."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
from power_fakeboard import FIXTURES, make_iio_board

from edge_sdk.errors import BackendUnavailableError, PowerError
from edge_sdk.power import (
    Ina3221Sensor,
    JtopSensor,
    NvmlPowerLimit,
    NvmlSensor,
    RaplSensor,
    ReplaySensor,
    SyntheticSensor,
    detect_sensor,
    load_trace,
    open_sensor,
)


def test_orin_nano_total_is_vdd_in(fake_board) -> None:
    fake_board("orin_nano_8gb")
    with detect_sensor() as sensor:
        assert isinstance(sensor, Ina3221Sensor) and sensor.layout == "hwmon"
        r = sensor.read()
    assert list(r.rails) == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]  # in7 shunt sum skipped
    assert r.total_source == "VDD_IN"
    assert r.total_w == pytest.approx(5080 * 1200 / 1e6)
    assert r.rails["VDD_SOC"].voltage_mv == 5072 and r.rails["VDD_SOC"].current_ma == 310


def test_orin_nx_total_is_vdd_in_and_follows_the_rail(fake_board) -> None:
    board = fake_board("orin_nx_16gb")
    with Ina3221Sensor() as sensor:
        assert sensor.read().total_source == "VDD_IN"
        board.set_rail("1-0040", 1, 5000, 2000)
        assert sensor.read().total_w == pytest.approx(10.0)


def test_agx_total_is_sum_of_rails_without_vdd_in(fake_board) -> None:
    fake_board("agx_orin_64gb")
    with Ina3221Sensor() as sensor:
        r = sensor.read()
    # NC and unlabelled channels of 1-0041 skipped; the driver symlinks do not duplicate rails
    assert sorted(r.rails) == ["VDDQ_VDD2_1V8AO", "VDD_CPU_CV", "VDD_GPU_SOC", "VIN_SYS_5V0"]
    assert "VDD_IN" not in r.rails
    assert r.total_source == "sum of rails"
    assert r.total_w == pytest.approx(5.0 * (1.0 + 0.4 + 0.6 + 0.2))


def test_jetpack4_iio_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_iio_board(tmp_path)
    monkeypatch.setenv("EDGE_SDK_SYSFS_ROOT", str(tmp_path))
    with Ina3221Sensor() as sensor:
        r = sensor.read()
    assert sensor.layout == "iio"
    assert r.rails["VDD_CPU_GPU_CV"].power_w == pytest.approx(1.5)  # in_power (mW) used directly
    assert r.total_w == pytest.approx(5.0) and r.total_source == "VDD_IN"


def test_a_vanished_rail_file_is_a_power_error(fake_board) -> None:
    board = fake_board("orin_nano_8gb")
    with Ina3221Sensor() as sensor:
        (board.hwmon("1-0040") / "curr2_input").unlink()
        with pytest.raises(PowerError, match="INA3221"):
            sensor.read()


def test_no_sensor_is_reported_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_SDK_SYSFS_ROOT", str(tmp_path))
    monkeypatch.setitem(sys.modules, "jtop", None)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(PowerError, match=r"no power sensor found.*ina3221.*rapl"):
        detect_sensor()
    with pytest.raises(PowerError, match="not available here"):
        open_sensor("ina3221")
    with pytest.raises(PowerError, match="unknown sensor"):
        open_sensor("thermocouple")


def _rapl_tree(root: Path, energy: int, max_range: int) -> Path:
    folder = root / "sys/class/powercap/intel-rapl:0"
    folder.mkdir(parents=True)
    (folder / "name").write_text("package-0\n")
    (folder / "max_energy_range_uj").write_text(f"{max_range}\n")
    (folder / "energy_uj").write_text(f"{energy}\n")
    sub = root / "sys/class/powercap/intel-rapl:0:0"  # a subdomain: part of the package
    sub.mkdir()
    (sub / "energy_uj").write_text("0\n")
    return folder / "energy_uj"


def test_rapl_counter_wraps_around(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_SDK_SYSFS_ROOT", str(tmp_path))
    max_range = 262_143_328_850
    counter = _rapl_tree(tmp_path, max_range - 1_000_000, max_range)
    now = [100.0]
    with RaplSensor(clock=lambda: now[0]) as sensor:
        assert [d.name for d in sensor.domains] == ["package-0(0)"]
        counter.write_text("4000000\n")  # wrapped: 1 J before the wrap + 4 J after
        now[0] = 101.0
        r = sensor.read()
        assert r.total_w == pytest.approx(5.0)
        assert r.energy_j == pytest.approx(5.0)
        counter.write_text("6000000\n")
        now[0] = 101.5
        r = sensor.read()
    assert r.total_w == pytest.approx(4.0)
    assert r.energy_j == pytest.approx(7.0)


RAPL_CHILD = """
import os, sys
from edge_sdk.errors import PowerError
from edge_sdk.power import RaplSensor
os.setgid(65534); os.setuid(65534)  # everything imported first: root's Python may be unreadable
try:
    RaplSensor().open()
except PowerError as exc:
    print(exc)
"""


def test_rapl_root_only_counter_message(tmp_path: Path) -> None:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="rapl-"))
    try:
        os.chmod(root, 0o755)
        counter = _rapl_tree(root, 5, 100)
        for p in root.rglob("*"):
            os.chmod(p, 0o755 if p.is_dir() else 0o444)
        os.chmod(counter, 0o400)
        if os.geteuid() == 0:
            env = {
                **os.environ,
                "EDGE_SDK_SYSFS_ROOT": str(root),
                "PYTHONPATH": os.pathsep.join(sys.path),
            }
            out = subprocess.run(
                [sys.executable, "-c", RAPL_CHILD],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout
        else:
            os.environ["EDGE_SDK_SYSFS_ROOT"] = str(root)
            try:
                with pytest.raises(PowerError) as info:
                    RaplSensor().open()
                out = str(info.value)
            finally:
                del os.environ["EDGE_SDK_SYSFS_ROOT"]
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)
    assert "root only" in out and "chmod" in out


def test_replay_csv_and_jsonl(tmp_path: Path) -> None:
    csv_file = tmp_path / "trace.csv"
    csv_file.write_text("t,total_w,VDD_IN_w\n10.0,4.0,4.0\n11.0,8.0,8.0\n")
    points = load_trace(csv_file)
    assert points[0][0] == 0.0 and points[1] == (1.0, 8.0, {"VDD_IN": 8.0})
    now = [0.0]
    sensor = ReplaySensor(points, loop=True, clock=lambda: now[0])
    with sensor:
        now[0] = 0.25
        assert sensor.read().total_w == pytest.approx(5.0)
        now[0] = 1.5  # looped: 0.5 s into the trace
        r = sensor.read()
    assert r.total_w == pytest.approx(6.0) and r.rails["VDD_IN"].power_w == pytest.approx(6.0)
    jsonl = tmp_path / "trace.jsonl"
    jsonl.write_text(
        "\n".join(
            json.dumps(x)
            for x in [
                {"type": "start", "t": 1.0},
                {"type": "sample", "t": 1.0, "total_w": 3.0, "rails": {}},
                {"type": "token", "t": 1.1},
                {"type": "sample", "t": 2.0, "total_w": 5.0, "rails": {}},
            ]
        )
    )
    assert [p[1] for p in ReplaySensor.from_file(jsonl).points] == [3.0, 5.0]
    bad = tmp_path / "bad.csv"
    bad.write_text("time,watts\n1,2\n")
    with pytest.raises(PowerError, match="malformed power log"):
        load_trace(bad)


def test_synthetic_sensor_with_rails_follows_board_rule() -> None:
    with SyntheticSensor(lambda t: {"VDD_IN": 7.0, "VDD_SOC": 2.0}) as sensor:
        r = sensor.read()
    assert r.total_w == 7.0 and r.total_source == "VDD_IN"


def _fake_pynvml(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("pynvml", FIXTURES / "fake_pynvml.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return module


def test_nvml_sensor_power_and_energy_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = _fake_pynvml(monkeypatch)
    with open_sensor("nvml:0") as sensor:
        assert isinstance(sensor, NvmlSensor)
        nvml.STATE["energy_mj"] += 7500
        r = sensor.read()
    assert r.total_w == pytest.approx(75.0) and r.energy_j == pytest.approx(7.5)
    nvml.STATE["energy_supported"] = False
    with NvmlSensor() as sensor:
        assert sensor.read().energy_j is None
    with pytest.raises(PowerError, match="not available"):
        open_sensor("nvml:3")


def test_nvml_power_limit_sets_and_restores_through_the_guard(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from edge_sdk.power import PowerModeGuard

    nvml = _fake_pynvml(monkeypatch)
    monkeypatch.setenv("EDGE_SDK_STATE_DIR", str(tmp_path))
    limit = NvmlPowerLimit(0)
    with pytest.raises(RuntimeError), PowerModeGuard([(limit, "150W")]):
        assert nvml.STATE["limit_mw"] == 150_000
        assert (tmp_path / "previous-nvml.json").exists()
        raise RuntimeError("boom")
    assert nvml.STATE["limit_mw"] == 250_000
    assert not (tmp_path / "previous-nvml.json").exists()
    with pytest.raises(PowerError, match="from 100 W to 300 W"):
        limit.apply("50W")
    nvml.STATE["root"] = False
    with pytest.raises(PowerError, match="needs root"):
        limit.apply("120W")


class _FakeJtop:
    """jetson-stats' client as seen over its socket (a fake service)."""

    running = True

    def start(self) -> None:
        if not self.running:
            raise OSError(
                "The jtop.service is not active. Please run: sudo systemctl restart jtop.service"
            )

    def close(self) -> None:
        pass

    power: ClassVar[dict[str, Any]] = {
        "rail": {
            "VDD_IN": {"volt": 5000, "curr": 1000, "power": 5000, "online": True},
            "VDD_SOC": {"volt": 5000, "curr": 200, "power": 1000, "online": True},
        },
        "tot": {"power": 5000},
    }


def test_jtop_sensor_and_service_down(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("jtop")
    module.jtop = _FakeJtop  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "jtop", module)
    with open_sensor("jtop") as sensor:
        r = sensor.read()
    assert r.total_w == 5.0 and r.total_source == "VDD_IN"
    _FakeJtop.running = False
    try:
        with pytest.raises(BackendUnavailableError, match="jtop --install-service"):
            JtopSensor().open()
    finally:
        _FakeJtop.running = True
