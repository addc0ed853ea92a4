"""``edge-power`` on fake boards: each module's status/modes/set/restore, run, and bad input."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ALL_BOARDS
from power_fakeboard import board_env, with_sigint

from edge_sdk.power.cli import main

EXPECTED_15W = {"orin_nano_8gb": "0=15W", "orin_nx_16gb": "2=15W", "agx_orin_64gb": "1=MODE_15W"}


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", ALL_BOARDS)
def test_status_modes_set_restore_each_module(fake_board, capsys, name: str) -> None:
    board = fake_board(name)
    original = board.mode_id()
    assert main(["status", "--json"]) == 0
    status = _json(capsys)
    assert status["board"] and status["mode"]["id"] == original
    assert status["reading"]["total_source"] == (
        "sum of rails" if name.startswith("agx") else "VDD_IN"
    )
    assert main(["modes", "--json"]) == 0
    assert [m["current"] for m in _json(capsys)["modes"]].count(True) == 1
    assert main(["set", "15W", "--json"]) == 0
    change = _json(capsys)["changes"][0]
    assert change["after"] == EXPECTED_15W[name]
    assert board.mode_id() == int(EXPECTED_15W[name].split("=")[0])
    assert main(["restore"]) == 0
    assert board.mode_id() == original
    assert main(["restore"]) == 0
    assert "nothing recorded" in capsys.readouterr().out


def test_readable_status_and_modes(fake_board, capsys) -> None:
    fake_board("agx_orin_64gb")
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "mode:    2=MODE_30W" in out and "sum of rails" in out and "VDDQ_VDD2_1V8AO" in out
    assert main(["modes"]) == 0
    assert "* " in capsys.readouterr().out


def test_set_dry_run_and_jetson_clocks(fake_board, capsys) -> None:
    board = fake_board("orin_nx_16gb")
    assert main(["set", "25W", "--dry-run", "--jetson-clocks"]) == 0
    assert "would change 2=15W -> 3=25W" in capsys.readouterr().out
    assert board.mode_id() == 2 and board.clocks_state() == "pinned=0"
    assert main(["set", "25W", "--jetson-clocks"]) == 0
    assert board.mode_id() == 3 and board.clocks_state() == "pinned=1"
    assert main(["restore"]) == 0
    assert board.mode_id() == 2 and board.clocks_state() == "pinned=0"


def _one_line_error(capsys, argv: list[str], match: str) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("edge-power: error:"), err
    assert match in err, err


def test_bad_input_gives_one_line_and_exit_1(fake_board, capsys, monkeypatch, tmp_path) -> None:
    board = fake_board("orin_nano_8gb")
    _one_line_error(capsys, ["set", "12W"], "no power mode '12W'")
    _one_line_error(capsys, ["set", "99"], "no power mode with id 99")
    monkeypatch.setenv("FAKE_NVPMODEL_ROOT", "0")
    _one_line_error(capsys, ["set", "7W"], "needs root")
    _one_line_error(
        capsys,
        ["monitor", "--sensor", "jtop", "--duration", "0.1"],
        "sensor 'jtop' is not available",
    )
    conf = board.root / "etc/nvpmodel.conf"
    good = conf.read_text()
    conf.write_text("< POWER_MODEL ID=0 NAME=15W\n")
    _one_line_error(capsys, ["modes"], "malformed nvpmodel configuration")
    _one_line_error(capsys, ["set", "15W"], "malformed nvpmodel configuration")
    conf.write_text(good)
    monkeypatch.setenv("EDGE_SDK_SYSFS_ROOT", str(tmp_path / "empty"))
    monkeypatch.setitem(sys.modules, "jtop", None)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    _one_line_error(capsys, ["monitor", "--duration", "0.1"], "no power sensor found")
    assert main(["status"]) == 0  # no sensor found is the answer, not a failure
    assert "sensor:  none found" in capsys.readouterr().out
    assert main(["status", "--sensor", "ina3221"]) == 1  # one asked for by name must work
    assert "sensor:  none" in capsys.readouterr().out
    _one_line_error(capsys, ["run", "--mode", "15W"], "no command to run")
    with pytest.raises(SystemExit) as info:
        main(["set"])
    assert info.value.code == 2


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "fast"])
def test_monitor_refuses_an_interval_that_is_not_positive(fake_board, capsys, value: str) -> None:
    fake_board("orin_nano_8gb")
    with pytest.raises(SystemExit) as info:
        main(["monitor", "--interval", value, "--duration", "0.1"])
    assert info.value.code == 2
    assert "--interval" in capsys.readouterr().err


def test_an_unreadable_power_state_record_says_how_to_recover(fake_board, capsys) -> None:
    board = fake_board("orin_nx_16gb")
    record = board.root / "var/lib/edge-sdk/previous-nvpmodel.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text('{"kind": "nvpm')  # cut short (a full disk, power loss)
    for argv in (["restore"], ["restore", "--dry-run"]):
        _one_line_error(capsys, argv, f"sudo rm {record}")
    assert main(["status"]) == 1
    out, err = capsys.readouterr()
    assert "mode:    2=15W" in out and "recorded previous state: unreadable" in out
    assert "'sudo edge-power set MODE'" in err and len(err.strip().splitlines()) == 1
    record.unlink()
    assert main(["restore"]) == 0


def test_monitor_logs_samples(fake_board, capsys, tmp_path: Path) -> None:
    fake_board("orin_nano_8gb")
    log = tmp_path / "m.jsonl"
    assert (
        main(["monitor", "--interval", "0.01", "--duration", "0.2", "--log", str(log), "--json"])
        == 0
    )
    stats = _json(capsys)
    assert stats["samples"] >= 5 and stats["avg_w"] == pytest.approx(6.096)
    assert sum(1 for _ in log.open()) == stats["samples"]


def test_run_under_a_mode_restores_and_reports(fake_board, capfd) -> None:
    board = fake_board("agx_orin_64gb")
    probe = "import pathlib,sys; print(pathlib.Path(sys.argv[1]).read_text())"
    status = str(board.root / "var/lib/nvpmodel/status")
    assert (
        main(
            [
                "run",
                "--mode",
                "15W",
                "--interval",
                "0.01",
                "--json",
                "--",
                sys.executable,
                "-c",
                probe,
                status,
            ]
        )
        == 0
    )
    out = capfd.readouterr().out
    assert "pmode:0001" in out  # the child ran under MODE_15W
    result = json.loads(out[out.index("{") :])
    assert result["returncode"] == 0 and result["power"]["energy_j"] > 0
    assert board.mode_id() == 2
    assert main(["run", "--", sys.executable, "-c", "raise SystemExit(3)"]) == 3


def _readline(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """A line of ``proc``'s stdout, waiting at most ``timeout`` seconds for it."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    return proc.stdout.readline()


