"""int4's 4-bit embedding table (``embedding_bits`` 4): the graphs' gathers equal the
dequantized rows, the table is stored once (the tied head reads the same bytes), the bundle is
smaller by what the table saves, and the manifest says how the table was stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from edge_sdk import load_bundle
from edge_sdk.config import ModelConfig
from edge_sdk.exporters import QuantConfig, export
from edge_sdk.exporters.fused_graph import ORT_GRAPH_FILE
from edge_sdk.exporters.stream.graphs import Table, embedding
from edge_sdk.exporters.stream.heads import stored_table, table_bits
from edge_sdk.exporters.stream.onnx_builder import GraphBuilder

_TABLE4 = QuantConfig.from_precision("int4").with_changes(embedding_bits=4)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, demo_checkpoint: Path) -> dict[str, Path]:
    """The demo at the int4 default with its table int4 and int8 (RTN: seconds, not GPTQ)."""
    out = tmp_path_factory.mktemp("int4-table")
    rtn = {"method": "rtn", "act_scale": False, "gptq_act_order": False}
    return {
        bits: export(
            demo_checkpoint,
            out / bits,
            quant=_TABLE4.with_changes(embedding_bits=int(bits), **rtn),
            evaluate=False,
        ).bundle.path
        for bits in ("4", "8")
    }


def _gathered(
    table: Table, config: ModelConfig, fused: bool, ids: np.ndarray, folder: Path
) -> np.ndarray:
    """The rows of ``ids`` as a graph of :func:`embedding` alone computes them."""
    g = GraphBuilder(folder / "embedding.onnx", "embedding")
    g.input("input_ids", TensorProto.INT64, ["batch", "sequence"])
    rows = embedding(g, config, table, "input_ids", fused)
    g.output(rows, TensorProto.FLOAT, ["batch", "sequence", config.hidden_size])
    session = ort.InferenceSession(str(g.save(21)[0]), providers=["CPUExecutionProvider"])
    gathered: np.ndarray = session.run(None, {"input_ids": ids})[0]
    return gathered


@pytest.mark.parametrize("fused", [False, True], ids=["standard-gather", "GatherBlockQuantized"])
def test_int4_gather_equals_the_dequantized_rows(fused: bool, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    config = ModelConfig(
        vocab_size=300,
        hidden_size=64,
        num_layers=1,
        num_heads=4,
        num_kv_heads=4,
        intermediate_size=64,
    )
    float_table = rng.standard_normal((300, 64)).astype(np.float32)
    table = stored_table(float_table, _TABLE4, bits=table_bits(config, _TABLE4))
    assert table.bits == 4 and table.block == 32 and table.values.min() >= -8
    ids = np.array([[0, 1, 2, 299], [7, 150, 151, 8]], np.int64)  # even and odd columns
    rows = _gathered(table, config, fused, ids, tmp_path)
    np.testing.assert_allclose(rows, table.rows(ids), rtol=0, atol=1e-6)
    assert np.abs(rows - float_table[ids]).max() < 0.2 * np.abs(float_table).max()


def test_table_bits_falls_back_to_int8_where_4_bits_do_not_fit() -> None:
    odd = ModelConfig(
        vocab_size=301,
        hidden_size=64,
        num_layers=1,
        num_heads=4,
        num_kv_heads=4,
        intermediate_size=64,
    )
    assert table_bits(odd, _TABLE4) == 8  # model.onnx reads two vocabulary columns per byte
    narrow = ModelConfig(
        vocab_size=300,
        hidden_size=48,
        num_layers=1,
        num_heads=4,
        num_kv_heads=4,
        intermediate_size=64,
    )
    assert table_bits(narrow, _TABLE4) == 8  # blocks of 32 do not divide 48
    assert table_bits(narrow, QuantConfig(method="int8")) == 8


def _initializers(path: Path) -> dict[str, onnx.TensorProto]:
    return {i.name: i for i in onnx.load(str(path), load_external_data=False).graph.initializer}


@pytest.mark.parametrize("graph", ["model.onnx", ORT_GRAPH_FILE])
def test_the_table_is_stored_once_and_the_tied_head_reads_it(
    bundles: dict[str, Path], graph: str
) -> None:
    inits = _initializers(bundles["4"] / graph)
    table = inits["model.embed_tokens.weight.int4"]
    head = inits["lm_head.tied.int4"]
    assert table.data_type == head.data_type == TensorProto.INT4
    config = load_bundle(bundles["4"]).config
    assert list(table.dims) == list(head.dims) == [config.hidden_size, config.vocab_size]
    assert table.external_data == head.external_data  # the same bytes of the data file
    assert not any(name.endswith(".int8") and "embed" in name for name in inits)


def _bundle_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir())


def test_bundle_is_smaller_by_what_the_table_saves(bundles: dict[str, Path]) -> None:
    """The table (int8 or int4) is in the fused graph's data file only: model.onnx reads it
    there, so the bundle holds it once."""
    config = load_bundle(bundles["4"]).config
    v, e = config.vocab_size, config.hidden_size
    int8_table = v * e + v * 4  # int8, one fp32 scale per row
    int4_table = v * e // 2 + v * (e // 32) * 4
    saved = _bundle_bytes(bundles["8"]) - _bundle_bytes(bundles["4"])
    assert saved == pytest.approx(int8_table - int4_table, abs=3 * 4096)  # alignment, manifests
    for bits in ("4", "8"):
        standard = _initializers(bundles[bits] / "model.onnx")
        table = (
            "model.embed_tokens.weight.int4" if bits == "4" else "model.embed_tokens.weight.int8"
        )
        location = {e.key: e.value for e in standard[table].external_data}["location"]
        assert location == f"{ORT_GRAPH_FILE}.data"


def test_manifest_records_the_table(bundles: dict[str, Path]) -> None:
    four = load_bundle(bundles["4"]).manifest["precision"]
    assert four["config"]["embedding_bits"] == 4 and four["config"]["embedding_group_size"] == 32
    assert four["embedding"]["bits"] == 4 and four["embedding"]["block_size"] == 32
    assert four["embedding"]["lm_head"] == "the table"
    eight = load_bundle(bundles["8"]).manifest["precision"]["embedding"]
    assert eight["bits"] == 8 and eight["lm_head"] == "the int8 table"


def test_both_graphs_match_the_reference_with_the_4_bit_table(bundles: dict[str, Path]) -> None:
    """The export's own checks: each graph against PyTorch with the stored (dequantized)
    weights, the tied head included, over a prefill and decode steps."""
    manifest = load_bundle(bundles["4"]).manifest
    parity = manifest["accuracy"]["parity_vs_pytorch"]
    assert max(parity["prefill"], parity["decode"]) <= 1e-4
    assert manifest["onnxruntime"]["fused_graph"]["parity_vs_pytorch"]["worst"] <= 1e-4
