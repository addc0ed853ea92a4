"""nvpmodel on fake boards: parsing, budget resolution, refusals, and restore guarantees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from power_fakeboard import FIXTURES, board_env, with_sigint

from edge_sdk.errors import PowerError
from edge_sdk.power import NvpModel, parse_nvpmodel_text, power_mode, recorded_states
from edge_sdk.power.cli import main


@pytest.mark.parametrize(
    "conf, default, names",
    [
        ("nvpmodel_orin_nano_8gb.conf", 0, ["15W", "7W"]),
        ("nvpmodel_orin_nx_16gb.conf", 2, ["MAXN", "10W", "15W", "25W"]),
        ("nvpmodel_agx_orin_64gb.conf", 2, ["MAXN", "MODE_15W", "MODE_30W", "MODE_50W"]),
    ],
)
def test_parse_real_format(conf: str, default: int, names: list[str]) -> None:
    config = parse_nvpmodel_text((FIXTURES / conf).read_text(), conf)
    assert config.default_id == default
    assert [m.name for m in config.modes] == names
    assert [m.id for m in config.modes] == list(range(len(names)))


def test_parse_tolerates_spacing_and_reads_params() -> None:
    config = parse_nvpmodel_text(
        "<PARAM TYPE=CLOCK NAME=EMC >\nMAX_FREQ /sys/kernel/x\n"
        "<  POWER_MODEL   ID=4  NAME=MODE_7W   >  # trailing comment\n"
        "  GPU   MAX_FREQ    408000000  \nTPC_POWER_GATING TPC_PG_MASK 252\n"
        "<PM_CONFIG DEFAULT=4>\n"
    )
    mode = config.modes[0]
    assert (mode.id, mode.name, mode.watts, mode.tpc_pg_mask) == (4, "MODE_7W", 7.0, "252")
    assert mode.params[("GPU", "MAX_FREQ")] == "408000000"


@pytest.mark.parametrize(
    "text, why",
    [
        ("< POWER_MODEL ID=0 NAME=15W\nGPU MAX_FREQ 1\n< PM_CONFIG DEFAULT=0 >\n", "closing '>'"),
        ("< POWER_MODEL ID=0 NAME=15W >\nGPU MAX_FREQ 1\n", "PM_CONFIG"),
        ("< POWER_MODEL ID=x NAME=15W >\n< PM_CONFIG DEFAULT=0 >\n", "ID=<number>"),
        ("< POWER_MODEL ID=0 NAME=15W >\nGPU 1\n< PM_CONFIG DEFAULT=0 >\n", "PARAM ARG VALUE"),
        ("GPU MAX_FREQ 1\n", "outside any"),
        ("< PM_CONFIG DEFAULT=0 >\n", "no < POWER_MODEL"),
        ("< POWER_MODEL ID=0 NAME=15W >\n< PM_CONFIG DEFAULT=3 >\n", "default mode 3"),
    ],
)
def test_malformed_conf_names_the_problem(text: str, why: str) -> None:
    with pytest.raises(PowerError, match="malformed nvpmodel configuration") as info:
        parse_nvpmodel_text(text, "bad.conf")
    assert why in str(info.value)


@pytest.mark.parametrize(
    "board, spec, expected",
    [
        ("orin_nano_8gb", "15W", (0, "15W")),
        ("orin_nano_8gb", "7w", (1, "7W")),
        ("orin_nx_16gb", "15W", (2, "15W")),
        ("orin_nx_16gb", "25W", (3, "25W")),
        ("orin_nx_16gb", "maxn", (0, "MAXN")),
        ("orin_nx_16gb", "1", (1, "10W")),
        ("agx_orin_64gb", "15W", (1, "MODE_15W")),
        ("agx_orin_64gb", "MODE_30W", (2, "MODE_30W")),
        ("agx_orin_64gb", "50W", (3, "MODE_50W")),
    ],
)
def test_budget_resolution_per_module(
    fake_board, board: str, spec: str, expected: tuple[int, str]
) -> None:
    fake_board(board)
    mode = NvpModel().resolve(spec)
    assert (mode.id, mode.name) == expected


def test_unknown_budget_lists_available(fake_board) -> None:
    fake_board("agx_orin_64gb")
    with pytest.raises(PowerError, match=r"no power mode '12W'.*0=MAXN, 1=MODE_15W, 2=MODE_30W"):
        NvpModel().resolve("12W")
    with pytest.raises(PowerError, match="no power mode with id 9"):
        NvpModel().resolve("9")


def test_set_and_query_through_the_program(fake_board) -> None:
    board = fake_board("agx_orin_64gb")
    nvp = NvpModel()
    assert nvp.current().name == "MODE_30W"
    change = nvp.apply("15W")
    assert change.changed and change.after == "1=MODE_15W"
    assert board.mode_id() == 1 and nvp.current().id == 1
    assert not nvp.apply("MODE_15W").changed


def test_reboot_requiring_change_is_refused(fake_board) -> None:
    board = fake_board("orin_nx_16gb")
    with pytest.raises(PowerError, match=r"needs a reboot.*TPC.*never confirms"):
        NvpModel().apply("10W")
    assert board.mode_id() == 2 and board.set_calls() == []


def test_reboot_prompt_is_never_answered(fake_board, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the file, masks are unknown: nvpmodel's own prompt is met with no input."""
    if Path("/etc/nvpmodel.conf").exists():
        pytest.skip("this machine has a real /etc/nvpmodel.conf")
    board = fake_board("orin_nx_16gb")
    monkeypatch.delenv("EDGE_SDK_NVPMODEL_CONF")
    nvp = NvpModel()
    assert [m.name for m in nvp.modes()] == ["MAXN", "10W", "15W", "25W"]  # from -p --verbose
    with pytest.raises(PowerError, match="wants a reboot"):
        nvp.apply("10W")
    assert board.mode_id() == 2 and board.set_calls() == ["-m 1"]
    assert not (board.root / "var/lib/nvpmodel/reboot_requested").exists()


