"""The streamed export flow (fp32, int8, int4): the graphs written from the weights layer by
layer, checked against the layer-by-layer PyTorch reference, evaluated, written as a bundle.

Stages, each a function a reader can follow: :func:`check_inputs` (tensors against the config,
free disk space), :func:`~.pipeline.write_graphs` (the layer pass), :func:`verify` (parity and the
fused graph's check), :func:`evaluate` (the accuracy gate), :func:`write_bundle`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from edge_sdk.bundle import BundleWriter
from edge_sdk.config import ModelConfig
from edge_sdk.errors import ExportError
from edge_sdk.exporters.export_job import ExportJob, ExportResult, result_of, write_text_files
from edge_sdk.exporters.families import family_of
from edge_sdk.exporters.fused_graph import FUSED_GRAPH_LOSS, UnsupportedGraph
from edge_sdk.exporters.fused_graph_check import FLOAT_COMPUTE, GRAPH_TOLERANCE, check_ort_graph
from edge_sdk.exporters.io_names import graph_io_names
from edge_sdk.exporters.manifest_record import export_manifest
from edge_sdk.exporters.ort_check import OrtModel
from edge_sdk.exporters.quantize.config import INT8_GROUP_SIZE, QuantConfig
from edge_sdk.exporters.quantize.details import quant_details, session_config_for
from edge_sdk.exporters.sources import ModelSource, check_free_space, check_weights
from edge_sdk.exporters.stream.checks import check_graph_parity
from edge_sdk.exporters.stream.gate import evaluate
from edge_sdk.exporters.stream.heads import EMBEDDING, HEAD
from edge_sdk.exporters.stream.layerwise import text_windows
from edge_sdk.exporters.stream.pipeline import StreamedGraphs, Texts, graph_opset, write_graphs
from edge_sdk.exporters.verify import ParityReport
from edge_sdk.planner.backends import decode_step_bytes

__all__ = ["STREAMED_METHODS", "estimate_bundle_bytes", "export_streamed"]

STREAMED_METHODS = ("fp32", "int8", "rtn", "gptq")
PARITY_MEASURE = (
    "max |onnx - torch| / max(1, max |torch logits|): the written graph against the PyTorch "
    "reference run layer by layer with the same stored (dequantized) weights, both in float32"
)


def export_streamed(source: ModelSource, job: ExportJob, output: Path) -> ExportResult:
    """Export ``source`` as ``job`` says, one layer at a time (see the module docstring)."""
    check_inputs(source, job, output)
    quant, progress = job.quant, job.progress
    texts = Texts(
        calibration=_calibration_windows(job.calib_ids, job.window),
        evaluation=text_windows(job.heldout, job.window) if _evaluates(job) else [],
        parity=job.parity_prompt,
    )
    fused = job.ort_graph and quant.precision in GRAPH_TOLERANCE
    with BundleWriter(output) as writer:
        progress.stage("export", _export_detail(job))
        graphs = write_graphs(source, quant, writer.dir, job.seq_limit, texts, fused, progress)
        session_config = session_config_for(quant)
        progress.stage(
            "verify",
            "the graph vs the PyTorch reference (same weights), prefill and decode with a KV cache",
        )
        parity = verify(graphs, job, texts, session_config)
        fused_entry = _fused_entry(graphs, job, texts, session_config)
        accuracy = evaluate(source, graphs, job, texts, session_config, fused_entry)
        progress.stage("write", str(writer.target))
        write_text_files(writer.dir, job)
        standard = onnx.load(str(graphs.standard[0]), load_external_data=False)
        manifest = export_manifest(
            job.model,
            quant.precision,
            job.seq_limit,
            {"config": quant.to_dict(), **_details(job, standard, graphs)},
            standard,
            session_config,
            parity,
            accuracy,
            PARITY_MEASURE,
        )
        manifest["onnxruntime"].update(fused_entry)
        bundle = writer.commit(manifest)
    return result_of(job, bundle, parity, accuracy)


def check_inputs(source: ModelSource, job: ExportJob, output: Path) -> None:
    """Every tensor the family reads, with the config's shapes; room on disk for the bundle."""
    config = source.config
    family = family_of(config)
    expected: dict[str, tuple[int, ...]] = {
        EMBEDDING: (config.vocab_size, config.hidden_size),
        "model.norm.weight": (config.hidden_size,),
    }
    if not config.tie_word_embeddings:
        expected[HEAD] = (config.vocab_size, config.hidden_size)
    for index in range(config.num_layers):
        expected |= family.layer_shapes(config, index)
    check_weights(config, source.weights, expected, source.source)
    fused = job.ort_graph and job.quant.precision in GRAPH_TOLERANCE
    check_free_space(
        Path(output).absolute().parent,
        estimate_bundle_bytes(config, job.quant, fused),
        f"the {job.quant.label} bundle",
    )


