"""The fp16 fused graph (``model.cuda.onnx``): written from the fused graph, run on the CPU EP
against the fp32 fused graph; its GPU checks behind ``-m cuda``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from edge_sdk.bundle import load_bundle
from edge_sdk.exporters.fp16_graph import CUDA_GRAPH_FILE, fp16_agreement, write_fp16_graph
from edge_sdk.exporters.fused_graph import ORT_GRAPH_FILE
from edge_sdk.exporters.fused_graph_check import FLOAT_COMPUTE, FusedSession

#: The fused graph's contrib ops: each has an fp16 kernel on onnxruntime 1.32's CPU EP.
_FP16_ON_CPU = (
    "GroupQueryAttention",
    "MatMulNBits",
    "SimplifiedLayerNormalization",
    "SkipSimplifiedLayerNormalization",
)
#: Standard ops of the fused graph with no fp16 CPU kernel: onnxruntime runs them in float32
#: between Casts it inserts (the CUDA EP has fp16 kernels for them).
_FLOAT_ONLY_ON_CPU = ("Mul", "Add", "Sigmoid", "QuickGelu")


@pytest.fixture(scope="module")
def fp16_bundle(tmp_path_factory: pytest.TempPathFactory, demo_bundle_int8: Path) -> Path:
    """A copy of the demo int8 bundle with its fp16 graph written."""
    folder = tmp_path_factory.mktemp("fp16") / "demo-int8"
    shutil.copytree(demo_bundle_int8, folder)
    write_fp16_graph(folder / ORT_GRAPH_FILE)
    return folder


def _cpu_kernel_types(op: str) -> set[str]:
    from onnxruntime.capi import _pybind_state

    return {
        kind
        for kernel in _pybind_state.get_all_opkernel_def()
        if kernel.op_name == op and kernel.provider == "CPUExecutionProvider"
        for kind in kernel.type_constraints.get("T", kernel.type_constraints.get("T1", []))
    }


def test_cpu_ep_fp16_kernels() -> None:
    """Which of the graph's kernels take fp16 on the CPU EP (the fp16 check below runs the
    others in float32 behind inserted Casts)."""
    for op in _FP16_ON_CPU:
        assert "tensor(float16)" in _cpu_kernel_types(op), op
    for op in _FLOAT_ONLY_ON_CPU:
        assert "tensor(float16)" not in _cpu_kernel_types(op), op


def test_which_nodes_the_cpu_ep_runs_in_fp16(fp16_bundle: Path, tmp_path: Path) -> None:
    """Profiled: attention and the norms take fp16 inputs; MatMulNBits and the SwiGLU run in
    float32 behind inserted Casts (exporters/README.md, "The CUDA fused graph")."""
    import json

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "profile")
    session = FusedSession(fp16_bundle / CUDA_GRAPH_FILE, load_bundle(fp16_bundle).config, 4, {})
    session.session = ort.InferenceSession(
        str(fp16_bundle / CUDA_GRAPH_FILE), options, providers=["CPUExecutionProvider"]
    )
    session.run([5, 9])
    events = json.loads(Path(session.session.end_profiling()).read_text())
    first_input: dict[str, set[str]] = {}
    for event in events:
        args = event.get("args", {})
        if event.get("cat") == "Node" and args.get("input_type_shape"):
            kind = next(iter(args["input_type_shape"][0]))
            first_input.setdefault(args["op_name"], set()).add(kind)
    for op in ("GroupQueryAttention", "SkipSimplifiedLayerNormalization"):
        assert first_input[op] == {"float16"}, op
    assert first_input["MatMulNBits"] == {"float"}


def test_fp16_graph_io_and_shared_weights(fp16_bundle: Path) -> None:
    model = onnx.load(str(fp16_bundle / CUDA_GRAPH_FILE), load_external_data=False)
    kinds = {
        v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]
    }
    assert kinds["input_ids"] == TensorProto.INT64
    assert kinds["logits"] == TensorProto.FLOAT
    caches = [n for n in kinds if n.startswith(("past", "present"))]
    assert caches and all(kinds[n] == TensorProto.FLOAT16 for n in caches)
    assert not [t.name for t in model.graph.initializer if t.data_type == TensorProto.FLOAT]
    locations = {
        entry.value
        for t in model.graph.initializer
        for entry in t.external_data
        if entry.key == "location"
    }
    assert locations == {f"{ORT_GRAPH_FILE}.data", f"{CUDA_GRAPH_FILE}.data"}
    added = (fp16_bundle / f"{CUDA_GRAPH_FILE}.data").stat().st_size
    assert added < (fp16_bundle / f"{ORT_GRAPH_FILE}.data").stat().st_size / 4


def test_fp16_graph_agrees_with_fused_graph(fp16_bundle: Path) -> None:
    """Every position's top-1 over 64 decoded tokens; logits within fp16's rounding."""
    config = load_bundle(fp16_bundle, verify=False).config
    ids = [int(t) for t in np.random.default_rng(0).integers(3, config.vocab_size, 64)]
    top1, worst = fp16_agreement(fp16_bundle, config, ids, FLOAT_COMPUTE)
    assert top1 >= 0.99
    assert 0.0 < worst < 0.05  # measured 0.006 on logits up to 16


def test_fp16_graph_batched_rows_match_single(fp16_bundle: Path) -> None:
    """Two rows side by side (per-row seqlens_k) give each row's single-row logits."""
    config = load_bundle(fp16_bundle, verify=False).config
    path = fp16_bundle / CUDA_GRAPH_FILE
    prompts = np.array([[5, 9, 14, 3], [7, 7, 2, 11]], np.int64)
    both = FusedSession(path, config, 8, FLOAT_COMPUTE, rows=2)
    together = [both.run_rows(prompts[:, i : i + 1]) for i in range(4)][-1]
    for row in range(2):
        one = FusedSession(path, config, 8, FLOAT_COMPUTE)
        alone = [one.run([int(t)]) for t in prompts[row]][-1]
        np.testing.assert_allclose(together[row], alone, atol=2e-2)


