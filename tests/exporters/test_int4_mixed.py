"""Mixed-precision int4: the rule that keeps some MatMuls at int8, the graph that follows it, and
the manifest that says which tensors are at which precision (the demo model, a few seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from edge_sdk.errors import ConfigError
from edge_sdk.exporters import ExportResult, QuantConfig, export
from edge_sdk.exporters.quantize.details import int8_matmul_weights
from edge_sdk.exporters.quantize.mixed import keeps_int8
from edge_sdk.runtime import load

_LAYERS = (0, -1)


def test_the_rule_counts_negative_layers_from_the_end() -> None:
    kept = [i for i in range(6) if keeps_int8(_LAYERS, (), i, 6, "q_proj")]
    assert kept == [0, 5]
    assert keeps_int8((), ("down_proj",), 3, 6, "down_proj")
    assert not keeps_int8((), ("down_proj",), 3, 6, "up_proj")
    assert not keeps_int8((7, -7), (), 0, 6, "q_proj")  # outside the model: no layer


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="rtn", int8_matmuls=("v_proj",)), "q_proj, k_proj, v_proj share one input"),
        (dict(method="rtn", int8_matmuls=("gate_proj",)), "gate_proj, up_proj share"),
        (dict(method="rtn", int8_layers=("first",)), "layer indices"),
        (dict(method="int8", int8_layers=(0,)), "int8_layers applies to"),
    ],
)
def test_invalid_mixed_configs_raise(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        QuantConfig(**kwargs)  # type: ignore[arg-type]


def test_label_and_manifest_config_name_the_rule() -> None:
    config = QuantConfig(method="rtn", group_size=64, int8_layers=_LAYERS)
    assert config.label == "int4-rtn-g64+int8[layers 0,-1]"
    assert config.to_dict()["int8_layers"] == [0, -1]


@pytest.fixture(scope="module")
def exports(
    tmp_path_factory: pytest.TempPathFactory, demo_checkpoint: Path
) -> dict[str, ExportResult]:
    root = tmp_path_factory.mktemp("mixed")
    plain = QuantConfig(method="rtn", group_size=32)
    configs = {
        "plain": plain,
        "mixed": plain.with_changes(int8_layers=_LAYERS, int8_matmuls=("down_proj",)),
    }
    return {
        name: export(demo_checkpoint, root / name, quant=config, eval_tokens=256)
        for name, config in configs.items()
    }


def test_kept_layers_are_int8_blocks_in_the_graph_and_the_manifest(
    exports: dict[str, ExportResult],
) -> None:
    bundle = exports["mixed"].bundle
    layers = bundle.config.num_layers
    graph = onnx.load(str(bundle.onnx_path), load_external_data=False)
    int8 = set(int8_matmul_weights(graph))
    expected = {
        name
        for name in _matmul_weights(graph)
        if name.endswith("down_proj.weight")
        or "layers.0." in name
        or f"layers.{layers - 1}." in name
    }
    assert int8 == expected and len(int8) == 2 * 7 + (layers - 2)
    blocks = {i.name: list(i.dims) for i in graph.graph.initializer if i.name.endswith(".scale")}
    some = sorted(int8)[0]
    # per output channel in model.onnx (TensorRT's int8); the fused graph keeps blocks of 64
    assert blocks[f"{some}.scale"] == [_dims(graph, f"{some}.int8")[1]]
    record = bundle.manifest["precision"]["mixed_precision"]
    assert sorted(record["int8"]["weights"]) == sorted(int8)
    assert record["int8"]["block_size"] == 64 and record["int4"]["block_size"] == 32
    assert record["rule"] == {"int8_layers": [0, -1], "int8_matmuls": ["down_proj"]}
    assert exports["plain"].bundle.manifest["precision"]["mixed_precision"]["int8"]["weights"] == []


def test_mixed_costs_bytes_buys_accuracy_and_runs(exports: dict[str, ExportResult]) -> None:
    plain, mixed = exports["plain"], exports["mixed"]
    assert plain.onnx_bytes < mixed.onnx_bytes
    assert plain.accuracy and mixed.accuracy
    assert mixed.accuracy.mean_kl_divergence < plain.accuracy.mean_kl_divergence
    generator = load(mixed.bundle.path, "ort-cpu", threads=1)  # the fused graph too
    try:
        text = generator.generate([5, 17, 42], max_new_tokens=4, ignore_eos=True).token_ids
    finally:
        generator.close()
    assert len(text) == 4


def _matmul_weights(graph: onnx.ModelProto) -> list[str]:
    return [
        i.name.rsplit(".", 1)[0]
        for i in graph.graph.initializer
        if i.data_type in (TensorProto.INT4, TensorProto.INT8) and ".layers." in f".{i.name}"
    ]


def _dims(graph: onnx.ModelProto, name: str) -> list[int]:
    return next(list(np.asarray(i.dims)) for i in graph.graph.initializer if i.name == name)
