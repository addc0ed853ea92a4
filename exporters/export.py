"""Export a model to a bundle: the one entry point, dispatching to the streamed flow (fp32, int8,
int4: layer by layer) or the traced one (fp16, W8A8)."""

from __future__ import annotations

import os
import time
from dataclasses import replace

from edge_sdk.bundle import prepare_target
from edge_sdk.cli_support import Progress
from edge_sdk.errors import ExportError
from edge_sdk.exporters.checkpoint import LoadedModel, load_source
from edge_sdk.exporters.export_job import (
    PRECISIONS,
    ExportResult,
    Precision,
    make_job,
    peak_rss_bytes,
    resolve_quant,
)
from edge_sdk.exporters.families import family_of
from edge_sdk.exporters.loaders import load_model
from edge_sdk.exporters.manifest_record import ModelRecord
from edge_sdk.exporters.quantize.config import QuantConfig
from edge_sdk.exporters.sources import ModelSource, open_model
from edge_sdk.exporters.stream.flow import STREAMED_METHODS, export_streamed
from edge_sdk.exporters.traced_export import export_traced
from edge_sdk.exporters.weights.finite import FiniteWeights, check_finite
from edge_sdk.exporters.write_errors import check_traced_space, write_error
from edge_sdk.owned_dirs import remove_stale_work_dirs

__all__ = ["PRECISIONS", "ExportResult", "Precision", "export", "export_stages"]


def export_stages(quant: QuantConfig) -> int:
    """How many progress stages an export of ``quant`` announces."""
    if quant.method in STREAMED_METHODS:
        return 4 if quant.precision == "fp32" else 5
    return 6


def export(
    model: str | os.PathLike[str] | LoadedModel | ModelSource,
    output: str | os.PathLike[str],
    precision: Precision | None = None,
    *,
    quant: QuantConfig | None = None,
    calib_text: str | os.PathLike[str] | None = None,
    eval_text: str | os.PathLike[str] | None = None,
    eval_tokens: int = 2048,
    max_seq_len: int | None = None,
    force: bool = False,
    ort_graph: bool = True,
    progress: Progress | None = None,
    revision: str | None = None,
    evaluate: bool = True,
) -> ExportResult:
    """Export ``model`` (``model.pt``, Hugging Face folder or hub id, loaded model) to a bundle.

    ``quant`` (a :class:`QuantConfig`) says how to store the weights; ``precision`` is a
    shorthand for a default config (``"int8"`` when neither is given: int8 weights in blocks of
    64 inputs). Every quantized export (anything but fp32) is checked against the float graph on
    ``eval_text`` (default: the packaged held-out text): perplexity of both, top-1 agreement and
    mean KL go into the manifest, and below the precision's threshold (:data:`THRESHOLDS`) it
    raises :class:`~edge_sdk.AccuracyError` unless ``force``. ``calib_text`` (default: the
    packaged calibration text) feeds clipping, GPTQ, AWQ and activation ranges. ``ort_graph``:
    also write ``model.ort.onnx``, the same weights for onnxruntime's CPU EP with fused
    attention (fp32, int8 and int4; about 2x the CPU decode speed, twice the bytes on disk).
    ``revision``: the branch, tag or commit of a hub id (``owner/name``, fetched into the
    Hugging Face cache). ``max_seq_len``: positions the bundle holds (default: the model's
    ``max_position_embeddings``, at most :data:`DEFAULT_MAX_SEQ_LEN`). The result's ``notes``
    say, in the user's words, what the export decided for them (the model's context capped by
    that default, a fused graph that could not be built and what that costs); each also goes to
    ``progress``. ``evaluate=False`` skips the accuracy evaluation and its gate (random-weight
    models; the manifest says so).

    fp32, int8 and int4 are exported one layer at a time from the weights (memory-mapped), so
    memory stays near the bundle's size whatever the model's (:mod:`.stream.flow`); fp16 and
    W8A8 trace the whole float model (:mod:`.traced_export`).
    """
    quant = resolve_quant(precision, quant)
    if eval_tokens < 2:
        raise ExportError(f"eval_tokens must be at least 2, got {eval_tokens}")
    progress = progress or Progress(quiet=True)
    if progress.total <= 0:
        progress.total = export_stages(quant)
    started = time.perf_counter()
    output = prepare_target(output)  # before anything is loaded: a path that cannot be written
    remove_stale_work_dirs()  # what killed exports left in the temporary directory
    label = model.source if isinstance(model, (LoadedModel, ModelSource)) else str(model)
    progress.stage("load", label)
    settings = {
        "calib_text": calib_text,
        "eval_text": eval_text,
        "eval_tokens": eval_tokens,
        "max_seq_len": max_seq_len,
        "force": force,
        "evaluate": evaluate,
        "ort_graph": ort_graph,
        "progress": progress,
    }
    if quant.method in STREAMED_METHODS:
        opened = _source(model, revision, progress)
        source = replace(opened, weights=FiniteWeights(opened.weights, opened.source))
        try:
            family_of(source.config)  # a family without an exporter says so before any work
            job = make_job(_record(source), source.tokenizer_json, quant, **settings)  # type: ignore[arg-type]
            for note in source.notes:
                job.note(note)
            try:
                result = export_streamed(source, job, output)
            except OSError as exc:  # a disk filled up mid-write: one line, nothing kept
                raise write_error(exc, output) from exc
        finally:
            if opened is not model:
                opened.close()
    else:
        loaded = _loaded(model, revision, progress)
        job = make_job(
            ModelRecord(loaded.name, loaded.source, loaded.config, loaded.chat_template),
            loaded.tokenizer_json,
            quant,
            **settings,  # type: ignore[arg-type]
        )
        for name, tensor in loaded.model.state_dict().items():
            check_finite(name, tensor.detach().float().numpy(), loaded.source)
        check_traced_space(loaded.config, quant.precision, output)
        try:
            result = export_traced(loaded, job, output)
        except OSError as exc:
            raise write_error(exc, output) from exc
    return replace(result, seconds=time.perf_counter() - started, peak_rss_bytes=peak_rss_bytes())


def _record(source: ModelSource) -> ModelRecord:
    return ModelRecord(source.name, source.source, source.config, source.chat_template)


def _source(
    model: str | os.PathLike[str] | LoadedModel | ModelSource,
    revision: str | None,
    progress: Progress,
) -> ModelSource:
    if isinstance(model, ModelSource):
        return model
    if isinstance(model, LoadedModel):
        return ModelSource.from_loaded(model)
    return open_model(model, revision, progress)


def _loaded(
    model: str | os.PathLike[str] | LoadedModel | ModelSource,
    revision: str | None,
    progress: Progress,
) -> LoadedModel:
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, ModelSource):
        return load_source(model)
    return load_model(model, revision, progress)
