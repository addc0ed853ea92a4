"""edge-plan: readable output, --json, --compare, and one-line errors with exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_sdk.planner.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_hand_checked_1_5b_int8_on_orin_nano_8gb(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "qwen2.5-1.5b", "--device", "orin-nano-8gb", "--precision", "int8")
    assert code == 0
    assert "fits" in out and "yes" in out
    assert "68.0 GB/s" in out and "decode, weights only" in out


def test_7b_bf16_explains_the_rule_of_thumb(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "llama-2-7b", "--device", "orin-nano-8gb", "--precision", "bf16")
    assert code == 0
    assert "NO" in out  # does not fit
    assert "26.95 GB by the rule; weights 13.48 GB" in out
    assert "doubles the weights" in out


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys,
        "smollm2-135m",
        "--device",
        "orin-nano-4gb",
        "--context",
        "2048",
        "--batch",
        "2",
        "--json",
    )
    data = json.loads(out)
    assert code == 0 and data["memory"]["fits"] and data["batch"] == 2
    assert data["memory"]["kv_cache"] == 2 * 30 * 3 * 64 * 2048 * 2 * 4  # int8 bundles: fp32 KV


def test_compare_devices_and_precisions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "llama-3.2-1b", "--compare", "devices", "--mode", "15W")
    assert code == 0 and "orin-nx-16gb" in out and "note: orin-nano-4gb has no 15W mode" in out
    code, out, _ = _run(
        capsys, "llama-3.2-1b", "--device", "orin-nano-8gb", "--compare", "fp16,int4", "--json"
    )
    assert code == 0 and [p["precision"] for p in json.loads(out)["plans"]] == [
        "fp16",
        "int4 (group 64)",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["qwen2.5-1.5b", "--device", "xavier"],
            "unknown device 'xavier'; valid devices: orin-nano-4gb",
        ),
        (
            ["qwen2.5-1.5b", "--device", "orin-nano-8gb", "--context", "-4"],
            "--context must be a positive",
        ),
        (["no-such-model", "--device", "orin-nano-8gb"], "valid presets: tinyllama-1.1b"),
        (["qwen2.5-1.5b"], "--device is required"),
        (["qwen2.5-1.5b", "--compare", "fp16,t4"], "--compare takes"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("edge-plan: error: ") and message in err


def test_unreadable_config_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    broken = tmp_path / "config.json"
    broken.write_text("{", encoding="utf-8")
    code, _, err = _run(capsys, str(broken), "--device", "orin-nano-8gb")
    assert code == 1 and err.count("\n") == 1 and "cannot read" in err


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["qwen2.5-1.5b", "--device", "orin-nano-8gb", "--precision", "int3"])
    assert exc.value.code == 2