def estimate_bundle_bytes(config: ModelConfig, quant: QuantConfig, fused: bool) -> int:
    """About what the bundle takes on disk: the stored weights, twice with the fused graph (int8
    and int4: the planner's layouts of ``model.onnx`` and the fused graph, which the default
    configs write; an int4 table once: both graphs read the same bytes)."""
    if quant.precision in ("int8", "int4") and quant.quantize_embedding:
        standard = decode_step_bytes(config, "tensorrt", quant.precision, 1)
        graphs = standard.weights - standard.embedding_rows
        if fused:
            cpu = decode_step_bytes(config, "cpu-fused", quant.precision, 1)
            graphs += cpu.weights - cpu.embedding_rows
            if quant.precision == "int4" and config.tie_word_embeddings:
                graphs -= standard.head  # model.onnx reads the table from the fused graph's file
        return graphs
    group = int(quant.group_size or 0)
    per_weight = {"fp32": 4.0, "int8": 1.0 + (4.0 / group if group else 0.0)}.get(
        quant.precision, 0.5 + (4.0 / group if group else 0.0)
    )
    table = config.vocab_size * config.hidden_size
    table_bytes = table * (1.0 if quant.precision != "fp32" and quant.quantize_embedding else 4.0)
    head = 0 if config.tie_word_embeddings else table * per_weight
    body = sum(config.layer_parameters(i) for i in range(config.num_layers)) * per_weight
    return int((body + head + table_bytes) * (2 if fused else 1))


def verify(
    graphs: StreamedGraphs, job: ExportJob, texts: Texts, session_config: dict[str, str]
) -> ParityReport:
    """The written standard graph against the PyTorch reference with the same weights (computing
    in float32)."""
    path = graphs.standard[0]
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the exported graph fails onnx.checker: {exc}") from exc
    model = OrtModel(path, job.config, {**session_config, **FLOAT_COMPUTE})
    return check_graph_parity(model, texts.parity, texts.decode, graphs.parity_logits)


def _fused_entry(
    graphs: StreamedGraphs, job: ExportJob, texts: Texts, session_config: dict[str, str]
) -> dict[str, Any]:
    """The manifest's ``fused_graph`` entry: the checked onnxruntime graph, or why there is none."""
    precision = job.quant.precision
    if not job.ort_graph:
        return {"fused_graph": None, "fused_graph_skipped": "not asked for (--no-ort-graph)"}
    if not graphs.fused:
        return {
            "fused_graph": None,
            "fused_graph_skipped": f"none for {precision}: the fused CPU graph is built for "
            f"{', '.join(GRAPH_TOLERANCE)} bundles",
        }
    try:
        entry = check_ort_graph(
            graphs.fused,
            job.config,
            precision,
            graphs.fused_reference,
            session_config,
            texts.parity,
            texts.decode,
        )
    except UnsupportedGraph as exc:
        job.note(
            f"{FUSED_GRAPH_LOSS}: {exc}; onnxruntime's CPU EP runs the standard model.onnx instead"
        )
        return {"fused_graph": None, "fused_graph_skipped": str(exc)}
    fused = onnx.load(str(graphs.fused[0]), load_external_data=False)
    entry["io_names"] = graph_io_names(fused, job.config.num_layers, fused=True)
    entry["weights"] = _fused_weights(job.quant)
    return {"fused_graph": entry}


def _fused_weights(quant: QuantConfig) -> str:
    """How the fused graph's weights differ from the standard graph's, in words."""
    if not quant.int8_blocks:
        return "the standard graph's stored weights"
    block = quant.group_size if quant.method == "int8" else INT8_GROUP_SIZE
    return (
        f"int8 weights in blocks of {block} inputs (onnxruntime's CPU kernel keeps its accuracy "
        "so); the standard graph stores them per output channel (TensorRT's form)"
    )


def _details(job: ExportJob, standard: onnx.ModelProto, graphs: StreamedGraphs) -> dict[str, Any]:
    q = graphs.quantizer
    return quant_details(job.quant, standard, q.calibrated, q.solved, q.exponents, job.calibration)


def _evaluates(job: ExportJob) -> bool:
    return job.evaluate and job.quant.precision != "fp32"


def _calibration_windows(ids: list[int], window: int) -> list[list[int]]:
    """Calibration text in windows of ``window`` tokens, each from position 0."""
    return [
        ids[s : s + window] for s in range(0, max(1, len(ids) - 1), window) if ids[s : s + window]
    ]


def _export_detail(job: ExportJob) -> str:
    config, quant = job.config, job.quant
    calibration = f", calibration {job.calibration['source']}" if job.calibration else ""
    return (
        f"{config.num_layers} layers streamed into ONNX opset {graph_opset(quant)}, "
        f"{config.parameter_count() / 1e6:.1f} M parameters, {quant.label}{calibration}"
    )
