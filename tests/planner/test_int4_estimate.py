"""The planner's int4 layout against what ``edge-export --int4`` writes: the bytes of a real
demo export's graphs (the default's int8 layer 0, fp32 scales, the int8 table) within 2%; the
4-bit table's bytes are checked in ``tests/exporters/test_int4_table.py``."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from edge_sdk import load_bundle
from edge_sdk.exporters import export
from edge_sdk.exporters.fused_graph import ORT_GRAPH_FILE
from edge_sdk.exporters.quantize.config import QuantConfig
from edge_sdk.exporters.stream.flow import estimate_bundle_bytes
from edge_sdk.planner.backends import decode_step_bytes
from edge_sdk.planner.memory import weight_bytes
from edge_sdk.planner.precision import weight_format


@pytest.fixture(scope="module")
def int4_bundle(tmp_path_factory: pytest.TempPathFactory, demo_checkpoint: Path) -> Path:
    """The default's layout; round to nearest instead of GPTQ + AWQ (the same bytes, seconds)."""
    out = tmp_path_factory.mktemp("int4-estimate") / "demo-int4"
    rtn = {"method": "rtn", "act_scale": False, "gptq_act_order": False}
    quant = QuantConfig.from_precision("int4").with_changes(**rtn)
    return export(demo_checkpoint, out, quant=quant, evaluate=False).bundle.path


def _stored(step_weights: int, embedding_rows: int) -> int:
    return step_weights - embedding_rows  # a step reads one table row more than is stored


def _weights(bundle: Path, data: str) -> int:
    """The bytes of the graph's initializers, those it reads from the other graph's data file
    included, less the fused graph's RoPE caches (positions x head_dim: not weights, sized by
    the export's ``max_seq_len``); an alias over bytes already counted (a 4-bit table read two
    ways) once."""
    graph = onnx.load(str(bundle / data.removesuffix(".data")), load_external_data=False)
    total, places = 0, set()
    for init in graph.graph.initializer:
        external = {entry.key: entry.value for entry in init.external_data}
        if "_cache" in init.name:
            continue
        if external:
            place = (external["location"], external["offset"])
            total += int(external["length"]) if place not in places else 0
            places.add(place)
        else:
            total += len(init.raw_data)
    return total


@pytest.mark.parametrize(
    ("backend", "data"), [("cpu-fused", f"{ORT_GRAPH_FILE}.data"), ("tensorrt", "model.onnx.data")]
)
def test_backend_layout_matches_the_written_graph(
    int4_bundle: Path, backend: str, data: str
) -> None:
    bundle = load_bundle(int4_bundle)
    step = decode_step_bytes(bundle.config, backend, "int4", context=1)
    written = _weights(int4_bundle, data)
    assert _stored(step.weights, step.embedding_rows) == pytest.approx(written, rel=0.02)


def test_weight_bytes_and_the_free_space_estimate_match_the_bundle(int4_bundle: Path) -> None:
    bundle = load_bundle(int4_bundle)
    fused = _weights(int4_bundle, f"{ORT_GRAPH_FILE}.data")
    assert weight_bytes(bundle.config, weight_format("int4")).stored == pytest.approx(
        fused, rel=0.02
    )
    files = sum(
        (int4_bundle / name).stat().st_size
        for name in ("model.onnx.data", f"{ORT_GRAPH_FILE}.data")
    )
    estimate = estimate_bundle_bytes(bundle.config, QuantConfig.from_precision("int4"), True)
    # the free-space check's bound: both graphs' weights, less the table model.onnx reads from
    # the fused graph's file (the MatMuls both store alike are shared too: not counted)
    assert files <= estimate <= 1.3 * files
