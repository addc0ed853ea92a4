"""The example device application runs here: on a fake board, and on a replayed trace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from power_fakeboard import board_env

from edge_sdk.power import load_trace, sample_trace_path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "power_efficiency.py"


def _runtime_or_skip() -> None:
    pytest.importorskip("onnxruntime")
    try:
        from edge_sdk.runtime import load  # noqa: F401
    except (ImportError, AttributeError):
        pytest.skip("the runtime is not available yet")


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**env, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_example_on_a_fake_orin_nano(fake_board, tmp_path: Path, demo_bundle_int8: Path) -> None:
    _runtime_or_skip()
    board = fake_board("orin_nano_8gb", mode_id=1)  # starts in 7W; the example asks for 15W
    log = tmp_path / "eff.jsonl"
    proc = _run(board_env(board), str(demo_bundle_int8), "--tokens", "8", "--log", str(log))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["tokens"] >= 1 and result["avg_w"] == pytest.approx(6.096)
    assert result["tokens_per_s_per_w"] == pytest.approx(result["tokens_per_s"] / 6.096, rel=0.05)
    assert board.set_calls() == ["-m 0", "-m 1"] and board.mode_id() == 1
    assert any(json.loads(line)["type"] == "token" for line in log.open())


def test_example_on_a_replayed_trace(tmp_path: Path, demo_bundle_int8: Path) -> None:
    _runtime_or_skip()
    trace = tmp_path / "power.csv"
    trace.write_text("t,total_w\n0,5.0\n1,5.0\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("EDGE_SDK_") or k == "EDGE_SDK_CACHE_DIR"
    }  # the test's cache
    if shutil.which("nvpmodel"):
        pytest.skip("this machine has a real nvpmodel: the fake-board test covers the mode")
    proc = _run(
        env,
        str(demo_bundle_int8),
        "--tokens",
        "4",
        "--sensor",
        f"replay:{trace}",
        "--log",
        str(tmp_path / "r.jsonl"),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["avg_w"] == pytest.approx(5.0)
    # the docstring's command: the packaged sample trace
    proc = _run(
        env,
        str(demo_bundle_int8),
        "--tokens",
        "4",
        "--sensor",
        "replay:sample",
        "--log",
        str(tmp_path / "s.jsonl"),
    )
    assert proc.returncode == 0, proc.stderr
    watts = [w for _, w, _ in load_trace(sample_trace_path())]
    assert min(watts) <= json.loads(proc.stdout)["avg_w"] <= max(watts)
