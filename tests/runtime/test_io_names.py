"""The runtime binds a graph's inputs and outputs by the names the manifest records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from edge_sdk.bundle import file_record
from edge_sdk.runtime import load

PROMPT = [5, 17, 42, 7, 99, 3, 250, 1000, 64, 12]


def _rename(path: Path, mapping: dict[str, str]) -> None:
    """Rename tensors ``mapping`` in the graph at ``path`` (graph I/O and every node)."""
    model = onnx.load(str(path))
    for value in [*model.graph.input, *model.graph.output]:
        value.name = mapping.get(value.name, value.name)
    for node in model.graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    onnx.save(model, str(path))


def _renamed(names: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    mapping: dict[str, str] = {}
    out: dict[str, Any] = {}
    for role, value in names.items():
        if isinstance(value, list):
            out[role] = [f"my_{role}.{i}" for i in range(len(value))]
            mapping.update(zip(value, out[role], strict=True))
        else:
            out[role] = f"my_{role}"
            mapping[value] = out[role]
    return out, mapping


@pytest.fixture()
def renamed_bundle(demo_bundle_fp32: Path, tmp_path: Path) -> Path:
    """The fp32 demo bundle with every graph input and output renamed, as its manifest says."""
    target = tmp_path / "renamed"
    shutil.copytree(demo_bundle_fp32, target)
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    graph, fused = manifest["graph"], manifest["onnxruntime"]["fused_graph"]
    for entry in (graph, fused):
        entry["io_names"], mapping = _renamed(entry["io_names"])
        _rename(target / entry["file"], mapping)
        manifest["files"][entry["file"]] = file_record(target / entry["file"])
        if entry is graph:
            for spec in [*graph["inputs"], *graph["outputs"]]:
                spec["name"] = mapping[spec["name"]]
    (target / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return target


def _run(bundle: Path, fused: bool, cache: Path, slots: bool = False) -> np.ndarray:
    with load(bundle, "ort-cpu", fused_graph=fused, cache_dir=cache, threads=1) as gen:
        backend = gen.backend
        if slots:
            model = backend.slot_model(2, 32)
            assert model is not None
            rows = [model.prefill(1, np.array(PROMPT)).copy()]
            rows.append(model.decode([1], [int(rows[0].argmax())])[1].copy())
            model.close()
            return np.stack(rows)
        backend.allocate(len(PROMPT) + 4)
        rows = [backend.forward(np.array(PROMPT)).copy()]
        for _ in range(3):
            rows.append(backend.forward(np.array([int(rows[-1].argmax())])).copy())
        return np.stack(rows)


@pytest.mark.parametrize("fused", [False, True])
def test_recorded_names_are_bound(
    demo_bundle_fp32: Path, renamed_bundle: Path, tmp_path: Path, fused: bool
) -> None:
    names = {i.name for i in onnx.load(str(renamed_bundle / "model.onnx")).graph.input}
    assert "input_ids" not in names and "my_input_ids" in names
    expected = _run(demo_bundle_fp32, fused, tmp_path / "a")
    np.testing.assert_allclose(_run(renamed_bundle, fused, tmp_path / "b"), expected, atol=1e-5)


def test_recorded_names_are_bound_by_the_slot_model(
    demo_bundle_fp32: Path, renamed_bundle: Path, tmp_path: Path
) -> None:
    expected = _run(demo_bundle_fp32, True, tmp_path / "a", slots=True)
    got = _run(renamed_bundle, True, tmp_path / "b", slots=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_bundle_without_recorded_names_runs_on_the_conventional_ones(
    demo_bundle_fp32: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    shutil.copytree(demo_bundle_fp32, old)
    manifest = json.loads((old / "manifest.json").read_text(encoding="utf-8"))
    del manifest["graph"]["io_names"], manifest["onnxruntime"]["fused_graph"]["io_names"]
    (old / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    for fused in (False, True):
        expected = _run(demo_bundle_fp32, fused, tmp_path / "a")
        np.testing.assert_allclose(_run(old, fused, tmp_path / "b"), expected, atol=1e-6)
