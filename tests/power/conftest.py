"""Fixtures for the power tests: fake boards selected through the EDGE_SDK_* overrides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from power_fakeboard import BOARDS, FakeBoard, make_board

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
