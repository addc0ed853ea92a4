"""A faithful fake Jetson board on disk: INA3221 sysfs tree, device-tree model, nvpmodel.conf,
and the fake ``nvpmodel``/``jetson_clocks`` programs, selected through the SDK's env overrides."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"

# rail: (label, millivolts, milliamps); None label = channel without a label file
Rails = dict[int, tuple[str | None, float, float]]

BOARDS: dict[str, dict] = {
    "orin_nano_8gb": {
        "model": "NVIDIA Jetson Orin Nano Developer Kit",
        "conf": "nvpmodel_orin_nano_8gb.conf",
        "hwmon": {
            "1-0040": {
                1: ("VDD_IN", 5080.0, 1200.0),
                2: ("VDD_CPU_GPU_CV", 5072.0, 420.0),
                3: ("VDD_SOC", 5072.0, 310.0),
            }
        },
    },
    "orin_nx_16gb": {
        "model": "NVIDIA Jetson Orin NX Engineering Reference Developer Kit",
        "conf": "nvpmodel_orin_nx_16gb.conf",
        "hwmon": {
            "1-0040": {
                1: ("VDD_IN", 5056.0, 1800.0),
                2: ("VDD_CPU_GPU_CV", 5048.0, 700.0),
                3: ("VDD_SOC", 5048.0, 400.0),
            }
        },
    },
    "agx_orin_64gb": {
        "model": "Jetson AGX Orin Developer Kit",
        "conf": "nvpmodel_agx_orin_64gb.conf",
        "hwmon": {
            "1-0040": {
                1: ("VDD_GPU_SOC", 5000.0, 1000.0),
                2: ("VDD_CPU_CV", 5000.0, 400.0),
                3: ("VIN_SYS_5V0", 5000.0, 600.0),
            },
            "1-0041": {
                1: ("VDDQ_VDD2_1V8AO", 5000.0, 200.0),
                2: ("NC", 0.0, 0.0),
                3: (None, 0.0, 0.0),
            },
        },
    },
}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _install_program(src: Path, dst: Path) -> None:
    body = src.read_text().split("\n", 1)[1]
    _write(dst, f"#!{sys.executable}\n{body}")
    dst.chmod(0o755)


@dataclass
class FakeBoard:
    """A fake board rooted at ``root``; :attr:`env` holds the ``EDGE_SDK_*`` overrides."""

    name: str
    root: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "EDGE_SDK_SYSFS_ROOT": str(self.root),
            "EDGE_SDK_NVPMODEL": str(self.root / "usr/sbin/nvpmodel"),
            "EDGE_SDK_NVPMODEL_CONF": str(self.root / "etc/nvpmodel.conf"),
            "EDGE_SDK_JETSON_CLOCKS": str(self.root / "usr/bin/jetson_clocks"),
            "EDGE_SDK_STATE_DIR": str(self.root / "var/lib/edge-sdk"),
            "FAKE_NVPMODEL_ROOT": "1",
        }

    def hwmon(self, device: str) -> Path:
        return self.root / "sys/bus/i2c/devices" / device / "hwmon/hwmon1"

    def set_rail(self, device: str, channel: int, millivolts: float, milliamps: float) -> None:
        folder = self.hwmon(device)
        (folder / f"in{channel}_input").write_text(f"{int(millivolts)}\n")
        (folder / f"curr{channel}_input").write_text(f"{int(milliamps)}\n")

    def mode_id(self) -> int:
        return int((self.root / "var/lib/nvpmodel/status").read_text().strip().split(":")[1])

    def set_calls(self) -> list[str]:
        calls = self.root / "var/lib/nvpmodel/calls.log"
        return calls.read_text().splitlines() if calls.exists() else []

    def clocks_state(self) -> str:
        state = self.root / "var/lib/fake_jetson_clocks/state"
        return state.read_text().strip() if state.exists() else "pinned=0"


def make_board(name: str, root: Path, mode_id: int | None = None) -> FakeBoard:
    """Build board ``name`` (a key of :data:`BOARDS`) under ``root``."""
    spec = BOARDS[name]
    _write(root / "sys/firmware/devicetree/base/model", spec["model"] + "\x00")
    for device, channels in spec["hwmon"].items():
        base = root / "sys/bus/i2c/devices" / device
        _write(base / "name", "ina3221\n")
        folder = base / "hwmon/hwmon1"
        _write(folder / "name", "ina3221\n")
        for ch, (label, mv, ma) in channels.items():
            if label is not None:
                _write(folder / f"in{ch}_label", label + "\n")
            _write(folder / f"in{ch}_input", f"{int(mv)}\n")
            _write(folder / f"curr{ch}_input", f"{int(ma)}\n")
            _write(folder / f"curr{ch}_max", "4000\n")
            _write(folder / f"curr{ch}_crit", "5000\n")
        _write(folder / "in7_label", "sum of shunt voltages\n")
        _write(folder / "in7_input", "152\n")
        driver = root / "sys/bus/i2c/drivers/ina3221"
        driver.mkdir(parents=True, exist_ok=True)
        (driver / device).symlink_to(base)
    conf = (FIXTURES / spec["conf"]).read_text()
    _write(root / "etc/nvpmodel.conf", conf)
    if mode_id is not None:
        _write(root / "var/lib/nvpmodel/status", f"pmode:{mode_id:04d}\n")
    else:
        default = int(conf.split("PM_CONFIG DEFAULT=")[1].split()[0])
        _write(root / "var/lib/nvpmodel/status", f"pmode:{default:04d}\n")
    _install_program(FIXTURES / "fake_nvpmodel.py", root / "usr/sbin/nvpmodel")
    _install_program(FIXTURES / "fake_jetson_clocks.py", root / "usr/bin/jetson_clocks")
    return FakeBoard(name, root)


def make_iio_board(root: Path) -> None:
    """A JetPack 4 (Xavier NX) style iio tree: ``rail_name_K``, ``in_powerK_input`` (mW)."""
    folder = root / "sys/bus/i2c/drivers/ina3221x/7-0040/iio:device0"
    for k, (name, mv, ma, mw) in enumerate(
        [
            ("VDD_IN", 5000, 1000, 5000),
            ("VDD_CPU_GPU_CV", 5000, 300, 1500),
            ("VDD_SOC", 5000, 200, 1000),
        ]
    ):
        _write(folder / f"rail_name_{k}", name + "\n")
        _write(folder / f"in_voltage{k}_input", f"{mv}\n")
        _write(folder / f"in_current{k}_input", f"{ma}\n")
        _write(folder / f"in_power{k}_input", f"{mw}\n")


def make_desktop(root: Path) -> Path:
    """A machine that is not a Jetson: a sysfs tree without a device-tree model or INA3221, and
    an empty program folder (no nvpmodel, no jetson_clocks)."""
    (root / "sys/class").mkdir(parents=True, exist_ok=True)
    (root / "bin").mkdir(parents=True, exist_ok=True)
    return root


def with_sigint(argv: list[str]) -> list[str]:
    """``argv`` run with SIGINT at its default action, whatever this process inherited: a shell
    starts background jobs with SIGINT ignored, Python then installs no Ctrl-C handler, and a
    test that interrupts a child would hang (exec keeps SIG_DFL, unlike a Python handler)."""
    reset = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", reset, *argv]


def board_env(board: FakeBoard) -> dict[str, str]:
    """``os.environ`` plus the board's overrides (for subprocesses)."""
    return {**os.environ, **board.env}