def test_fp16_graph_never_overwrites_the_fused_graph(fp16_bundle: Path) -> None:
    from edge_sdk.errors import ExportError

    fused = fp16_bundle / ORT_GRAPH_FILE
    with pytest.raises(ExportError, match="another name"):
        write_fp16_graph(fused, fused)


def _greedy(session: FusedSession, prompt: list[int], steps: int) -> list[int]:
    logits = [session.run([t]) for t in prompt][-1]
    tokens = []
    for _ in range(steps):
        tokens.append(int(logits.argmax()))
        logits = session.run([tokens[-1]])
    return tokens


def _cuda_greedy_equals_cpu(folder: Path, bundle: Path, prompt: list[int], steps: int) -> None:
    """Greedy tokens of ``folder``'s fp16 graph on CUDA against its fused graph on the CPU
    (``bundle``: where the config comes from)."""
    config = load_bundle(bundle, verify=False).config
    capacity = len(prompt) + steps + 1
    cpu = FusedSession(folder / ORT_GRAPH_FILE, config, capacity, FLOAT_COMPUTE)
    cuda = FusedSession(
        folder / CUDA_GRAPH_FILE, config, capacity, {}, provider="CUDAExecutionProvider"
    )
    assert cuda.session.get_providers()[0] == "CUDAExecutionProvider"
    assert _greedy(cuda, prompt, steps) == _greedy(cpu, prompt, steps)


@pytest.mark.cuda
def test_cuda_fp16_graph_greedy_equals_cpu_graph(fp16_bundle: Path) -> None:
    """On the CUDA EP the fp16 graph's first 16 greedy tokens are the CPU fused graph's."""
    _cuda_greedy_equals_cpu(fp16_bundle, fp16_bundle, [5, 9, 14, 3, 21, 8], 16)


@pytest.mark.cuda
def test_cuda_fp16_graph_greedy_equals_cpu_graph_smollm2(
    smollm2_int8: Path, tmp_path: Path
) -> None:
    """The same on SmolLM2-135M int8, 16 tokens after a held-out prompt."""
    from tokenizers import Tokenizer

    from edge_sdk.exporters.cuda_graph import link_fused_graph
    from edge_sdk.exporters.quantize.calibration import DEFAULT_HELDOUT

    write_fp16_graph(link_fused_graph(smollm2_int8, tmp_path))
    tokenizer = Tokenizer.from_file(str(smollm2_int8 / "tokenizer.json"))
    prompt = tokenizer.encode(DEFAULT_HELDOUT.read_text(encoding="utf-8")).ids[:32]
    _cuda_greedy_equals_cpu(tmp_path, smollm2_int8, prompt, 16)


@pytest.mark.cuda
def test_cuda_fp16_graph_batched_rows_match_single(fp16_bundle: Path) -> None:
    """On the CUDA EP two rows side by side give each row's single-row greedy logits."""
    config = load_bundle(fp16_bundle, verify=False).config
    path, cuda = fp16_bundle / CUDA_GRAPH_FILE, "CUDAExecutionProvider"
    prompts = np.array([[5, 9, 14, 3], [7, 7, 2, 11]], np.int64)
    both = FusedSession(path, config, 8, {}, rows=2, provider=cuda)
    together = [both.run_rows(prompts[:, i : i + 1]) for i in range(4)][-1]
    for row in range(2):
        one = FusedSession(path, config, 8, {}, provider=cuda)
        alone = [one.run([int(t)]) for t in prompts[row]][-1]
        assert int(together[row].argmax()) == int(alone.argmax())


