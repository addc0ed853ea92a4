"""The default int8 and int4 bundles carry a standard graph TensorRT takes (int8 per output
channel) and the fused CPU graph with int8 blocks; each graph is gated and recorded (issue 23).

Held: ``edge-engine --check`` passes on the default bundles of the demo model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest

from edge_sdk import load_bundle
from edge_sdk.errors import AccuracyError
from edge_sdk.exporters import export
from edge_sdk.exporters.cli import summary_text
from edge_sdk.exporters.evaluate import AccuracyReport, apply_gate
from edge_sdk.exporters.tensorrt.cli import main as edge_engine


def _int8_dequantize_blocks(path: Path) -> set[int]:
    """The block sizes of the int8 weights' ``DequantizeLinear`` nodes of a graph (0: per
    channel), and of its MatMulNBits (8 bits) if fused."""
    graph = onnx.load(str(path), load_external_data=False).graph
    int8 = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.INT8}
    blocks = set()
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "DequantizeLinear" and node.input[0] in int8:
            blocks.add(int(attrs.get("block_size", 0)))
        if node.op_type == "MatMulNBits" and attrs.get("bits") == 8:
            blocks.add(int(attrs["block_size"]))
    return blocks


@pytest.fixture(scope="module")
def int4_default(demo_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's default int4 bundle (GPTQ + AWQ, layer 0 at int8); no accuracy pass (20 s)."""
    out = tmp_path_factory.mktemp("int4") / "demo-int4"
    return export(demo_checkpoint, out, "int4", evaluate=False).bundle.path


def test_default_int8_bundle_passes_edge_engine_check(
    demo_bundle_int8: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert edge_engine(["--check", str(demo_bundle_int8)]) == 0, capsys.readouterr().out
    assert "PASS" in capsys.readouterr().out


def test_check_warns_when_the_tensorrt_graph_missed_its_gate(
    demo_bundle_int8: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bundle kept for its CPU graph (model.onnx below the gate, as Gemma 3's int8) still
    passes --check, with a warning that says to export --int4 or --fp16 for TensorRT."""
    bundle = tmp_path / "kept"
    shutil.copytree(demo_bundle_int8, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["accuracy"]["quantized_vs_float"]["gate"] = "missed, kept for the CPU graph: top-1"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert edge_engine(["--check", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "missed its accuracy gate" in out and "--int4 or --fp16" in out
    assert edge_engine(["--check", str(demo_bundle_int8)]) == 0
    assert "missed its accuracy gate" not in capsys.readouterr().out


def test_default_int4_bundle_passes_edge_engine_check(
    int4_default: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert edge_engine(["--check", str(int4_default)]) == 0, capsys.readouterr().out


@pytest.mark.parametrize("fixture", ["demo_bundle_int8", "int4_default"])
def test_standard_graph_is_per_channel_and_fused_graph_keeps_blocks(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    bundle = load_bundle(request.getfixturevalue(fixture))
    fused = bundle.manifest["onnxruntime"]["fused_graph"]
    assert _int8_dequantize_blocks(bundle.onnx_path) == {0}
    assert 64 in _int8_dequantize_blocks(bundle.path / fused["file"])
    assert fused["parity_vs_pytorch"]["worst"] <= fused["parity_vs_pytorch"]["tolerance"]
    assert "per output channel" in fused["weights"]


def test_each_graph_is_gated_and_recorded(demo_bundle_int8: Path) -> None:
    manifest = load_bundle(demo_bundle_int8).manifest
    standard = manifest["accuracy"]["quantized_vs_float"]
    fused = manifest["onnxruntime"]["fused_graph"]["quantized_vs_float"]
    for figures in (standard, fused):
        assert figures["gate"] == "passed" and figures["tokens"] >= 1000
        assert figures["top1_agreement"] >= 0.95 and figures["perplexity_ratio"] <= 1.03
    assert standard["perplexity_quantized"] != fused["perplexity_quantized"]  # other weights
    assert standard["perplexity_float"] == fused["perplexity_float"]
    assert "level 1" in standard["computed_as"]  # TensorRT's float activations
    assert "level 4" in fused["computed_as"]  # the CPU runtime's int8 kernel


def test_per_channel_export_shares_one_weight_form(demo_bundle_int8_per_channel: Path) -> None:
    bundle = load_bundle(demo_bundle_int8_per_channel)
    fused = bundle.manifest["onnxruntime"]["fused_graph"]
    assert fused["weights"] == "the standard graph's stored weights"
    assert _int8_dequantize_blocks(bundle.path / fused["file"]) <= {0, 128}


def test_summary_reports_both_graphs_and_tensorrt(demo_checkpoint: Path, tmp_path: Path) -> None:
    result = export(demo_checkpoint, tmp_path / "b", "int8", eval_tokens=300)
    text = summary_text(result)
    assert result.tensorrt is not None and result.tensorrt.ok
    assert "passes the TensorRT compatibility check" in text
    assert "accuracy   model.onnx top-1" in text and "model.ort.onnx top-1" in text


def test_gate_failure_names_the_graph() -> None:
    report = AccuracyReport("t", 100, 64, 2.0, 2.5, 1.25, 0.5, 0.1)
    with pytest.raises(AccuracyError, match=r"of model\.ort\.onnx is below"):
        apply_gate(report, "int8", 1000, False, "model.ort.onnx")
