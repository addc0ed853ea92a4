"""edge-export: summary, JSON, and one clear line with a non-zero exit for each user error."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edge_sdk.exporters.cli import main


def test_fp32_export_prints_a_summary(
    demo_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(demo_checkpoint), "--fp32", "-o", str(tmp_path / "b"), "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["precision"] == "fp32" and summary["parity_vs_pytorch"] <= 1e-4
    assert "[1/4] load" in captured.err and "[4/4] write" in captured.err


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda d: d / "missing.pt", "does not exist"),
        (
            lambda d: (torch.save(torch.nn.Linear(2, 2), d / "module.pt"), d / "module.pt")[1],
            "never unpickled",
        ),
        (
            lambda d: (
                (d / "hf").mkdir(),
                (d / "hf" / "config.json").write_text('{"architectures": ["GPT2LMHeadModel"]}'),
                d / "hf",
            )[2],
            "not supported",
        ),
    ],
)
def test_user_errors_are_one_line(
    make_input,
    message: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = make_input(tmp_path)
    assert main([str(model), "--int8", "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("edge-export: error: ") and message in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "out").exists()


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["model.pt"])  # neither --int8 nor --fp32
    assert exc.value.code == 2


def test_accuracy_gate_fails_then_force_keeps(
    demo_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from edge_sdk.exporters import evaluate

    monkeypatch.setitem(
        evaluate.THRESHOLDS, "int8", {"min_top1_agreement": 1.01, "max_perplexity_ratio": 1.0}
    )
    out = tmp_path / "gated"
    assert main([str(demo_checkpoint), "--int8", "-o", str(out), "-q"]) == 1
    assert "below the threshold" in capsys.readouterr().err and not out.exists()
    assert main([str(demo_checkpoint), "--int8", "-o", str(out), "-q", "--force"]) == 0
    assert "gate: forced" in capsys.readouterr().out


def test_console_script_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edge_sdk.exporters.cli", str(tmp_path / "nope.pt"), "--int8"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("edge-export: error: ") and "does not exist" in last
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here"
)
def test_trt_without_tensorrt_fails_before_exporting(
    demo_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b"
    assert main([str(demo_checkpoint), "--int8", "--trt", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "python3-libnvinfer" in err[0] and "edge-export --trt" in err[0]
    assert not out.exists()  # nothing exported: the failure comes first


def test_engine_flags_need_trt(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["model.pt", "--int8", "--timing-cache", "t.cache"])
    assert exc.value.code == 2 and "only with --trt" in capsys.readouterr().err


def test_no_ort_graph_writes_only_the_standard_graph(
    demo_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_sdk import load_bundle
    from edge_sdk.runtime import load

    assert (
        main([str(demo_checkpoint), "--fp32", "-o", str(tmp_path / "b"), "--no-ort-graph", "-q"])
        == 0
    )
    assert "--no-ort-graph" in capsys.readouterr().out
    bundle = load_bundle(tmp_path / "b")
    assert set(bundle.manifest["files"]) == {"model.onnx", "model.onnx.data", "tokenizer.json"}
    with load(bundle.path, "ort-cpu") as gen:  # the runtime runs the standard graph
        assert not gen.backend.fused  # type: ignore[attr-defined]
        assert gen.generate("Once upon a time", max_new_tokens=4).stats.new_tokens == 4
