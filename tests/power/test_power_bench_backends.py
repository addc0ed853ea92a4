"""``edge-power bench --backends``: every backend usable here runs the demo bundle for real
(ort-cpu, and the standard graph on the CPU), the others are listed with the runtime's own
reason; energy from the fake Orin Nano's INA3221 tree; agreement checked against an
independent pass (``forward_all``) over the same ids; the report written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_sdk.bundle import load_bundle
from edge_sdk.errors import BackendUnavailableError
from edge_sdk.power.backend_bench import combine_runs
from edge_sdk.power.cli import main
from edge_sdk.power.cli_bench_backends import prompt_plan
from edge_sdk.power.efficiency import PhaseFigures

PROMPT, NEW = 48, 12
NANO_VDD_IN_W = 5.080 * 1.2  # the fake Orin Nano's VDD_IN: 5080 mV, 1200 mA


@pytest.fixture
def bundle(demo_bundle_int8: Path) -> Path:
    pytest.importorskip("onnxruntime")
    return demo_bundle_int8


def _unusable_reason(name: str) -> str | None:
    from edge_sdk.runtime.backend import BACKEND_TABLE

    try:
        BACKEND_TABLE[name].backend_class().check_available()
    except BackendUnavailableError as exc:
        return str(exc)
    return None


def _rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in report["backends"]}


def test_report_on_a_fake_orin_nano(fake_board, bundle: Path, tmp_path: Path, capsys) -> None:
    board = fake_board("orin_nano_8gb")
    mode_before = board.mode_id()
    output = tmp_path / "out" / "report.json"
    argv = ["bench", str(bundle), "--backends", "all", "--mode", "7W", "--sensor", "ina3221"]
    argv += ["--interval", "0.01", "--prompt-tokens", str(PROMPT), "--tokens", str(NEW)]
    argv += ["--repeats", "1"]
    assert main([*argv, "--output", str(output), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert json.loads(output.read_text()) == report
    assert sorted(p.name for p in output.parent.iterdir()) == ["report.json"]  # no temp file left
    assert board.mode_id() == mode_before  # the mode was put back
    assert report["mode"]["requested"] == "7W" and report["mode"]["current"] == "1=7W"
    assert report["sensor"].startswith("INA3221")
    assert report["host"]["board"] == "NVIDIA Jetson Orin Nano Developer Kit"
    assert "CPUExecutionProvider" in report["host"]["providers"]
    assert (report["prompt_tokens"], report["new_tokens"], report["reference"]) == (
        PROMPT,
        NEW,
        "ort-cpu",
    )
    rows = _rows(report)
    assert list(rows) == ["ort-cpu", "ort-cpu-standard", "ort-tensorrt", "ort-cuda", "tensorrt"]
    for name in ("ort-tensorrt", "ort-cuda", "tensorrt"):  # the runtime's own reason, verbatim
        reason = _unusable_reason(name)
        assert rows[name]["status"] == ("unavailable" if reason else "ok"), rows[name]
        assert rows[name]["reason"] == reason

    cpu = rows["ort-cpu"]
    assert cpu["status"] == "ok" and "CPUExecutionProvider" in cpu["device"]
    assert cpu["cached_tokens"] == 0  # the warm-up prompt did not give the measured one away
    assert cpu["prefill"]["tokens"] == PROMPT and cpu["decode"]["tokens"] == NEW - 1
    assert cpu["prefill"]["runs"] == 1
    for phase in (cpu["prefill"], cpu["decode"]):
        assert phase["avg_w"] == pytest.approx(NANO_VDD_IN_W, rel=1e-6)
        assert phase["tokens_per_joule"] == pytest.approx(
            phase["tokens_per_s"] / NANO_VDD_IN_W, rel=1e-6
        )
    memory = cpu["memory"]
    assert memory["rss_peak_bytes"] >= memory["rss_before_bytes"] > 0
    assert memory["rss_added_bytes"] == memory["rss_peak_bytes"] - memory["rss_before_bytes"]
    assert memory["gpu"] == {"bytes": None, "source": None, "note": "runs on the CPU"}
    assert cpu["agreement"]["matching_prefix"] == NEW
    assert (cpu["agreement"]["top1_agreement"], cpu["agreement"]["max_logit_diff"]) == (1.0, 0.0)

    # the standard graph (TensorRT's) on the CPU, checked against an independent pass
    from edge_sdk.runtime import load

    ids, _ = prompt_plan(load_bundle(bundle), PROMPT, NEW)
    reference = cpu["token_ids"]
    assert len(reference) == NEW
    with load(bundle) as fused:
        assert fused.generate(ids, max_new_tokens=NEW, ignore_eos=True).token_ids == reference
    with load(bundle, fused_graph=False) as standard:
        standard.backend.allocate(PROMPT + NEW)
        logits = standard.backend.forward_all(np.asarray(ids + reference[:-1]))[PROMPT - 1 :]
    top1 = float(np.mean(logits.argmax(-1) == np.asarray(reference)))
    agree = rows["ort-cpu-standard"]["agreement"]
    assert agree["top1_agreement"] == pytest.approx(top1)
    assert top1 >= 0.9  # int8 per-channel (standard) against block-wise (fused) weights
    assert 0.0 < agree["max_logit_diff"] < 2.0
    standard_ids = rows["ort-cpu-standard"]["token_ids"]
    prefix = next(
        (i for i, (a, b) in enumerate(zip(standard_ids, reference, strict=True)) if a != b), NEW
    )
    assert agree["matching_prefix"] == prefix
    assert agree["matching_prefix_fraction"] == pytest.approx(prefix / NEW)


def test_table_without_a_sensor(not_a_jetson, bundle: Path, capsys) -> None:
    argv = ["bench", str(bundle), "--backends", "ort-cuda,ort-cpu", "--tokens", "4"]
    assert main([*argv, "--prompt-tokens", "600"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert "4 new tokens (greedy, end-of-text ignored), median of 3 runs;" in lines[0]
    assert "mode: not a Jetson: no nvpmodel" in lines[0]
    assert "sensor: no sensor (tok/J not measured)" in lines[0]
    assert lines[1].split()[:3] == ["backend", "prefill", "tok/s"]
    cpu = lines[2].split()
    assert cpu[0] == "ort-cpu" and cpu[3:5] == ["-", "-"] and cpu[-3:-1] == ["4/4", "1.000"]
    reason = _unusable_reason("ort-cuda")
    if reason:
        assert lines[3] == f"{'ort-cuda':<17}  unavailable: {reason}"
    context = load_bundle(bundle).max_sequence_length
    assert f"prompt shortened to {context - 4} tokens: 600 + 4 new tokens exceed" in captured.out
    assert lines[-1].startswith("host: not a Jetson; ")
    assert "edge-power: warning: no power sensor" in captured.err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backends", "ort-cpu,gpu"], "unknown backend gpu in --backends; choose all or"),
        (["--backends", "all", "--budget", "8"], "--budget measure one backend"),
        (["--output", "r.json"], "--output writes a backend report: add --backends"),
    ],
)
def test_bad_flags_are_one_line(
    not_a_jetson, bundle: Path, capsys, extra: list[str], message: str
) -> None:
    assert main(["bench", str(bundle), *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_runs_combine_into_median_rates_and_joules_over_all() -> None:
    def phase(seconds: float, joules: float | None) -> PhaseFigures:
        watts = joules / seconds if joules is not None else None
        per_j = 100 / joules if joules else None
        return PhaseFigures(
            "decode",
            0.0,
            seconds,
            100,
            "generated",
            seconds,
            100 / seconds,
            joules,
            watts,
            watts,
            per_j,
            None,
        )

    combined = combine_runs([phase(1.0, 6.0), phase(4.0, 20.0), phase(2.0, 10.0)])
    assert combined is not None
    assert combined["tokens_per_s"] == 50.0 and combined["tokens_per_s_runs"] == [100, 25, 50]
    assert (combined["tokens"], combined["runs"], combined["duration_s"]) == (100, 3, 2.0)
    assert combined["energy_j"] == 12.0 and combined["tokens_per_joule"] == 300 / 36
    assert combined["avg_w"] == 36 / 7 and combined["peak_w"] == 6.0
    assert combined["mj_per_token"] == pytest.approx(120.0)
    unpowered = combine_runs([phase(1.0, None), phase(2.0, 4.0)])
    assert unpowered is not None and unpowered["energy_j"] is None
    assert unpowered["tokens_per_joule"] is None and unpowered["tokens_per_s"] == 75.0
    assert combine_runs([]) is None


def test_a_backend_that_fails_is_a_row_and_exit_1(
    not_a_jetson, bundle: Path, tmp_path: Path, capsys
) -> None:
    """A bundle whose standard graph is not ONNX (its hashes updated, so it verifies): the fused
    CPU graph is measured, the standard one is a failed row, the report is written, exit 1."""
    import shutil

    from edge_sdk.bundle_update import update_bundle

    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx graph" * 8)
    update_bundle(broken, add_files={"model.onnx": garbage})
    output = tmp_path / "report.json"
    argv = ["bench", str(broken), "--backends", "ort-cpu,ort-cpu-standard", "--tokens", "4"]
    assert main([*argv, "--prompt-tokens", "16", "--repeats", "1", "--output", str(output)]) == 1
    rows = _rows(json.loads(output.read_text()))
    assert rows["ort-cpu"]["status"] == "ok" and rows["ort-cpu"]["decode"]["tokens_per_s"] > 0
    failed = rows["ort-cpu-standard"]
    assert failed["status"] == "failed" and "INVALID_PROTOBUF" in failed["reason"]
    assert failed["agreement"] is None and failed["prefill"] is None
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("edge-power: error: ort-cpu-standard is usable here but failed: ")
    assert not any("Traceback" in line for line in err)