def test_add_cuda_graph_to_a_bundle(tmp_path: Path, demo_bundle_int8: Path) -> None:
    from edge_sdk.exporters.cuda_graph import add_cuda_graph

    folder = tmp_path / "bundle"
    shutil.copytree(demo_bundle_int8, folder)
    bundle = add_cuda_graph(folder, positions=16)
    load_bundle(folder, verify=True)
    assert {CUDA_GRAPH_FILE, f"{CUDA_GRAPH_FILE}.data"} <= set(bundle.manifest["files"])
    fused = bundle.manifest["onnxruntime"]["fused_graph"]
    assert bundle.manifest["onnxruntime"]["cuda_graph"]["io_names"] == fused["io_names"]
    check = bundle.manifest["onnxruntime"]["cuda_graph"]["cpu_check"]
    assert check["positions"] == 16 and check["top1_agreement"] >= 0.99


def test_cli_cuda_graph_needs_the_fused_graph(
    demo_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_sdk.exporters.cli import main

    output = tmp_path / "b"
    with pytest.raises(SystemExit):
        main([str(demo_checkpoint), "--int8", "-o", str(output), "--cuda-graph", "--no-ort-graph"])
    assert "drop --no-ort-graph" in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("EDGE_SDK_REAL_EXPORTS") != "1",
    reason="decoding SmolLM2 through both graphs takes about a minute on 2 cores: set "
    "EDGE_SDK_REAL_EXPORTS=1 to run it",
)
def test_fp16_graph_on_smollm2_int8(smollm2_int8: Path, tmp_path: Path) -> None:
    """SmolLM2-135M int8 (the session fixture): top-1 >= 0.99 over 128 held-out tokens (256 in
    exporters/README.md: 0.996)."""
    from tokenizers import Tokenizer

    from edge_sdk.exporters.cuda_graph import link_fused_graph
    from edge_sdk.exporters.quantize.calibration import DEFAULT_HELDOUT

    bundle = load_bundle(smollm2_int8, verify=False)
    write_fp16_graph(link_fused_graph(smollm2_int8, tmp_path))
    text = DEFAULT_HELDOUT.read_text(encoding="utf-8")
    ids = Tokenizer.from_file(str(bundle.tokenizer_path)).encode(text).ids[:128]
    top1, worst = fp16_agreement(tmp_path, bundle.config, ids, FLOAT_COMPUTE)
    assert top1 >= 0.99
    assert 0.0 < worst < 0.5


def test_cli_cuda_graph(
    demo_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_sdk.exporters.cli import main

    output = tmp_path / "b"
    assert main([str(demo_checkpoint), "--int4", "-o", str(output), "--cuda-graph", "-q"]) == 0
    assert "cuda graph model.cuda.onnx: fp16" in capsys.readouterr().out
    manifest = load_bundle(output, verify=True).manifest
    assert manifest["onnxruntime"]["cuda_graph"]["file"] == CUDA_GRAPH_FILE
    assert manifest["onnxruntime"]["cuda_graph"]["cpu_check"]["positions"] == 256


def test_a_cuda_graph_below_the_check_is_recorded_not_added(
    tmp_path: Path, demo_bundle_int8: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge_sdk.exporters import cuda_graph

    monkeypatch.setattr(cuda_graph, "MIN_TOP1", 1.01)  # no graph reaches it
    folder = tmp_path / "bundle"
    shutil.copytree(demo_bundle_int8, folder)
    bundle = cuda_graph.add_cuda_graph(folder, positions=16)
    assert CUDA_GRAPH_FILE not in bundle.manifest["files"]
    assert not (folder / CUDA_GRAPH_FILE).exists()
    assert "needs float32 activations" in bundle.manifest["onnxruntime"]["cuda_graph_skipped"]


def test_a_cuda_graph_onnxruntime_refuses_is_recorded_not_raised(
    tmp_path: Path, qwen3_5_random: tuple[Any, Path]
) -> None:
    """Qwen3.5's fp16 graph does not load (a float16/float32 clash in its linear layers' conv):
    the bundle is kept without it and says why, as a graph below the check is."""
    from edge_sdk.exporters import cuda_graph

    folder = tmp_path / "bundle"
    shutil.copytree(qwen3_5_random[1], folder)
    bundle = cuda_graph.add_cuda_graph(folder, positions=16)
    assert CUDA_GRAPH_FILE not in bundle.manifest["files"]
    assert "cannot load" in bundle.manifest["onnxruntime"]["cuda_graph_skipped"]


def test_a_weight_beyond_fp16_range_has_no_fp16_graph(tmp_path: Path) -> None:
    from onnx import helper

    from edge_sdk.errors import ExportError

    big = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 1e6])
    node = helper.make_node("Mul", ["x", "w"], ["logits"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [2])],
        [big],
    )
    onnx.save_model(helper.make_model(graph), str(tmp_path / ORT_GRAPH_FILE))
    with pytest.raises(ExportError, match="beyond fp16's range"):
        write_fp16_graph(tmp_path / ORT_GRAPH_FILE)
    assert not (tmp_path / CUDA_GRAPH_FILE).exists()
