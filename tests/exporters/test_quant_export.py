"""Every precision exports, verifies and runs; sizes follow bytes per weight; accuracy orderings.

The demo model (K = 192 and 512) is too small for the default group of 128 to mean much, so the
int4 exports here use groups of 64 and 32.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge_sdk import load_bundle
from edge_sdk.exporters import ExportResult, QuantConfig, export
from edge_sdk.exporters.cli import main
from edge_sdk.onnx_io import prefill_feed, present_names
from edge_sdk.runtime import load

CONFIGS = {
    "fp16": QuantConfig(method="fp16"),
    "int4-rtn": QuantConfig(method="rtn", group_size=32),
    "int4-gptq": QuantConfig(method="gptq", group_size=32),
    "int4-head4": QuantConfig(method="rtn", group_size=64, lm_head_bits=4),
    "int4-float-emb": QuantConfig(method="rtn", group_size=64, quantize_embedding=False),
    "w8a8": QuantConfig(method="w8a8", calib_method="percentile"),
    "w8a8-nosq": QuantConfig(method="w8a8", calib_method="percentile", smoothquant_alpha=None),
    "w8a8-entropy": QuantConfig(method="w8a8", calib_method="entropy", exclude=("lm_head",)),
}


@pytest.fixture(scope="module")
def exports(
    tmp_path_factory: pytest.TempPathFactory, demo_checkpoint: Path
) -> dict[str, ExportResult]:
    root = tmp_path_factory.mktemp("quant")
    return {
        name: export(demo_checkpoint, root / name, quant=config, eval_tokens=1024)
        for name, config in CONFIGS.items()
    }


def _greedy(bundle_dir: Path, steps: int = 6) -> tuple[list[int], np.ndarray]:
    """Greedy decode with the KV cache, as the manifest says to run it; also the full-prefill
    logits."""
    import onnxruntime as ort

    bundle = load_bundle(bundle_dir)
    options = ort.SessionOptions()
    for key, value in bundle.manifest["onnxruntime"]["session_config"].items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(
        str(bundle.onnx_path), options, providers=["CPUExecutionProvider"]
    )
    config = bundle.config
    outputs = ["logits", *present_names(config.num_layers)]
    ids = [5, 17, 42, 7]
    logits, *past = session.run(outputs, prefill_feed(config, np.array([ids])))
    for _ in range(steps):
        ids.append(int(logits[0, -1].argmax()))
        logits, *past = session.run(outputs, prefill_feed(config, np.array([ids[-1:]]), past))
        assert past[0].dtype == np.float32 and past[0].shape[2] == len(ids)
    full, *_ = session.run(outputs, prefill_feed(config, np.array([ids])))
    return ids, np.abs(full[0, -1] - logits[0, -1]).max() / np.abs(full).max()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_precision_exports_verifies_and_runs(
    exports: dict[str, ExportResult], name: str
) -> None:
    result = exports[name]
    manifest = result.bundle.manifest
    assert manifest["precision"]["name"] == CONFIGS[name].precision
    assert manifest["precision"]["config"] == CONFIGS[name].to_dict()
    onnx.checker.check_model(str(result.bundle.onnx_path))
    assert result.tensorrt is not None and result.tensorrt.ok, (
        result.tensorrt
    )  # edge-engine --check, TensorRT 10
    accuracy = manifest["accuracy"]["quantized_vs_float"]
    assert accuracy["gate"] == "passed" and accuracy["perplexity_quantized"] > 1
    assert set(accuracy) >= {
        "perplexity_float",
        "perplexity_ratio",
        "top1_agreement",
        "mean_kl_divergence",
    }
    ids, drift = _greedy(result.bundle.path)
    assert len(ids) == 10 and drift < 0.05  # decode with a past agrees with one prefill
    fused = manifest["onnxruntime"]["fused_graph"]
    if CONFIGS[name].precision == "int4":  # the onnxruntime graph, with the same block-wise weights
        assert fused["parity_vs_pytorch"]["worst"] < 1e-4  # both computing in float32
        with load(result.bundle.path, "ort-cpu") as gen:
            assert gen.backend.fused  # type: ignore[attr-defined]
            assert gen.generate(ids[:4], max_new_tokens=6).token_ids == ids[4:]
    else:  # fp16, w8a8: only the standard graph, and the manifest says why
        assert (
            fused is None
            and CONFIGS[name].precision in manifest["onnxruntime"]["fused_graph_skipped"]
        )


def test_int4_is_standard_blocked_qdq_at_opset_21(exports: dict[str, ExportResult]) -> None:
    graph = onnx.load(str(exports["int4-gptq"].bundle.onnx_path))
    assert exports["int4-gptq"].bundle.manifest["graph"]["opset"] == 21
    dq = [n for n in graph.graph.node if n.op_type == "DequantizeLinear"]
    blocked = [n for n in dq if {a.name: a.i for a in n.attribute} == {"axis": 0, "block_size": 32}]
    assert len(blocked) == 28 and len(dq) == 29  # + the tied LM head: int8 per output channel
    assert sum(i.data_type == onnx.TensorProto.INT4 for i in graph.graph.initializer) == 28
    assert all(n.domain in ("", "ai.onnx") for n in graph.graph.node)


def test_sizes_match_bytes_per_weight(exports: dict[str, ExportResult]) -> None:
    float_bytes = exports["fp16"].float_weight_bytes
    assert 0.48 < exports["fp16"].onnx_bytes / float_bytes < 0.53
    details = exports["int4-head4"].bundle.manifest["precision"]
    matmul_params = 2 * details["int4_weight_bytes"]
    # int4 MatMul weights incl. their scales: 0.5 + 4/64 bytes per weight, about 1/7 of float32
    per_weight = (details["int4_weight_bytes"] + details["scale_bytes"] - 4 * 2048) / matmul_params
    assert 0.55 < per_weight < 0.6 and 4 / per_weight > 6.5
    stored = details["int4_weight_bytes"] + details["int8_weight_bytes"] + details["scale_bytes"]
    structure = exports["int4-head4"].onnx_bytes - stored - details["float_bytes_left"]
    assert 0 < structure < 200_000  # node and value_info protobuf (about 150 kB on the demo)
    assert (
        exports["int4-head4"].onnx_bytes < 0.22 * float_bytes < exports["int4-float-emb"].onnx_bytes
    )
    # the default int8 head reads the int8 embedding table: no copy of it, smaller still
    assert exports["int4-rtn"].onnx_bytes < exports["int4-head4"].onnx_bytes


def test_gptq_beats_rtn_and_smoothquant_helps(exports: dict[str, ExportResult]) -> None:
    rtn, gptq = exports["int4-rtn"].accuracy, exports["int4-gptq"].accuracy
    assert rtn and gptq
    # On the demo's easy text perplexity moves within noise; the KL from the float model does not.
    assert gptq.mean_kl_divergence < 0.5 * rtn.mean_kl_divergence
    assert gptq.top1_agreement >= rtn.top1_agreement
    smooth, plain = exports["w8a8"].accuracy, exports["w8a8-nosq"].accuracy
    assert smooth and plain and smooth.mean_kl_divergence < plain.mean_kl_divergence


def test_w8a8_is_explicit_quantization_form(exports: dict[str, ExportResult]) -> None:
    graph = onnx.load(str(exports["w8a8-entropy"].bundle.onnx_path))
    quantize = [n for n in graph.graph.node if n.op_type == "QuantizeLinear"]
    assert len(quantize) == 28  # 4 layers x 7 Linears; the LM head was excluded, attention never
    inits = {i.name: i for i in graph.graph.initializer}
    assert all(inits[n.input[2]].data_type == onnx.TensorProto.INT8 for n in quantize)


def test_python_and_cli_give_identical_model_files(
    demo_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = QuantConfig(method="GPTQ", bits=4, group_size=64, act_scale=True)
    python = export(demo_checkpoint, tmp_path / "python", quant=config, eval_tokens=512)
    assert (
        main(
            [
                str(demo_checkpoint),
                "--int4",
                "--method",
                "gptq",
                "--group-size",
                "64",
                "--act-scale",
                "--eval-tokens",
                "512",
                "-o",
                str(tmp_path / "cli"),
                "-q",
                "--json",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["quant"] == config.to_dict() and summary["accuracy"]["top1_agreement"] > 0.9
    cli_manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert (
        cli_manifest["files"]["model.onnx"]["sha256"]
        == python.bundle.manifest["files"]["model.onnx"]["sha256"]
    )


def test_precision_and_quant_must_agree(demo_checkpoint: Path, tmp_path: Path) -> None:
    from edge_sdk.errors import ExportError

    with pytest.raises(ExportError, match="contradicts"):
        export(demo_checkpoint, tmp_path / "x", "int8", quant=QuantConfig(method="fp16"))
    with pytest.raises(ExportError, match="precision must be one of"):
        export(demo_checkpoint, tmp_path / "x", "int3")  # type: ignore[arg-type]
