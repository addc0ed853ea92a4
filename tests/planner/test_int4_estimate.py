"""The planner's int4 layout against what ``edge-export --int4`` writes: the bytes of a real
demo export's graphs (the default's int8 layer 0, fp32 scales, the int8 table) within 2%; the
4-bit table's bytes are checked in ``tests/exporters/test_int4_table.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
    """The data file's bytes less the fused graph's RoPE caches (positions x head_dim: not
    weights, sized by the export's ``max_seq_len``)."""
    graph = onnx.load(str(bundle / data.removesuffix(".data")), load_external_data=False)
    rope = sum(
        4 * int(np.prod(init.dims)) for init in graph.graph.initializer if "_cache" in init.name
    )
    return (bundle / data).stat().st_size - rope


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
    both = fused + _weights(int4_bundle, "model.onnx.data")
    estimate = estimate_bundle_bytes(bundle.config, QuantConfig.from_precision("int4"), True)
    assert estimate == pytest.approx(both, rel=0.02)
