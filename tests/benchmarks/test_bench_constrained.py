"""benchmarks/bench_constrained.py on the demo bundle, a few tokens: the comparison, its profile
and the schema check run and report what the README's table shows."""

from __future__ import annotations

from pathlib import Path

import bench_constrained

from edge_sdk.runtime import load


def test_compare_and_schema_check_on_the_demo(demo_bundle_int8: Path) -> None:
    with load(demo_bundle_int8, "ort-cpu", threads=2) as gen:
        result = bench_constrained.compare("demo", gen, tokens=24, repeats=1, log=lambda _: None)
    assert set(result["decodings"]) == {"greedy", "sampled"}
    for row in result["decodings"].values():
        assert row["plain_tokens_per_s"] > 0 and row["constrained_tokens_per_s"] > 0
        assert row["constrained_new_tokens"] == [24]  # at least 16 objects: never done early
        profile = row["profile"]
        assert profile["tokens"] == 24 and 0 < profile["full_masks"] <= 24
        assert profile["total_cpu_us"] > 0 and row["sample_text"].startswith('[{"name": "')
    assert result["decodings"]["sampled"]["profile"]["full_masks"] == 24  # sampling always masks
    check = bench_constrained.validity("demo", demo_bundle_int8, 2, log=lambda _: None)
    assert check["schemas"] >= 20 and check["complete_and_valid"] == check["complete"]
