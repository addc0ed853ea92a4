"""Readable units for small and large models, and the context limit: a bundle's
max_sequence_length (or the model's max_position_embeddings) lowers the default context, bounds
the max context, and a --context above it is a one-line error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edge_sdk.errors import ConfigError
from edge_sdk.planner import get_preset, plan
from edge_sdk.planner.cli import main
from edge_sdk.planner.units import (
    format_bytes,
    format_count,
    format_flops,
    format_seconds,
    significant,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (13.48e9, "13.48 GB"),
        (262.1e6, "262 MB"),
        (7.87e6, "7.87 MB"),
        (16.8e6, "16.8 MB"),
        (999.6e3, "1.00 MB"),
        (6912, "6.91 KB"),
        (512, "512 B"),
        (0, "0 B"),
    ],
)
def test_bytes(value: float, text: str) -> None:
    assert format_bytes(value) == text


def test_counts_flops_seconds_and_significant_digits() -> None:
    assert [format_count(n) for n in (6.738e9, 134.6e6, 1_967_808, 12_345, 512)] == [
        "6.74 B",
        "135 M",
        "1.97 M",
        "12.3 K",
        "512",
    ]
    assert [format_flops(n) for n in (28.16e12, 15.4e9, 5.51e6)] == [
        "28.16 TFLOP",
        "15.4 GFLOP",
        "5.51 MFLOP",
    ]
    assert [format_seconds(t) for t in (2.75, 0.326, 865e-6)] == ["2.75 s", "326 ms", "865 us"]
    assert [significant(x) for x in (8.2e-5, 0.11, 1.33, 0.000547)] == [
        "0.000082",
        "0.11",
        "1.33",
        "0.000547",
    ]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_small_bundle_in_its_own_units_and_context(
    demo_bundle_int8: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, str(demo_bundle_int8), "--device", "orin-nano-8gb")
    first = out.splitlines()[0]
    assert code == 0 and "(1.97 M parameters)" in first and not re.search(r"\b0\.00\b", out)
    assert "context 512 (the bundle's limit)" in first
    assert "512 (the bundle's limit)" in out and "KV cache (fp32, 512 x 1)" in out
    code, out, _ = _run(capsys, str(demo_bundle_int8), "--device", "orin-nano-8gb", "--json")
    data = json.loads(out)
    assert (data["context"], data["context_limit"], data["context_limit_source"]) == (
        512,
        512,
        "bundle",
    )
    assert data["context_capped"] and data["max_context"] == 512
    code, out, _ = _run(
        capsys, str(demo_bundle_int8), "--device", "orin-nano-8gb", "--context", "256", "--json"
    )
    data = json.loads(out)
    assert code == 0 and data["context"] == 256 and not data["context_capped"]


def test_a_context_above_the_bundle_limit_is_an_error(
    demo_bundle_int8: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(
        capsys, str(demo_bundle_int8), "--device", "orin-nano-8gb", "--context", "4096"
    )
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "--context 4096 is above the bundle's limit of 512 tokens" in err
    assert "pass --context 512 or less" in err
    code, _, err = _run(capsys, str(demo_bundle_int8), "--compare", "devices", "--context", "600")
    assert code == 1 and "above the bundle's limit of 512" in err


def test_a_model_limit_below_the_default_context() -> None:
    tiny = get_preset("tinyllama-1.1b")  # max_position_embeddings 2048
    assert tiny.max_position_embeddings == 2048
    p = plan(tiny, "agx-orin-64gb")
    assert (p.context, p.context_capped, p.context_limit_source) == (2048, True, "model")
    assert p.max_context == 2048 and p.max_context_limit == "model"
    with pytest.raises(ConfigError, match="above the model's limit of 2048 tokens"):
        plan(tiny, "agx-orin-64gb", context=4096)
    assert not plan(get_preset("qwen2.5-1.5b"), "orin-nano-8gb").context_capped
