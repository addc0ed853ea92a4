"""The traced export flow, for fp16 and W8A8: the float model traced by ``torch.onnx.export``,
then the graph rewritten. It holds the whole float model and graph in memory (models up to about
0.5B parameters); fp32, int8 and int4 take the streamed flow (:mod:`.stream.flow`) instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from edge_sdk.bundle import BundleWriter
from edge_sdk.errors import ExportError
from edge_sdk.exporters.checkpoint import LoadedModel
from edge_sdk.exporters.evaluate import AccuracyReport, apply_gate, compare_on_text
from edge_sdk.exporters.export_job import ExportJob, ExportResult, result_of, write_text_files
from edge_sdk.exporters.fused_graph_check import GRAPH_TOLERANCE
from edge_sdk.exporters.manifest_record import export_manifest
from edge_sdk.exporters.onnx_export import OPSET, export_onnx, save_onnx
from edge_sdk.exporters.ort_check import OrtModel
from edge_sdk.exporters.quantize.pipeline import quantize_model
from edge_sdk.exporters.verify import check_parity
from edge_sdk.owned_dirs import work_dir

__all__ = ["TRACED_METHODS", "export_traced"]

TRACED_METHODS = ("fp16", "w8a8")


def export_traced(loaded: LoadedModel, job: ExportJob, output: Path) -> ExportResult:
    """Trace, verify, quantize, evaluate and write ``loaded`` as ``job`` says."""
    config, quant, progress = job.config, job.quant, job.progress
    name = quant.precision
    with work_dir() as work, BundleWriter(output) as writer:
        progress.stage(
            "export", f"ONNX opset {OPSET}, {config.parameter_count() / 1e6:.1f} M parameters"
        )
        float_path = export_onnx(loaded.model, Path(work) / "float.onnx")
        progress.stage("verify", "ONNX vs PyTorch, prefill and decode with a KV cache")
        float_ort = OrtModel(float_path, config)
        parity = check_parity(loaded.model, float_ort, job.parity_prompt)
        progress.stage(
            "quantize",
            quant.label + (f", calibration {job.calibration['source']}" if job.calibration else ""),
        )
        result = quantize_model(
            loaded.model, float_path, quant, job.calib_ids, job.window, job.calibration, progress
        )
        files = save_onnx(result.graph, writer.dir / "model.onnx")
        _check(files[0])
        accuracy: AccuracyReport | None = None
        if job.evaluate:
            progress.stage(
                "evaluate", f"{len(job.heldout)} held-out tokens, float32 vs {quant.label}"
            )
            exported = OrtModel(files[0], config, result.session_config)
            accuracy = compare_on_text(
                float_ort, exported, job.heldout, job.window, job.heldout_source
            )
            accuracy = apply_gate(accuracy, name, config.vocab_size, job.force)
        progress.stage("write", str(writer.target))
        write_text_files(writer.dir, job)
        manifest = export_manifest(
            job.model,
            name,
            job.seq_limit,
            {"config": quant.to_dict(), **result.details},
            result.graph,
            result.session_config,
            parity,
            accuracy,
        )
        manifest["onnxruntime"].update(_no_fused_graph(name))
        bundle = writer.commit(manifest)
    return result_of(job, bundle, parity, accuracy)


def _no_fused_graph(precision: str) -> dict[str, Any]:
    return {
        "fused_graph": None,
        "fused_graph_skipped": f"none for {precision}: the fused CPU graph is built for "
        f"{', '.join(GRAPH_TOLERANCE)} bundles",
    }


def _check(path: Path) -> None:
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the exported graph fails onnx.checker: {exc}") from exc
