"""Off a Jetson every mode command says so in the same line; ``--conf`` reads a board's file."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from power_fakeboard import FIXTURES

from edge_sdk.power.cli import main
from edge_sdk.power.nvpmodel import NOT_A_JETSON

NANO_CONF = FIXTURES / "nvpmodel_orin_nano_8gb.conf"


@pytest.mark.parametrize(
    "argv",
    [
        ["modes"],
        ["set", "15W"],
        ["set", "15W", "--dry-run"],
        ["run", "--mode", "15W", "--", sys.executable, "-c", "pass"],
        ["set", "15W", "--conf", str(NANO_CONF)],
    ],
)
def test_mode_commands_say_not_a_jetson(not_a_jetson, capsys, argv: list[str]) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"edge-power: error: {NOT_A_JETSON}"
    assert "--conf FILE" in err and "/etc/nvpmodel.conf" not in err


def test_bench_under_a_mode_says_not_a_jetson(not_a_jetson, capsys, demo_bundle_int8: Path) -> None:
    pytest.importorskip("onnxruntime")
    assert main(["bench", str(demo_bundle_int8), "--mode", "15W", "--tokens", "2"]) == 1
    assert capsys.readouterr().err.strip() == f"edge-power: error: {NOT_A_JETSON}"


def test_status_shows_the_same_reason(not_a_jetson, capsys) -> None:
    assert main(["status", "--sensor", "replay:sample"]) == 0
    out = capsys.readouterr().out
    assert f"mode:    none ({NOT_A_JETSON})" in out and "replay of the sample trace" in out


def test_status_off_a_jetson_without_a_sensor_is_exit_0_with_short_lines(
    not_a_jetson, capsys, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "jtop", None)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert main(["status"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[2].startswith("sensor:  none found") and "replay:sample" in lines[2]
    assert [line.split(":")[0].strip() for line in lines[3:]] == ["ina3221", "jtop", "nvml", "rapl"]
    assert max(len(line) for line in lines[2:]) < 250
    assert main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sensor"] is None and set(data["sensor_tried"]) == {
        "ina3221",
        "jtop",
        "nvml",
        "rapl",
    }


def test_modes_from_a_conf_file_off_a_jetson(not_a_jetson, capsys) -> None:
    assert main(["modes", "--conf", str(NANO_CONF), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(m["id"], m["name"]) for m in data["modes"]] == [(0, "15W"), (1, "7W")]
    assert data["current"] is None and data["default"] == 0
    assert main(["modes", "--conf", str(NANO_CONF)]) == 0
    assert "no nvpmodel here, so no current mode" in capsys.readouterr().out


def test_conf_is_passed_to_nvpmodel_and_kept_for_restore(
    fake_board, monkeypatch, tmp_path, capsys
) -> None:
    board = fake_board("orin_nano_8gb")  # in 15W (0)
    monkeypatch.delenv("EDGE_SDK_NVPMODEL_CONF")  # the program's default is the board's file
    extra = tmp_path / "extra.conf"  # the board's file plus a mode only this copy has
    shutil.copy(board.root / "etc/nvpmodel.conf", extra)
    text = extra.read_text()
    block = text[text.index("< POWER_MODEL ID=0") : text.index("< POWER_MODEL ID=1")]
    extra.write_text(text + "\n" + block.replace("ID=0 NAME=15W", "ID=5 NAME=12W"))
    assert main(["set", "12W"]) == 1  # the board's own file has no 12W
    capsys.readouterr()
    assert main(["set", "12W", "--conf", str(extra), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["changes"][0]["after"] == "5=12W"
    assert board.mode_id() == 5  # nvpmodel accepted id 5: it was given -f extra.conf
    assert main(["restore"]) == 0  # the recorded state names the file: -f again
    assert board.mode_id() == 0