def test_run_killed_by_sigterm_restores_and_sigkill_then_restore(fake_board) -> None:
    board = fake_board("orin_nx_16gb")
    env = {**board_env(board), "PYTHONPATH": os.pathsep.join(sys.path)}
    child = "import os, time; print('child running', os.getpid(), flush=True); time.sleep(60)"
    cmd = [sys.executable, "-m", "edge_sdk.power.cli", "run", "--mode", "25W", "--"]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
        proc = subprocess.Popen(
            with_sigint([*cmd, sys.executable, "-c", child]),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # the child's first line: the mode is set, the guard armed and the child started
        running, child_pid = _readline(proc, 30).rsplit(maxsplit=1)
        assert running == b"child running" and board.mode_id() == 3
        proc.send_signal(sig)
        code = proc.wait(30)
        if sig == signal.SIGKILL:  # nothing can stop the child then: the test does
            os.kill(int(child_pid), signal.SIGKILL)
            assert board.mode_id() == 3
            assert main(["restore"]) == 0
        else:
            assert code in (128 + sig, 130), proc.stderr.read() if proc.stderr else ""
            assert proc.stdout is not None and proc.stdout.read() == b""  # the child is gone
        assert board.mode_id() == 2


def test_a_signal_while_the_child_starts_still_stops_it(fake_board, monkeypatch, tmp_path) -> None:
    """SIGTERM between starting the child and holding its handle: the child is stopped too."""
    board = fake_board("orin_nx_16gb")
    child = [sys.executable, "-c", "import time; time.sleep(60)"]
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def popen_then_sigterm(args: Any, *rest: Any, **kwargs: Any) -> Any:
        proc = real_popen(args, *rest, **kwargs)
        if args == child:  # nvpmodel runs through Popen too
            started.append(proc)
            signal.raise_signal(signal.SIGTERM)
        return proc

    monkeypatch.setattr(subprocess, "Popen", popen_then_sigterm)
    try:
        with pytest.raises(SystemExit) as info:
            main(["run", "--mode", "25W", "--sensor", "ina3221", "--", *child])
        assert info.value.code == 128 + signal.SIGTERM
        assert board.mode_id() == 2
        assert started and started[0].poll() is not None, "the child outlived edge-power run"
    finally:
        for proc in started:
            proc.kill()
            proc.wait()


def test_bench_logs_tokens_per_watt_and_restores(
    fake_board, capsys, tmp_path: Path, demo_bundle_int8: Path
) -> None:
    pytest.importorskip("onnxruntime")
    board = fake_board("agx_orin_64gb")
    log, summary, table = tmp_path / "b.jsonl", tmp_path / "s.json", tmp_path / "s.csv"
    assert (
        main(
            [
                "bench",
                str(demo_bundle_int8),
                "--mode",
                "15W",
                "--tokens",
                "12",
                "--interval",
                "0.01",
                "--log",
                str(log),
                "--summary",
                str(summary),
                "--csv",
                str(table),
                "--json",
            ]
        )
        == 0
    )
    data = _json(capsys)
    assert data["mode"] == "15W" and data["run"]["tokens"] == 12  # end-of-text ignored
    assert data["run"]["avg_w"] == pytest.approx(11.0) and data["run"]["tokens_per_joule"] > 0
    kinds = {json.loads(line)["type"] for line in log.open()}
    assert {"sample", "token", "start", "stop", "summary"} <= kinds
    assert json.loads(summary.read_text())["run"]["tokens"] == data["run"]["tokens"]
    assert board.mode_id() == 2


def test_bench_stopped_by_a_signal_restores_the_mode(fake_board, demo_bundle_int8: Path) -> None:
    pytest.importorskip("onnxruntime")
    board = fake_board("orin_nano_8gb")  # default 15W (0); bench under 7W (1)
    env = {**board_env(board), "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [
        sys.executable,
        "-m",
        "edge_sdk.power.cli",
        "bench",
        str(demo_bundle_int8),
        "--mode",
        "7W",
        "--duration",
        "60",
        "--tokens",
        "64",
    ]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
        proc = subprocess.Popen(
            with_sigint(cmd), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while board.mode_id() != 1 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(1.0)  # generating by now
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(sig)
        code = proc.wait(30)
        if sig == signal.SIGKILL:
            assert board.mode_id() == 1
            assert main(["restore"]) == 0
        else:
            assert code in (128 + sig, 130), proc.stderr.read() if proc.stderr else ""
        assert board.mode_id() == 0
