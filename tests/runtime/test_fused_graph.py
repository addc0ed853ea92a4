"""The bundle's onnxruntime graph (GroupQueryAttention, in-place KV cache) vs the standard one."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge_sdk import load_bundle
from edge_sdk.runtime import load, ort_backend


def _logits(
    bundle: Path, fused: bool, prompt: list[int], steps: int, tmp_path: Path
) -> tuple[list[int], np.ndarray]:
    """Greedy tokens after ``prompt`` and the logits of every step, on the CPU backend."""
    with load(bundle, "ort-cpu", fused_graph=fused, cache_dir=tmp_path, threads=1) as gen:
        backend = gen.backend
        assert backend.fused is fused  # type: ignore[attr-defined]
        backend.allocate(len(prompt) + steps)
        rows = [backend.forward(np.array(prompt)).copy()]
        tokens: list[int] = []
        for _ in range(steps):
            tokens.append(int(rows[-1].argmax()))
            rows.append(backend.forward(np.array(tokens[-1:])).copy())
        return tokens, np.stack(rows)


@pytest.mark.parametrize("chunk", [256, 5])  # 5: the prompt runs in chunks on top of a past
def test_fp32_fused_graph_matches_the_standard_graph(
    demo_bundle_fp32: Path, tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ort_backend, "PREFILL_CHUNK", chunk)
    prompt = [5, 17, 42, 7, 99, 3, 250, 1000, 64, 12, 8, 300, 41]
    fused_tokens, fused = _logits(demo_bundle_fp32, True, prompt, 64, tmp_path)
    standard_tokens, standard = _logits(demo_bundle_fp32, False, prompt, 64, tmp_path)
    assert fused_tokens == standard_tokens
    assert np.abs(fused - standard).max() / np.abs(standard).max() < 1e-4


def test_manifest_records_the_fused_graph(demo_bundle_fp32: Path, demo_bundle_int8: Path) -> None:
    for path, tolerance in ((demo_bundle_fp32, 1e-4), (demo_bundle_int8, 1e-4)):
        bundle = load_bundle(path)  # verifies the hashes of both graphs
        entry = bundle.manifest["onnxruntime"]["fused_graph"]
        assert entry["file"] == "model.ort.onnx" and entry["file"] in bundle.manifest["files"]
        assert (
            entry["parity_vs_pytorch"]["worst"]
            <= entry["parity_vs_pytorch"]["tolerance"]
            == tolerance
        )
        graph = onnx.load(str(path / entry["file"]), load_external_data=False)
        ops = [n.op_type for n in graph.graph.node]
        layers = bundle.config.num_layers
        assert ops.count("GroupQueryAttention") == layers
        assert ops.count("SkipSimplifiedLayerNormalization") == 2 * layers
        standard = onnx.load(str(bundle.onnx_path), load_external_data=False).graph.node
        assert len(ops) < len(standard) / 3.5  # about a quarter: the embedding is alike in both


def test_int8_fused_graph_generates_the_same_story(demo_bundle_int8: Path, tmp_path: Path) -> None:
    texts = []
    for fused in (True, False):
        with load(demo_bundle_int8, "ort-cpu", fused_graph=fused, cache_dir=tmp_path) as gen:
            texts.append(gen.generate("Once upon a time", max_new_tokens=48).text)
    assert texts[0] == texts[1] and len(texts[0]) > 40


def test_fused_graph_cache_is_written_in_place(demo_bundle_fp32: Path, tmp_path: Path) -> None:
    """Chat turns keep the conversation in the one buffer per tensor: half the standard cache."""
    sizes = {}
    for fused in (True, False):
        with load(
            demo_bundle_fp32, "ort-cpu", fused_graph=fused, cache_dir=tmp_path, max_context=64
        ) as gen:
            chat = gen.chat()
            replies = [
                chat.send(text, max_new_tokens=8).run().text
                for text in ("Hello", "Tell me a story")
            ]
            sizes[fused] = (gen.kv_cache_bytes, replies)
    assert sizes[True][0] * 2 == sizes[False][0]
    assert sizes[True][1] == sizes[False][1]


def test_a_fused_graph_that_does_not_load_falls_back_to_the_standard_one(
    demo_bundle_fp32: Path, tmp_path: Path
) -> None:
    """E.g. an onnxruntime without GroupQueryAttention: a warning, then the standard graph runs."""
    copy = tmp_path / "bundle"
    shutil.copytree(demo_bundle_fp32, copy)
    (copy / "model.ort.onnx").write_bytes(b"not an onnx graph")
    with (
        pytest.warns(RuntimeWarning, match="standard graph"),
        load(copy, "ort-cpu", verify=False, cache_dir=tmp_path / "cache") as gen,
    ):
        result = gen.generate("Once upon a time", max_new_tokens=8)
        assert not gen.backend.fused and "model.ort.onnx" in gen.backend.fused_fallback  # type: ignore[attr-defined]
        assert result.stats.backend.endswith("model.onnx") and result.stats.new_tokens == 8