def test_not_root_is_said_clearly(fake_board, monkeypatch: pytest.MonkeyPatch) -> None:
    board = fake_board("agx_orin_64gb")
    monkeypatch.setenv("FAKE_NVPMODEL_ROOT", "0")
    with pytest.raises(PowerError, match="needs root: run 'sudo edge-power set MODE_15W'"):
        NvpModel().apply("15W")
    assert board.mode_id() == 2


def test_dry_run_changes_nothing(fake_board) -> None:
    board = fake_board("agx_orin_64gb")
    with power_mode("15W", dry_run=True) as guard:
        assert guard.changes[0].dry_run and "-m 1" in guard.changes[0].commands[0]
        assert board.mode_id() == 2
    assert recorded_states() == {} and board.set_calls() == []


def test_guard_restores_after_exception_and_records_first(fake_board) -> None:
    board = fake_board("agx_orin_64gb")
    with pytest.raises(ZeroDivisionError), power_mode("15W", jetson_clocks=True):
        assert board.mode_id() == 1 and board.clocks_state() == "pinned=1"
        assert recorded_states()["nvpmodel"]["mode_id"] == 2
        _ = 1 / 0
    assert board.mode_id() == 2 and board.clocks_state() == "pinned=0"
    assert recorded_states() == {}


def test_guard_restores_after_ctrl_c(fake_board) -> None:
    board = fake_board("orin_nx_16gb")
    with pytest.raises(KeyboardInterrupt), power_mode("25W"):
        assert board.mode_id() == 3
        raise KeyboardInterrupt
    assert board.mode_id() == 2


CHILD = """
import sys, time
from edge_sdk.power import power_mode
with power_mode(sys.argv[1]):
    print("ready", flush=True)
    time.sleep(60)
"""


def _start_child(board, code: str, *args: str) -> subprocess.Popen[str]:
    env = {**board_env(board), "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        with_sigint([sys.executable, "-c", code, *args]),
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize(
    "sig, codes",
    [(signal.SIGTERM, {128 + signal.SIGTERM}), (signal.SIGINT, {-signal.SIGINT, 1, 130})],
)
def test_guard_restores_when_the_process_is_signalled(
    fake_board, sig: int, codes: set[int]
) -> None:
    board = fake_board("agx_orin_64gb")
    proc = _start_child(board, CHILD, "15W")
    assert board.mode_id() == 1
    proc.send_signal(sig)
    assert proc.wait(30) in codes
    assert board.mode_id() == 2
    assert recorded_states() == {}


def test_restore_after_sigkill(fake_board, capsys: pytest.CaptureFixture[str]) -> None:
    board = fake_board("orin_nano_8gb")
    proc = _start_child(board, CHILD, "7W")
    assert board.mode_id() == 1
    proc.kill()
    proc.wait(30)
    assert board.mode_id() == 1 and recorded_states()["nvpmodel"]["mode_id"] == 0
    assert main(["restore"]) == 0
    assert "1=7W -> 0=15W" in capsys.readouterr().out
    assert board.mode_id() == 0 and recorded_states() == {}


def test_a_signal_right_after_the_record_is_written_forgets_it(fake_board, monkeypatch) -> None:
    """SIGTERM between writing the state record and remembering it: no stale record is left."""
    from edge_sdk.power import modes

    board = fake_board("orin_nx_16gb")
    real_record = modes.record_state

    def record_then_sigterm(kind: str, snapshot: dict) -> bool:
        wrote = real_record(kind, snapshot)
        signal.raise_signal(signal.SIGTERM)
        return wrote

    monkeypatch.setattr(modes, "record_state", record_then_sigterm)
    with pytest.raises(SystemExit) as info, power_mode("25W"):
        pytest.fail("the block must not run")
    assert info.value.code == 128 + signal.SIGTERM
    assert board.mode_id() == 2
    assert recorded_states() == {}


def test_signal_during_mode_change_still_restores(fake_board, monkeypatch) -> None:
    """SIGTERM while nvpmodel -m runs: the block never starts, the mode is put back."""
    board = fake_board("agx_orin_64gb")
    env = {
        **board_env(board),
        "PYTHONPATH": os.pathsep.join(sys.path),
        "FAKE_NVPMODEL_DELAY": "0.5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, "15W"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not board.set_calls() and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM
    assert board.mode_id() == 2
