"""The streamed export's accuracy gate: each graph the bundle keeps against the float model.

The fused graph (``model.ort.onnx``) is what the CPU runs: it is gated as the runtime runs it
(the manifest's session config, the int8 kernel) and must pass. ``model.onnx`` is then the graph
of TensorRT and the GPU providers, which keep activations in float: it is evaluated computing so
(onnxruntime at accuracy level 1), its figures recorded; below the gate the bundle is kept (the
CPU's graph passed) with a note. Without a fused graph (not built, or ``--no-ort-graph``),
``model.onnx`` is the only graph and must pass.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from edge_sdk.exporters.evaluate import AccuracyReport, apply_gate, compare_on_text
from edge_sdk.exporters.export_job import ExportJob
from edge_sdk.exporters.fused_graph_check import FLOAT_COMPUTE
from edge_sdk.exporters.fused_graph_eval import FusedWindows
from edge_sdk.exporters.ort_check import OrtModel
from edge_sdk.exporters.sources import ModelSource
from edge_sdk.exporters.stream.checks import FloatReference
from edge_sdk.exporters.stream.heads import float_head
from edge_sdk.exporters.stream.pipeline import StreamedGraphs, Texts

__all__ = ["evaluate"]


def evaluate(
    source: ModelSource,
    graphs: StreamedGraphs,
    job: ExportJob,
    texts: Texts,
    session_config: dict[str, str],
    fused_entry: dict[str, Any],
) -> AccuracyReport | None:
    """The accuracy gate (module docstring): each graph the bundle keeps against the float
    reference on held-out text; the fused graph's figures go into ``fused_entry["fused_graph"]``.
    Returns ``model.onnx``'s."""
    quant, config = job.quant, job.config
    if quant.precision == "fp32":
        return None
    graphs_kept = "both graphs" if fused_entry.get("fused_graph") else "the graph"
    job.progress.stage(
        "evaluate", f"{len(job.heldout)} held-out tokens, float32 vs {quant.label}, {graphs_kept}"
    )
    if not job.evaluate:
        job.note(
            "accuracy not evaluated (--no-eval): no accuracy figures, no gate; use it for "
            "random-weight models only"
        )
        return None
    reference = FloatReference(
        texts.evaluation, graphs.evaluation_hidden, float_head(config, source.weights)
    )
    fused = fused_entry.get("fused_graph")
    # float activations unless model.onnx is the CPU's graph (the fused one could not be built)
    cpu_runs_standard = fused is None and job.ort_graph
    standard_config = session_config if cpu_runs_standard else {**session_config, **FLOAT_COMPUTE}
    exported = OrtModel(graphs.standard[0], config, standard_config)
    report = compare_on_text(reference, exported, job.heldout, job.window, job.heldout_source)
    report = replace(report, computed_as=_computed_as(standard_config))
    del exported
    if fused is None:
        return apply_gate(report, quant.precision, config.vocab_size, job.force, "model.onnx")
    windows = FusedWindows(graphs.fused[0], config, session_config, texts.evaluation)
    cpu = compare_on_text(reference, windows, job.heldout, job.window, job.heldout_source)
    cpu = replace(cpu, computed_as=_computed_as(session_config))
    gated = apply_gate(cpu, quant.precision, config.vocab_size, job.force, fused["file"])
    fused["quantized_vs_float"] = gated.to_dict()
    return _tensorrt_gate(report, job)


def _tensorrt_gate(report: AccuracyReport, job: ExportJob) -> AccuracyReport:
    """``model.onnx``'s gate when the CPU runs the fused graph (which passed): below it, the
    bundle is kept (the CPU's graph passed) and the verdict and a note say what TensorRT loses."""
    precision, vocab = job.quant.precision, job.config.vocab_size
    gated = apply_gate(report, precision, vocab, True, "model.onnx")
    if job.force or not gated.gate.startswith("forced: "):
        return gated
    missed = gated.gate.removeprefix("forced: ")
    other = "--int4 (block-wise int4) or --fp16" if precision == "int8" else "--fp16"
    job.note(
        f"model.onnx (TensorRT's form: int8 per output channel, float activations) misses the "
        f"{precision} gate ({missed}); the bundle is kept for the CPU, whose graph passed. For "
        f"TensorRT export {other}"
    )
    return replace(gated, gate=f"missed, kept for the CPU graph: {missed}")


def _computed_as(session_config: dict[str, str]) -> str:
    """The onnxruntime settings a graph was evaluated with, in words."""
    level = session_config.get("session.qdq_matmulnbits_accuracy_level", "0")
    if level == "1":
        return (
            "weights dequantized, float32 activations (accuracy level 1): as TensorRT and the "
            "GPU providers compute, up to their fp16"
        )
    block = session_config.get("session.qdq_matmulnbits_block_size", "")
    return (
        f"onnxruntime's CPU EP as the runtime runs it (accuracy level {level}: int8 activations "
        f"per block of {block or 'the weights'})"
    )
