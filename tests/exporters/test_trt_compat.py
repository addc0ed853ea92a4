"""TensorRT compatibility check: real exported bundles, and graphs broken on purpose."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_sdk.bundle import load_bundle
from edge_sdk.exporters.tensorrt.cli import main
from edge_sdk.exporters.tensorrt.compat import check_model, check_path
from edge_sdk.exporters.tensorrt.rewrite import rewrite_for_tensorrt
from edge_sdk.onnx_io import prefill_feed


def _qdq_model(
    zero_point: np.ndarray | None, axis: int = 1, extra_op: str | None = None
) -> onnx.ModelProto:
    """x [1, 4] @ DequantizeLinear(int8 weight [4, 3], scales, zero point) -> y."""
    inits = [
        numpy_helper.from_array(np.ones((4, 3), np.int8), "w"),
        numpy_helper.from_array(np.full((3,) if axis == 1 else (4,), 0.1, np.float32), "s"),
    ]
    dq_inputs = ["w", "s"]
    if zero_point is not None:
        inits.append(numpy_helper.from_array(zero_point, "zp"))
        dq_inputs.append("zp")
    nodes = [
        helper.make_node("DequantizeLinear", dq_inputs, ["wf"], name="weight_dq", axis=axis),
        helper.make_node("MatMul", ["x", "wf"], ["y"], name="proj"),
    ]
    if extra_op:
        nodes.append(helper.make_node(extra_op, ["y"], ["z"], name="odd", domain="ai.onnx"))
    out = "z" if extra_op else "y"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("target", ["8.6", "10"])
def test_fp32_bundle_passes(demo_bundle_fp32: Path, target: str) -> None:
    report = check_path(demo_bundle_fp32, target)
    assert report.ok, report.format()
    assert report.nodes > 100


@pytest.mark.parametrize("target", ["8.6", "10"])
def test_int8_bundle_passes_as_edge_engine_builds_it(
    demo_bundle_int8_per_channel: Path, target: str
) -> None:
    report = check_path(demo_bundle_int8_per_channel, target)
    assert report.ok, report.format()
    assert any("rewritten copy" in f.problem for f in report.warnings)


def test_int8_gather_on_initializer_is_refused_by_trt10_as_is(
    demo_bundle_int8_per_channel: Path,
) -> None:
    report = check_path(demo_bundle_int8_per_channel, "10", rewrite=False)
    assert not report.ok
    ops = {f.op for f in report.errors}
    assert ops == {"Gather", "Transpose"}
    gather = next(f for f in report.errors if f.op == "Gather")
    assert "embed_tokens" in gather.node and "DequantizeLinear" in gather.fix
    # TensorRT 8.x lists INT8 for Gather/Transpose: the same graph passes there
    assert check_path(demo_bundle_int8_per_channel, "8.6", rewrite=False).ok


def test_rewrite_is_exact(demo_bundle_int8_per_channel: Path) -> None:
    bundle = load_bundle(demo_bundle_int8_per_channel)
    model = onnx.load(str(bundle.onnx_path))
    rewritten, changes = rewrite_for_tensorrt(model)
    assert len(changes) == 2
    onnx.checker.check_model(rewritten)
    feed = prefill_feed(bundle.config, np.array([[3, 17, 99, 5]]))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    before = ort.InferenceSession(model.SerializeToString(), options).run(["logits"], feed)[0]
    after = ort.InferenceSession(rewritten.SerializeToString(), options).run(["logits"], feed)[0]
    np.testing.assert_array_equal(before, after)


def test_symmetric_per_channel_weight_passes() -> None:
    assert check_model(_qdq_model(np.zeros(3, np.int8)), "10").ok
    assert check_model(_qdq_model(None), "8.6").ok


def test_op_tensorrt_lacks_is_named() -> None:
    report = check_model(_qdq_model(None, extra_op="Hardmax"), "8.6")
    assert [(f.node, f.op) for f in report.errors] == [("odd", "Hardmax")]
    custom = _qdq_model(None)
    custom.graph.node.append(
        helper.make_node("MatMulNBits", ["x"], ["q"], name="fused", domain="com.microsoft")
    )
    errors = check_model(custom, "10").errors
    assert errors[0].node == "fused" and "standard-op graph" in errors[0].fix


def test_asymmetric_int8_is_refused() -> None:
    report = check_model(_qdq_model(np.array([0, 3, 0], np.int8)), "10")
    assert [f.node for f in report.errors] == ["weight_dq"]
    assert "not 0" in report.errors[0].problem and "symmetric" in report.errors[0].fix


def test_uint8_zero_point_is_refused() -> None:
    model = _qdq_model(np.zeros(3, np.uint8))
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.ones((4, 3), np.uint8), "w"))
    errors = check_model(model, "10").errors
    dq = [f for f in errors if f.node == "weight_dq"]
    assert dq and "uint8" in dq[0].problem and "symmetric" in dq[0].fix


def test_per_channel_axis_on_reduction_dimension_is_refused() -> None:
    errors = check_model(_qdq_model(None, axis=0), "10").errors
    assert [f.node for f in errors] == ["weight_dq"] and "axis 1" in errors[0].fix


def test_block_wise_int8_is_refused_and_int4_needs_trt10() -> None:
    def blocked(dtype: int) -> onnx.ModelProto:
        w = helper.make_tensor("w", dtype, [4, 2], [1] * 8)
        s = numpy_helper.from_array(np.full((2, 2), 0.1, np.float32), "s")
        nodes = [
            helper.make_node(
                "DequantizeLinear", ["w", "s"], ["wf"], name="blk", axis=0, block_size=2
            ),
            helper.make_node("MatMul", ["x", "wf"], ["y"], name="proj"),
        ]
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [w, s],
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])

    assert [f.node for f in check_model(blocked(TensorProto.INT8), "10").errors] == ["blk"]
    assert check_model(blocked(TensorProto.INT4), "10").ok
    assert "blk" in {f.node for f in check_model(blocked(TensorProto.INT4), "8.6").errors}


def test_quantize_without_zero_point_is_uint8() -> None:
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s"], ["q"], name="act_q"),
        helper.make_node("DequantizeLinear", ["q", "s"], ["y"], name="act_dq"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array(0.1, np.float32), "s")],
    )
    report = check_model(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), "10"
    )
    assert "act_q" in {f.node for f in report.errors}


def test_uncovered_dynamic_dimension_is_reported() -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="r")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["frames", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    report = check_model(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), "10"
    )
    assert not report.ok and "frames" in report.errors[0].problem


def test_cli_check_exit_codes_and_json(
    demo_bundle_int8_per_channel: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--check", str(demo_bundle_int8_per_channel)]) == 0
    assert "PASS" in capsys.readouterr().out
    assert (
        main(["--check", str(demo_bundle_int8_per_channel / "model.onnx"), "--as-is", "--json"])
        == 1
    )
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and {
        f["op"] for f in data["findings"] if f["severity"] == "error"
    } == {"Gather", "Transpose"}
    broken = tmp_path / "broken.onnx"
    onnx.save(_qdq_model(np.array([0, 3, 0], np.int8)), str(broken))
    assert main(["--check", str(broken), "--trt-version", "8.6"]) == 1
    assert "weight_dq" in capsys.readouterr().out


def test_cli_build_without_tensorrt_is_one_line(
    demo_bundle_fp32: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pytest")
    if __import__("importlib").util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    assert main([str(demo_bundle_fp32), "--fp16"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "python3-libnvinfer" in err[0]
