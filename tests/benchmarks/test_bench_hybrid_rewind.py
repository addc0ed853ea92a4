"""benchmarks/bench_hybrid_rewind.py on the session's tiny random Qwen3.5: every step timed,
the table, the JSON with the host record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bench_hybrid_rewind
import pytest


def test_the_rewind_steps_on_a_tiny_qwen3_5(
    qwen3_5_random: tuple[Any, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rewind.json"
    argv = [f"tiny={qwen3_5_random[1]}", "--ks", "1,3", "--repeats", "1", "--threads", "1"]
    assert bench_hybrid_rewind.main([*argv, "--prompt", "8", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert "isa" in report["host"]
    ms = report["ms"]["tiny"]
    names = ["decode", "checkpoint k=1", "verify k=1", "rewind k=1 a=0"]
    names += ["checkpoint k=3", "verify k=3"] + [f"rewind k=3 a={a}" for a in range(3)]
    assert sorted(ms) == sorted(names) and all(v > 0 for v in ms.values())
    printed = capsys.readouterr().out
    assert "| 3 |" in printed and "partial step / full step" in printed
