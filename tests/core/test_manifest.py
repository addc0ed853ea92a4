"""The typed manifest: round trip of real exports, errors that name the field, old bundles."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import onnx
import pytest

from edge_sdk import BundleError, load_bundle
from edge_sdk.manifest import EngineRecord, IoNames, Manifest


def _manifest(bundle: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    return data


def _graph_names(path: Path) -> tuple[list[str], list[str]]:
    model = onnx.load(str(path), load_external_data=False)
    weights = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in weights]
    return inputs, [o.name for o in model.graph.output]


@pytest.fixture()
def bundle_copy(demo_bundle_int8: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(demo_bundle_int8, target)
    return target


def _rewrite(bundle: Path, manifest: dict[str, Any]) -> None:
    (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_exported_manifests_round_trip(demo_bundle_fp32: Path, demo_bundle_int8: Path) -> None:
    for path in (demo_bundle_fp32, demo_bundle_int8):
        data = _manifest(path)
        spec = Manifest.from_dict(copy.deepcopy(data))
        assert spec.to_dict() == data
        assert load_bundle(path).spec == spec


def test_the_exporter_records_each_graphs_names(demo_bundle_int8: Path) -> None:
    bundle = load_bundle(demo_bundle_int8)
    layers = bundle.config.num_layers
    graph, fused = bundle.spec.graph, bundle.spec.fused_graph
    assert fused is not None and graph.io_names is not None and fused.io_names is not None
    for names, file in ((graph.io_names, graph.file), (fused.io_names, fused.file)):
        inputs, outputs = _graph_names(bundle.path / file)
        assert sorted(names.inputs) == sorted(inputs) and list(names.outputs) == outputs
    assert graph.io_names == IoNames.standard(layers)  # today's names are the conventional ones
    assert fused.io_names == IoNames.fused(layers)
    assert [s.name for s in graph.inputs or ()] == list(graph.io_names.inputs)


def test_an_old_manifest_without_io_names_loads(bundle_copy: Path) -> None:
    manifest = _manifest(bundle_copy)
    del manifest["graph"]["io_names"]
    del manifest["onnxruntime"]["fused_graph"]["io_names"]
    _rewrite(bundle_copy, manifest)
    bundle = load_bundle(bundle_copy)
    layers = bundle.config.num_layers
    assert bundle.spec.graph.io_names is None
    assert bundle.spec.graph.names(layers) == IoNames.standard(layers)
    fused = bundle.spec.fused_graph
    assert fused is not None and fused.names(layers) == IoNames.fused(layers)
    assert bundle.spec.to_dict() == manifest


def test_unknown_keys_are_kept(bundle_copy: Path) -> None:
    manifest = _manifest(bundle_copy)
    manifest["signed_by"] = {"key": "abc"}
    manifest["graph"]["layout_hint"] = 3
    manifest["graph"]["io_names"]["rope_cache"] = "cos_sin"
    manifest["precision"]["future_detail"] = [1, 2]
    manifest["accuracy"]["parity_vs_pytorch"]["note"] = "x"
    _rewrite(bundle_copy, manifest)
    spec = load_bundle(bundle_copy).spec
    assert spec.extra == {"signed_by": {"key": "abc"}}
    assert spec.graph.extra == {"layout_hint": 3}
    assert spec.graph.io_names is not None and spec.graph.io_names.extra == {
        "rope_cache": "cos_sin"
    }
    assert spec.to_dict() == manifest


def test_an_engine_record_round_trips() -> None:
    record = {
        "file": "model.int8.engine",
        "tensorrt": "10.3.0",
        "gpu": "Orin",
        "compute_capability": "8.7",
        "module": None,
        "precision": {"fp16": True, "int8": True, "explicit_quantization": True},
        "max_sequence_length": 512,
        "profiles": [{"name": "prefill", "shapes": {}}],
        "workspace_mb": 1024,
        "builder_optimization_level": None,
        "dla_core": None,
        "build_seconds": 12.5,
        "timing_cache_reused": False,
        "new_field": 1,
    }
    engine = EngineRecord.from_dict(record)
    assert engine.to_dict() == record and engine.extra == {"new_field": 1}
    with pytest.raises(BundleError, match=r"engines\[0\]\.tensorrt must be a string"):
        EngineRecord.from_dict({**record, "tensorrt": 10})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda m: m["graph"]["io_names"].update(past_key_values="past"),
            r"graph\.io_names\.past_key_values must be a list of strings",
        ),
        (lambda m: m["graph"].update(file=3), r"graph\.file must be a string"),
        (lambda m: m["precision"].pop("name"), r"precision\.name is missing"),
        (lambda m: m["graph"].update(inputs={}), r"graph\.inputs must be a list"),
        (
            lambda m: m["graph"]["inputs"][0].update(shape="batch"),
            r"graph\.inputs\[0\]\.shape must be a list",
        ),
        (
            lambda m: m["onnxruntime"]["fused_graph"]["io_names"].update(logits=None),
            r"onnxruntime\.fused_graph\.io_names\.logits must be a string",
        ),
        (
            lambda m: m["graph"]["io_names"]["present"].pop(),
            r"graph\.io_names must name as many present",
        ),
        (lambda m: m.update(engines=[{"file": "x.engine"}]), r"engines\[0\]\.tensorrt is missing"),
        (lambda m: m["accuracy"].update(thresholds=[]), r"accuracy\.thresholds must be an object"),
    ],
)
def test_a_wrong_field_is_named(bundle_copy: Path, change: Any, message: str) -> None:
    manifest = _manifest(bundle_copy)
    change(manifest)
    _rewrite(bundle_copy, manifest)
    with pytest.raises(BundleError, match=message) as info:
        load_bundle(bundle_copy, verify=False)
    assert "manifest.json" in str(info.value) and "export the bundle again" in str(info.value)


def test_kv_names_must_cover_every_layer(bundle_copy: Path) -> None:
    manifest = _manifest(bundle_copy)
    names = manifest["graph"]["io_names"]
    names["past_key_values"], names["present"] = names["past_key_values"][:2], names["present"][:2]
    _rewrite(bundle_copy, manifest)
    with pytest.raises(BundleError, match=r"graph\.io_names\.past_key_values has 2 names"):
        load_bundle(bundle_copy, verify=False)
