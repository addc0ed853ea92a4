"""The trained demo model through the whole pipeline: int8 accuracy, sizes, manifest, parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from edge_sdk import load_bundle
from edge_sdk.exporters import load_model
from edge_sdk.exporters.export_job import borrowed_bytes
from edge_sdk.exporters.ort_check import OrtModel


def test_int8_accuracy_on_heldout_text(demo_bundle_int8: Path) -> None:
    accuracy = load_bundle(demo_bundle_int8).manifest["accuracy"]["quantized_vs_float"]
    assert accuracy["gate"] == "passed"
    assert accuracy["top1_agreement"] >= 0.95
    assert accuracy["perplexity_ratio"] <= 1.03
    assert accuracy["tokens"] >= 1000


def test_int8_weights_are_int8_in_the_file(demo_bundle_int8: Path, demo_bundle_fp32: Path) -> None:
    graph = onnx.load(str(load_bundle(demo_bundle_int8).onnx_path))
    int8 = sum(
        int(np.prod(i.dims))
        for i in graph.graph.initializer
        if i.data_type == onnx.TensorProto.INT8
    )
    floats = sum(
        int(np.prod(i.dims))
        for i in graph.graph.initializer
        if i.data_type == onnx.TensorProto.FLOAT
    )
    config = load_bundle(demo_bundle_int8).config
    assert (
        int8 == config.parameter_count() - (2 * config.num_layers + 1) * config.hidden_size
    )  # all but norms
    assert floats < 0.05 * int8  # scales and norms only
    ratio = _graph_bytes(demo_bundle_int8) / _graph_bytes(demo_bundle_fp32)
    assert 0.24 < ratio < 0.30


def _graph_bytes(bundle: Path) -> int:
    """model.onnx and its external weights (the streamed exporter writes them beside it, and
    reads those it stores like the fused graph from the fused graph's file)."""
    return sum(p.stat().st_size for p in bundle.glob("model.onnx*")) + borrowed_bytes(
        bundle / "model.onnx"
    )


def test_manifest_describes_the_bundle(demo_bundle_int8: Path) -> None:
    bundle = load_bundle(demo_bundle_int8)
    manifest = bundle.manifest
    assert manifest["format"] == "edge-sdk-bundle" and manifest["format_version"] == 1
    assert manifest["precision"]["weights"] == "int8" and manifest["precision"]["symmetric"]
    assert manifest["precision"]["calibration"]["tokens"] > 0
    assert set(manifest["files"]) == {
        "model.onnx",
        "model.onnx.data",
        "model.ort.onnx",
        "model.ort.onnx.data",
        "tokenizer.json",
    }
    names = [i["name"] for i in manifest["graph"]["inputs"]]
    assert names[:3] == ["input_ids", "attention_mask", "position_ids"]
    assert len(names) == 3 + 2 * bundle.config.num_layers
    assert manifest["environment"]["torch"] and manifest["environment"]["onnxruntime"]
    assert manifest["accuracy"]["parity_vs_pytorch"]["prefill"] <= 1e-4
    assert bundle.max_sequence_length == 512
    onnx.checker.check_model(str(bundle.onnx_path))
    ops = {n.op_type for n in onnx.load(str(bundle.onnx_path)).graph.node}
    assert not any(
        n.domain for n in onnx.load(str(bundle.onnx_path)).graph.node
    )  # standard ops only
    assert "DequantizeLinear" in ops


def test_fp32_bundle_matches_pytorch_prefill_and_decode(
    demo_bundle_fp32: Path, demo_checkpoint: Path
) -> None:
    bundle = load_bundle(demo_bundle_fp32)
    reference = load_model(demo_checkpoint).model
    onnx_model = OrtModel(bundle.onnx_path, bundle.config)
    ids = np.array([[5, 17, 300, 42, 7, 99]], dtype=np.int64)
    logits, past = onnx_model.run(ids)
    with torch.no_grad():
        ref_logits, ref_past = reference(torch.from_numpy(ids))
    assert np.abs(logits - ref_logits.numpy()).max() <= 1e-4 * max(1, np.abs(logits).max())
    token = ids[:, -1:]
    for _ in range(8):
        logits, past = onnx_model.run(token, past)
        with torch.no_grad():
            ref_logits, ref_past = reference(torch.from_numpy(token), past_key_values=ref_past)
        assert np.abs(logits - ref_logits.numpy()).max() <= 1e-4 * max(1, np.abs(logits).max())
        token = logits[:, -1:].argmax(-1)
