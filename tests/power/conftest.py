"""Fixtures for the power tests: fake boards selected through the EDGE_SDK_* overrides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from power_fakeboard import BOARDS, FakeBoard, make_board, make_desktop

ALL_BOARDS = sorted(BOARDS)


@pytest.fixture
def fake_board(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeBoard]:
    """Factory: ``fake_board("agx_orin_64gb")`` builds the board and points the SDK at it."""

    def build(name: str, mode_id: int | None = None) -> FakeBoard:
        board = make_board(name, tmp_path / name, mode_id)
        for key, value in board.env.items():
            monkeypatch.setenv(key, value)
        return board

    return build


@pytest.fixture
def not_a_jetson(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A machine without nvpmodel or INA3221 (a desktop tree); skips on a real Jetson."""
    from edge_sdk.power import paths

    root = make_desktop(tmp_path / "desktop")
    for key in ("EDGE_SDK_NVPMODEL", "EDGE_SDK_NVPMODEL_CONF", "EDGE_SDK_JETSON_CLOCKS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("EDGE_SDK_SYSFS_ROOT", str(root))
    monkeypatch.setenv("EDGE_SDK_STATE_DIR", str(root / "state"))
    monkeypatch.setenv("PATH", str(root / "bin"))
    if paths.nvpmodel_program() or paths.nvpmodel_conf().exists():
        pytest.skip("this machine has a real nvpmodel: it is a Jetson")
    return root
