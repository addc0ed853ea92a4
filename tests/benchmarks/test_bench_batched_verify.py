"""benchmarks/bench_batched_verify.py on the demo bundle: every (slots, drafts) row, the
break-even arithmetic, the JSON with the host record, and a refusal of a bad flag."""

from __future__ import annotations

import json
from pathlib import Path

import bench_batched_verify
import pytest


def test_batched_decode_against_batched_verify_on_the_demo(
    demo_bundle_int8: Path, tmp_path: Path
) -> None:
    out = tmp_path / "verify.json"
    argv = [f"demo={demo_bundle_int8}", "--slots", "2", "--ks", "1,3", "--repeats", "1"]
    assert bench_batched_verify.main([*argv, "--threads", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert "isa" in report["host"] and report["settings"]["slots"] == [2]
    rows = report["rows"]
    assert [(r["slots"], r["k"]) for r in rows] == [(2, 1), (2, 3)]
    for row in rows:
        assert row["decode_ms"] > 0 and row["verify_ms"] > 0
        ratio = row["verify_vs_decode"]
        assert ratio == pytest.approx(row["verify_ms"] / row["decode_ms"])
        even = row["break_even_acceptance"]
        if even is not None and ratio > 1:  # 1 + a + ... + a^k reaches the cost ratio there
            assert bench_batched_verify.expected_tokens(even, row["k"]) == pytest.approx(ratio)
    with pytest.raises(SystemExit):
        bench_batched_verify.main([f"demo={demo_bundle_int8}", "--slots", "1"])


def test_break_even() -> None:
    assert bench_batched_verify.expected_tokens(0.5, 2) == 1.75
    assert bench_batched_verify.break_even(1.75, 2) == pytest.approx(0.5)
    assert bench_batched_verify.break_even(3.5, 2) is None  # k=2 gives at most 3 tokens
    assert bench_batched_verify.break_even(0.9, 2) == 0.0  # cheaper than the decode
